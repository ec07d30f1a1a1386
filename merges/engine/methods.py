"""Merge methods: pure functions over the tensors of one key.

Every method takes tensors of one shape (any float dtype), computes in
float32 and returns a new float32 tensor; inputs are never modified.
Elementwise work runs over slices of ``CHUNK`` elements so temporaries stay
small even for the 38M-element token embedding, and the executor may call the
elementwise methods on slices of a key directly.

Results depend only on the inputs, never on the thread count: the only
reductions (dot products for slerp and model_stock) are summed in fixed-size
blocks whose partial sums are added exactly with ``math.fsum``, and DARE's
random masks come from a counter-based hash of (seed, key, element index)
rather than a stateful generator, so any slice of a key gets the same mask.

Conventions (DESIGN §5): ``alpha`` is the weight of the second input,
``weighted_sum = (1-α)·A + α·B``, ``add_difference = A + α·(B − C)``.
Task-vector methods take the base model first, then the fine-tuned models.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "CHUNK",
    "ELEMENTWISE",
    "add_difference",
    "dare",
    "dare_key_seed",
    "model_stock",
    "slerp",
    "sum_twice",
    "task_arithmetic",
    "ties",
    "triple_sum",
    "weighted_sum",
]

CHUNK = 1 << 18  # elements per slice: 1 MB of float32 temporaries stays in cache
_BLOCK = 1024  # elements per partial sum in reductions
_M32 = 0xFFFFFFFF
_F32 = torch.float32


def _f32(t: Tensor) -> Tensor:
    return t if t.dtype == _F32 else t.to(_F32)


def _chunked(fn: Callable[..., Tensor], *tensors: Tensor, offset_arg: bool = False) -> Tensor:
    """Apply an elementwise ``fn`` to flat slices; returns a new float32 tensor.

    With ``offset_arg`` the slice's start index is passed as the last
    argument (for position-dependent functions such as DARE's mask).
    """
    first = tensors[0]
    for t in tensors[1:]:
        if t.shape != first.shape:
            raise ValueError(f"shape mismatch: {tuple(first.shape)} vs {tuple(t.shape)}")
    n = first.numel()
    if n <= CHUNK:
        # One slice (the executor's case): no output buffer to copy into.
        parts = [_f32(t).reshape(-1) for t in tensors]
        return (fn(*parts, 0) if offset_arg else fn(*parts)).reshape(first.shape)
    out = torch.empty(first.shape, dtype=_F32, device=first.device)
    flats = [t.reshape(-1) for t in tensors]
    flat_out = out.view(-1)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        parts = [_f32(f[start:stop]) for f in flats]
        flat_out[start:stop] = fn(*parts, start) if offset_arg else fn(*parts)
    return out


def fixed_dot(x: Tensor, y: Tensor) -> float:
    """Σ x·y in float64, independent of thread count and slicing.

    Products of float32 values are exact in float64; each block of
    ``_BLOCK`` products is summed by one reduction that never spans threads
    (far below torch's parallel grain), and the block sums are added
    exactly, so the order of the blocks cannot matter.
    """
    xf, yf = x.reshape(-1), y.reshape(-1)
    partials: list[float] = []
    for start in range(0, xf.numel(), CHUNK):
        stop = min(start + CHUNK, xf.numel())
        p = xf[start:stop].to(torch.float64) * yf[start:stop].to(torch.float64)
        pad = -p.numel() % _BLOCK
        if pad:
            p = torch.cat([p, p.new_zeros(pad)])
        partials.extend(p.view(-1, _BLOCK).sum(dim=1).tolist())
    return math.fsum(partials)


# -- linear combinations (elementwise) ------------------------------------------------


def weighted_sum(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """(1-α)·A + α·B"""
    wa, wb = 1.0 - alpha, alpha
    # Each product is a fresh tensor, so adding in place is safe (and saves a pass).
    return _chunked(lambda x, y: (x * wa).add_(y * wb), a, b)


def add_difference(a: Tensor, b: Tensor, c: Tensor, alpha: float) -> Tensor:
    """A + α·(B − C)"""
    return _chunked(lambda x, y, z: x + (y - z) * alpha, a, b, c)


def triple_sum(a: Tensor, b: Tensor, c: Tensor, alpha: float, beta: float) -> Tensor:
    """(1-α-β)·A + α·B + β·C (supermerger's "triple sum")."""
    wa = 1.0 - alpha - beta
    return _chunked(lambda x, y, z: x * wa + y * alpha + z * beta, a, b, c)


def sum_twice(a: Tensor, b: Tensor, c: Tensor, alpha: float, beta: float) -> Tensor:
    """(1-β)·((1-α)·A + α·B) + β·C (supermerger's "sum twice")."""
    return _chunked(lambda x, y, z: (x * (1.0 - alpha) + y * alpha) * (1.0 - beta) + z * beta, a, b, c)


def task_arithmetic(base: Tensor, models: Sequence[Tensor], weights: Sequence[float], alpha: float) -> Tensor:
    """base + α·Σ wᵢ·(mᵢ − base) (Ilharco et al. 2023, task vectors)."""
    _check_weights(models, weights)

    def fn(b: Tensor, *ms: Tensor) -> Tensor:
        acc = torch.zeros_like(b)
        for m, w in zip(ms, weights):
            acc += (m - b) * w
        return b + acc * alpha

    return _chunked(fn, base, *models)


# -- the same linear combinations, in place ----------------------------------------------
#
# The executor evaluates elementwise keys in cache-sized pieces held in
# reusable float32 buffers; allocating fresh temporaries for every piece costs
# more than the arithmetic. Each function below performs exactly the float32
# operations of its allocating twin above, in the same order, so the results
# are bit-identical (tests/engine/test_methods.py checks this). Every argument
# is a float32 buffer the caller owns and may be overwritten; the result is
# the first argument.


def weighted_sum_(x: Tensor, y: Tensor, alpha: float) -> Tensor:
    return x.mul_(1.0 - alpha).add_(y.mul_(alpha))


def add_difference_(x: Tensor, y: Tensor, z: Tensor, alpha: float) -> Tensor:
    return x.add_(y.sub_(z).mul_(alpha))


def triple_sum_(x: Tensor, y: Tensor, z: Tensor, alpha: float, beta: float) -> Tensor:
    return x.mul_(1.0 - alpha - beta).add_(y.mul_(alpha)).add_(z.mul_(beta))


def sum_twice_(x: Tensor, y: Tensor, z: Tensor, alpha: float, beta: float) -> Tensor:
    return x.mul_(1.0 - alpha).add_(y.mul_(alpha)).mul_(1.0 - beta).add_(z.mul_(beta))


def task_arithmetic_(b: Tensor, models: Sequence[Tensor], weights: Sequence[float], alpha: float, acc: Tensor) -> Tensor:
    """``acc`` is one more scratch buffer of the same size."""
    _check_weights(models, weights)
    acc.zero_()
    for m, w in zip(models, weights):
        acc.add_(m.sub_(b).mul_(w))
    return b.add_(acc.mul_(alpha))


# -- DARE ----------------------------------------------------------------------------------


def dare_key_seed(seed: int, step_id: str, key: str) -> int:
    """64-bit seed for one key of one DARE step: reruns get the same masks."""
    digest = hashlib.sha256(f"mergeworks-dare\0{seed}\0{step_id}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _hash32(x: Tensor) -> Tensor:
    """lowbias32 (Wellons): a well-mixing 32-bit integer hash, on int64 lanes.

    Values stay in [0, 2³²); products may wrap past 2⁶³ but the low 32 bits,
    which are all we keep, are exact on every device.
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def dare_mask(model_seed: int, start: int, count: int, drop_rate: float, device: torch.device | str = "cpu") -> Tensor:
    """Keep-mask for elements ``[start, start+count)``: True with probability 1-p."""
    idx = torch.arange(start, start + count, dtype=torch.int64, device=device)
    s0, s1 = model_seed & _M32, (model_seed >> 32) & _M32
    h = _hash32((idx & _M32) ^ s0)
    h = _hash32(h ^ (idx >> 32) ^ s1)
    threshold = min(round(drop_rate * 2**32), 2**32)
    return h >= threshold


def _model_seed(key_seed: int, i: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{key_seed}:{i}".encode()).digest()[:8], "little")


def dare(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    alpha: float,
    drop_rate: float,
    key_seed: int,
    offset: int = 0,
) -> Tensor:
    """DARE (Yu et al. 2023, arXiv:2311.03099) with task-arithmetic merging.

    Each delta mᵢ − base loses a random fraction ``drop_rate`` of its
    entries and the rest is rescaled by 1/(1 − p); the results are added to
    the base as in task arithmetic. ``offset`` is the index of the first
    element when the tensors are a slice of the key.
    """
    _check_weights(models, weights)
    seeds = [_model_seed(key_seed, i) for i in range(len(models))]
    rescale = 1.0 / (1.0 - drop_rate)

    def fn(b: Tensor, *rest: Tensor) -> Tensor:
        *ms, start = rest
        acc = torch.zeros_like(b)
        for m, w, s in zip(ms, weights, seeds):
            keep = dare_mask(s, offset + start, b.numel(), drop_rate, b.device)
            acc += torch.where(keep, (m - b) * rescale, 0.0) * w
        return b + acc * alpha

    return _chunked(fn, base, *models, offset_arg=True)


# -- whole-tensor methods ------------------------------------------------------------------


def slerp(a: Tensor, b: Tensor, alpha: float, eps: float = 1e-6) -> Tensor:
    """Spherical interpolation between A and B at α, treating each key as one vector.

    The angle is the one between the flattened tensors; their lengths are
    interpolated along with the direction, as supermerger does. Nearly
    parallel (or zero) tensors fall back to the weighted sum.
    """
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    a32, b32 = _f32(a), _f32(b)
    na, nb = math.sqrt(fixed_dot(a32, a32)), math.sqrt(fixed_dot(b32, b32))
    if na == 0.0 or nb == 0.0:
        return weighted_sum(a, b, alpha)
    cos = max(-1.0, min(1.0, fixed_dot(a32, b32) / (na * nb)))
    if abs(cos) > 1.0 - eps:
        return weighted_sum(a, b, alpha)
    omega = math.acos(cos)
    so = math.sin(omega)
    ca, cb = math.sin((1.0 - alpha) * omega) / so, math.sin(alpha * omega) / so
    return _chunked(lambda x, y: x * ca + y * cb, a, b)


def _magnitude_threshold(delta: Tensor, density: float) -> float:
    """Smallest magnitude among the top ``density`` fraction of ``delta``."""
    n = delta.numel()
    k = max(1, math.ceil(density * n))
    if k >= n:
        return 0.0
    return float(torch.kthvalue(delta.reshape(-1).abs(), n - k + 1).values)


def ties(
    base: Tensor,
    models: Sequence[Tensor],
    weights: Sequence[float],
    alpha: float,
    density: float,
) -> Tensor:
    """TIES-merging (Yadav et al. 2023, arXiv:2306.01708).

    1. Trim: keep the ``density`` fraction of each task vector τᵢ = mᵢ − base
       with the largest magnitudes (per key), zero the rest; scale by wᵢ.
    2. Elect sign: γ = sign(Σ trimmed τᵢ).
    3. Disjoint merge: average the trimmed entries whose sign agrees with γ.
    Result: base + α·τ_merged.
    """
    _check_weights(models, weights)
    b32 = _f32(base)
    thresholds = [_magnitude_threshold(_f32(m) - b32, density) for m in models]

    def trimmed(b: Tensor, m: Tensor, thr: float, w: float) -> Tensor:
        d = m - b
        return torch.where(d.abs() >= thr, d, 0.0) * w

    def fn(b: Tensor, *ms: Tensor) -> Tensor:
        ts = [trimmed(b, m, thr, w) for m, thr, w in zip(ms, thresholds, weights)]
        total = torch.zeros_like(b)
        for t in ts:
            total += t
        sign = torch.sign(total)
        acc = torch.zeros_like(b)
        count = torch.zeros_like(b)
        for t in ts:
            agree = (torch.sign(t) == sign) & (t != 0)
            acc += torch.where(agree, t, 0.0)
            count += agree
        return b + acc / count.clamp_min(1.0) * alpha

    return _chunked(fn, base, *models)


def model_stock(base: Tensor, models: Sequence[Tensor]) -> Tensor:
    """Model Stock (Jang et al. 2024, arXiv:2403.19522), per key.

    With N fine-tuned models and cos θ the mean pairwise cosine between their
    task vectors, t = N·cos θ / (1 + (N − 1)·cos θ) and the result is
    t·mean(mᵢ) + (1 − t)·base. cos θ is clamped to [0, 1] (the paper assumes
    an acute angle), so t stays in [0, 1]; zero task vectors are left out of
    the cosine, and with no pair left t = 1.
    """
    if len(models) < 2:
        raise ValueError("model_stock needs at least two fine-tuned models")
    b32 = _f32(base)
    deltas = [_f32(m) - b32 for m in models]
    norms = [math.sqrt(fixed_dot(d, d)) for d in deltas]
    cosines = [
        fixed_dot(deltas[i], deltas[j]) / (norms[i] * norms[j])
        for i in range(len(deltas))
        for j in range(i + 1, len(deltas))
        if norms[i] > 0.0 and norms[j] > 0.0
    ]
    del deltas
    n = len(models)
    cos = min(1.0, max(0.0, math.fsum(cosines) / len(cosines))) if cosines else 1.0
    t = n * cos / (1.0 + (n - 1) * cos) if cosines else 1.0
    inv_n = 1.0 / n

    def fn(b: Tensor, *ms: Tensor) -> Tensor:
        total = torch.zeros_like(b)
        for m in ms:
            total += m
        return (total * inv_n) * t + b * (1.0 - t)

    return _chunked(fn, base, *models)


def _check_weights(models: Sequence[Tensor], weights: Sequence[float]) -> None:
    if len(models) != len(weights):
        raise ValueError(f"{len(models)} models but {len(weights)} weights")


# Methods the executor may apply to slices of a key (the rest need the whole key).
ELEMENTWISE = frozenset({"weighted_sum", "add_difference", "triple_sum", "sum_twice", "task_arithmetic", "dare"})
