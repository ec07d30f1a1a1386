"""The streaming executor: runs a recipe tensor by tensor.

1. Open every input and read only its header; detect each file's kind and
   architecture and refuse mismatches before any tensor is read.
2. Build LoRA-valued steps (``merge_loras``) first, into temporary files
   beside the output: they are small and their shapes (ranks) are only known
   once computed.
3. Plan the output: for each key, in sorted order, an expression over input
   tensors, its dtype and shape. The header is written from this plan.
4. A reader thread fills fixed-size buffers with slices of the input tensors
   while the main thread computes and writes the previous slices. Elementwise
   methods work slice by slice, so memory stays at a few buffers whatever the
   model size; methods that need the whole key (slerp, ties, model_stock)
   read whole tensors, one key at a time.
5. The output goes to a temporary file in the destination directory, renamed
   over the destination only when complete; on any error or cancellation the
   temporary files are removed.

Output bytes depend only on the recipe and the inputs: keys in sorted order,
metadata without timestamps, float32 maths whose only reductions are
order-independent (see ``methods``), and deterministic torch algorithms.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import methods
from .blocks import block_index
from .direct_io import DirectFileWriter, _set_direct
from .hash_cache import HashCache, file_identity
from .hashing import FileHasher, autov1_of_file
from .recipe import OPS, Recipe, RecipeError, Step, canonical_dumps, merge_key, parse_recipe, resolve_inputs
from .safetensors_io import (
    SafetensorsError,
    SafetensorsReader,
    SafetensorsWriter,
    TensorInfo,
    TensorSpec,
    build_header,
    torch_dtype,
    write_all,
)

__all__ = ["MergeCancelled", "MergeError", "RunResult", "execute"]

ProgressFn = Callable[[int, int, int, int], None]
CancelFn = Callable[[], bool]

_OUT_DTYPES = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}
_QUEUE_DEPTH = 6
_PREFETCH_BUDGET = 96 << 20  # bytes of input slices read ahead of the compute
_COPY_CHUNK = 8 << 20
# Elements per key slice handed to a compute thread. Each slice costs a few
# dozen Python-level torch calls; at 1M elements that overhead (and the GIL
# traffic between reader, compute and writer threads) stays small next to the
# maths, while a slice's float32 temporaries are still only a few MB.
SLICE_ELEMS = 1 << 20


class MergeError(RuntimeError):
    """A merge that cannot run or failed; ``code`` is short and stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MergeCancelled(MergeError):
    def __init__(self) -> None:
        super().__init__("cancelled", "merge cancelled")


@dataclass
class RunResult:
    output_path: str
    sha256: str
    tensors: int
    bytes: int
    merge_key: str | None
    input_sha256s: dict[str, str]
    # Keys copied from the first input because another input lacks them.
    passthrough_keys: list[str] = field(default_factory=list)
    hashes: dict[str, str | None] | None = None
    seconds: float = 0.0


# -- expressions over the tensors of one key -----------------------------------------------


@dataclass(eq=False)
class Leaf:
    source: int  # index into the run's readers
    name: str
    info: TensorInfo


@dataclass(eq=False)
class OpNode:
    step: Step
    children: list[Any]
    params: dict[str, Any]  # resolved for this key (block weights looked up)
    key_seed: int = 0


@dataclass(eq=False)
class LoraNode:
    child: Any
    source: int  # reader of the LoRA
    targets: list[Any]  # lora.LoraTarget
    strength: float


Node = Leaf | OpNode | LoraNode


@dataclass
class KeyPlan:
    name: str
    shape: tuple[int, ...]
    dtype: str  # output safetensors dtype
    expr: Node
    whole: bool  # needs the whole tensor at once (non-elementwise method)
    leaves: list[Leaf]
    loras: list[LoraNode]
    _shared: frozenset[int] | None = field(default=None, repr=False)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def shared_nodes(self) -> frozenset[int]:
        """Ids of the nodes more than one parent reads (a step or input used twice)."""
        if self._shared is None:
            parents: dict[int, int] = {}
            for node in _walk(self.expr, set()):
                if isinstance(node, OpNode):
                    children = node.children
                elif isinstance(node, LoraNode):
                    children = [node.child]
                else:
                    children = []
                for child in children:
                    parents[id(child)] = parents.get(id(child), 0) + 1
            self._shared = frozenset(i for i, n in parents.items() if n > 1)
        return self._shared

    @property
    def raw_copy(self) -> bool:
        return isinstance(self.expr, Leaf) and self.expr.info.dtype == self.dtype


def _walk(node: Node, seen: set[int]) -> Iterator[Node]:
    if id(node) in seen:
        return
    seen.add(id(node))
    yield node
    if isinstance(node, OpNode):
        for c in node.children:
            yield from _walk(c, seen)
    elif isinstance(node, LoraNode):
        yield from _walk(node.child, seen)


# -- the run ------------------------------------------------------------------------------------


@dataclass
class _Source:
    name: str  # recipe input name, or step id for an intermediate LoRA
    path: str
    reader: SafetensorsReader
    kind: str  # checkpoint | lora
    arch: str | None
    sha256: str | None = None


