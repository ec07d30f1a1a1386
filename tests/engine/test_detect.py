"""Detection from key names and shapes: checkpoints, LoRA kinds, VAEs, embeddings."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from merges.engine.detect import Detection, detect
from merges.engine.ldm_convert import pipeline_to_ldm
from merges.engine.tiny import tiny_sd1_components, tiny_sdxl_components

from .lora_helpers import kohya_lora

Shapes = dict[str, tuple[int, ...]]


@cache
def _tiny(arch: str) -> tuple[Shapes, Shapes, Shapes]:
    """(checkpoint, kohya LoRA, LDM-named kohya LoRA) shapes of a tiny model."""
    components = (tiny_sd1_components if arch == "sd1" else tiny_sdxl_components)(seed=0)
    ckpt = {k: tuple(v.shape) for k, v in pipeline_to_ldm(components, arch).items()}
    lora = {k: tuple(v.shape) for k, v in kohya_lora(components, arch).items()}
    ldm_lora = {k: tuple(v.shape) for k, v in kohya_lora(components, arch, ldm_unet_names=True, top_level=False).items()}
    return ckpt, lora, ldm_lora


def _only(shapes: Shapes, *prefixes: str) -> Shapes:
    return {k: v for k, v in shapes.items() if k.startswith(prefixes)}


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_tiny_checkpoints(arch: str) -> None:
    ckpt, _, _ = _tiny(arch)
    assert detect(ckpt) == Detection("checkpoint", arch=arch)
    # UNet-only: the tiny widths are not 768/2048, so the block structure decides.
    assert detect(_only(ckpt, "model.diffusion_model.")).arch == arch
    # Text encoder(s) only.
    te = "cond_stage_model." if arch == "sd1" else "conditioner."
    assert detect(_only(ckpt, te)).arch == arch


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_tiny_vae(arch: str) -> None:
    ckpt, _, _ = _tiny(arch)
    prefixed = _only(ckpt, "first_stage_model.")
    assert detect(prefixed) == Detection("vae")
    bare = {k[len("first_stage_model."):]: v for k, v in prefixed.items()}
    assert detect(bare) == Detection("vae")


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_tiny_loras(arch: str) -> None:
    _, lora, ldm_lora = _tiny(arch)
    alphas = {k: 2.0 for k in lora if k.endswith(".alpha")}
    found = detect(lora, alphas=alphas)
    assert (found.kind, found.lora_kind, found.base) == ("lora", "locon", arch)
    assert (found.rank, found.conv_rank, found.alpha) == (4, 2, 2.0)
    assert found.modules == len({k.split(".")[0] for k in lora})
    assert detect(ldm_lora).base == arch
    # UNet part alone, and attention-only (plain LoRA, no conv layers).
    unet = _only(lora, "lora_unet_")
    assert detect(unet).base == arch
    attention = {k: v for k, v in unet.items() if "_attentions_" in k and "proj_" not in k}
    assert detect(attention).lora_kind == "lora"
    assert detect(_only(lora, "lora_te")).base == arch


def _kohya(modules: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> Shapes:
    shapes: Shapes = {}
    for name, (down, up) in modules.items():
        shapes[f"{name}.lora_down.weight"] = down
        shapes[f"{name}.lora_up.weight"] = up
        shapes[f"{name}.alpha"] = ()
    return shapes


@pytest.mark.parametrize(
    ("context", "base"), [(768, "sd1"), (1024, "sd2"), (2048, "sdxl")]
)
def test_lora_base_from_cross_attention_width(context: int, base: str) -> None:
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    found = detect(_kohya({name: ((32, context), (640, 32))}))
    assert (found.base, found.rank, found.lora_kind) == (base, 32, "lora")


def test_lora_base_from_text_encoder_width() -> None:
    name = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    assert detect(_kohya({name: ((8, 768), (768, 8))})).base == "sd1"
    assert detect(_kohya({name: ((8, 1024), (1024, 8))})).base == "sd2"


def test_locon_by_kernel_and_tucker() -> None:
    conv = {"lora_unet_down_blocks_0_resnets_0_conv1": ((8, 320, 3, 3), (320, 8, 1, 1))}
    assert detect(_kohya(conv)).lora_kind == "locon"
    tucker = _kohya({"lora_unet_x": ((4, 320, 1, 1), (320, 4, 1, 1))})
    tucker["lora_unet_x.lora_mid.weight"] = (4, 4, 3, 3)
    assert detect(tucker).lora_kind == "locon"


def test_loha_and_lokr() -> None:
    loha = {
        f"lora_unet_down_blocks_0_attentions_0_proj_in.{p}": s
        for p, s in {"hada_w1_a": (320, 16), "hada_w1_b": (16, 320), "hada_w2_a": (320, 16), "hada_w2_b": (16, 320), "alpha": ()}.items()
    }
    found = detect(loha, alphas={"lora_unet_down_blocks_0_attentions_0_proj_in.alpha": 8.0})
    assert (found.lora_kind, found.rank, found.alpha) == ("loha", 16, 8.0)
    lokr = {
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lokr_w1": (4, 4),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lokr_w2_a": (768, 8),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lokr_w2_b": (8, 192),
    }
    found = detect(lokr)
    assert (found.lora_kind, found.rank, found.base) == ("lokr", 8, "sdxl")


def test_dora_is_noted() -> None:
    shapes = _kohya({"lora_unet_x_attn1_to_q": ((4, 320), (320, 4))})
    shapes["lora_unet_x_attn1_to_q.dora_scale"] = (1, 320)
    assert detect(shapes).notes == ["DoRA"]


def test_flux() -> None:
    assert detect({"double_blocks.0.img_attn.qkv.weight": (9216, 3072)}).arch == "flux"
    assert detect({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (9216, 3072)}).arch == "flux"
    assert detect(_kohya({"lora_unet_double_blocks_0_img_attn_qkv": ((16, 3072), (9216, 16))})).base == "flux"
    flux_vae = {"decoder.conv_in.weight": (512, 16, 3, 3), "encoder.conv_out.weight": (32, 512, 3, 3)}
    assert detect(flux_vae) == Detection("vae", arch="flux")


def test_sd2_checkpoint() -> None:
    shapes = {
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": (3072, 1024),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
    }
    assert detect(shapes).arch == "sd2"
    assert detect(_only(shapes, "model.")).arch == "sd2"  # by context width


@pytest.mark.parametrize(
    ("shapes", "arch", "vectors"),
    [
        ({"emb_params": (4, 768)}, "sd1", 4),
        ({"emb_params": (2, 1024)}, "sd2", 2),
        ({"string_to_param.*": (6, 768)}, "sd1", 6),
        ({"clip_l": (3, 768), "clip_g": (3, 1280)}, "sdxl", 3),
    ],
)
def test_embeddings(shapes: Shapes, arch: str, vectors: int) -> None:
    assert detect(shapes) == Detection("embedding", arch=arch, vectors=vectors)  # type: ignore[arg-type]


def test_unknown() -> None:
    assert detect({}).kind == "unknown"
    assert detect({"foo.bar": (3,)}).kind == "unknown"
    assert detect({"encoder.layers.0.weight": (3,), "lm_head.weight": (3, 3)}).kind == "unknown"


def _mecha_shapes(name: str) -> Shapes:
    mecha = pytest.importorskip("sd_mecha")
    path = Path(mecha.__file__).parent / "extensions" / "builtin" / "model_configs" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not shipped by this sd-mecha")
    return {
        k: tuple(int(x) for x in s.split(",") if x.strip())
        for k, s in re.findall(r"^    ([^\s:]+): \{shape: \[([^\]]*)\]", path.read_text(), flags=re.M)
    }


@pytest.mark.parametrize(("config", "arch"), [("sd1-ldm", "sd1"), ("sdxl-sgm", "sdxl"), ("flux-flux", "flux")])
def test_real_size_checkpoints(config: str, arch: str) -> None:
    shapes = _mecha_shapes(config)
    assert detect(shapes).arch == arch
    if arch != "flux":
        assert detect(_only(shapes, "model.diffusion_model.")).arch == arch
        assert detect(_only(shapes, "first_stage_model.")).kind == "vae"
