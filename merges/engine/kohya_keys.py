"""Map kohya LoRA module names to LDM (single-file) checkpoint keys.

kohya's sd-scripts (and LyCORIS, which shares its naming) name a LoRA module
``lora_unet_`` / ``lora_te_`` / ``lora_te1_`` / ``lora_te2_`` followed by the
PyTorch module path of the layer it adapts, dots replaced by underscores.
Which module path depends on the model the trainer loaded:

* SD1/SD2 UNet: diffusers paths, e.g.
  ``lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q``.
* SDXL UNet: kohya trains on the original (sgm) UNet, so LDM paths, e.g.
  ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``; LoRAs made
  with diffusers-based trainers use the diffusers paths instead. Both are
  accepted for every architecture.
* Text encoders: Hugging Face ``CLIPTextModel`` paths, e.g.
  ``lora_te_text_model_encoder_layers_0_self_attn_q_proj``. SD2's encoder and
  SDXL's second encoder are stored in OpenCLIP layout in checkpoints, where
  q, k and v are three equal row blocks of one ``attn.in_proj_weight``.

Underscores make the names ambiguous to parse (``to_q``, ``proj_in``,
``transformer_blocks``), so instead of parsing them we build the map in the
other direction: every weight key of the base checkpoint yields the kohya
name(s) that adapt it, and lookups are exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CONV_MODULE", "KohyaTarget", "kohya_module_map", "ldm_unet_to_diffusers"]

UNET_PREFIX = "model.diffusion_model."

# kohya names of the convolutions in resnets, down/upsamplers and the UNet's
# ends, in diffusers and LDM spelling. LoRA on these is what makes a LoCon
# (plain kohya LoRA adapts only attention and text-encoder layers).
CONV_MODULE = re.compile(
    r"(conv1|conv2|conv_shortcut|conv_in|conv_out|in_layers_2|out_layers_3|"
    r"skip_connection|samplers_0_conv|_0_op|_[12]_conv)$"
)

# (checkpoint prefix of a Hugging Face CLIPTextModel, kohya prefix)
_HF_CLIP = {
    "sd1": [("cond_stage_model.transformer.", "lora_te_")],
    "sdxl": [("conditioner.embedders.0.transformer.", "lora_te1_")],
}
# (checkpoint prefix of an OpenCLIP text tower, kohya prefix)
_OPEN_CLIP = {
    "sd2": [("cond_stage_model.model.", "lora_te_")],
    "sdxl": [("conditioner.embedders.1.model.", "lora_te2_")],
}

_RESNET_INNER = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TOP_LEVEL = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "label_emb.0.0": "add_embedding.linear_1",
    "label_emb.0.2": "add_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}
_OPEN_CLIP_LAYER = {
    "attn.out_proj": "self_attn_out_proj",
    "mlp.c_fc": "mlp_fc1",
    "mlp.c_proj": "mlp_fc2",
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
}
_QKV = ("q", "k", "v")

_RE_BLOCK = re.compile(r"^(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.+)$")
_RE_MID = re.compile(r"^middle_block\.(\d+)\.(.+)$")
_RE_DOWNSAMPLER = re.compile(r"^model\.diffusion_model\.input_blocks\.(\d+)\.0\.op\.weight$")
_RE_RESBLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class KohyaTarget:
    """Where a kohya module lands in the checkpoint.

    ``part`` is ``(index, count)`` when the module adapts one of ``count``
    equal row blocks of ``key`` (q/k/v of an OpenCLIP ``in_proj_weight``:
    ``(0, 3)``, ``(1, 3)``, ``(2, 3)``), otherwise ``None``.
    """

    key: str
    part: tuple[int, int] | None = None


def _layers_per_block(base_keys: Iterable[str]) -> int:
    # Down block 0 holds layers_per_block resnets, then its downsampler, so
    # the first downsampler's input-block index is layers_per_block + 1.
    # SD1, SD2 and SDXL all use 2; tiny test models may not.
    firsts = [int(m.group(1)) for k in base_keys if (m := _RE_DOWNSAMPLER.match(k))]
    return min(firsts) - 1 if firsts else 2


def _resnet_inner(rest: str) -> str | None:
    return _RESNET_INNER.get(rest)


def ldm_unet_to_diffusers(path: str, layers_per_block: int = 2) -> str | None:
    """Diffusers module path of an LDM UNet module path (no ``.weight``).

    ``path`` is relative to ``model.diffusion_model.``. Returns ``None`` for
    modules diffusers has no LoRA-addressable equivalent of.
    """
    if path in _TOP_LEVEL:
        return _TOP_LEVEL[path]
    per = layers_per_block + 1
    if m := _RE_BLOCK.match(path):
        which, n, sub, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if which == "input_blocks":
            if n == 0:
                return None
            i, j = divmod(n - 1, per)
            if j == layers_per_block:
                return f"down_blocks.{i}.downsamplers.0.conv" if (sub, rest) == (0, "op") else None
            if sub == 0:
                inner = _resnet_inner(rest)
                return f"down_blocks.{i}.resnets.{j}.{inner}" if inner else None
            return f"down_blocks.{i}.attentions.{j}.{rest}" if sub == 1 else None
        i, j = divmod(n, per)
        if sub == 0:
            inner = _resnet_inner(rest)
            return f"up_blocks.{i}.resnets.{j}.{inner}" if inner else None
        # The upsampler follows the resnet (and the attention when the block
        # has one), so it sits at sub-index 1 or 2; its only weight is conv.
        if rest == "conv":
            return f"up_blocks.{i}.upsamplers.0.conv"
        return f"up_blocks.{i}.attentions.{j}.{rest}" if sub == 1 else None
    if m := _RE_MID.match(path):
        sub, rest = int(m.group(1)), m.group(2)
        if sub == 1:
            return f"mid_block.attentions.0.{rest}"
        if sub in (0, 2):
            inner = _resnet_inner(rest)
            return f"mid_block.resnets.{sub // 2}.{inner}" if inner else None
    return None


def _kohya(prefix: str, path: str) -> str:
    return prefix + path.replace(".", "_")


def _add(out: dict[str, KohyaTarget], name: str, target: KohyaTarget) -> None:
    previous = out.setdefault(name, target)
    if previous != target:
        raise ValueError(f"kohya name {name} maps to both {previous.key} and {target.key}")


def kohya_module_map(base_keys: Iterable[str], arch: str) -> dict[str, KohyaTarget]:
    """Every kohya module name that can adapt a weight of this checkpoint.

    ``base_keys`` are the LDM key names of the checkpoint the LoRA is applied
    to; ``arch`` is ``sd1``, ``sd2`` or ``sdxl`` and selects the text-encoder
    layout (``lora_te_`` versus ``lora_te1_``/``lora_te2_``).
    """
    if arch not in ("sd1", "sd2", "sdxl"):
        raise ValueError(f"no kohya LoRA key layout for architecture {arch!r}")
    keys = list(base_keys)
    lpb = _layers_per_block(keys)
    out: dict[str, KohyaTarget] = {}
    hf_clip = _HF_CLIP.get(arch, [])
    open_clip = _OPEN_CLIP.get(arch, [])
    for key in keys:
        if key.startswith(UNET_PREFIX) and key.endswith(".weight"):
            path = key[len(UNET_PREFIX):-len(".weight")]
            target = KohyaTarget(key)
            _add(out, _kohya("lora_unet_", path), target)
            diffusers = ldm_unet_to_diffusers(path, lpb)
            if diffusers is not None:
                _add(out, _kohya("lora_unet_", diffusers), target)
            continue
        for ckpt_prefix, kohya_prefix in hf_clip:
            if key.startswith(ckpt_prefix) and key.endswith(".weight"):
                path = key[len(ckpt_prefix):-len(".weight")]
                _add(out, _kohya(kohya_prefix, path), KohyaTarget(key))
        for ckpt_prefix, kohya_prefix in open_clip:
            if key.startswith(ckpt_prefix):
                _add_open_clip(out, key, key[len(ckpt_prefix):], kohya_prefix)
    return out


def _add_open_clip(out: dict[str, KohyaTarget], key: str, rest: str, kohya_prefix: str) -> None:
    m = _RE_RESBLOCK.match(rest)
    if not m:
        return
    layer, inner = int(m.group(1)), m.group(2)
    layer_prefix = f"{kohya_prefix}text_model_encoder_layers_{layer}_"
    if inner == "attn.in_proj_weight":
        for index, name in enumerate(_QKV):
            _add(out, f"{layer_prefix}self_attn_{name}_proj", KohyaTarget(key, (index, 3)))
        return
    if not inner.endswith(".weight"):
        return
    hf = _OPEN_CLIP_LAYER.get(inner[: -len(".weight")])
    if hf is not None:
        _add(out, layer_prefix + hf, KohyaTarget(key))