class _Run:
    def __init__(
        self,
        recipe: Recipe,
        paths: Mapping[str, str],
        output_path: str,
        device: str,
        progress: ProgressFn | None,
        should_cancel: CancelFn | None,
        input_sha256s: Mapping[str, str],
        output_hashes: bool,
        hash_output: bool,
        fsync: bool,
        chunk_elems: int,
        threads: int,
        hash_cache: HashCache | None = None,
    ) -> None:
        self.recipe = recipe
        self.paths = dict(paths)
        self.output_path = os.path.abspath(output_path)
        self.device = torch.device(device)
        self.progress = progress
        self.should_cancel = should_cancel
        self.known_sha256s = dict(input_sha256s)
        self.output_hashes = output_hashes
        self.hash_output = hash_output or output_hashes
        self.fsync = fsync
        self.chunk_elems = chunk_elems
        self.threads = threads
        self.sources: list[_Source] = []
        self.by_name: dict[str, int] = {}  # input name / step id -> source index
        self.temp_files: list[str] = []
        self.passthrough: set[str] = set()
        self.arch = recipe.architecture
        self._lora_modules: dict[int, Any] = {}  # source index -> parsed LoRA modules
        self.merge_key: str | None = None
        self.all_sha256s: dict[str, str] = {}
        self.hash_cache = hash_cache
        # Inputs being hashed while the merge runs; their places in the header hold placeholders.
        self.hashing: list[tuple[_Source, _InputHash]] = []

    # ---- setup --------------------------------------------------------------------------------
    def open_inputs(self) -> None:
        from .detect import detect

        errors: list[tuple[str, str]] = []
        for name in self.recipe.needed_inputs():
            path = self.paths.get(name) or self.recipe.inputs[name].get("path")
            if not path:
                errors.append((f"inputs.{name}", "no file given for this input"))
                continue
            try:
                reader = SafetensorsReader(path)
            except FileNotFoundError:
                errors.append((f"inputs.{name}", f"file not found: {path}"))
                continue
            except SafetensorsError as e:
                raise SafetensorsError(e.code, f"input {name!r} ({path}): {e.message}") from None
            self.by_name[name] = len(self.sources)
            det = detect(reader.header.shapes)
            src = _Source(name, path, reader, det.kind, det.arch if det.kind == "checkpoint" else det.base)
            self.sources.append(src)
            if det.kind not in ("checkpoint", "lora"):
                errors.append((f"inputs.{name}", f"is a {det.kind} file, not a checkpoint or LoRA"))
            elif src.arch is not None and src.arch != self.arch:
                errors.append((f"inputs.{name}", _arch_message(det.kind, src.arch, self.arch)))
            elif src.arch is None and det.kind == "checkpoint":
                errors.append((f"inputs.{name}", "architecture not recognised from its keys"))
        if errors:
            raise RecipeError(errors)
        # Each step input must hold the kind of value its op expects.
        for step in self.recipe.needed_steps():
            for j, ref in enumerate(step.inputs):
                if ref in self.by_name:
                    got = self.sources[self.by_name[ref]].kind
                    want = step.spec.input_kind(j)
                    if got != want:
                        errors.append((f"steps[{step.index}].inputs[{j}]", f"{ref!r} is a {got}, {step.op} needs a {want}"))
        if errors:
            raise RecipeError(errors)

    def resolve_sha256s(self, defer: bool) -> dict[str, str]:
        """Input SHA-256s: given, remembered (hash cache) or computed.

        With ``defer`` the unknown ones are hashed on background threads
        while the merge runs and stand in the header as placeholders of the
        same width until ``finish_hashing`` (see ``_InputHash``); otherwise
        they are hashed here, first.
        """
        out: dict[str, str] = {}
        started: list[tuple[_Source, _InputHash]] = []
        for src in self.sources:
            if src.name not in self.recipe.inputs:
                continue
            # Hashes the caller already verified (the registry's stored files) are trusted;
            # a hash pinned in the recipe is a claim about a file we were handed, so check it.
            sha = self.known_sha256s.get(src.name)
            if not sha and self.hash_cache is not None:
                sha = self.hash_cache.get(src.path)
                if sha:
                    self._check_pinned(src, sha)
            if not sha:
                job = _InputHash(src.path)
                job.start()
                started.append((src, job))
                continue
            src.sha256 = sha.lower()
            out[src.name] = src.sha256
        if not defer:
            for src, job in started:
                out[src.name] = self._hashed(src, job)
            return out
        self.hashing = started
        for i, (src, _job) in enumerate(started):
            # Fixed-width stand-ins, so the header built with them has the final header's length:
            # the pinned hash where the recipe pins one (checked once computed), else a distinct dummy.
            pinned = self.recipe.inputs[src.name].get("sha256")
            src.sha256 = pinned.lower() if isinstance(pinned, str) and len(pinned) == 64 else f"{i + 1:064x}"
            out[src.name] = src.sha256
        return out

    def _check_pinned(self, src: _Source, sha: str) -> None:
        pinned = self.recipe.inputs[src.name].get("sha256")
        if pinned and pinned.lower() != sha.lower():
            raise MergeError(
                "input_hash",
                f"inputs.{src.name}: {src.path} has sha256 {sha.lower()}, but the recipe pins {pinned.lower()}",
            )

    def _hashed(self, src: _Source, job: "_InputHash") -> str:
        sha = job.result()
        self._check_pinned(src, sha)
        if self.hash_cache is not None:
            self.hash_cache.put(src.path, sha, job.identity)
        src.sha256 = sha
        return sha

    def finish_hashing(self) -> bool:
        """Wait for the inputs still being hashed and put their digests in place; True if there were any."""
        if not self.hashing:
            return False
        hashing, self.hashing = self.hashing, []
        for src, job in hashing:
            self.all_sha256s[src.name] = self._hashed(src, job)
        self.merge_key = merge_key(self.recipe, self.all_sha256s, _engine_version())
        return True

    def stop_hashing(self) -> None:
        for _src, job in self.hashing:
            job.stop()

    # ---- parameters for one key ---------------------------------------------------------------
    def param(self, step: Step, name: str, key: str) -> Any:
        v = step.params[name]
        if isinstance(v, Mapping):
            try:
                return v["blocks"][block_index(key, self.arch)]
            except ValueError as e:
                raise MergeError("block_index", f"steps[{step.index}].{name}: {e}") from None
        return v

    # ---- LoRA-valued steps ----------------------------------------------------------------------
    def build_lora_steps(self, final_fd: int | None) -> tuple[FileHasher, int] | None:
        """Compute every needed merge_loras step; the output one goes to ``final_fd``.

        Returns the output's hasher and tensor count when the output is a LoRA.
        """
        result = None
        for step in self.recipe.needed_steps():
            if step.spec.output != "lora":
                continue
            if step.id == self.recipe.output_step:
                assert final_fd is not None
                result = self._merge_loras(step, final_fd, _OUT_DTYPES[self.recipe.output_dtype], final=True)
                continue
            fd, path = _temp_in(os.path.dirname(self.output_path), f".{step.id}.lora")
            self.temp_files.append(path)
            try:
                # Intermediate LoRAs stay float32: they are small and feed later maths.
                self._merge_loras(step, fd, "F32", final=False)
            finally:
                os.close(fd)
            reader = SafetensorsReader(path)
            self.by_name[step.id] = len(self.sources)
            self.sources.append(_Source(step.id, path, reader, "lora", self.arch))
        return result

    def _merge_loras(self, step: Step, out_fd: int, out_dtype: str, final: bool) -> tuple[FileHasher, int] | None:
        """Merge LoRAs module by module into a spool, then write it out sorted."""
        from .lora import merge_lora_modules, parse_lora_modules

        srcs = [self.sources[self.by_name[r]] for r in step.inputs]
        parsed = [parse_lora_modules(s.reader.keys()) for s in srcs]
        weights = step.params["weights"]
        names = sorted(set().union(*[p.keys() for p in parsed]))
        spool_fd, spool_path = _temp_in(os.path.dirname(self.output_path), f".{step.id}.spool")
        self.temp_files.append(spool_path)
        specs: list[TensorSpec] = []
        offsets: dict[str, tuple[int, int]] = {}
        pos = 0
        try:
            for i, module in enumerate(names):
                self.check_cancel()
                items = []
                for src, mods, w in zip(srcs, parsed, weights):
                    if module in mods:
                        items.append(({role: src.reader.read(t) for role, t in mods[module].keys.items()}, w))
                merged = merge_lora_modules(items, step.params["mode"], step.params["target_rank"])
                for role, tensor in merged.items():
                    tname = f"{module}.{_KOHYA_SUFFIX[role]}"
                    data = tensor.detach().to(torch_dtype(out_dtype)).contiguous().cpu()
                    raw = memoryview(data.reshape(-1).view(torch.uint8).numpy()).cast("B")
                    write_all(spool_fd, raw)
                    specs.append(TensorSpec(tname, out_dtype, tuple(data.shape)))
                    offsets[tname] = (pos, len(raw))
                    pos += len(raw)
                # Sizes are unknown until every module is merged: count modules only.
                self.report(i + 1, len(names), 0, 0)
            meta = self.metadata(kind="lora") if final else {}
            writer, hasher = self._writer(out_fd, specs, meta, hashed=final)
            for spec in sorted(specs, key=lambda s: s.name):
                start, length = offsets[spec.name]
                done = 0
                while done < length:
                    chunk = os.pread(spool_fd, min(_COPY_CHUNK, length - done), start + done)
                    if not chunk:
                        raise MergeError("io", "temporary LoRA spool ended early")
                    writer.write_bytes(spec.name, memoryview(chunk))
                    done += len(chunk)
            writer.close()
            return (hasher, len(specs)) if final else None
        finally:
            os.close(spool_fd)

    # ---- planning the checkpoint output --------------------------------------------------------
    def plan(self) -> list[KeyPlan]:
        from .lora import map_lora_to_base, parse_lora_modules

        memo: dict[str, dict[str, Node]] = {}
        steps = {s.id: s for s in self.recipe.steps}

        def exprs(ref: str) -> dict[str, Node]:
            """Expression for every key of the value ``ref`` (input or step)."""
            if ref in memo:
                return memo[ref]
            if ref in self.by_name:
                idx = self.by_name[ref]
                out: dict[str, Node] = {k: Leaf(idx, k, info) for k, info in self.sources[idx].reader.tensors.items()}
            else:
                step = steps[ref]
                if step.op == "apply_lora":
                    out = self._plan_lora(step, exprs(step.inputs[0]), step.inputs[1], parse_lora_modules, map_lora_to_base)
                else:
                    out = self._plan_merge(step, [exprs(r) for r in step.inputs])
            memo[ref] = out
            return out

        top = exprs(self.recipe.output_step)
        out_dtype = _OUT_DTYPES[self.recipe.output_dtype]
        plans: list[KeyPlan] = []
        for key in sorted(top):
            expr = top[key]
            nodes = list(_walk(expr, set()))
            leaves = [n for n in nodes if isinstance(n, Leaf)]
            first = _first_leaf(expr)
            dtype = out_dtype if first.info.is_float else first.info.dtype
            whole = any(isinstance(n, OpNode) and n.step.op not in methods.ELEMENTWISE for n in nodes)
            # Leaves are read once per key even when several steps use them.
            unique: dict[tuple[int, str], Leaf] = {}
            for leaf in leaves:
                unique.setdefault((leaf.source, leaf.name), leaf)
            plans.append(
                KeyPlan(
                    name=key,
                    shape=first.info.shape,
                    dtype=dtype,
                    expr=expr,
                    whole=whole,
                    leaves=list(unique.values()),
                    loras=[n for n in nodes if isinstance(n, LoraNode)],
                )
            )
        return plans

    def _plan_merge(self, step: Step, inputs: list[dict[str, Node]]) -> dict[str, Node]:
        out: dict[str, Node] = {}
        errors: list[str] = []
        for key, first in inputs[0].items():
            nodes = [first] + [other.get(key) for other in inputs[1:]]
            infos = [_first_leaf(n).info if n is not None else None for n in nodes]
            if any(n is None for n in nodes) or not all(i.is_float for i in infos if i is not None):
                # As A1111 does: a key the other models lack (or an integer
                # buffer) is the first model's value.
                out[key] = first
                self.passthrough.add(key)
                continue
            shapes = {i.shape for i in infos if i is not None}
            if len(shapes) > 1:
                names = ", ".join(f"{r}: {list(i.shape)}" for r, i in zip(step.inputs, infos) if i is not None)
                errors.append(f"{key} ({names})")
                continue
            params = {name: self.param(step, name, key) for name in step.params if name in _KEYED_PARAMS}
            params.update({name: v for name, v in step.params.items() if name not in _KEYED_PARAMS})
            seed = methods.dare_key_seed(self.recipe.seed, step.id, key) if step.op == "dare" else 0
            out[key] = OpNode(step, nodes, params, seed)
        if errors:
            more = f" … and {len(errors) - 10} more" if len(errors) > 10 else ""
            raise MergeError(
                "shape_mismatch",
                f"steps[{step.index}] ({step.op}): inputs disagree on the shape of {len(errors)} key(s): "
                + "; ".join(errors[:10])
                + more,
            )
        return out

    def _plan_lora(self, step: Step, base: dict[str, Node], lora_ref: str, parse, map_to_base) -> dict[str, Node]:
        src_idx = self.by_name[lora_ref]
        modules = parse(self.sources[src_idx].reader.keys())
        from .lora import LoraKeyError

        try:
            targets = map_to_base(modules, set(base), self.arch)
        except LoraKeyError as e:  # lists every unmatched module
            raise MergeError("lora_keys_unmatched", f"steps[{step.index}] ({lora_ref}): {e}") from None
        out = dict(base)
        for key, tlist in targets.items():
            if not _first_leaf(base[key]).info.is_float:
                raise MergeError("lora_target", f"steps[{step.index}]: LoRA targets {key}, which is not a float tensor")
            out[key] = LoraNode(base[key], src_idx, tlist, float(self.param(step, "strength", key)))
        self._lora_modules.setdefault(src_idx, modules)
        return out

    # ---- metadata ---------------------------------------------------------------------------
    def metadata(self, kind: str = "checkpoint") -> dict[str, str]:
        recipe = self.recipe
        inputs = {s.name: s.sha256 for s in self.sources if s.name in recipe.inputs and s.sha256}
        meta = {
            "format": "pt",
            # Inputs by file hash: reproducible anywhere, and no local paths leak.
            "mergeworks_recipe": resolve_inputs(recipe, self.all_sha256s).canonical_json(),
            "mergeworks_recipe_hash": recipe.hash(),
            "mergeworks_inputs": canonical_dumps(inputs),
            "mergeworks_engine_version": _engine_version(),
        }
        if self.merge_key:
            meta["mergeworks_merge_key"] = self.merge_key
        meta.update(self._a1111_provenance(inputs))
        if kind == "lora":
            meta["ss_network_module"] = "networks.lora"
            for s in self.sources:
                if s.kind == "lora" and "ss_base_model_version" in s.reader.metadata:
                    meta["ss_base_model_version"] = s.reader.metadata["ss_base_model_version"]
                    break
        return meta

    def _a1111_provenance(self, inputs: Mapping[str, str]) -> dict[str, str]:
        """``sd_merge_recipe``/``sd_merge_models`` as A1111's checkpoint merger writes them."""
        steps = self.recipe.needed_steps()
        checkpoints = [s for s in self.sources if s.kind == "checkpoint" and s.name in inputs]
        hashes = [s.sha256 for s in checkpoints] + [None, None, None]
        interp = "mergeworks recipe"
        multiplier = None
        if len(steps) == 1:
            interp = {"weighted_sum": "Weighted sum", "add_difference": "Add difference"}.get(steps[0].op, steps[0].op)
            alpha = steps[0].params.get("alpha")
            multiplier = alpha if isinstance(alpha, float) else None
        sd_recipe = {
            "type": "mergeworks",
            "primary_model_hash": hashes[0],
            "secondary_model_hash": hashes[1],
            "tertiary_model_hash": hashes[2],
            "interp_method": interp,
            "multiplier": multiplier,
            "save_as_half": self.recipe.output_dtype == "fp16",
            "custom_name": None,  # the output bytes must not depend on the file name
            "config_source": 0,
            "bake_in_vae": "None",
            "discard_weights": "",
            "is_inpainting": False,
            "is_instruct_pix2pix": False,
            "mergeworks_recipe_hash": self.recipe.hash(),
        }
        models: dict[str, Any] = {}
        for s in self.sources:
            if s.name not in inputs:
                continue
            own_recipe = _json_or_none(s.reader.metadata.get("sd_merge_recipe"))
            models[s.sha256] = {
                "name": s.name,
                "legacy_hash": autov1_of_file(s.path),
                "sd_merge_recipe": own_recipe,
            }
            earlier = _json_or_none(s.reader.metadata.get("sd_merge_models"))
            if isinstance(earlier, dict):
                for sha, entry in earlier.items():
                    models.setdefault(sha, entry)
        return {
            "sd_merge_recipe": json.dumps(sd_recipe, sort_keys=True),
            "sd_merge_models": json.dumps(models, sort_keys=True),
        }

    # ---- helpers ----------------------------------------------------------------------------
    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise MergeCancelled()

    def report(self, done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        if self.progress is not None:
            self.progress(done, total, done_bytes, total_bytes)

    def _writer(
        self, fd: int, specs: list[TensorSpec], meta: dict[str, str], hashed: bool = True,
        raw_write: Callable[[memoryview], None] | None = None,
    ) -> tuple[SafetensorsWriter, FileHasher | None]:
        if not (hashed and self.hash_output):
            return SafetensorsWriter(fd, specs, meta, raw_write=raw_write), None
        hasher = FileHasher() if self.output_hashes else FileHasher(("sha256",))
        # The executor never reuses memory it has written, so the hasher may
        # read it later without a copy.
        try:
            sink = lambda view: hasher.update(view, owned=True)  # noqa: E731
            return SafetensorsWriter(fd, specs, meta, sink=sink, raw_write=raw_write), hasher
        except BaseException:
            hasher.close()
            raise

    # ---- streaming the checkpoint -------------------------------------------------------------
    def stream(self, plans: list[KeyPlan], fd: int) -> FileHasher | None:
        specs = [TensorSpec(p.name, p.dtype, p.shape) for p in plans]
        out = DirectFileWriter(fd)
        deferred = None
        try:
            if self.hashing:
                # The header is written now with placeholder input hashes and again,
                # final, once the inputs are hashed; the output's hasher starts from
                # the final header and catches up on the data it was held back from.
                deferred = _DeferredHeader(self, specs)
                hasher = deferred.hasher
                writer = SafetensorsWriter(fd, specs, self.metadata(), sink=deferred.sink, raw_write=out.write)
            else:
                writer, hasher = self._writer(fd, specs, self.metadata(), raw_write=out.write)
        except BaseException:
            out.abort()
            raise
        try:
            self._stream(plans, writer)
            out.close()
            if deferred is not None:
                deferred.finish(fd, writer.header_bytes)
        except BaseException:
            out.abort()
            if hasher is not None:
                hasher.close()
            raise
        return hasher

    def _stream(self, plans: list[KeyPlan], writer: SafetensorsWriter) -> None:
        """Read ahead (reader thread), compute slices in parallel (pool), write in order (here)."""
        for src in self.sources:
            src.reader.expect_sequential()
        total_bytes = writer.data_bytes
        done_bytes = 0
        reader = _Prefetcher(self, plans)
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="merge-compute")
        # (key index, slice, its result) in file order; the oldest is written first.
        pending: deque[tuple[int, _Item, Future[Any]]] = deque()
        written_keys = 0

        def write_oldest() -> None:
            nonlocal done_bytes, written_keys
            k, item, fut = pending.popleft()
            plan = plans[k]
            data = fut.result()
            if isinstance(data, bytes):
                writer.write_bytes(plan.name, memoryview(data))
            else:
                writer.write(plan.name, data)
            if item.start + item.count == plan.numel:
                # Last slice of the key (keys before it are complete too).
                while written_keys <= k:
                    done_bytes += writer.infos[plans[written_keys].name].nbytes
                    written_keys += 1
                self.report(written_keys, len(plans), done_bytes, total_bytes)

        reader.start()
        try:
            self.report(0, len(plans), 0, total_bytes)
            for k, plan in enumerate(plans):
                self.check_cancel()
                deltas: dict[int, Tensor] = {}
                remaining = plan.numel
                while remaining > 0:
                    item = reader.next()
                    if item.key_index != k:
                        raise MergeError("internal", f"reader out of step at {plan.name}")
                    if item.lora_tensors:
                        self._lora_deltas(plan, item.lora_tensors, deltas)
                    pending.append((k, item, pool.submit(self._compute, plan, item, deltas, reader)))
                    remaining -= item.count
                    while len(pending) > 2 * self.threads + 1:
                        write_oldest()
                if plan.numel == 0 and not pending:
                    written_keys = k + 1
                    self.report(written_keys, len(plans), done_bytes, total_bytes)
            while pending:
                write_oldest()
            if written_keys < len(plans):  # trailing empty tensors
                self.report(len(plans), len(plans), total_bytes, total_bytes)
            writer.close()
        finally:
            for _, _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)
            reader.stop()

    def _compute(self, plan: KeyPlan, item: "_Item", deltas: dict[int, Tensor], reader: "_Prefetcher") -> bytes | Tensor:
        """One slice of one key, ready to write (runs on a pool thread).

        Returns fresh memory (never an input buffer, which goes back to the
        reader here), so the hasher may keep reading it after the write.
        """
        try:
            if plan.raw_copy:
                return bytes(item.raw[id(plan.leaves[0])])
            if self.device.type == "cpu" and not plan.whole:
                return self._compute_pieces(plan, item, deltas)
            result = self._eval(plan.expr, item, {}, deltas)
            return result.to(torch_dtype(plan.dtype)).cpu()
        finally:
            reader.release(item)

    def _compute_pieces(self, plan: KeyPlan, item: "_Item", deltas: dict[int, Tensor]) -> Tensor:
        """The slice on the CPU, in cache-sized pieces through this thread's scratch buffers.

        Same arithmetic as ``_eval`` (the in-place methods mirror the
        allocating ones), but no per-piece allocation: on a 2-core machine
        fresh temporaries cost more than the maths itself.
        """
        out = torch.empty(item.count, dtype=torch_dtype(plan.dtype))
        scratch = _scratch()
        shared = plan.shared_nodes()
        for lo in range(0, item.count, PIECE_ELEMS):
            hi = min(lo + PIECE_ELEMS, item.count)
            try:
                out[lo:hi].copy_(self._eval_piece(plan.expr, item, lo, hi, deltas, scratch, shared, {}))
            finally:
                scratch.release_all()
        return out

    def _eval_piece(
        self, node: Node, item: "_Item", lo: int, hi: int, deltas: dict[int, Tensor],
        scratch: "_Scratch", shared: frozenset[int], memo: dict[int, Tensor],
    ) -> Tensor:
        """Float32 value of ``node`` over ``[lo, hi)`` of the slice, in a buffer the caller may overwrite.

        A node several steps read is computed once per piece and kept
        aside; each reader gets its own copy, since readers work in place.
        """
        kept = memo.get(id(node))
        if kept is not None:
            return scratch.take(hi - lo).copy_(kept)
        if isinstance(node, Leaf):
            result = scratch.take(hi - lo).copy_(item.tensors[(node.source, node.name)][lo:hi])
        elif isinstance(node, LoraNode):
            result = self._eval_piece(node.child, item, lo, hi, deltas, scratch, shared, memo)
            delta = deltas[id(node)][item.start + lo : item.start + hi]
            result.add_(torch.mul(delta, node.strength, out=scratch.take(hi - lo)))
        else:
            args = [self._eval_piece(c, item, lo, hi, deltas, scratch, shared, memo) for c in node.children]
            if node.step.op in _INPLACE:
                result = _apply_inplace(node, args, scratch)
            else:
                result = _apply(node, args, item.start + lo)
        if id(node) in shared:
            memo[id(node)] = result
            return scratch.take(hi - lo).copy_(result)
        return result

    def _lora_deltas(self, plan: KeyPlan, tensors: dict[int, dict[str, dict[str, Tensor]]], deltas: dict[int, Tensor]) -> None:
        from .lora import lora_key_delta

        for node in plan.loras:
            modules = self._lora_modules[node.source]
            d = lora_key_delta(plan.shape, node.targets, modules, tensors[id(node)])
            deltas[id(node)] = d.reshape(-1).to(self.device)

    def _eval(self, node: Node, item: "_Item", values: dict[int, Tensor], deltas: dict[int, Tensor]) -> Tensor:
        """Float32 value of ``node`` over the item's slice of the key."""
        got = values.get(id(node))
        if got is not None:
            return got
        if isinstance(node, Leaf):
            t = item.tensors[(node.source, node.name)]
            result = t.to(self.device, non_blocking=True)
            result = result if result.dtype == torch.float32 else result.float()
        elif isinstance(node, LoraNode):
            base = self._eval(node.child, item, values, deltas)
            delta = deltas[id(node)][item.start : item.start + item.count]
            result = base + delta * node.strength
        else:
            args = [self._eval(c, item, values, deltas) for c in node.children]
            result = _apply(node, args, item.start)
        values[id(node)] = result
        return result

    # ---- entry ---------------------------------------------------------------------------------
    def run(self) -> RunResult:
        from .lora import LoraFormatError, LoraShapeError

        t0 = time.perf_counter()
        self.open_inputs()
        output_is_lora = OPS[self.recipe.step(self.recipe.output_step).op].output == "lora"
        # A checkpoint output is streamed with its header rewritten at the end, so its
        # inputs are hashed while it is merged; a LoRA output is small: hash first.
        sha256s = self.resolve_sha256s(defer=not output_is_lora)
        self.all_sha256s = sha256s
        self.merge_key = merge_key(self.recipe, sha256s, _engine_version())
        out_dir = os.path.dirname(self.output_path)
        fd, tmp = _temp_in(out_dir, "." + os.path.basename(self.output_path))
        self.temp_files.append(tmp)
        with _deterministic(self.device):
            try:
                lora_out = self.build_lora_steps(fd if output_is_lora else None)
                if lora_out is not None:
                    hasher, n_tensors = lora_out
                else:
                    plans = self.plan()
                    hasher = self.stream(plans, fd)
                    n_tensors = len(plans)
                if self.fsync:
                    os.fsync(fd)
            except (LoraFormatError, LoraShapeError) as e:
                raise MergeError("lora", str(e)) from None
            finally:
                os.close(fd)
        hashes = hasher.hexdigests() if hasher is not None else {}
        size = os.path.getsize(tmp)
        os.replace(tmp, self.output_path)
        self.temp_files.remove(tmp)
        if self.hash_cache is not None:
            self.hash_cache.save()
        return RunResult(
            output_path=self.output_path,
            sha256=hashes.get("sha256") or "",
            tensors=n_tensors,
            bytes=size,
            merge_key=self.merge_key,
            input_sha256s=dict(self.all_sha256s),
            passthrough_keys=sorted(self.passthrough),
            hashes=hashes if self.output_hashes else None,
            seconds=time.perf_counter() - t0,
        )

    def cleanup(self) -> None:
        self.stop_hashing()
        for src in self.sources:
            src.reader.close()
        for path in self.temp_files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


