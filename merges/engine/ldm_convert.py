"""Diffusers -> LDM/SGM ("single file") key conversion for SD1 and SDXL.

The merge engine works on LDM single-file checkpoints (the layout A1111, ComfyUI,
kohya and supermerger read), while test models are easiest to build with diffusers
and transformers. This module converts a diffusers pipeline's state dicts into the
original key layout:

* UNet  -> ``model.diffusion_model.*`` (``input_blocks`` / ``middle_block`` / ``output_blocks``)
* VAE   -> ``first_stage_model.*`` (``encoder.down.N.block.M`` ..., 1x1 conv attention)
* CLIP  -> SD1 ``cond_stage_model.transformer.text_model.*``;
           SDXL te1 ``conditioner.embedders.0.transformer.text_model.*``;
           SDXL te2 ``conditioner.embedders.1.model.*`` in OpenCLIP layout (fused
           ``attn.in_proj_weight``/``in_proj_bias``, ``text_projection`` stored
           transposed as SGM keeps it, ``positional_embedding``, ``token_embedding``,
           ``ln_final``).

The block topology (levels, layers per block, which levels carry attention) is read
from the state dict itself, so the same code serves real-size and tiny models.
Every input key must map somewhere: an unknown key raises ``KeyError`` instead of
being dropped, because a silently missing tensor would make a converted test model
look valid while loading with random weights.

Optional keys that real checkpoints sometimes carry and diffusers does not need are
not emitted: ``*.embeddings.position_ids``, OpenCLIP ``logit_scale``, EMA weights
and the DDPM schedule buffers (``alphas_cumprod`` ...). sd-mecha marks all of them
optional.

Only the diffusers -> LDM direction exists; diffusers itself converts back when a
checkpoint is loaded with ``from_single_file``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

import torch

Arch = Literal["sd1", "sdxl"]
StateDict = dict[str, torch.Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIXES: dict[tuple[str, int], str] = {
    ("sd1", 0): "cond_stage_model.transformer.",
    ("sdxl", 0): "conditioner.embedders.0.transformer.",
    ("sdxl", 1): "conditioner.embedders.1.model.",
}

# Top-level UNet parameters whose names differ only by module path.
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
# ResnetBlock2D (diffusers) -> ResBlock (LDM) sub-module names.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# VAE mid-block attention: diffusers Linear layers -> LDM 1x1 convs.
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
# CLIP (HF) -> OpenCLIP names inside one residual block.
_OPENCLIP_BLOCK = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}

_DOWN = re.compile(r"^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$")
_UP = re.compile(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$")
_UPSAMPLE = re.compile(r"^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$")
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def _rename_module(rest: str, table: Mapping[str, str]) -> str:
    """Rename the leading module path of ``rest`` (e.g. ``norm1.weight``) via ``table``."""
    for old, new in table.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    return rest


def _rename_strict(key: str, rest: str, table: Mapping[str, str]) -> str:
    """Like :func:`_rename_module`, but the leading module must be one ``table`` knows."""
    if not any(rest.startswith(old + ".") for old in table):
        raise KeyError(f"key has no LDM name: {key}")
    return _rename_module(rest, table)


# Modules a transformer (SpatialTransformer) block holds; LDM uses the same names.
_TRANSFORMER_PARTS = ("norm.", "proj_in.", "proj_out.", "transformer_blocks.")
# VAE resnets keep their names except for the shortcut conv.
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}


def _unet_topology(sd: Mapping[str, torch.Tensor]) -> tuple[int, set[int]]:
    """Return (layers_per_block, indices of the up blocks that carry attention)."""
    down_resnets: set[int] = set()
    up_attn: set[int] = set()
    for key in sd:
        if (m := _DOWN.match(key)) and m[1] == "0" and m[2] == "resnets":
            down_resnets.add(int(m[3]))
        elif (m := _UP.match(key)) and m[2] == "attentions":
            up_attn.add(int(m[1]))
    if not down_resnets:
        raise KeyError("not a diffusers UNet state dict: no down_blocks.0.resnets.* keys")
    return len(down_resnets), up_attn


def _unet_block_part(key: str, kind: str, rest: str) -> tuple[str, str]:
    """LDM slot (0: ResBlock, 1: SpatialTransformer) and inner name of a block member."""
    if kind == "resnets":
        return "0", _rename_strict(key, rest, _UNET_RESNET)
    if not rest.startswith(_TRANSFORMER_PARTS):
        raise KeyError(f"unet key has no LDM name: {key}")
    return "1", rest


def unet_to_ldm(sd: Mapping[str, torch.Tensor], arch: Arch, prefix: str = UNET_PREFIX) -> StateDict:
    """Convert a diffusers ``UNet2DConditionModel`` state dict to LDM names under ``prefix``."""
    has_add_embedding = any(k.startswith("add_embedding.") for k in sd)
    if has_add_embedding != (arch == "sdxl"):
        raise ValueError(f"UNet {'has' if has_add_embedding else 'lacks'} add_embedding: not an {arch} UNet")
    per_block, up_attn = _unet_topology(sd)
    stride = per_block + 1  # LDM numbers each level's layers plus its down/upsampler
    out: StateDict = {}
    for key, tensor in sd.items():
        if m := _DOWN.match(key):
            level, kind, j = int(m[1]), m[2], int(m[3])
            slot, rest = _unet_block_part(key, kind, m[4])
            name = f"input_blocks.{stride * level + j + 1}.{slot}.{rest}"
        elif m := _DOWNSAMPLE.match(key):
            name = f"input_blocks.{stride * (int(m[1]) + 1)}.0.op.{m[2]}"
        elif m := _UP.match(key):
            level, kind, j = int(m[1]), m[2], int(m[3])
            slot, rest = _unet_block_part(key, kind, m[4])
            name = f"output_blocks.{stride * level + j}.{slot}.{rest}"
        elif m := _UPSAMPLE.match(key):
            level = int(m[1])
            # The upsampler follows the attention module when the level has one.
            slot = 2 if level in up_attn else 1
            name = f"output_blocks.{stride * level + per_block}.{slot}.conv.{m[2]}"
        elif m := _MID.match(key):
            kind, j = m[1], int(m[2])
            _, rest = _unet_block_part(key, kind, m[3])
            # LDM's middle block alternates ResBlock, SpatialTransformer, ResBlock.
            name = f"middle_block.{2 * j if kind == 'resnets' else 2 * j + 1}.{rest}"
        else:
            renamed = _rename_module(key, _UNET_TOP)
            if renamed == key:
                raise KeyError(f"unet key has no LDM name: {key}")
            name = renamed
        if prefix + name in out:
            raise KeyError(f"two unet keys map to {prefix}{name}")
        out[prefix + name] = tensor
    return out


def vae_to_ldm(sd: Mapping[str, torch.Tensor], prefix: str = VAE_PREFIX) -> StateDict:
    """Convert a diffusers ``AutoencoderKL`` state dict to LDM names under ``prefix``.

    Pass ``prefix=""`` for a standalone VAE file (``encoder.*``/``decoder.*``).
    """
    n_up = len({int(m[1]) for k in sd if (m := re.match(r"^decoder\.up_blocks\.(\d+)\.", k))})
    out: StateDict = {}
    for key, tensor in sd.items():
        value = tensor
        if m := re.match(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
            rest = _rename_strict(key, m[3], _VAE_RESNET)
            name = f"encoder.down.{m[1]}.block.{m[2]}.{rest}"
        elif m := re.match(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", key):
            name = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$", key):
            # LDM numbers decoder levels from the lowest resolution upwards in reverse.
            rest = _rename_strict(key, m[3], _VAE_RESNET)
            name = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{rest}"
        elif m := re.match(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", key):
            name = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)$", key):
            rest = _rename_strict(key, m[3], _VAE_RESNET)
            name = f"{m[1]}.mid.block_{int(m[2]) + 1}.{rest}"
        elif m := re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.+)$", key):
            rest = _rename_module(m[2], _VAE_ATTN)
            if rest == m[2]:
                raise KeyError(f"vae key has no LDM name: {key}")
            name = f"{m[1]}.mid.attn_1.{rest}"
            if rest.endswith(".weight") and not rest.startswith("norm.") and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)  # LDM uses 1x1 convs here
        elif m := re.match(r"^(encoder|decoder)\.conv_norm_out\.(.+)$", key):
            name = f"{m[1]}.norm_out.{m[2]}"
        elif re.match(r"^((encoder|decoder)\.(conv_in|conv_out)|quant_conv|post_quant_conv)\.", key):
            name = key
        else:
            raise KeyError(f"vae key has no LDM name: {key}")
        out[prefix + name] = value
    return out


def _hf_clip_keys(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Normalise a transformers CLIP state dict to ``text_model.*`` (+ ``text_projection.weight``).

    transformers >= 5.6 flattened ``CLIPTextModel`` (no ``text_model.`` prefix) while
    ``CLIPTextModelWithProjection`` still nests it; LDM files always use the nested names.
    """
    out: StateDict = {}
    for key, tensor in sd.items():
        if key.endswith("embeddings.position_ids"):
            continue  # a constant buffer; optional in real checkpoints and ignored by diffusers
        if key.startswith("text_model.") or key == "text_projection.weight":
            out[key] = tensor
        else:
            out["text_model." + key] = tensor
    return out


