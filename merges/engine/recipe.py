"""Merge recipes: parsing, validation, canonical form and hashes.

A recipe (``format: mergeworks/recipe@1``) names its inputs, a list of steps
that each apply one method to earlier values, and which step is the output.
Parsing validates everything that can be checked without the files and
fills in defaults, giving the canonical document: the same merge always
has the same canonical JSON, so ``recipe_hash`` identifies a recipe version
and ``merge_key`` identifies a merge result.

Every problem is reported at once, each with the path of the field at fault
(``steps[1].alpha: expected 26 block weights for sd1, got 25``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from .blocks import BLOCK_NAMES

__all__ = [
    "ARCHITECTURES",
    "FORMAT",
    "OPS",
    "OUTPUT_DTYPES",
    "OpSpec",
    "Recipe",
    "RecipeError",
    "Step",
    "canonical_dumps",
    "canonical_json",
    "load_recipe",
    "merge_key",
    "parse_recipe",
    "recipe_hash",
    "resolve_inputs",
]

FORMAT = "mergeworks/recipe@1"
ARCHITECTURES = ("sd1", "sd2", "sdxl", "flux")
OUTPUT_DTYPES = ("fp16", "bf16", "fp32")
MAX_RECIPE_BYTES = 256 * 1024
MAX_INPUTS = 64
MAX_STEPS = 256
MAX_STEP_INPUTS = 16
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_PREVIEW_SIZE = {"sd1": 512, "sd2": 768, "sdxl": 1024, "flux": 1024}

ValueKind = Literal["checkpoint", "lora"]


class RecipeError(ValueError):
    """An invalid recipe; ``errors`` lists ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.errors))


# -- schema ---------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    kind: Literal["weight", "float", "int", "weights", "choice"]
    default: Any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False

    def range_text(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"{left}{_num(self.lo)}, {_num(self.hi)}{right}"

    def in_range(self, v: float) -> bool:
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            return False
        return True


@dataclass(frozen=True)
class OpSpec:
    name: str
    min_inputs: int
    max_inputs: int
    params: Mapping[str, Param]
    output: ValueKind = "checkpoint"
    # Expected kind of each input; the last entry repeats for variadic ops.
    inputs: tuple[ValueKind, ...] = ("checkpoint",)

    def input_kind(self, i: int) -> ValueKind:
        return self.inputs[min(i, len(self.inputs) - 1)]


def _weight(default: float, lo: float, hi: float) -> Param:
    return Param("weight", default, lo, hi)


_WEIGHTS = Param("weights", None, -4.0, 4.0)
_LAMBDA = _weight(1.0, -4.0, 4.0)

OPS: dict[str, OpSpec] = {
    op.name: op
    for op in (
        OpSpec("weighted_sum", 2, 2, {"alpha": _weight(0.5, 0.0, 1.0)}),
        OpSpec("add_difference", 3, 3, {"alpha": _weight(1.0, -2.0, 2.0)}),
        OpSpec("triple_sum", 3, 3, {"alpha": _weight(1 / 3, 0.0, 1.0), "beta": _weight(1 / 3, 0.0, 1.0)}),
        OpSpec("sum_twice", 3, 3, {"alpha": _weight(0.5, 0.0, 1.0), "beta": _weight(0.5, 0.0, 1.0)}),
        OpSpec("slerp", 2, 2, {"alpha": _weight(0.5, 0.0, 1.0)}),
        OpSpec("task_arithmetic", 2, MAX_STEP_INPUTS, {"alpha": _LAMBDA, "weights": _WEIGHTS}),
        OpSpec(
            "ties",
            2,
            MAX_STEP_INPUTS,
            {"alpha": _LAMBDA, "weights": _WEIGHTS, "density": Param("float", 0.2, 0.0, 1.0, lo_open=True)},
        ),
        OpSpec(
            "dare",
            2,
            MAX_STEP_INPUTS,
            {"alpha": _LAMBDA, "weights": _WEIGHTS, "drop_rate": Param("float", 0.9, 0.0, 1.0, hi_open=True)},
        ),
        OpSpec("model_stock", 3, MAX_STEP_INPUTS, {}),
        OpSpec(
            "apply_lora",
            2,
            2,
            {"strength": _weight(1.0, -4.0, 4.0)},
            inputs=("checkpoint", "lora"),
        ),
        OpSpec(
            "merge_loras",
            1,
            MAX_STEP_INPUTS,
            {
                "weights": _WEIGHTS,
                "mode": Param("choice", "concat", choices=("concat", "sum")),
                "target_rank": Param("int", None, 1, 4096, nullable=True),
            },
            output="lora",
            inputs=("lora",),
        ),
    )
}


# -- parsed form -----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    index: int
    id: str
    op: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any]

    @property
    def spec(self) -> OpSpec:
        return OPS[self.op]

    def path(self, field: str | None = None) -> str:
        return f"steps[{self.index}]" + (f".{field}" if field else "")


