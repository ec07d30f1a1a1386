"""LoRA maths: baking equals diffusers' load+fuse; LoCon/LoHa/LoKr formulas; merging."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from merges.engine.ldm_convert import pipeline_to_ldm
from merges.engine.lora import (
    LoraFormatError,
    LoraKeyError,
    LoraModule,
    LoraShapeError,
    LoraTarget,
    lora_delta,
    lora_key_delta,
    map_lora_to_base,
    merge_lora_modules,
    parse_lora_modules,
)
from merges.engine.tiny import build_pipeline, tiny_sd1_components, tiny_sdxl_components

from .lora_helpers import kohya_lora

gen = torch.Generator().manual_seed(1234)


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=gen)


def bake(base: dict[str, torch.Tensor], lora: dict[str, torch.Tensor], arch: str, strength: float) -> dict[str, torch.Tensor]:
    """apply_lora as the executor does it, one base key at a time."""
    modules = parse_lora_modules(lora)
    targets = map_lora_to_base(modules, base.keys(), arch)
    tensors = {name: {role: lora[t] for role, t in m.keys.items()} for name, m in modules.items()}
    out = dict(base)
    for key, key_targets in targets.items():
        out[key] = base[key] + strength * lora_key_delta(base[key].shape, key_targets, modules, tensors)
    return out


def diffusers_fused(components: dict[str, Any], arch: str, lora: dict[str, torch.Tensor], strength: float) -> dict[str, torch.Tensor]:
    pipe = build_pipeline(components, arch)
    pipe.load_lora_weights({k: v.clone() for k, v in lora.items()})
    pipe.fuse_lora(lora_scale=strength)
    pipe.unload_lora_weights()  # keeps the fused weights, drops the adapters
    return pipeline_to_ldm(components, arch)


@pytest.mark.parametrize(
    ("arch", "ldm_unet_names"),
    [("sd1", False), ("sdxl", False), ("sdxl", True)],
    ids=["sd1", "sdxl-diffusers-names", "sdxl-ldm-names"],
)
def test_bake_matches_diffusers_fuse(arch: str, ldm_unet_names: bool) -> None:
    pytest.importorskip("peft")
    components = (tiny_sd1_components if arch == "sd1" else tiny_sdxl_components)(seed=0)
    base = {k: v.clone() for k, v in pipeline_to_ldm(components, arch).items()}
    # diffusers' sgm-name path does not map conv_in/conv_out/time_embed.
    lora = kohya_lora(components, arch, seed=7, ldm_unet_names=ldm_unet_names, top_level=not ldm_unet_names)
    strength = 0.7
    ours = bake(base, lora, arch, strength)
    theirs = diffusers_fused(components, arch, lora, strength)

    assert set(ours) == set(theirs)
    changed = {k for k in theirs if not torch.equal(theirs[k], base[k])}
    n_modules = len({name.split(".")[0] for name in lora})
    assert len(changed) >= n_modules * 0.9  # te2 q/k/v share one tensor
    assert any(v.dim() == 4 and v.shape[2:] == (3, 3) for k, v in base.items() if k in changed), "no 3x3 LoCon"
    if arch == "sdxl":
        assert any(k.endswith("in_proj_weight") for k in changed)
    for key in theirs:
        delta = (theirs[key] - base[key]).abs().max().item()
        err = (theirs[key] - ours[key]).abs().max().item()
        assert err <= 1e-5 + 1e-5 * delta, (key, err, delta)


def test_unmatched_modules_are_listed() -> None:
    base = ["model.diffusion_model.input_blocks.1.1.proj_in.weight"]
    names = [
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight",
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight",
        "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight",
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
    ]
    with pytest.raises(LoraKeyError) as info:
        map_lora_to_base(parse_lora_modules(names), base, "sd1")
    assert info.value.unmatched == [
        "lora_te1_text_model_encoder_layers_0_mlp_fc1",
        "lora_unet_down_blocks_9_attentions_0_proj_in",
    ]
    assert "lora_unet_down_blocks_9_attentions_0_proj_in" in str(info.value)
    assert "2 LoRA module(s)" in str(info.value)


def test_parse_modules_and_kinds() -> None:
    names = [
        "lora_unet_a_attn1_to_q.lora_down.weight", "lora_unet_a_attn1_to_q.lora_up.weight", "lora_unet_a_attn1_to_q.alpha",
        "lora_unet_b_resnets_0_conv1.lora_down.weight", "lora_unet_b_resnets_0_conv1.lora_up.weight",
        "lora_unet_c.lora_down.weight", "lora_unet_c.lora_up.weight", "lora_unet_c.lora_mid.weight",
        "lora_te_d.hada_w1_a", "lora_te_d.hada_w1_b", "lora_te_d.hada_w2_a", "lora_te_d.hada_w2_b", "lora_te_d.alpha",
        "lora_unet_e.lokr_w1", "lora_unet_e.lokr_w2_a", "lora_unet_e.lokr_w2_b",
    ]
    modules = parse_lora_modules(names)
    assert {n: m.kind for n, m in modules.items()} == {
        "lora_unet_a_attn1_to_q": "lora",
        "lora_unet_b_resnets_0_conv1": "locon",
        "lora_unet_c": "locon",
        "lora_te_d": "loha",
        "lora_unet_e": "lokr",
    }
    assert modules["lora_unet_a_attn1_to_q"].keys == {
        "down": "lora_unet_a_attn1_to_q.lora_down.weight",
        "up": "lora_unet_a_attn1_to_q.lora_up.weight",
        "alpha": "lora_unet_a_attn1_to_q.alpha",
    }


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["lora_unet_a.lora_down.weight", "lora_unet_a.weird"], "unrecognised"),
        (["lora_unet_a.lora_down.weight", "lora_unet_a.alpha"], "incomplete"),
        (["lora_unet_a.hada_w1_a", "lora_unet_a.hada_w1_b"], "incomplete"),
        (["lora_unet_a.lora_down.weight", "lora_unet_a.lora_up.weight", "lora_unet_a.dora_scale"], "DoRA"),
        (["bundle_emb.foo.string_to_param.*"], "unrecognised"),
    ],
)
def test_parse_refuses_what_it_cannot_bake(names: list[str], message: str) -> None:
    with pytest.raises(LoraFormatError, match=message):
        parse_lora_modules(names)


def module(kind: str, **roles: torch.Tensor) -> tuple[LoraModule, dict[str, torch.Tensor]]:
    return LoraModule("m", kind, {r: r for r in roles}), roles  # type: ignore[arg-type]


def test_linear_delta_and_scale() -> None:
    down, up = randn(4, 10), randn(6, 4)
    m, t = module("lora", down=down, up=up, alpha=torch.tensor(2.0))
    torch.testing.assert_close(lora_delta(m, t, (6, 10)), up @ down * 0.5)
    # No alpha: scale 1 (kohya's alpha defaults to the rank).
    m, t = module("lora", down=down, up=up)
    torch.testing.assert_close(lora_delta(m, t, (6, 10)), up @ down)
    # fp16 factors are computed in float32.
    m, t = module("lora", down=down.half(), up=up.half(), alpha=torch.tensor(4.0, dtype=torch.float16))
    assert lora_delta(m, t, (6, 10)).dtype == torch.float32


def test_delta_shape_must_fit() -> None:
    m, t = module("lora", down=randn(4, 10), up=randn(6, 4))
    with pytest.raises(LoraShapeError, match=r"\(6, 10\) delta"):
        lora_delta(m, t, (10, 6))  # same element count, transposed
    with pytest.raises(LoraShapeError):
        lora_delta(m, t, (6, 12))


def _conv_forward_check(delta: torch.Tensor, runtime: Any, in_ch: int, padding: int) -> None:
    """conv(x, W + delta) - conv(x, W) equals the LoRA's own forward pass."""
    x = randn(2, in_ch, 9, 9)
    torch.testing.assert_close(F.conv2d(x, delta, padding=padding), runtime(x), rtol=1e-4, atol=1e-4)


