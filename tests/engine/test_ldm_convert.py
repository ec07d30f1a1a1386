"""The diffusers -> LDM converter: exact names, exact values, real key lists."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from merges.engine.ldm_convert import clip_to_ldm, pipeline_to_ldm, unet_to_ldm, vae_to_ldm
from merges.engine.tiny import tiny_sd1_components, tiny_sdxl_components


@pytest.fixture(scope="module")
def sd1() -> dict[str, Any]:
    return tiny_sd1_components(seed=0)


@pytest.fixture(scope="module")
def sdxl() -> dict[str, Any]:
    return tiny_sdxl_components(seed=0)


def _sd(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.state_dict())


def test_sd1_unet_names(sd1: dict[str, Any]) -> None:
    src = _sd(sd1["unet"])
    out = unet_to_ldm(src, "sd1")
    expect = {
        "time_embedding.linear_1.weight": "time_embed.0.weight",
        "conv_in.weight": "input_blocks.0.0.weight",
        "down_blocks.0.resnets.0.norm1.weight": "input_blocks.1.0.in_layers.0.weight",
        "down_blocks.0.resnets.1.conv1.weight": "input_blocks.2.0.in_layers.2.weight",
        "down_blocks.0.attentions.1.proj_in.weight": "input_blocks.2.1.proj_in.weight",
        "down_blocks.0.downsamplers.0.conv.weight": "input_blocks.3.0.op.weight",
        "down_blocks.2.resnets.0.conv_shortcut.weight": "input_blocks.7.0.skip_connection.weight",
        "down_blocks.2.resnets.0.time_emb_proj.weight": "input_blocks.7.0.emb_layers.1.weight",
        "down_blocks.3.resnets.1.conv2.weight": "input_blocks.11.0.out_layers.3.weight",
        "mid_block.resnets.0.norm2.bias": "middle_block.0.out_layers.0.bias",
        "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight": "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "mid_block.resnets.1.conv1.weight": "middle_block.2.in_layers.2.weight",
        # up block 0 has no attention: its upsampler sits in slot 1, later ones in slot 2
        "up_blocks.0.resnets.2.conv_shortcut.weight": "output_blocks.2.0.skip_connection.weight",
        "up_blocks.0.upsamplers.0.conv.weight": "output_blocks.2.1.conv.weight",
        "up_blocks.1.upsamplers.0.conv.bias": "output_blocks.5.2.conv.bias",
        "up_blocks.2.upsamplers.0.conv.weight": "output_blocks.8.2.conv.weight",
        "up_blocks.3.attentions.2.proj_out.weight": "output_blocks.11.1.proj_out.weight",
        "up_blocks.3.resnets.2.conv_shortcut.weight": "output_blocks.11.0.skip_connection.weight",
        "conv_norm_out.weight": "out.0.weight",
        "conv_out.bias": "out.2.bias",
    }
    for diffusers_key, ldm_key in expect.items():
        assert out["model.diffusion_model." + ldm_key] is src[diffusers_key], diffusers_key
    assert len(out) == len(src)
    # SD1 keeps the 1x1-conv transformer projections
    assert out["model.diffusion_model.input_blocks.1.1.proj_in.weight"].ndim == 4


def test_sdxl_unet_names(sdxl: dict[str, Any]) -> None:
    src = _sd(sdxl["unet"])
    out = unet_to_ldm(src, "sdxl")
    expect = {
        "add_embedding.linear_1.weight": "label_emb.0.0.weight",
        "add_embedding.linear_2.bias": "label_emb.0.2.bias",
        "down_blocks.0.downsamplers.0.conv.weight": "input_blocks.3.0.op.weight",
        "down_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q.weight": "input_blocks.4.1.transformer_blocks.1.attn1.to_q.weight",
        "down_blocks.2.attentions.1.proj_out.bias": "input_blocks.8.1.proj_out.bias",
        "mid_block.attentions.0.transformer_blocks.1.ff.net.0.proj.weight": "middle_block.1.transformer_blocks.1.ff.net.0.proj.weight",
        "up_blocks.0.upsamplers.0.conv.weight": "output_blocks.2.2.conv.weight",
        "up_blocks.1.upsamplers.0.conv.weight": "output_blocks.5.2.conv.weight",
        "up_blocks.2.resnets.2.conv2.weight": "output_blocks.8.0.out_layers.3.weight",
    }
    for diffusers_key, ldm_key in expect.items():
        assert out["model.diffusion_model." + ldm_key] is src[diffusers_key], diffusers_key
    assert len(out) == len(src)
    assert not any(".1.conv." in k and "output_blocks.8" in k for k in out)  # last level has no upsampler
    assert out["model.diffusion_model.input_blocks.4.1.proj_in.weight"].ndim == 2  # linear projections


def test_vae_names_and_attention_reshape(sd1: dict[str, Any]) -> None:
    src = _sd(sd1["vae"])
    out = vae_to_ldm(src)
    expect = {
        "encoder.down_blocks.0.resnets.1.norm2.weight": "encoder.down.0.block.1.norm2.weight",
        "encoder.down_blocks.1.resnets.0.conv_shortcut.weight": "encoder.down.1.block.0.nin_shortcut.weight",
        "encoder.down_blocks.2.downsamplers.0.conv.bias": "encoder.down.2.downsample.conv.bias",
        "encoder.mid_block.resnets.1.conv2.weight": "encoder.mid.block_2.conv2.weight",
        "encoder.conv_norm_out.weight": "encoder.norm_out.weight",
        "decoder.up_blocks.0.resnets.2.conv1.weight": "decoder.up.3.block.2.conv1.weight",
        "decoder.up_blocks.0.upsamplers.0.conv.weight": "decoder.up.3.upsample.conv.weight",
        "decoder.up_blocks.3.resnets.0.conv_shortcut.bias": "decoder.up.0.block.0.nin_shortcut.bias",
        "decoder.mid_block.attentions.0.group_norm.weight": "decoder.mid.attn_1.norm.weight",
        "decoder.mid_block.attentions.0.to_q.bias": "decoder.mid.attn_1.q.bias",
        "quant_conv.weight": "quant_conv.weight",
        "post_quant_conv.bias": "post_quant_conv.bias",
    }
    for diffusers_key, ldm_key in expect.items():
        assert out["first_stage_model." + ldm_key] is src[diffusers_key], diffusers_key
    for diffusers_name, ldm_name in [("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]:
        w = out[f"first_stage_model.encoder.mid.attn_1.{ldm_name}.weight"]
        assert w.shape == (*src[f"encoder.mid_block.attentions.0.{diffusers_name}.weight"].shape, 1, 1)
        assert torch.equal(w[:, :, 0, 0], src[f"encoder.mid_block.attentions.0.{diffusers_name}.weight"])
    assert not any(".upsample." in k for k in out if "decoder.up.0." in k)  # no upsampler at full size
    assert set(vae_to_ldm(src, prefix="")) == {k.removeprefix("first_stage_model.") for k in out}


def test_sd1_and_sdxl_te1_clip_layout(sd1: dict[str, Any], sdxl: dict[str, Any]) -> None:
    for components, arch, prefix in [
        (sd1, "sd1", "cond_stage_model.transformer.text_model."),
        (sdxl, "sdxl", "conditioner.embedders.0.transformer.text_model."),
    ]:
        src = _sd(components["text_encoder"])
        out = clip_to_ldm(src, arch, 0)
        assert all(k.startswith(prefix) for k in out)
        # transformers >= 5.6 drops the text_model. prefix; LDM names always carry it
        for key, value in src.items():
            assert out[prefix + key.removeprefix("text_model.")] is value
        assert prefix + "embeddings.position_embedding.weight" in out
        assert prefix + "final_layer_norm.weight" in out


def test_sdxl_te2_openclip_layout(sdxl: dict[str, Any]) -> None:
    src = _sd(sdxl["text_encoder_2"])
    out = clip_to_ldm(src, "sdxl", 1)
    p = "conditioner.embedders.1.model."
    assert all(k.startswith(p) for k in out)
    tm = "text_model."
    assert out[p + "positional_embedding"] is src[tm + "embeddings.position_embedding.weight"]
    assert out[p + "token_embedding.weight"] is src[tm + "embeddings.token_embedding.weight"]
    assert out[p + "ln_final.bias"] is src[tm + "final_layer_norm.bias"]
    # SGM multiplies pooled @ text_projection: the Linear weight transposed
    assert torch.equal(out[p + "text_projection"], src["text_projection.weight"].t())
    layers = sdxl["text_encoder_2"].config.num_hidden_layers
    for i in range(layers):
        hf, oc = f"{tm}encoder.layers.{i}.", f"{p}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            fused = torch.cat([src[f"{hf}self_attn.{x}_proj.{kind}"] for x in "qkv"])
            assert torch.equal(out[f"{oc}attn.in_proj_{kind}"], fused)
            assert out[f"{oc}attn.out_proj.{kind}"] is src[f"{hf}self_attn.out_proj.{kind}"]
            assert out[f"{oc}ln_1.{kind}"] is src[f"{hf}layer_norm1.{kind}"]
            assert out[f"{oc}ln_2.{kind}"] is src[f"{hf}layer_norm2.{kind}"]
            assert out[f"{oc}mlp.c_fc.{kind}"] is src[f"{hf}mlp.fc1.{kind}"]
            assert out[f"{oc}mlp.c_proj.{kind}"] is src[f"{hf}mlp.fc2.{kind}"]
    # 16 tensors per HF layer become 12 (q, k, v fused, weight and bias)
    assert len(out) == len(src) - 4 * layers


def test_unknown_and_mismatched_inputs_are_refused(sd1: dict[str, Any], sdxl: dict[str, Any]) -> None:
    unet = _sd(sd1["unet"])
    with pytest.raises(KeyError, match="no LDM name: class_embedding.weight"):
        unet_to_ldm({**unet, "class_embedding.weight": torch.zeros(1)}, "sd1")
    with pytest.raises(KeyError, match="no LDM name: down_blocks.0.resnets.0.extra.weight"):
        unet_to_ldm({**unet, "down_blocks.0.resnets.0.extra.weight": torch.zeros(1)}, "sd1")
    with pytest.raises(KeyError, match="no LDM name: up_blocks.1.attentions.0.extra.weight"):
        unet_to_ldm({**unet, "up_blocks.1.attentions.0.extra.weight": torch.zeros(1)}, "sd1")
    with pytest.raises(ValueError, match="not an sdxl UNet"):
        unet_to_ldm(unet, "sdxl")
    with pytest.raises(ValueError, match="not an sd1 UNet"):
        unet_to_ldm(_sd(sdxl["unet"]), "sd1")
    with pytest.raises(KeyError, match="no LDM name: encoder.extra.weight"):
        vae_to_ldm({**_sd(sd1["vae"]), "encoder.extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="no LDM name: decoder.up_blocks.0.resnets.0.in_layers.0.weight"):
        vae_to_ldm({**_sd(sd1["vae"]), "decoder.up_blocks.0.resnets.0.in_layers.0.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="text_projection"):
        clip_to_ldm(_sd(sdxl["text_encoder"]), "sdxl", 1)
    with pytest.raises(KeyError, match="plain CLIPTextModel"):
        clip_to_ldm(_sd(sdxl["text_encoder_2"]), "sdxl", 0)
    with pytest.raises(ValueError, match="sd1 has no text encoder 1"):
        clip_to_ldm(_sd(sd1["text_encoder"]), "sd1", 1)
    with pytest.raises(KeyError, match="text_encoder_2"):
        pipeline_to_ldm({k: v for k, v in sdxl.items() if k != "text_encoder_2"}, "sdxl")


def _real_key_list(name: str) -> dict[str, dict[str, Any]]:
    """Every key of a real checkpoint, from sd-mecha's shipped model configs."""
    spec = importlib.util.find_spec("sd_mecha")
    if spec is None or spec.origin is None:
        pytest.skip("sd-mecha==1.1.8 is not installed (it ships the reference key lists)")
    yaml = pytest.importorskip("yaml")
    path = Path(spec.origin).parent / "extensions" / "builtin" / "model_configs" / f"{name}.yaml"
    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {key: meta for component in doc["components"].values() for key, meta in component.items()}