@dataclass(frozen=True)
class Recipe:
    """A validated recipe; ``doc`` is its canonical document (defaults filled)."""

    doc: Mapping[str, Any]

    @property
    def architecture(self) -> str:
        return self.doc["architecture"]

    @property
    def inputs(self) -> Mapping[str, Mapping[str, Any]]:
        return self.doc["inputs"]

    @property
    def steps(self) -> list[Step]:
        return [
            Step(i, s["id"], s["op"], tuple(s["inputs"]), {k: v for k, v in s.items() if k not in ("id", "op", "inputs")})
            for i, s in enumerate(self.doc["steps"])
        ]

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def output_step(self) -> str:
        return self.doc["output"]["step"]

    @property
    def output_dtype(self) -> str:
        return self.doc["output"]["dtype"]

    @property
    def seed(self) -> int:
        return self.doc["seed"]

    def needed_steps(self) -> list[Step]:
        """Steps the output depends on, each after the steps it reads."""
        by_id = {s.id: s for s in self.steps}
        order: list[Step] = []
        seen: set[str] = set()

        def visit(step_id: str) -> None:
            if step_id in seen or step_id not in by_id:
                return
            seen.add(step_id)
            for ref in by_id[step_id].inputs:
                visit(ref)
            order.append(by_id[step_id])

        visit(self.output_step)
        return order

    def needed_inputs(self) -> list[str]:
        names: list[str] = []
        for s in self.needed_steps():
            for ref in s.inputs:
                if ref in self.inputs and ref not in names:
                    names.append(ref)
        return names

    def value_kind(self, ref: str) -> ValueKind | None:
        """What a reference holds, when the recipe alone says (inputs: unknown)."""
        for s in self.steps:
            if s.id == ref:
                return s.spec.output
        return None

    def canonical_json(self) -> str:
        return canonical_dumps(self.doc)

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


# -- loading ----------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (the last one would win silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise RecipeError([("", f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")])
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _json_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise RecipeError([("", f"duplicate key {k!r}")])
        out[k] = v
    return out


