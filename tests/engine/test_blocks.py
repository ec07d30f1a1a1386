"""Block-weight assignment: every key of the tiny SD1/SDXL models lands in its MBW block.

The expected block is derived from the *diffusers* module each LDM key came
from (down block i, layer j -> IN(1 + 3i + j), ...), not from the LDM name, so
the test checks blocks.py against the topology rather than against itself.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from merges.engine.blocks import BLOCK_NAMES, UnknownArchitecture, block_index, block_name
from merges.engine.ldm_convert import clip_to_ldm, unet_to_ldm, vae_to_ldm
from merges.engine.tiny import tiny_sd1_components, tiny_sdxl_components

SUPERMERGER_SD1 = (
    "BASE IN00 IN01 IN02 IN03 IN04 IN05 IN06 IN07 IN08 IN09 IN10 IN11 M00 "
    "OUT00 OUT01 OUT02 OUT03 OUT04 OUT05 OUT06 OUT07 OUT08 OUT09 OUT10 OUT11"
).split()
SUPERMERGER_SDXL = (
    "BASE IN00 IN01 IN02 IN03 IN04 IN05 IN06 IN07 IN08 M00 OUT00 OUT01 OUT02 OUT03 OUT04 OUT05 OUT06 OUT07 OUT08"
).split()


def test_block_names_are_supermergers() -> None:
    assert BLOCK_NAMES["sd1"] == SUPERMERGER_SD1
    assert len(BLOCK_NAMES["sd1"]) == 26
    assert BLOCK_NAMES["sdxl"] == SUPERMERGER_SDXL
    assert len(BLOCK_NAMES["sdxl"]) == 20


def _expected_unet_block(diffusers_key: str, per_block: int, last_out: str) -> str:
    """MBW block of a diffusers UNet parameter, from its place in the topology."""
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.", diffusers_key):
        return f"IN{1 + (per_block + 1) * int(m[1]) + int(m[3]):02d}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.", diffusers_key):
        return f"IN{(per_block + 1) * (int(m[1]) + 1):02d}"
    if diffusers_key.startswith("mid_block."):
        return "M00"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.", diffusers_key):
        return f"OUT{(per_block + 1) * int(m[1]) + int(m[3]):02d}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.", diffusers_key):
        return f"OUT{(per_block + 1) * int(m[1]) + per_block:02d}"
    if diffusers_key.startswith("conv_in."):
        return "IN00"
    if diffusers_key.startswith(("conv_norm_out.", "conv_out.")):
        return last_out
    if diffusers_key.startswith(("time_embedding.", "add_embedding.")):
        return "BASE"
    raise AssertionError(f"unexpected UNet parameter {diffusers_key}")


@cache
def _expected_blocks(arch: str) -> tuple[tuple[str, str], ...]:
    components = (tiny_sd1_components if arch == "sd1" else tiny_sdxl_components)(seed=0)
    unet_sd = components["unet"].state_dict()
    by_id = {id(t): k for k, t in unet_sd.items()}
    last_out = BLOCK_NAMES[arch][-1]
    per_block = components["unet"].config.layers_per_block
    pairs = [
        (ldm_key, _expected_unet_block(by_id[id(t)], per_block, last_out))
        for ldm_key, t in unet_to_ldm(unet_sd, arch).items()
    ]
    # Everything outside the UNet is BASE: VAE and text encoder(s).
    others = dict(vae_to_ldm(components["vae"].state_dict()))
    others.update(clip_to_ldm(components["text_encoder"].state_dict(), arch, 0))
    if arch == "sdxl":
        others.update(clip_to_ldm(components["text_encoder_2"].state_dict(), arch, 1))
    pairs += [(key, "BASE") for key in others]
    return tuple(sorted(pairs))


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_every_tiny_model_key_goes_to_its_block(arch: str) -> None:
    expected = _expected_blocks(arch)
    wrong = [(k, block_name(k, arch), want) for k, want in expected if block_name(k, arch) != want]
    assert not wrong, wrong[:10]
    # The tiny models keep the real topology, so every block has keys.
    assert {want for _, want in expected} == set(BLOCK_NAMES[arch])


@pytest.mark.parametrize(
    ("key", "arch", "block"),
    [
        ("model.diffusion_model.time_embed.0.weight", "sd1", "BASE"),
        ("model.diffusion_model.time_embed.2.bias", "sdxl", "BASE"),
        ("model.diffusion_model.label_emb.0.0.weight", "sdxl", "BASE"),
        ("model.diffusion_model.input_blocks.0.0.weight", "sd1", "IN00"),
        ("model.diffusion_model.input_blocks.3.0.op.weight", "sd1", "IN03"),
        ("model.diffusion_model.input_blocks.11.0.out_layers.3.weight", "sd1", "IN11"),
        ("model.diffusion_model.input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight", "sdxl", "IN08"),
        ("model.diffusion_model.middle_block.1.transformer_blocks.0.ff.net.2.bias", "sdxl", "M00"),
        ("model.diffusion_model.output_blocks.2.1.conv.weight", "sd1", "OUT02"),
        ("model.diffusion_model.output_blocks.11.1.proj_out.weight", "sd1", "OUT11"),
        ("model.diffusion_model.out.0.weight", "sd1", "OUT11"),
        ("model.diffusion_model.out.2.bias", "sdxl", "OUT08"),
        ("cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight", "sd1", "BASE"),
        ("conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight", "sdxl", "BASE"),
        ("first_stage_model.decoder.up.3.block.2.conv2.weight", "sdxl", "BASE"),
        ("model_ema.diffusion_modelinput_blocks00weight", "sd1", "BASE"),
    ],
)
def test_known_real_keys(key: str, arch: str, block: str) -> None:
    assert block_name(key, arch) == block
    assert BLOCK_NAMES[arch][block_index(key, arch)] == block


def test_block_of_another_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="input block 11"):
        block_index("model.diffusion_model.input_blocks.11.1.proj_in.weight", "sdxl")
    with pytest.raises(UnknownArchitecture):
        block_index("model.diffusion_model.out.0.weight", "flux")


def _mecha_keys(name: str) -> list[str]:
    mecha = pytest.importorskip("sd_mecha")
    path = Path(mecha.__file__).parent / "extensions" / "builtin" / "model_configs" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not shipped by this sd-mecha")
    # The files are large; a regex over the key lines avoids a YAML parse.
    return re.findall(r"^    ([^\s:]+): \{", path.read_text(), flags=re.M)


@pytest.mark.parametrize(("config", "arch", "counts"), [
    # UNet keys per block, counted by hand from the real layouts: time_embed
    # (+ SDXL label_emb) 2 layers of w+b; a resnet 10 keys (+2 with a skip
    # conv); an attention 6 + 20 per transformer block (SDXL mid has 10).
    ("sd1-ldm", "sd1", {"BASE": 4, "IN00": 2, "IN03": 2, "M00": 2 * 10 + 26, "OUT11": 12 + 26 + 4}),
    ("sdxl-sgm", "sdxl", {"BASE": 8, "IN00": 2, "IN03": 2, "M00": 2 * 10 + 6 + 200, "OUT08": 12 + 4}),
])
def test_real_key_lists(config: str, arch: str, counts: dict[str, int]) -> None:
    keys = [k for k in _mecha_keys(config) if k.startswith("model.diffusion_model.")]
    per_block: dict[str, int] = {}
    for key in keys:
        name = block_name(key, arch)
        per_block[name] = per_block.get(name, 0) + 1
    assert set(per_block) == set(BLOCK_NAMES[arch])
    for block, count in counts.items():
        assert per_block[block] == count, (block, per_block[block])