def _openclip_from_hf(sd: StateDict) -> StateDict:
    """HF ``CLIPTextModelWithProjection`` names -> OpenCLIP ``model.*`` names (no prefix)."""
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    fixed = {
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
    }
    for key, tensor in sd.items():
        if key in fixed:
            out[fixed[key]] = tensor
        elif key == "text_projection.weight":
            # SGM computes ``pooled @ text_projection``, so it stores the Linear weight transposed.
            out["text_projection"] = tensor.t().contiguous()
        elif m := re.match(r"^text_model\.encoder\.layers\.(\d+)\.(.+)$", key):
            layer, rest = m[1], m[2]
            if qm := re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest):
                qkv.setdefault((layer, qm[2]), {})[qm[1]] = tensor
                continue
            renamed = _rename_module(rest, _OPENCLIP_BLOCK)
            if renamed == rest:
                raise KeyError(f"text encoder key has no OpenCLIP name: {key}")
            out[f"transformer.resblocks.{layer}.{renamed}"] = tensor
        else:
            raise KeyError(f"text encoder key has no OpenCLIP name: {key}")
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise KeyError(f"layer {layer} attention {kind} lacks one of q/k/v")
        # nn.MultiheadAttention packs q, k, v along dim 0 in that order.
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def clip_to_ldm(sd: Mapping[str, torch.Tensor], arch: Arch, which: int = 0) -> StateDict:
    """Convert a transformers CLIP text encoder state dict to LDM/SGM names.

    ``which`` selects the encoder: 0 is SD1's or SDXL's CLIP-L, 1 is SDXL's OpenCLIP bigG.
    """
    prefix = CLIP_PREFIXES.get((arch, which))
    if prefix is None:
        raise ValueError(f"{arch} has no text encoder {which}")
    hf = _hf_clip_keys(sd)
    if which == 1:
        if "text_projection.weight" not in hf:
            raise KeyError("SDXL text encoder 2 needs text_projection.weight (CLIPTextModelWithProjection)")
        return {prefix + k: v for k, v in _openclip_from_hf(hf).items()}
    if "text_projection.weight" in hf:
        raise KeyError(f"{arch} text encoder {which} is a plain CLIPTextModel; got a text_projection")
    return {prefix + k: v for k, v in hf.items()}


def pipeline_to_ldm(components: Mapping[str, object], arch: Arch) -> StateDict:
    """Convert a diffusers pipeline's modules (``unet``, ``vae``, text encoders) to one LDM dict."""
    def state(name: str) -> StateDict:
        module = components.get(name)
        if not isinstance(module, torch.nn.Module):
            raise KeyError(f"{arch} pipeline needs a '{name}' module")
        return {k: v.detach() for k, v in module.state_dict().items()}

    out: StateDict = {}
    out.update(unet_to_ldm(state("unet"), arch))
    out.update(vae_to_ldm(state("vae")))
    out.update(clip_to_ldm(state("text_encoder"), arch, 0))
    if arch == "sdxl":
        out.update(clip_to_ldm(state("text_encoder_2"), arch, 1))
    return out