def _load_text(text: str) -> Any:
    if len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise RecipeError([("", f"recipe is larger than {MAX_RECIPE_BYTES // 1024} KiB")])
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_json_no_duplicates)
        except json.JSONDecodeError as e:
            raise RecipeError([("", f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})")]) from None
    try:
        # Anchors and aliases let a few lines expand to gigabytes of JSON.
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise RecipeError([("", "YAML aliases (*name) are not allowed in recipes")])
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        raise RecipeError([("", f"invalid YAML: {e}")]) from None


def parse_recipe(source: str | bytes | Mapping[str, Any] | Recipe) -> Recipe:
    """Validate a recipe given as JSON/YAML text or an already-loaded mapping."""
    if isinstance(source, Recipe):
        return source
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError:
            raise RecipeError([("", "recipe is not UTF-8 text")]) from None
    raw = _load_text(source) if isinstance(source, str) else source
    return Recipe(_Validator(raw).run())


def load_recipe(path: str | Path) -> Recipe:
    return parse_recipe(Path(path).read_bytes())


# -- validation --------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None:
        return "∞"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Validator:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        # Names declared under inputs, valid or not (an invalid one is reported once).
        self.raw_inputs: set[str] = set(raw.get("inputs") or {}) if isinstance(raw, Mapping) and isinstance(raw.get("inputs"), Mapping) else set()
        self.errors: list[tuple[str, str]] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append((path, msg))

    def run(self) -> dict[str, Any]:
        raw = self.raw
        if not isinstance(raw, Mapping):
            raise RecipeError([("", "a recipe must be a mapping (JSON object)")])
        known = {"format", "architecture", "inputs", "steps", "output", "seed", "preview"}
        for key in raw:
            if key not in known:
                self.err(str(key), "unknown field")
        doc: dict[str, Any] = {}
        if raw.get("format") != FORMAT:
            self.err("format", f"expected {FORMAT!r}, got {raw.get('format')!r}")
        doc["format"] = FORMAT
        arch = raw.get("architecture")
        if arch not in ARCHITECTURES:
            self.err("architecture", f"expected one of {', '.join(ARCHITECTURES)}, got {arch!r}")
            arch = None
        doc["architecture"] = arch
        doc["inputs"] = self.inputs(raw.get("inputs"))
        doc["steps"] = self.steps(raw.get("steps"), doc["inputs"], arch)
        doc["output"] = self.output(raw.get("output"), doc["steps"])
        doc["seed"] = self.int_field("seed", raw.get("seed", 0), 0, 2**63 - 1)
        if "preview" in raw:
            doc["preview"] = self.preview(raw["preview"], arch)
        self.references(doc)
        if self.errors:
            raise RecipeError(self.errors)
        return doc

    # inputs
    def inputs(self, raw: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(raw, Mapping) or not raw:
            self.err("inputs", "expected a non-empty mapping of input names")
            return out
        if len(raw) > MAX_INPUTS:
            self.err("inputs", f"at most {MAX_INPUTS} inputs")
        for name, spec in raw.items():
            path = f"inputs.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                self.err(path, "input names are 1-64 letters, digits, '_' or '-', not starting with a digit")
                continue
            if not isinstance(spec, Mapping) or len(spec) != 1:
                self.err(path, "expected exactly one of {sha256: …}, {model_version: …}, {path: …}")
                continue
            (key, value), = spec.items()
            if key == "sha256":
                if not isinstance(value, str) or not _SHA256.match(value):
                    self.err(f"{path}.sha256", "expected a 64-character hex string (quote it in YAML)")
                    continue
                out[name] = {"sha256": value.lower()}
            elif key == "model_version":
                if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**63 - 1:
                    self.err(f"{path}.model_version", "expected a positive integer id (below 2^63)")
                    continue
                out[name] = {"model_version": value}
            elif key == "path":
                if not isinstance(value, str) or not value or "\x00" in value:
                    self.err(f"{path}.path", "expected a non-empty file path")
                    continue
                out[name] = {"path": value}
            else:
                self.err(f"{path}.{key}", "unknown input source; use sha256, model_version or path")
        return out

    # steps
    def steps(self, raw: Any, inputs: Mapping[str, Any], arch: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not isinstance(raw, list) or not raw:
            self.err("steps", "expected a non-empty list of steps")
            return out
        if len(raw) > MAX_STEPS:
            self.err("steps", f"at most {MAX_STEPS} steps")
        seen: dict[str, int] = {}
        for i, step in enumerate(raw):
            path = f"steps[{i}]"
            if not isinstance(step, Mapping):
                self.err(path, "expected a mapping with id, op and inputs")
                continue
            sid = step.get("id")
            if not isinstance(sid, str) or not _NAME.match(sid):
                self.err(f"{path}.id", "step ids are 1-64 letters, digits, '_' or '-', not starting with a digit")
                sid = None
            elif sid in seen:
                self.err(f"{path}.id", f"duplicate step id {sid!r} (also steps[{seen[sid]}])")
            elif sid in inputs:
                self.err(f"{path}.id", f"{sid!r} is already an input name")
            else:
                seen[sid] = i
            op = step.get("op")
            spec = OPS.get(op) if isinstance(op, str) else None
            if spec is None:
                self.err(f"{path}.op", f"unknown op {op!r}; known: {', '.join(OPS)}")
            refs = step.get("inputs")
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                self.err(f"{path}.inputs", "expected a list of input or step names")
                refs = []
            elif spec is not None and not spec.min_inputs <= len(refs) <= spec.max_inputs:
                want = (
                    str(spec.min_inputs)
                    if spec.min_inputs == spec.max_inputs
                    else f"{spec.min_inputs} to {spec.max_inputs}"
                )
                self.err(f"{path}.inputs", f"{op} takes {want} inputs, got {len(refs)}")
            canon: dict[str, Any] = {"id": sid, "op": op, "inputs": list(refs)}
            if spec is not None:
                for key in step:
                    if key not in ("id", "op", "inputs") and key not in spec.params:
                        self.err(f"{path}.{key}", f"unknown parameter for {op}")
                # merge_loras weighs every LoRA; the others every model but the base.
                n_weights = len(refs) if spec.output == "lora" else len(refs) - 1
                for name, param in spec.params.items():
                    canon[name] = self.param(f"{path}.{name}", param, step.get(name, param.default), arch, n_weights)
            out.append(canon)
        return out

    def param(self, path: str, p: Param, v: Any, arch: str | None, n_weights: int) -> Any:
        if p.kind == "weight":
            if isinstance(v, Mapping):
                return self.blocks(path, p, v, arch)
            return self.number(path, p, v)
        if p.kind == "float":
            return self.number(path, p, v)
        if p.kind == "int":
            if v is None and p.nullable:
                return None
            return self.int_field(path, v, int(p.lo or 0), int(p.hi or 2**63 - 1))
        if p.kind == "choice":
            if v not in p.choices:
                self.err(path, f"expected one of {', '.join(p.choices)}, got {v!r}")
            return v
        n = max(n_weights, 0)
        if v is None:
            return [1.0] * n
        if not isinstance(v, list):
            self.err(path, f"expected a list of {n} numbers")
            return v
        if len(v) != n:
            self.err(path, f"expected {n} weights (one per model input), got {len(v)}")
        return [self.number(f"{path}[{i}]", p, x) for i, x in enumerate(v)]

    def number(self, path: str, p: Param, v: Any) -> Any:
        if not _is_number(v) or not math.isfinite(v):
            self.err(path, f"expected a number, got {v!r}")
            return v
        f = float(v) + 0.0  # -0.0 -> 0.0
        if not p.in_range(f):
            self.err(path, f"{_num(f)} is out of range {p.range_text()}")
        return f

    def int_field(self, path: str, v: Any, lo: int, hi: int) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool):
            self.err(path, f"expected an integer, got {v!r}")
            return v
        if not lo <= v <= hi:
            self.err(path, f"{v} is out of range [{lo}, {hi}]")
        return v

    def blocks(self, path: str, p: Param, v: Mapping[str, Any], arch: str | None) -> Any:
        if set(v) != {"blocks"}:
            self.err(path, "expected a number or {blocks: [...]}")
            return dict(v)
        values = v["blocks"]
        if arch is None:
            return {"blocks": values}
        names = BLOCK_NAMES.get(arch)
        if names is None:
            self.err(f"{path}.blocks", f"block weights are not defined for {arch}")
            return {"blocks": values}
        if not isinstance(values, list):
            self.err(f"{path}.blocks", f"expected a list of {len(names)} numbers")
            return {"blocks": values}
        if len(values) != len(names):
            self.err(path, f"expected {len(names)} block weights for {arch}, got {len(values)}")
        return {"blocks": [self.number(f"{path}.blocks[{i}]", p, x) for i, x in enumerate(values)]}

    # output
    def output(self, raw: Any, steps: list[dict[str, Any]]) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            self.err("output", "expected {step: <step id>, dtype: fp16|bf16|fp32}")
            return {}
        for key in raw:
            if key not in ("step", "dtype"):
                self.err(f"output.{key}", "unknown field")
        step = raw.get("step")
        ids = [s["id"] for s in steps]
        if not isinstance(step, str):
            self.err("output.step", "missing: name the step whose result is the output")
        elif steps and step not in ids:
            self.err("output.step", f"no step has id {step!r}")
        dtype = raw.get("dtype", "fp16")
        if dtype not in OUTPUT_DTYPES:
            self.err("output.dtype", f"expected one of {', '.join(OUTPUT_DTYPES)}, got {dtype!r}")
        return {"step": step, "dtype": dtype}

    # preview
    def preview(self, raw: Any, arch: str | None) -> dict[str, Any]:
        if not isinstance(raw, Mapping):
            self.err("preview", "expected a mapping")
            return {}
        known = {"prompts", "negative", "seeds", "steps", "cfg", "size"}
        for key in raw:
            if key not in known:
                self.err(f"preview.{key}", "unknown field")
        prompts = raw.get("prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 16 or not all(isinstance(x, str) and len(x) <= 2000 for x in prompts):
            self.err("preview.prompts", "expected 1 to 16 prompts, each a string of at most 2000 characters")
        negative = raw.get("negative", "")
        if not isinstance(negative, str) or len(negative) > 2000:
            self.err("preview.negative", "expected a string of at most 2000 characters")
        seeds = raw.get("seeds", [1])
        if not isinstance(seeds, list) or not 1 <= len(seeds) <= 16:
            self.err("preview.seeds", "expected 1 to 16 seeds")
            seeds = []
        seeds = [self.int_field(f"preview.seeds[{i}]", s, 0, 2**32 - 1) for i, s in enumerate(seeds)]
        steps = self.int_field("preview.steps", raw.get("steps", 20), 1, 150)
        cfg = self.number("preview.cfg", Param("float", 7.0, 0.0, 30.0), raw.get("cfg", 7.0))
        side = _PREVIEW_SIZE.get(arch or "", 512)
        size = raw.get("size", [side, side])
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and 64 <= x <= 2048 and x % 8 == 0 for x in size)
        ):
            self.err("preview.size", "expected [width, height], each a multiple of 8 from 64 to 2048")
        return {"prompts": prompts, "negative": negative, "seeds": seeds, "steps": steps, "cfg": cfg, "size": size}

    # references between steps
    def references(self, doc: dict[str, Any]) -> None:
        # Steps whose id or op was already reported are left out here.
        steps = [(i, s) for i, s in enumerate(doc["steps"]) if s["id"] and s["op"] in OPS]
        inputs = doc["inputs"]
        by_id: dict[str, tuple[int, dict[str, Any]]] = {}
        for i, s in steps:
            by_id.setdefault(s["id"], (i, s))
        for i, s in steps:
            spec = OPS[s["op"]]
            for j, ref in enumerate(s["inputs"]):
                path = f"steps[{i}].inputs[{j}]"
                if ref in inputs or (ref in self.raw_inputs and ref not in by_id):
                    continue
                if ref not in by_id:
                    self.err(path, f"{ref!r} is neither an input nor a step")
                    continue
                got = OPS[by_id[ref][1]["op"]].output
                want = spec.input_kind(j)
                if got != want:
                    self.err(path, f"{s['op']} needs a {want} here, step {ref!r} gives a {got}")
        # Cycles: depth-first search with colours.
        state: dict[str, int] = {}

        def visit(sid: str, trail: list[str]) -> None:
            state[sid] = 1
            for ref in by_id[sid][1]["inputs"]:
                if ref not in by_id:
                    continue
                if state.get(ref) == 1:
                    cycle = trail[trail.index(ref):] + [ref] if ref in trail else [sid, ref]
                    self.err(f"steps[{by_id[sid][0]}].inputs", f"cyclic reference: {' -> '.join(cycle)}")
                elif ref not in state:
                    visit(ref, trail + [ref])
            state[sid] = 2

        for sid in by_id:
            if sid not in state:
                visit(sid, [sid])


# -- canonical form and keys -----------------------------------------------------------


def canonical_dumps(obj: Any) -> str:
    """Sorted keys, no whitespace, shortest round-trip floats, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json(recipe: str | bytes | Mapping[str, Any] | Recipe) -> str:
    return parse_recipe(recipe).canonical_json()


def recipe_hash(recipe: str | bytes | Mapping[str, Any] | Recipe) -> str:
    return parse_recipe(recipe).hash()


def resolve_inputs(recipe: str | bytes | Mapping[str, Any] | Recipe, input_sha256s: Mapping[str, str]) -> Recipe:
    """The recipe reduced to what its output needs, each input replaced by
    ``{sha256: …}`` of its file.

    Steps and inputs the output does not depend on are dropped: they cannot
    change the result. Raises ``RecipeError`` for a needed input with no
    hash, or whose file is not the one the recipe pins.
    """
    r = parse_recipe(recipe)
    doc = copy.deepcopy(dict(r.doc))
    needed_steps = {s.id for s in r.needed_steps()}
    needed_inputs = r.needed_inputs()
    doc["steps"] = [s for s in doc["steps"] if s["id"] in needed_steps]
    doc["inputs"] = {name: doc["inputs"][name] for name in needed_inputs}
    errors: list[tuple[str, str]] = []
    for name in needed_inputs:
        spec = r.inputs[name]
        sha = input_sha256s.get(name) or spec.get("sha256")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            errors.append((f"inputs.{name}", "no resolved SHA-256 for this input"))
            continue
        if "sha256" in spec and spec["sha256"] != sha.lower():
            errors.append((f"inputs.{name}", f"recipe pins {spec['sha256']}, resolved file is {sha.lower()}"))
        doc["inputs"][name] = {"sha256": sha.lower()}
    if errors:
        raise RecipeError(errors)
    return Recipe(doc)


def merge_key(
    recipe: str | bytes | Mapping[str, Any] | Recipe,
    input_sha256s: Mapping[str, str],
    engine_version: str,
) -> str:
    """Identity of a merge result: same key, same output bytes.

    Every input is replaced by the SHA-256 of the file it resolved to; the
    preview section is left out because it does not change the weights.
    """
    r = resolve_inputs(recipe, input_sha256s)
    doc = dict(r.doc)
    doc.pop("preview", None)
    payload = {
        "engine_version": engine_version,
        "output_dtype": r.output_dtype,
        "recipe": doc,
        "seed": r.seed,
    }
    return hashlib.sha256(canonical_dumps(payload).encode("utf-8")).hexdigest()