# Real keys a tiny model may lack: deeper layers than it has, and shortcut convs where
# the tiny widths do not change (SD1: 32->32 at level 1; SDXL: 64->64 at level 2).
_DEPTH = re.compile(r"^(.*\.(?:layers|resblocks|transformer_blocks))\.(\d+)\.(.*)$")
_SAME_WIDTH_SKIPS = {
    "sd1": {"model.diffusion_model.input_blocks.4.0.skip_connection"},
    "sdxl": {"model.diffusion_model.input_blocks.7.0.skip_connection"},
}


@pytest.mark.parametrize("arch,config", [("sd1", "sd1-ldm"), ("sdxl", "sdxl-sgm")])
def test_every_key_is_a_real_key(arch: str, config: str, sd1: dict[str, Any], sdxl: dict[str, Any]) -> None:
    real = _real_key_list(config)
    ours = pipeline_to_ldm(sd1 if arch == "sd1" else sdxl, arch)  # type: ignore[arg-type]
    unknown = sorted(k for k in ours if k not in real)
    assert not unknown, unknown[:10]
    for key, tensor in ours.items():
        shape = real[key]["shape"]
        assert tensor.ndim == len(shape), key
        if tensor.ndim == 4:  # kernel sizes are topology, not width: 3x3 vs 1x1 must agree
            assert list(tensor.shape[2:]) == shape[2:], key
        assert tensor.dtype == torch.float32 and real[key]["dtype"] == "float32", key
    for key, meta in real.items():
        if key in ours or meta.get("optional"):
            continue
        if m := _DEPTH.match(key):
            assert f"{m[1]}.0.{m[3]}" in ours and int(m[2]) > 0, key
        else:
            assert key.rsplit(".", 1)[0] in _SAME_WIDTH_SKIPS[arch], key
