"""LoRA maths for baking kohya/LyCORIS networks into LDM checkpoints.

Contract used by the executor
-----------------------------
1. ``parse_lora_modules(tensor_names)`` groups a LoRA file's tensor names into
   modules: ``{module_name: LoraModule}``. ``LoraModule.keys`` maps a *role*
   to the tensor name in the file. Roles:

   * lora / locon: ``down``, ``up``, optional ``mid`` (LoCon Tucker core),
     ``alpha``, ``scale``;
   * loha: ``hada_w1_a``, ``hada_w1_b``, ``hada_w2_a``, ``hada_w2_b``,
     optional ``hada_t1``, ``hada_t2``, ``alpha``, ``scale``;
   * lokr: ``lokr_w1`` or ``lokr_w1_a`` + ``lokr_w1_b``, ``lokr_w2`` or
     ``lokr_w2_a`` + ``lokr_w2_b``, optional ``lokr_t2``, ``alpha``, ``scale``.

   Unknown suffixes, incomplete modules and DoRA modules raise
   ``LoraFormatError`` naming them.

2. ``map_lora_to_base(modules, base_keys, arch)`` returns
   ``{base_key: [LoraTarget, ...]}``: for each LDM weight key of the base
   checkpoint, the LoRA modules that change it. ``LoraTarget.part`` is
   ``None`` when the module adapts the whole tensor, or ``(index, count)``
   when it adapts one of ``count`` equal row blocks (the q, k, v thirds of an
   OpenCLIP ``attn.in_proj_weight`` in SD2 and SDXL's second text encoder);
   ``LoraTarget.rows(base_shape)`` turns that into a row ``slice``. A module
   that matches no key raises ``LoraKeyError`` listing every such module.

3. ``lora_delta(module, tensors, shape)`` computes a module's weight change
   in float32, alpha/rank scaling included, strength not: the caller adds
   ``strength * delta``. ``shape`` is the shape of what the module adapts
   (the row block's shape for a ``part``). ``lora_key_delta`` does the whole
   key: it sums the targets' deltas and places row blocks.

4. ``merge_lora_modules([(tensors, weight), ...], mode, target_rank)`` merges
   one module across several LoRAs into plain LoRA roles (``down``, ``up``,
   ``alpha``): ``concat`` stacks ranks exactly; ``sum`` re-factors the summed
   delta by SVD; either resizes by SVD when ``target_rank`` is below the
   total rank.

Formulas follow LyCORIS as A1111's built-in Lora extension implements them:
LoRA ``up @ down``, LoCon Tucker ``einsum(mid, up, down)``, LoHa
``(w1a @ w1b) * (w2a @ w2b)``, LoKr ``kron(w1, w2)``; scale ``alpha / rank``
(``scale`` tensor if present, 1 when alpha or rank is absent).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from merges.engine.kohya_keys import CONV_MODULE, kohya_module_map

__all__ = [
    "LoraFormatError",
    "LoraKeyError",
    "LoraModule",
    "LoraShapeError",
    "LoraTarget",
    "lora_delta",
    "lora_key_delta",
    "map_lora_to_base",
    "merge_lora_modules",
    "parse_lora_modules",
]

LoraKind = Literal["lora", "locon", "loha", "lokr"]

_ROLE_BY_SUFFIX = {
    "lora_down.weight": "down",
    "lora_up.weight": "up",
    "lora_mid.weight": "mid",
    "alpha": "alpha",
    "scale": "scale",
    "dora_scale": "dora_scale",
    **{s: s for s in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")},
    **{s: s for s in ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")},
}
# Cap on names spelt out in error messages (the exception keeps them all).
_MAX_LISTED = 40


class LoraFormatError(ValueError):
    """The LoRA's tensors do not form modules this engine understands."""


class LoraShapeError(ValueError):
    """A module's factors do not produce the shape of the weight it targets."""


class LoraKeyError(KeyError):
    """LoRA modules that adapt no key of the base checkpoint."""

    def __init__(self, unmatched: list[str]):
        self.unmatched = list(unmatched)
        super().__init__(self.unmatched)

    def __str__(self) -> str:
        shown = ", ".join(self.unmatched[:_MAX_LISTED])
        more = len(self.unmatched) - _MAX_LISTED
        tail = f" … and {more} more" if more > 0 else ""
        return f"{len(self.unmatched)} LoRA module(s) match no key of the base model: {shown}{tail}"


@dataclass(frozen=True)
class LoraModule:
    name: str
    kind: LoraKind
    keys: dict[str, str] = field(hash=False)