def test_locon_3x3_matches_its_forward_pass() -> None:
    down, up = randn(3, 5, 3, 3), randn(7, 3, 1, 1)
    m, t = module("locon", down=down, up=up, alpha=torch.tensor(1.5))
    delta = lora_delta(m, t, (7, 5, 3, 3))
    _conv_forward_check(delta, lambda x: F.conv2d(F.conv2d(x, down, padding=1), up) * 0.5, 5, 1)


def test_locon_tucker_mid_matches_its_forward_pass() -> None:
    down, mid, up = randn(3, 5, 1, 1), randn(3, 3, 3, 3), randn(7, 3, 1, 1)
    m, t = module("locon", down=down, mid=mid, up=up, alpha=torch.tensor(3.0))
    delta = lora_delta(m, t, (7, 5, 3, 3))
    _conv_forward_check(delta, lambda x: F.conv2d(F.conv2d(F.conv2d(x, down), mid, padding=1), up), 5, 1)


def test_linear_factors_on_a_1x1_conv_and_back() -> None:
    down, up = randn(4, 10), randn(6, 4)
    m, t = module("lora", down=down, up=up)
    torch.testing.assert_close(lora_delta(m, t, (6, 10, 1, 1)), (up @ down)[:, :, None, None])
    m, t = module("lora", down=down[:, :, None, None], up=up[:, :, None, None])
    torch.testing.assert_close(lora_delta(m, t, (6, 10)), up @ down)