# -- applying a method to one slice ------------------------------------------------------------

# Parameters that may be per block; the rest are plain values.
_KEYED_PARAMS = {"alpha", "beta", "strength"}
_KOHYA_SUFFIX = {"down": "lora_down.weight", "up": "lora_up.weight", "alpha": "alpha", "mid": "lora_mid.weight"}


_INPLACE = frozenset({"weighted_sum", "add_difference", "triple_sum", "sum_twice", "task_arithmetic"})


def _apply_inplace(node: OpNode, args: list[Tensor], scratch: "_Scratch") -> Tensor:
    p = node.params
    op = node.step.op
    if op == "weighted_sum":
        return methods.weighted_sum_(args[0], args[1], p["alpha"])
    if op == "add_difference":
        return methods.add_difference_(args[0], args[1], args[2], p["alpha"])
    if op == "triple_sum":
        return methods.triple_sum_(args[0], args[1], args[2], p["alpha"], p["beta"])
    if op == "sum_twice":
        return methods.sum_twice_(args[0], args[1], args[2], p["alpha"], p["beta"])
    if op == "task_arithmetic":
        return methods.task_arithmetic_(args[0], args[1:], p["weights"], p["alpha"], scratch.take(args[0].numel()))
    raise MergeError("internal", f"no in-place method for op {op!r}")


