"""kohya module names -> LDM keys, checked against names built from the real modules."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import torch

from merges.engine.kohya_keys import CONV_MODULE, KohyaTarget, kohya_module_map, ldm_unet_to_diffusers
from merges.engine.ldm_convert import pipeline_to_ldm
from merges.engine.tiny import tiny_sd1_components, tiny_sdxl_components

from .lora_helpers import ldm_unet_paths, text_module_paths, unet_module_paths

UNET = "model.diffusion_model."


@cache
def _model(arch: str) -> tuple[dict, dict[str, torch.Tensor]]:
    components = (tiny_sd1_components if arch == "sd1" else tiny_sdxl_components)(seed=0)
    return components, pipeline_to_ldm(components, arch)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
@pytest.mark.parametrize("ldm_names", [False, True])
def test_every_unet_module_maps_to_its_ldm_weight(arch: str, ldm_names: bool) -> None:
    components, ldm = _model(arch)
    mapping = kohya_module_map(ldm.keys(), arch)
    renames = ldm_unet_paths(components["unet"], arch)
    modules = unet_module_paths(components["unet"])
    assert len(modules) > 100
    for path, module in modules.items():
        ldm_path = renames[path]
        name = "lora_unet_" + (ldm_path if ldm_names else path).replace(".", "_")
        target = mapping[name]
        assert target == KohyaTarget(f"{UNET}{ldm_path}.weight")
        # Same tensor, not merely a key that exists.
        assert torch.equal(ldm[target.key], module.weight.detach())


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_text_encoder_modules(arch: str) -> None:
    components, ldm = _model(arch)
    mapping = kohya_module_map(ldm.keys(), arch)
    encoders = [("text_encoder", "lora_te_" if arch == "sd1" else "lora_te1_")]
    if arch == "sdxl":
        encoders.append(("text_encoder_2", "lora_te2_"))
    for component, prefix in encoders:
        for path, module in text_module_paths(components[component]).items():
            target = mapping[prefix + path.replace(".", "_")]
            weight = ldm[target.key]
            if target.part is None:
                assert torch.equal(weight, module.weight.detach())
            else:
                index, count = target.part
                rows = weight.shape[0] // count
                assert torch.equal(weight[index * rows:(index + 1) * rows], module.weight.detach())


def test_sdxl_second_encoder_qkv_are_thirds_of_in_proj() -> None:
    _, ldm = _model("sdxl")
    mapping = kohya_module_map(ldm.keys(), "sdxl")
    in_proj = "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight"
    for index, name in enumerate("qkv"):
        assert mapping[f"lora_te2_text_model_encoder_layers_1_self_attn_{name}_proj"] == KohyaTarget(in_proj, (index, 3))
    assert mapping["lora_te2_text_model_encoder_layers_1_mlp_fc2"].key == (
        "conditioner.embedders.1.model.transformer.resblocks.1.mlp.c_proj.weight"
    )
    # SD1's prefix does not address SDXL's encoders and vice versa.
    assert not any(n.startswith("lora_te_") for n in mapping)
    assert not any(n.startswith(("lora_te1_", "lora_te2_")) for n in kohya_module_map(_model("sd1")[1].keys(), "sd1"))


def test_sd2_open_clip_encoder() -> None:
    keys = [
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
        "cond_stage_model.model.transformer.resblocks.0.attn.out_proj.weight",
        "cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight",
    ]
    mapping = kohya_module_map(keys, "sd2")
    assert mapping["lora_te_text_model_encoder_layers_0_self_attn_v_proj"] == KohyaTarget(keys[0], (2, 3))
    assert mapping["lora_te_text_model_encoder_layers_0_self_attn_out_proj"] == KohyaTarget(keys[1])
    assert mapping["lora_te_text_model_encoder_layers_0_mlp_fc1"] == KohyaTarget(keys[2])


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="flux"):
        kohya_module_map([], "flux")


@pytest.mark.parametrize(
    ("ldm", "diffusers"),
    [
        ("input_blocks.0.0", "conv_in"),
        ("input_blocks.1.0.in_layers.2", "down_blocks.0.resnets.0.conv1"),
        ("input_blocks.2.1.proj_in", "down_blocks.0.attentions.1.proj_in"),
        ("input_blocks.3.0.op", "down_blocks.0.downsamplers.0.conv"),
        ("input_blocks.4.0.skip_connection", "down_blocks.1.resnets.0.conv_shortcut"),
        ("input_blocks.11.0.emb_layers.1", "down_blocks.3.resnets.1.time_emb_proj"),
        ("middle_block.2.out_layers.3", "mid_block.resnets.1.conv2"),
        ("middle_block.1.transformer_blocks.0.ff.net.0.proj", "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj"),
        ("output_blocks.2.1.conv", "up_blocks.0.upsamplers.0.conv"),
        ("output_blocks.5.2.conv", "up_blocks.1.upsamplers.0.conv"),
        ("output_blocks.8.1.transformer_blocks.0.attn2.to_out.0", "up_blocks.2.attentions.2.transformer_blocks.0.attn2.to_out.0"),
        ("time_embed.2", "time_embedding.linear_2"),
        ("label_emb.0.0", "add_embedding.linear_1"),
        ("out.2", "conv_out"),
        ("input_blocks.1.0.in_layers.0", "down_blocks.0.resnets.0.norm1"),
        ("input_blocks.1.0.in_layers.1", None),  # SiLU: no parameters, no module
    ],
)
def test_ldm_unet_to_diffusers(ldm: str, diffusers: str | None) -> None:
    assert ldm_unet_to_diffusers(ldm) == diffusers


def test_conv_module_names() -> None:
    convs = [
        "lora_unet_down_blocks_0_resnets_0_conv1",
        "lora_unet_up_blocks_1_resnets_2_conv_shortcut",
        "lora_unet_down_blocks_0_downsamplers_0_conv",
        "lora_unet_input_blocks_3_0_op",
        "lora_unet_output_blocks_2_2_conv",
        "lora_unet_input_blocks_1_0_in_layers_2",
    ]
    linears = [
        "lora_unet_down_blocks_0_attentions_0_proj_in",
        "lora_unet_down_blocks_0_resnets_0_time_emb_proj",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_out_0",
    ]
    assert all(CONV_MODULE.search(n) for n in convs)
    assert not any(CONV_MODULE.search(n) for n in linears)


def _mecha_keys(name: str) -> list[str]:
    mecha = pytest.importorskip("sd_mecha")
    path = Path(mecha.__file__).parent / "extensions" / "builtin" / "model_configs" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not shipped by this sd-mecha")
    return re.findall(r"^    ([^\s:]+): \{", path.read_text(), flags=re.M)


@pytest.mark.parametrize(
    ("ldm_config", "diffusers_config", "arch"),
    [("sd1-ldm", "sd1-kohya", "sd1"), ("sdxl-sgm", "sdxl-kohya_but_diffusers", "sdxl")],
)
def test_real_size_unet_names(ldm_config: str, diffusers_config: str, arch: str) -> None:
    """Full-size SD1/SDXL: every LDM UNet weight's diffusers path exists in the diffusers layout."""
    ldm_keys = [k for k in _mecha_keys(ldm_config) if k.startswith(UNET)]
    diffusers_keys = {k[len("unet."):] for k in _mecha_keys(diffusers_config) if k.startswith("unet.")}
    mapping = kohya_module_map(ldm_keys, arch)
    weights = [k for k in ldm_keys if k.endswith(".weight")]
    assert len(weights) > 300
    for key in weights:
        path = ldm_unet_to_diffusers(key[len(UNET):-len(".weight")])
        assert path is not None and f"{path}.weight" in diffusers_keys, key
        assert mapping["lora_unet_" + path.replace(".", "_")].key == key