def test_loha() -> None:
    w1a, w1b, w2a, w2b = randn(6, 4), randn(4, 10), randn(6, 4), randn(4, 10)
    m, t = module("loha", hada_w1_a=w1a, hada_w1_b=w1b, hada_w2_a=w2a, hada_w2_b=w2b, alpha=torch.tensor(2.0))
    expected = torch.empty(6, 10, dtype=torch.float64)
    for i in range(6):
        for j in range(10):
            a = sum(float(w1a[i, r]) * float(w1b[r, j]) for r in range(4))
            b = sum(float(w2a[i, r]) * float(w2b[r, j]) for r in range(4))
            expected[i, j] = a * b * 0.5
    torch.testing.assert_close(lora_delta(m, t, (6, 10)), expected.float())


def test_loha_conv_with_tucker_cores() -> None:
    w1a, w1b, t1 = randn(3, 7), randn(3, 5), randn(3, 3, 3, 3)
    w2a, w2b, t2 = randn(3, 7), randn(3, 5), randn(3, 3, 3, 3)
    m, t = module("loha", hada_w1_a=w1a, hada_w1_b=w1b, hada_t1=t1, hada_w2_a=w2a, hada_w2_b=w2b, hada_t2=t2)
    delta = lora_delta(m, t, (7, 5, 3, 3))

    def tucker(core: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
        # As a conv chain: 1x1 (wb) -> 3x3 (core) -> 1x1 (wa^T), read back as one kernel.
        probe = torch.eye(5 * 9).reshape(45, 5, 3, 3)
        out = F.conv2d(F.conv2d(F.conv2d(probe, wb[:, :, None, None]), core), wa.T[:, :, None, None])
        return out.reshape(5, 3, 3, 7).permute(3, 0, 1, 2)

    torch.testing.assert_close(delta, tucker(t1, w1a, w1b) * tucker(t2, w2a, w2b), rtol=1e-4, atol=1e-4)


def test_lokr_linear_and_conv() -> None:
    w1, w2a, w2b = randn(2, 3), randn(4, 2), randn(2, 5)
    m, t = module("lokr", lokr_w1=w1, lokr_w2_a=w2a, lokr_w2_b=w2b, alpha=torch.tensor(1.0))
    delta = lora_delta(m, t, (8, 15))
    w2 = w2a @ w2b
    for i1 in range(2):
        for j1 in range(3):
            block = delta[i1 * 4:(i1 + 1) * 4, j1 * 5:(j1 + 1) * 5]
            torch.testing.assert_close(block, w1[i1, j1] * w2 * 0.5)  # alpha 1 / rank 2
    # Conv: a 4-D w2 carries the kernel, w1 scales whole kernels.
    w1, w2 = randn(2, 2), randn(3, 4, 3, 3)
    m, t = module("lokr", lokr_w1=w1, lokr_w2=w2)
    delta = lora_delta(m, t, (6, 8, 3, 3))
    torch.testing.assert_close(delta[3:6, 0:4], w1[1, 0] * w2)


def test_key_delta_places_row_blocks() -> None:
    modules = {
        "q": LoraModule("q", "lora", {"down": "q.d", "up": "q.u"}),
        "v": LoraModule("v", "lora", {"down": "v.d", "up": "v.u"}),
    }
    tensors = {n: {"down": randn(2, 4), "up": randn(4, 2)} for n in modules}
    total = lora_key_delta((12, 4), [LoraTarget("q", (0, 3)), LoraTarget("v", (2, 3))], modules, tensors)
    torch.testing.assert_close(total[:4], tensors["q"]["up"] @ tensors["q"]["down"])
    assert torch.count_nonzero(total[4:8]) == 0
    torch.testing.assert_close(total[8:], tensors["v"]["up"] @ tensors["v"]["down"])


def _lora(out: int, inp: int, rank: int, alpha: float, kernel: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    if kernel:
        return {"down": randn(rank, inp, *kernel), "up": randn(out, rank, 1, 1), "alpha": torch.tensor(alpha)}
    return {"down": randn(rank, inp), "up": randn(out, rank), "alpha": torch.tensor(alpha)}


def _delta(t: dict[str, torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    m = LoraModule("m", "lora", {r: r for r in t})
    return lora_delta(m, t, shape)


@pytest.mark.parametrize("kernel", [None, (3, 3)])
def test_concat_is_exact(kernel: tuple[int, int] | None) -> None:
    shape = (12, 10, *kernel) if kernel else (12, 10)
    a, b = _lora(12, 10, 3, 1.5, kernel), _lora(12, 10, 2, 4.0, kernel)
    merged = merge_lora_modules([(a, 0.6), (b, -0.3)], "concat", None)
    assert merged["down"].shape[0] == 5
    assert merged["down"].shape[1:] == shape[1:]
    torch.testing.assert_close(_delta(merged, shape), 0.6 * _delta(a, shape) - 0.3 * _delta(b, shape))


def test_sum_at_full_rank_is_exact_and_truncation_is_optimal() -> None:
    a, b = _lora(16, 12, 4, 2.0), _lora(16, 12, 4, 8.0)
    exact = 0.5 * _delta(a, (16, 12)) + 1.0 * _delta(b, (16, 12))
    merged = merge_lora_modules([(a, 0.5), (b, 1.0)], "sum", None)
    assert merged["down"].shape == (8, 12) and float(merged["alpha"]) == 8.0
    torch.testing.assert_close(_delta(merged, (16, 12)), exact, rtol=1e-4, atol=1e-4)

    for mode in ("sum", "concat"):
        small = merge_lora_modules([(a, 0.5), (b, 1.0)], mode, 3)
        assert small["up"].shape == (16, 3)
        s = torch.linalg.svdvals(exact.double())
        err = torch.linalg.norm((_delta(small, (16, 12)) - exact).double())
        # Eckart-Young: the best rank-3 error is the norm of the dropped singular values.
        assert math.isclose(err.item(), s[3:].norm().item(), rel_tol=1e-4)


def test_sum_of_loha_and_lora_needs_svd() -> None:
    loha = {"hada_w1_a": randn(8, 2), "hada_w1_b": randn(2, 6), "hada_w2_a": randn(8, 2), "hada_w2_b": randn(2, 6)}
    lora = _lora(8, 6, 2, 2.0)
    exact = _delta(lora, (8, 6)) + lora_delta(LoraModule("h", "loha", {r: r for r in loha}), loha, (8, 6))
    merged = merge_lora_modules([(loha, 1.0), (lora, 1.0)], "sum", 6)
    torch.testing.assert_close(_delta(merged, (8, 6)), exact, rtol=1e-4, atol=1e-4)
    with pytest.raises(LoraFormatError, match="concat"):
        merge_lora_modules([(loha, 1.0), (lora, 1.0)], "concat", None)


def test_merge_rejects_mismatched_modules() -> None:
    with pytest.raises(LoraShapeError):
        merge_lora_modules([(_lora(8, 6, 2, 1.0), 1.0), (_lora(8, 5, 2, 1.0), 1.0)], "concat", None)
    with pytest.raises(ValueError):
        merge_lora_modules([], "sum", None)
    with pytest.raises(ValueError):
        merge_lora_modules([(_lora(8, 6, 2, 1.0), 1.0)], "sum", 0)