def _apply(node: OpNode, args: list[Tensor], start: int) -> Tensor:
    p = node.params
    op = node.step.op
    if op == "weighted_sum":
        return methods.weighted_sum(args[0], args[1], p["alpha"])
    if op == "add_difference":
        return methods.add_difference(args[0], args[1], args[2], p["alpha"])
    if op == "triple_sum":
        return methods.triple_sum(args[0], args[1], args[2], p["alpha"], p["beta"])
    if op == "sum_twice":
        return methods.sum_twice(args[0], args[1], args[2], p["alpha"], p["beta"])
    if op == "slerp":
        return methods.slerp(args[0], args[1], p["alpha"])
    if op == "task_arithmetic":
        return methods.task_arithmetic(args[0], args[1:], p["weights"], p["alpha"])
    if op == "ties":
        return methods.ties(args[0], args[1:], p["weights"], p["alpha"], p["density"])
    if op == "dare":
        return methods.dare(args[0], args[1:], p["weights"], p["alpha"], p["drop_rate"], node.key_seed, offset=start)
    if op == "model_stock":
        return methods.model_stock(args[0], args[1:])
    raise MergeError("internal", f"no per-key method for op {op!r}")


# -- per-thread scratch buffers -------------------------------------------------------------

# Elements per piece of a slice evaluated at once: a piece's float32 buffers
# (1 MB each) stay in the core's cache between one operation and the next.
PIECE_ELEMS = 1 << 18


