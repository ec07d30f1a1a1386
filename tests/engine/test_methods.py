"""Every merge method against a plain float64 reference, plus slicing and seeding."""

from __future__ import annotations

import math

import pytest
import torch

from merges.engine import methods

F64 = torch.float64


def rand(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def close(got: torch.Tensor, ref: torch.Tensor, tol: float = 2e-6) -> None:
    assert got.dtype == torch.float32
    assert got.shape == ref.shape
    scale = max(1.0, ref.abs().max().item())
    err = (got.to(F64) - ref).abs().max().item()
    assert err <= tol * scale, err


@pytest.fixture(params=[torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
def abc(request) -> list[torch.Tensor]:
    return [rand(4, 5, 3, seed=s, dtype=request.param) for s in (1, 2, 3)]


def d(t: torch.Tensor) -> torch.Tensor:
    return t.to(F64)


def test_weighted_sum(abc) -> None:
    a, b, _ = abc
    close(methods.weighted_sum(a, b, 0.3), 0.7 * d(a) + 0.3 * d(b))


def test_add_difference(abc) -> None:
    a, b, c = abc
    close(methods.add_difference(a, b, c, 0.8), d(a) + 0.8 * (d(b) - d(c)))


def test_triple_sum(abc) -> None:
    a, b, c = abc
    close(methods.triple_sum(a, b, c, 0.2, 0.3), 0.5 * d(a) + 0.2 * d(b) + 0.3 * d(c))


def test_sum_twice(abc) -> None:
    a, b, c = abc
    close(methods.sum_twice(a, b, c, 0.2, 0.3), 0.7 * (0.8 * d(a) + 0.2 * d(b)) + 0.3 * d(c))


def test_task_arithmetic(abc) -> None:
    base, m1, m2 = abc
    ref = d(base) + 0.9 * (1.0 * (d(m1) - d(base)) + 0.5 * (d(m2) - d(base)))
    close(methods.task_arithmetic(base, [m1, m2], [1.0, 0.5], 0.9), ref)


def ref_slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    a64, b64 = d(a).flatten(), d(b).flatten()
    cos = (a64 @ b64) / (a64.norm() * b64.norm())
    omega = torch.arccos(cos.clamp(-1, 1))
    so = torch.sin(omega)
    out = torch.sin((1 - t) * omega) / so * a64 + torch.sin(t * omega) / so * b64
    return out.reshape(a.shape)


def test_slerp(abc) -> None:
    a, b, _ = abc
    close(methods.slerp(a, b, 0.35), ref_slerp(a, b, 0.35), tol=1e-5)
    # Endpoints and the parallel fallback.
    close(methods.slerp(a, b, 0.0), d(a), tol=1e-5)
    close(methods.slerp(a, b, 1.0), d(b), tol=1e-5)
    close(methods.slerp(a, a * 2, 0.5), 1.5 * d(a), tol=1e-5)
    close(methods.slerp(a, torch.zeros_like(a), 0.5), 0.5 * d(a))


def ref_ties(base, models, weights, lam, density):
    b = d(base).flatten()
    trimmed = []
    for m, w in zip(models, weights):
        tau = d(m).flatten() - b
        k = max(1, math.ceil(density * tau.numel()))
        keep = torch.zeros_like(tau, dtype=torch.bool)
        keep[tau.abs().argsort(descending=True)[:k]] = True
        trimmed.append(torch.where(keep, tau, 0.0) * w)
    stack = torch.stack(trimmed)
    sign = torch.sign(stack.sum(0))
    agree = (torch.sign(stack) == sign) & (stack != 0)
    merged = (stack * agree).sum(0) / agree.sum(0).clamp_min(1)
    return (b + lam * merged).reshape(base.shape)


def test_ties(abc) -> None:
    base, m1, m2 = abc
    m3 = rand(*base.shape, seed=9, dtype=base.dtype)
    ref = ref_ties(base, [m1, m2, m3], [1.0, 0.7, 1.2], 0.8, 0.3)
    close(methods.ties(base, [m1, m2, m3], [1.0, 0.7, 1.2], 0.8, 0.3), ref, tol=1e-5)
    # density 1 keeps everything: with one model TIES is task arithmetic.
    close(methods.ties(base, [m1], [1.0], 1.0, 1.0), d(m1), tol=1e-5)


def ref_model_stock(base, models):
    b = d(base).flatten()
    taus = [d(m).flatten() - b for m in models]
    cos = []
    for i in range(len(taus)):
        for j in range(i + 1, len(taus)):
            cos.append((taus[i] @ taus[j]) / (taus[i].norm() * taus[j].norm()))
    c = float(torch.stack(cos).mean().clamp(0, 1))
    n = len(models)
    t = n * c / (1 + (n - 1) * c)
    avg = torch.stack([d(m).flatten() for m in models]).mean(0)
    return (t * avg + (1 - t) * b).reshape(base.shape)


def test_model_stock() -> None:
    base = rand(6, 7, seed=1)
    shared = rand(6, 7, seed=2)
    # Fine-tuned models that share a direction, so the angle is acute.
    models = [base + shared + 0.5 * rand(6, 7, seed=s) for s in (3, 4, 5)]
    close(methods.model_stock(base, models), ref_model_stock(base, models), tol=1e-5)
    # Orthogonal-or-worse task vectors: t = 0, the base comes back.
    close(methods.model_stock(base, [base + shared, base - shared]), d(base), tol=1e-6)


def test_dare_matches_its_mask_and_rescale() -> None:
    base, m1, m2 = (rand(3000, seed=s) for s in (1, 2, 3))
    p, seed = 0.7, methods.dare_key_seed(42, "step", "model.key")
    got = methods.dare(base, [m1, m2], [1.0, 0.5], 0.9, p, seed)
    seeds = [methods._model_seed(seed, i) for i in range(2)]
    masks = [methods.dare_mask(s, 0, 3000, p) for s in seeds]
    ref = d(base) + 0.9 * sum(
        w * torch.where(mask, (d(m) - d(base)) / (1 - p), 0.0) for m, w, mask in zip([m1, m2], [1.0, 0.5], masks)
    )
    close(got, ref, tol=1e-5)
    # About 1 - p of each delta survives, and the two models get different masks.
    for mask in masks:
        assert abs(mask.float().mean().item() - (1 - p)) < 0.05
    assert not torch.equal(masks[0], masks[1])


def test_dare_is_reproducible_and_seeded_per_key() -> None:
    base, m = rand(5000, seed=1), rand(5000, seed=2)
    s1 = methods.dare_key_seed(1, "d", "k1")
    assert torch.equal(methods.dare(base, [m], [1.0], 1.0, 0.5, s1), methods.dare(base, [m], [1.0], 1.0, 0.5, s1))
    other_key = methods.dare(base, [m], [1.0], 1.0, 0.5, methods.dare_key_seed(1, "d", "k2"))
    other_seed = methods.dare(base, [m], [1.0], 1.0, 0.5, methods.dare_key_seed(2, "d", "k1"))
    same = methods.dare(base, [m], [1.0], 1.0, 0.5, s1)
    assert not torch.equal(same, other_key) and not torch.equal(same, other_seed)


def test_dare_mask_of_a_slice_is_a_slice_of_the_mask() -> None:
    full = methods.dare_mask(123456789, 0, 10_000, 0.3)
    assert torch.equal(methods.dare_mask(123456789, 4321, 1000, 0.3), full[4321:5321])
    assert methods.dare_mask(1, 0, 1000, 0.0).all()


def test_sliced_results_equal_whole_results(monkeypatch) -> None:
    """Methods chunk internally; the executor calls them on slices: same bits."""
    n = 10_000
    base, m1, m2 = (rand(n, seed=s) for s in (1, 2, 3))
    whole = {
        "ws": methods.weighted_sum(m1, m2, 0.3),
        "ad": methods.add_difference(base, m1, m2, 0.7),
        "ta": methods.task_arithmetic(base, [m1, m2], [1.0, 0.4], 0.8),
        "dare": methods.dare(base, [m1, m2], [1.0, 0.4], 0.8, 0.5, 77),
    }
    monkeypatch.setattr(methods, "CHUNK", 999)
    internally_chunked = {
        "ws": methods.weighted_sum(m1, m2, 0.3),
        "ad": methods.add_difference(base, m1, m2, 0.7),
        "ta": methods.task_arithmetic(base, [m1, m2], [1.0, 0.4], 0.8),
        "dare": methods.dare(base, [m1, m2], [1.0, 0.4], 0.8, 0.5, 77),
    }
    sliced = {
        "ws": torch.cat([methods.weighted_sum(m1[i : i + 999], m2[i : i + 999], 0.3) for i in range(0, n, 999)]),
        "dare": torch.cat(
            [methods.dare(base[i : i + 999], [m1[i : i + 999], m2[i : i + 999]], [1.0, 0.4], 0.8, 0.5, 77, offset=i) for i in range(0, n, 999)]
        ),
    }
    for name in whole:
        assert torch.equal(whole[name], internally_chunked[name]), name
    for name in sliced:
        assert torch.equal(whole[name], sliced[name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
def test_in_place_twins_give_the_same_bits(dtype) -> None:
    """The executor's in-place methods must round exactly as the allocating ones."""
    n = 50_000
    a, b, c = (rand(n, seed=s, dtype=dtype) for s in (11, 12, 13))

    def bufs(*ts: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(torch.float32, copy=True) for t in ts]  # fresh float32 copies to overwrite

    alpha, beta = 0.3141592653589793, 0.2718281828
    pairs = {
        "weighted_sum": (methods.weighted_sum(a, b, alpha), methods.weighted_sum_(*bufs(a, b), alpha)),
        "add_difference": (methods.add_difference(a, b, c, alpha), methods.add_difference_(*bufs(a, b, c), alpha)),
        "triple_sum": (methods.triple_sum(a, b, c, alpha, beta), methods.triple_sum_(*bufs(a, b, c), alpha, beta)),
        "sum_twice": (methods.sum_twice(a, b, c, alpha, beta), methods.sum_twice_(*bufs(a, b, c), alpha, beta)),
        "task_arithmetic": (
            methods.task_arithmetic(a, [b, c], [0.9, -0.35], alpha),
            methods.task_arithmetic_(*bufs(a), bufs(b, c), [0.9, -0.35], alpha, torch.empty(n)),
        ),
    }
    for name, (allocating, in_place) in pairs.items():
        assert torch.equal(allocating, in_place), name


def test_fixed_dot_is_exactly_rounded_blockwise() -> None:
    x, y = rand(100_003, seed=1), rand(100_003, seed=2)
    exact = math.fsum((x.to(F64) * y.to(F64)).tolist())
    assert abs(methods.fixed_dot(x, y) - exact) <= 1e-9 * abs(exact) + 1e-9


def test_inputs_are_never_modified() -> None:
    base, m1, m2 = (rand(50, seed=s) for s in (1, 2, 3))
    copies = [t.clone() for t in (base, m1, m2)]
    methods.weighted_sum(m1, m2, 0.5)
    methods.add_difference(base, m1, m2, 1.0)
    methods.ties(base, [m1, m2], [1.0, 1.0], 1.0, 0.5)
    methods.dare(base, [m1, m2], [1.0, 1.0], 1.0, 0.5, 1)
    methods.slerp(m1, m2, 0.5)
    methods.model_stock(base, [m1, m2])
    for t, c in zip((base, m1, m2), copies):
        assert torch.equal(t, c)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        methods.weighted_sum(torch.zeros(3), torch.zeros(4), 0.5)