@dataclass(frozen=True)
class LoraTarget:
    module_name: str
    part: tuple[int, int] | None = None

    def rows(self, base_shape: Sequence[int]) -> slice | None:
        """Row slice of the base tensor this target adapts, or ``None`` for all of it."""
        if self.part is None:
            return None
        index, count = self.part
        if base_shape[0] % count:
            raise LoraShapeError(
                f"{self.module_name}: cannot split {base_shape[0]} rows into {count} equal parts"
            )
        size = base_shape[0] // count
        return slice(index * size, (index + 1) * size)

    def shape(self, base_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the region of the base tensor this target adapts."""
        rows = self.rows(base_shape)
        if rows is None:
            return tuple(base_shape)
        return (rows.stop - rows.start, *base_shape[1:])


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    more = len(names) - _MAX_LISTED
    return ", ".join(names[:_MAX_LISTED]) + (f" … and {more} more" if more > 0 else "")


def _kind_of(name: str, roles: set[str]) -> LoraKind | None:
    if any(r.startswith("hada_") for r in roles):
        if not {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} <= roles:
            return None
        return "loha"
    if any(r.startswith("lokr_") for r in roles):
        has_1 = "lokr_w1" in roles or {"lokr_w1_a", "lokr_w1_b"} <= roles
        has_2 = "lokr_w2" in roles or {"lokr_w2_a", "lokr_w2_b"} <= roles
        return "lokr" if has_1 and has_2 else None
    if {"down", "up"} <= roles:
        return "locon" if "mid" in roles or CONV_MODULE.search(name) else "lora"
    return None


def parse_lora_modules(names: Iterable[str]) -> dict[str, LoraModule]:
    """Group LoRA tensor names (``module.suffix``) into modules by role."""
    grouped: dict[str, dict[str, str]] = {}
    unknown: list[str] = []
    for tensor_name in names:
        module, _, suffix = tensor_name.partition(".")
        role = _ROLE_BY_SUFFIX.get(suffix)
        if not module or role is None:
            unknown.append(tensor_name)
            continue
        grouped.setdefault(module, {})[role] = tensor_name
    if unknown:
        raise LoraFormatError(f"unrecognised LoRA tensor name(s): {_listed(sorted(unknown))}")
    modules: dict[str, LoraModule] = {}
    incomplete: list[str] = []
    dora: list[str] = []
    for module, keys in sorted(grouped.items()):
        if "dora_scale" in keys:
            dora.append(module)
            continue
        kind = _kind_of(module, set(keys))
        if kind is None:
            incomplete.append(f"{module} ({', '.join(sorted(keys))})")
            continue
        modules[module] = LoraModule(module, kind, keys)
    if dora:
        # DoRA re-normalises W + delta per column: baking it needs the base
        # weight and a different formula; refusing is better than a wrong bake.
        raise LoraFormatError(f"DoRA modules are not supported: {_listed(dora)}")
    if incomplete:
        raise LoraFormatError(f"incomplete LoRA module(s): {_listed(incomplete)}")
    return modules


def map_lora_to_base(
    modules: Mapping[str, LoraModule] | Iterable[str],
    base_keys: Iterable[str],
    arch: str,
) -> dict[str, list[LoraTarget]]:
    """For each LDM key the LoRA changes, the modules that change it.

    Raises ``LoraKeyError`` listing every module that matches no key.
    """
    kohya = kohya_module_map(base_keys, arch)
    out: dict[str, list[LoraTarget]] = {}
    unmatched: list[str] = []
    for name in sorted(modules):
        target = kohya.get(name)
        if target is None:
            unmatched.append(name)
            continue
        out.setdefault(target.key, []).append(LoraTarget(name, target.part))
    if unmatched:
        raise LoraKeyError(unmatched)
    return out


def _f32(t: Tensor) -> Tensor:
    return t.detach().to(torch.float32)


def _scalar(t: Tensor) -> float:
    return float(t.detach().reshape(-1)[0].to(torch.float64))


def _tucker(core: Tensor, wa: Tensor, wb: Tensor) -> Tensor:
    # LyCORIS CP/Tucker: core (r, r, kh, kw), wa (r, out), wb (r, in).
    return torch.einsum("ijkl,jr,ip->prkl", core, wb.flatten(1), wa.flatten(1))


def _rank(kind: LoraKind, t: Mapping[str, Tensor]) -> int | None:
    if kind in ("lora", "locon"):
        return t["down"].shape[0]
    if kind == "loha":
        return t["hada_w1_b"].shape[0]
    if "lokr_w1_b" in t:
        return t["lokr_w1_b"].shape[0]
    if "lokr_w2_b" in t:
        return t["lokr_w2_b"].shape[0]
    return None


def _scale(kind: LoraKind, t: Mapping[str, Tensor]) -> float:
    if "scale" in t:
        return _scalar(t["scale"])
    rank = _rank(kind, t)
    if "alpha" in t and rank:
        return _scalar(t["alpha"]) / rank
    return 1.0


def _raw_delta(kind: LoraKind, t: Mapping[str, Tensor]) -> Tensor:
    """Unscaled delta in its natural layout (2-D unless a factor carries a kernel)."""
    if kind in ("lora", "locon"):
        up, down = _f32(t["up"]), _f32(t["down"])
        if "mid" in t:
            return torch.einsum("nmkl,in,mj->ijkl", _f32(t["mid"]), up.flatten(1), down.flatten(1))
        delta = up.flatten(1) @ down.flatten(1)
        return delta.reshape(up.shape[0], *down.shape[1:]) if down.dim() == 4 else delta
    if kind == "loha":
        halves = []
        for i in ("1", "2"):
            wa, wb = _f32(t[f"hada_w{i}_a"]), _f32(t[f"hada_w{i}_b"])
            core = t.get(f"hada_t{i}")
            halves.append(_tucker(_f32(core), wa, wb) if core is not None else wa.flatten(1) @ wb.flatten(1))
        if halves[0].shape != halves[1].shape:
            halves = [h.flatten(1) for h in halves]
        return halves[0] * halves[1]
    w1 = _f32(t["lokr_w1"]) if "lokr_w1" in t else _f32(t["lokr_w1_a"]) @ _f32(t["lokr_w1_b"])
    if "lokr_w2" in t:
        w2 = _f32(t["lokr_w2"])
    elif "lokr_t2" in t:
        w2 = _tucker(_f32(t["lokr_t2"]), _f32(t["lokr_w2_a"]), _f32(t["lokr_w2_b"]))
    else:
        w2 = _f32(t["lokr_w2_a"]) @ _f32(t["lokr_w2_b"]).flatten(1)
    if w2.dim() == 4:
        w1 = w1.reshape(*w1.shape, 1, 1)
    return torch.kron(w1, w2.contiguous())


def _fit(name: str, delta: Tensor, shape: Sequence[int]) -> Tensor:
    shape = tuple(shape)
    # Same element count *and* same output dim: a 2-D delta may stand for a
    # 1x1 conv (and back), or for a conv with its kernel flattened, but a
    # transposed delta must not slip through a reshape.
    if delta.numel() != math.prod(shape) or delta.shape[0] != shape[0]:
        raise LoraShapeError(f"{name}: LoRA gives a {tuple(delta.shape)} delta, the weight is {shape}")
    return delta.reshape(shape)


def _kind_from_roles(roles: Iterable[str]) -> LoraKind:
    kind = _kind_of("", set(roles))
    if kind is None:
        raise LoraFormatError(f"not a complete LoRA module: roles {sorted(roles)}")
    return kind


def lora_delta(module: LoraModule, tensors: Mapping[str, Tensor], base_shape: Sequence[int]) -> Tensor:
    """Float32 weight change of one module, alpha/rank applied, strength not.

    ``tensors`` maps roles (see the module docstring) to tensors;
    ``base_shape`` is the shape of the region the module adapts.
    """
    missing = [role for role in module.keys if role not in tensors]
    if missing:
        raise LoraFormatError(f"{module.name}: missing tensors for role(s) {', '.join(missing)}")
    kind: LoraKind = "lora" if module.kind == "locon" else module.kind
    delta = _fit(module.name, _raw_delta(kind, tensors), base_shape)
    return delta * _scale(kind, tensors)


def lora_key_delta(
    base_shape: Sequence[int],
    targets: Iterable[LoraTarget],
    modules: Mapping[str, LoraModule],
    tensors: Mapping[str, Mapping[str, Tensor]],
) -> Tensor:
    """Float32 change of one base key: the sum of its targets' deltas.

    ``tensors[module_name]`` maps roles to that module's tensors. Row-block
    targets (``part``) land in their rows; the rest of the tensor is zero.
    """
    targets = list(targets)
    # Work where the factors are (the executor may have them on the GPU).
    device = next((t.device for tg in targets for t in tensors[tg.module_name].values()), torch.device("cpu"))
    total = torch.zeros(tuple(base_shape), dtype=torch.float32, device=device)
    for target in targets:
        rows = target.rows(base_shape)
        module = modules[target.module_name]
        delta = lora_delta(module, tensors[target.module_name], target.shape(base_shape))
        if rows is None:
            total += delta
        else:
            total[rows] += delta
    return total


def _natural_shape(kind: LoraKind, t: Mapping[str, Tensor]) -> tuple[int, ...]:
    return tuple(_raw_delta(kind, t).shape)


def _factors(kind: LoraKind, t: Mapping[str, Tensor], weight: float) -> tuple[Tensor, Tensor] | None:
    """(U, V) with delta·weight = U @ V.T, both 2-D, when the module is low-rank."""
    if kind not in ("lora", "locon") or "mid" in t:
        return None
    s = _scale(kind, t) * weight
    return _f32(t["up"]).flatten(1) * s, _f32(t["down"]).flatten(1).T


def _svd_factors(u: Tensor, v: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Best rank-``rank`` (up, down) of U @ V.T, via QR so the SVD is only R x R."""
    q1, r1 = torch.linalg.qr(u.to(torch.float64))
    q2, r2 = torch.linalg.qr(v.to(torch.float64))
    uc, s, vch = torch.linalg.svd(r1 @ r2.T, full_matrices=False)
    return _split(q1 @ uc, s, (q2 @ vch.T).T, rank)


def _split(u: Tensor, s: Tensor, vh: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    # Split the singular values evenly between the factors: keeps both in a
    # similar range, which matters once they are stored as fp16.
    root = s[:rank].sqrt()
    up = (u[:, :rank] * root).to(torch.float32)
    down = (root[:, None] * vh[:rank]).to(torch.float32)
    return up, down


def _as_lora(up: Tensor, down: Tensor, shape: tuple[int, ...]) -> dict[str, Tensor]:
    rank = down.shape[0]
    if len(shape) == 4:
        up = up.reshape(shape[0], rank, 1, 1)
        down = down.reshape(rank, *shape[1:])
    # alpha == rank: scale 1, the factors already carry everything.
    return {"down": down.contiguous(), "up": up.contiguous(), "alpha": torch.tensor(float(rank))}


def merge_lora_modules(
    items: Sequence[tuple[Mapping[str, Tensor], float]],
    mode: Literal["sum", "concat"],
    target_rank: int | None,
    *,
    base_shape: Sequence[int] | None = None,
) -> dict[str, Tensor]:
    """Merge one module across LoRAs: ``Σ weight_i · delta_i`` as a plain LoRA.

    ``concat`` stacks the (scaled) factors, rank = Σ ranks, exact; it needs
    lora/locon modules without a Tucker core. ``sum`` re-factors the summed
    delta by SVD at ``target_rank`` (default: Σ ranks, capped by the matrix
    size). In both modes a ``target_rank`` below the total rank truncates the
    SVD. ``base_shape`` is needed only when the factors do not show a conv
    kernel (LoHa/LoKr on a 3x3 conv).
    """
    if not items:
        raise ValueError("merge_lora_modules needs at least one module")
    if mode not in ("sum", "concat"):
        raise ValueError(f"unknown LoRA merge mode {mode!r}")
    kinds = [_kind_from_roles(t) for t, _ in items]
    shape = tuple(base_shape) if base_shape is not None else _natural_shape(kinds[0], items[0][0])
    total_rank = sum(_rank(k, t) or min(shape[0], math.prod(shape[1:])) for k, (t, _) in zip(kinds, items))
    full_rank = min(shape[0], math.prod(shape[1:]))
    factors = [_factors(k, t, w) for k, (t, w) in zip(kinds, items)]
    if target_rank is not None and target_rank < 1:
        raise ValueError(f"target rank must be at least 1, got {target_rank}")

    if all(f is not None for f in factors):
        for f, (t, _) in zip(factors, items):
            if f[1].shape[0] != math.prod(shape[1:]) or f[0].shape[0] != shape[0]:  # type: ignore[index]
                raise LoraShapeError(f"LoRA factors {tuple(t['up'].shape)} x {tuple(t['down'].shape)} do not fit {shape}")
        u = torch.cat([f[0] for f in factors], dim=1)  # type: ignore[index]
        v = torch.cat([f[1] for f in factors], dim=1)  # type: ignore[index]
        if mode == "concat" and (target_rank is None or target_rank >= total_rank):
            return _as_lora(u, v.T, shape)
        rank = min(target_rank or total_rank, full_rank, total_rank)
        return _as_lora(*_svd_factors(u, v, rank), shape)

    if mode == "concat":
        raise LoraFormatError("concat merges need plain LoRA/LoCon modules (no LoHa, LoKr or Tucker core)")
    delta = torch.zeros(shape, dtype=torch.float64)
    for kind, (t, w) in zip(kinds, items):
        inner: LoraKind = "lora" if kind == "locon" else kind
        delta += (_fit("merge", _raw_delta(inner, t), shape) * (_scale(inner, t) * w)).to(torch.float64)
    rank = min(target_rank or total_rank, full_rank)
    u, s, vh = torch.linalg.svd(delta.reshape(shape[0], -1), full_matrices=False)
    return _as_lora(*_split(u, s, vh, rank), shape)