class _Scratch:
    """Float32 buffers of ``PIECE_ELEMS``, handed out and all taken back after each piece."""

    def __init__(self) -> None:
        self.buffers: list[Tensor] = []
        self.used = 0

    def take(self, n: int) -> Tensor:
        if self.used == len(self.buffers):
            self.buffers.append(torch.empty(PIECE_ELEMS, dtype=torch.float32))
        buf = self.buffers[self.used]
        self.used += 1
        return buf[:n]

    def release_all(self) -> None:
        self.used = 0


_local = threading.local()


def _scratch() -> _Scratch:
    scratch = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = _Scratch()
    return scratch


# -- the reader thread ----------------------------------------------------------------------------


@dataclass
class _Item:
    key_index: int
    start: int
    count: int
    tensors: dict[tuple[int, str], Tensor]
    raw: dict[int, memoryview]
    buffers: list[Tensor]
    nbytes: int
    lora_tensors: dict[int, dict[str, dict[str, Tensor]]] | None = None


class _Budget:
    """Bounds the bytes of input slices read but not yet computed.

    An item takes all its bytes at once, and is always let through when
    nothing else is outstanding, so a key larger than the budget still runs
    (alone) and the reader can never hold part of what the compute waits for.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.cond = threading.Condition()

    def take(self, n: int, stopped: threading.Event) -> bool:
        with self.cond:
            while self.used and self.used + n > self.limit:
                if stopped.is_set():
                    return False
                self.cond.wait(0.1)
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


class _Prefetcher:
    """Reads the slices of every key, in order, ahead of the compute."""

    def __init__(self, run: _Run, plans: list[KeyPlan]) -> None:
        self.run = run
        self.plans = plans
        self.q: queue.Queue[_Item | BaseException | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.budget = _Budget(_PREFETCH_BUDGET)
        self.stopped = threading.Event()
        self.free: dict[int, list[Tensor]] = {}  # reusable slice buffers by size
        self.free_lock = threading.Lock()
        self.thread = threading.Thread(target=self._main, name="merge-reader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def next(self) -> _Item:
        while True:
            try:
                item = self.q.get(timeout=0.5)
            except queue.Empty:
                if not self.thread.is_alive():
                    raise MergeError("internal", "reader thread ended unexpectedly") from None
                continue
            if isinstance(item, BaseException):
                raise item
            if item is None:
                raise MergeError("internal", "reader finished early")
            return item

    def release(self, item: _Item) -> None:
        with self.free_lock:
            for buf in item.buffers:
                pool = self.free.setdefault(buf.numel(), [])
                if buf.numel() <= self._slice_bytes and len(pool) < 4 * _QUEUE_DEPTH:
                    pool.append(buf)
        item.tensors.clear()
        item.raw.clear()
        self.budget.give(item.nbytes)

    def stop(self) -> None:
        self.stopped.set()
        # Unblock a reader waiting on a full queue.
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(timeout=30)

    @property
    def _slice_bytes(self) -> int:
        return self.run.chunk_elems * 8

    def _buffer(self, nbytes: int) -> Tensor:
        size = self._slice_bytes if nbytes <= self._slice_bytes else nbytes
        with self.free_lock:
            pool = self.free.get(size)
            if pool:
                return pool.pop()
        return torch.empty(size, dtype=torch.uint8)

    def _put(self, item: _Item | BaseException | None) -> bool:
        while not self.stopped.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _main(self) -> None:
        try:
            for k, plan in enumerate(self.plans):
                n = plan.numel
                step = n if plan.whole else self.run.chunk_elems
                lora_tensors = self._read_loras(plan) if plan.loras else None
                for start in range(0, n, max(step, 1)):
                    count = min(step, n - start)
                    item = self._read(k, plan, start, count)
                    if item is None:
                        return
                    item.lora_tensors = lora_tensors
                    lora_tensors = None
                    if not self._put(item):
                        return
        except BaseException as e:  # handed to the compute thread
            self._put(e)

    def _read(self, k: int, plan: KeyPlan, start: int, count: int) -> _Item | None:
        sizes = [leaf.info.itemsize * count for leaf in plan.leaves]
        total = sum(sizes)
        if not self.budget.take(total, self.stopped):
            return None
        item = _Item(k, start, count, {}, {}, [], total)
        for leaf, size in zip(plan.leaves, sizes):
            buf = self._buffer(size)
            item.buffers.append(buf)
            reader = self.run.sources[leaf.source].reader
            if plan.raw_copy:
                view = memoryview(buf.numpy()).cast("B")[:size]
                reader.read_bytes_into(leaf.name, view, start * leaf.info.itemsize, size)
                item.raw[id(leaf)] = view
            else:
                item.tensors[(leaf.source, leaf.name)] = reader.read_into(leaf.name, buf, start, count)
        return item

    def _read_loras(self, plan: KeyPlan) -> dict[int, dict[str, dict[str, Tensor]]]:
        out: dict[int, dict[str, dict[str, Tensor]]] = {}
        for node in plan.loras:
            reader = self.run.sources[node.source].reader
            modules = self.run._lora_modules[node.source]
            out[id(node)] = {
                t.module_name: {role: reader.read(name) for role, name in modules[t.module_name].keys.items()}
                for t in node.targets
            }
        return out


# -- small helpers ------------------------------------------------------------------------------------


def _first_leaf(node: Node) -> Leaf:
    while not isinstance(node, Leaf):
        node = node.children[0] if isinstance(node, OpNode) else node.child
    return node


def _arch_message(kind: str, got: str, want: str) -> str:
    if kind == "checkpoint":
        return f"is an {got} checkpoint, the recipe is for {want}"
    return f"is a LoRA for {got}, the recipe is for {want}"


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _engine_version() -> str:
    from . import ENGINE_VERSION

    return ENGINE_VERSION


class _InputHash(threading.Thread):
    """SHA-256 of a whole input file (header, every tensor the recipe reads or not), on its own thread.

    It reads the file front to back while the merge streams the same file
    (so mostly from the page cache the merge's reads fill), and hashlib
    releases the GIL on each 8 MB chunk. ``identity`` is the file's size,
    mtime and inode before the first byte was read, for the hash cache.
    """

    CHUNK = 8 << 20

    def __init__(self, path: str) -> None:
        super().__init__(name="input-sha256", daemon=True)
        self.path = path
        self.identity = file_identity(path)[1]
        self._halt = threading.Event()
        self._sha: str | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            buf = bytearray(self.CHUNK)
            view = memoryview(buf)
            with open(self.path, "rb", buffering=0) as f:
                advise = getattr(os, "posix_fadvise", None)
                if advise is not None:
                    advise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while not self._halt.is_set():
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
            self._sha = h.hexdigest()
        except BaseException as e:  # surfaced by result()
            self._error = e

    def result(self) -> str:
        self.join()
        if self._error is not None:
            raise MergeError("input_read", f"could not hash {self.path}: {self._error}") from None
        if self._sha is None:
            raise MergeError("internal", f"hashing of {self.path} was stopped")
        return self._sha

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()


class _DeferredHeader:
    """The output's header while its input hashes are still being computed.

    The writer writes a header built with placeholder hashes (as long as the
    final one: all hashes are 64 hex digits) and then the data. Data the
    output hasher cannot take yet (SHA-256 must start with the final header)
    is held, up to ``HOLD_BYTES``; past that, or once the inputs are hashed,
    the hashes are collected and the hasher gets the final header and catches
    up. At the end the final header is written over the placeholder one, or,
    when its length differs after all (two inputs with the same bytes merge
    their provenance entries), the data is moved to fit it. The file's bytes
    are the same as when the hashes are known up front.
    """

    HOLD_BYTES = 128 << 20

    def __init__(self, run: "_Run", specs: list[TensorSpec]) -> None:
        self.run = run
        self.specs = specs
        self.hasher = (FileHasher() if run.output_hashes else FileHasher(("sha256",))) if run.hash_output else None
        self._header_seen = False
        self._held: list[memoryview] = []
        self._held_bytes = 0
        self._final: bytes | None = None

    def _inputs_hashed(self) -> bool:
        return all(not job.is_alive() for _src, job in self.run.hashing)

    def sink(self, view: memoryview) -> None:
        if not self._header_seen:
            self._header_seen = True  # the placeholder header: the final one replaces it
            return
        if self.hasher is None:
            return
        if self._final is not None:
            self.hasher.update(view, owned=True)
            return
        self._held.append(view)
        self._held_bytes += len(view)
        if self._held_bytes >= self.HOLD_BYTES or self._inputs_hashed():
            self._resolve()

    def _resolve(self) -> bytes:
        if self._final is None:
            self.run.finish_hashing()
            self._final = build_header(self.specs, self.run.metadata())[0]
            if self.hasher is not None:
                self.hasher.update(memoryview(self._final))
                for view in self._held:
                    self.hasher.update(view, owned=True)
            self._held.clear()
        return self._final

    def finish(self, fd: int, placeholder_len: int) -> None:
        final = self._resolve()
        _set_direct(fd, False)
        if len(final) != placeholder_len:
            _move_tail(fd, placeholder_len, len(final))
        done = 0
        while done < len(final):
            done += os.pwrite(fd, final[done:], done)


def _move_tail(fd: int, old_start: int, new_start: int) -> None:
    """Move everything from ``old_start`` to the end of the file so it begins at ``new_start``."""
    size = os.fstat(fd).st_size
    count = size - old_start
    chunk = 64 << 20
    if new_start > old_start:  # growing: copy from the end backwards
        pos = count
        while pos > 0:
            n = min(chunk, pos)
            pos -= n
            data = os.pread(fd, n, old_start + pos)
            os.pwrite(fd, data, new_start + pos)
    else:
        pos = 0
        while pos < count:
            data = os.pread(fd, min(chunk, count - pos), old_start + pos)
            os.pwrite(fd, data, new_start + pos)
            pos += len(data)
        os.ftruncate(fd, new_start + count)


def _temp_in(directory: str, prefix: str) -> tuple[int, str]:
    import tempfile

    fd, path = tempfile.mkstemp(dir=directory or ".", prefix=prefix + ".", suffix=".part")
    return fd, path


_MALLOC_TUNED = False


def _keep_freed_memory() -> None:
    """Stop glibc handing slice-sized blocks back to the kernel after each use.

    Every slice allocates a few 1 MB temporaries. By default glibc serves
    those with mmap or trims them off the heap on free, so each slice page
    faults its memory in again: a few hundred thousand faults per SD1 merge.
    Raising the mmap and trim thresholds keeps that memory in the allocator;
    the peak footprint is unchanged (it is bounded by the slices in flight).
    Process-wide and done once; a no-op where mallopt does not exist.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 256 << 20)
    except (OSError, AttributeError):
        pass


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic CUDA kernels and no TF32 for the run, restored afterwards.

    Only for CUDA: the CPU ops used here are deterministic already, and
    ``use_deterministic_algorithms`` imports torch's compiler stack (seconds
    of start-up and a few hundred MB of memory).
    """
    if device.type != "cuda":
        yield
        return
    # cuBLAS needs a fixed workspace to be deterministic; set before first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev_tf32


def execute(
    recipe: Recipe | str | bytes | Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike[str]],
    output_path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    input_sha256s: Mapping[str, str] | None = None,
    output_hashes: bool = False,
    hash_output: bool = True,
    fsync: bool = False,
    chunk_elems: int = SLICE_ELEMS,
    threads: int | None = None,
    hash_cache: HashCache | None = None,
) -> RunResult:
    """Run ``recipe`` on the files in ``inputs`` (name -> path) into ``output_path``.

    ``input_sha256s`` gives already-known input hashes (the hub knows them);
    ``hash_cache`` remembers the others between runs (``hash_cache.HashCache``).
    Inputs hashed by neither are hashed for the provenance metadata while the
    merge runs, and the header is completed at the end (``_DeferredHeader``).
    The output's SHA-256 is computed while it is written (``RunResult.sha256``;
    all Civitai hashes with ``output_hashes``) unless ``hash_output`` is false:
    on CPUs without SHA extensions hashing a checkpoint takes longer than
    merging it, so a caller that hashes the file anyway (the hub's ingest)
    should not pay twice. ``RunResult.sha256`` is then empty.
    ``threads`` slices are computed at once (default: one per CPU core, one
    on CUDA); each uses a single torch thread, so the output is the same for
    any thread count.
    Raises ``RecipeError`` for a recipe that does not fit its inputs,
    ``SafetensorsError`` for a bad input file, ``MergeError`` otherwise
    (``MergeCancelled`` when ``should_cancel`` returned true). Nothing is left
    at ``output_path`` unless the run succeeded.
    """
    r = parse_recipe(recipe)
    if device != "cpu" and not device.startswith("cuda"):
        raise MergeError("bad_device", f"unknown device {device!r}; use cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MergeError("bad_device", "CUDA was asked for but is not available")
    out_dir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(out_dir):
        raise MergeError("bad_output", f"output directory does not exist: {out_dir}")
    run = _Run(
        r,
        {k: os.fspath(v) for k, v in inputs.items()},
        os.fspath(output_path),
        device,
        progress,
        should_cancel,
        input_sha256s or {},
        output_hashes,
        hash_output,
        fsync,
        chunk_elems,
        threads or (1 if device.startswith("cuda") else min(os.cpu_count() or 1, 8)),
        hash_cache,
    )
    _keep_freed_memory()
    # Pieces are small (256K elements): torch's own intra-op threads would
    # spend more time forking, joining and spinning than computing, worst on a
    # busy machine. Parallelism comes from computing several slices at once.
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # Thousands of short-lived slice objects would trigger the cyclic GC
    # again and again; the run creates no cycles worth collecting.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return run.run()
    finally:
        if gc_was_enabled:
            gc.enable()
        torch.set_num_threads(prev_threads)
        run.cleanup()

