"""Recognise what a model file is from its tensor names and shapes alone.

Names and shapes come from the header, so detection reads no tensor data and
works the same on a 7 GB checkpoint and on an upload still being verified.
Rules (DESIGN §4):

* checkpoints: SD1 ``cond_stage_model.transformer.*`` (CLIP-L, context 768),
  SD2 ``cond_stage_model.model.*`` (OpenCLIP, context 1024), SDXL
  ``conditioner.embedders.0/1.*`` (context 2048), Flux ``double_blocks.*``.
  Text-encoder layout decides; a UNet-only file falls back on the
  cross-attention width and then on the block structure (SDXL has 9 input
  blocks and ``label_emb``; SD2 has linear ``proj_in``), so tiny test models
  with narrow widths are recognised too;
* LoRAs: kohya/LyCORIS ``lora_unet_*``/``lora_te_*`` (SDXL ``lora_te1_``,
  ``lora_te2_``) with ``lora_down``/``lora_up``/``alpha`` (LoCon when conv
  layers are adapted), ``hada_*`` (LoHa) or ``lokr_*`` (LoKr);
* VAEs: ``encoder.*``/``decoder.*``/``quant_conv`` at the top level or all
  under ``first_stage_model.``;
* textual-inversion embeddings: ``emb_params``, ``string_to_param.*``,
  ``clip_l`` + ``clip_g``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from merges.engine.kohya_keys import CONV_MODULE

__all__ = ["Detection", "detect"]

Kind = Literal["checkpoint", "lora", "vae", "embedding", "unknown"]
Arch = Literal["sd1", "sd2", "sdxl", "flux"]
LoraKind = Literal["lora", "locon", "loha", "lokr"]

UNET = "model.diffusion_model."
_CONTEXT_ARCH = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
_EMBED_DIM_ARCH = {768: "sd1", 1024: "sd2"}


@dataclass(frozen=True)
class Detection:
    kind: Kind
    arch: Arch | None = None  # checkpoints, VAEs (flux only) and embeddings
    lora_kind: LoraKind | None = None
    rank: int | None = None  # most common rank over the LoRA's modules
    alpha: float | None = None  # most common alpha; needs tensor values, see detect()
    base: Arch | None = None  # architecture a LoRA was trained for
    conv_rank: int | None = None  # LoCon rank of the 3x3 conv modules, when different
    modules: int = 0  # LoRA modules
    vectors: int = 0  # embedding vectors (textual inversion)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect(
    shapes: Mapping[str, tuple[int, ...]],
    *,
    alphas: Mapping[str, float] | None = None,
) -> Detection:
    """Classify a state dict by its key names and tensor shapes.

    ``alphas`` optionally maps LoRA ``*.alpha`` tensor names to their values
    (the only tensor data that matters here, and a few bytes each); without it
    ``Detection.alpha`` stays ``None``.
    """
    keys = list(shapes)
    if not keys:
        return Detection("unknown", notes=["no tensors"])
    if any(k.startswith(_LORA_PREFIXES) for k in keys):
        return _detect_lora(shapes, alphas)
    if arch := _checkpoint_arch(shapes):
        return Detection("checkpoint", arch=arch)
    if vae := _detect_vae(shapes):
        return vae
    if embedding := _detect_embedding(shapes):
        return embedding
    return Detection("unknown")


# -- checkpoints ---------------------------------------------------------------


def _context_dim(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> int | None:
    for key, shape in shapes.items():
        if key.startswith(prefix) and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def _checkpoint_arch(shapes: Mapping[str, tuple[int, ...]]) -> Arch | None:
    keys = shapes.keys()
    if any(k.startswith(("double_blocks.", f"{UNET}double_blocks.")) for k in keys):
        return "flux"
    has_unet = any(k.startswith(UNET) for k in keys)
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"
    if not has_unet:
        return None
    context = _context_dim(shapes, UNET)
    if context in _CONTEXT_ARCH:
        return _CONTEXT_ARCH[context]  # type: ignore[return-value]
    return _unet_structure_arch(shapes, UNET, sep=".")


def _unet_structure_arch(shapes: Mapping[str, tuple[int, ...]], prefix: str, sep: str) -> Arch | None:
    """SD1/SD2/SDXL from the UNet's block structure, whatever its widths."""
    keys = [k[len(prefix):] for k in shapes if k.startswith(prefix)]
    if any(k.startswith(f"label_emb{sep}") or k.startswith(f"add_embedding{sep}") for k in keys):
        return "sdxl"
    blocks = [int(m.group(1)) for k in keys if (m := re.match(rf"input_blocks{re.escape(sep)}(\d+){re.escape(sep)}", k))]
    if blocks and max(blocks) >= 9:
        linear_proj = any(
            k.endswith(f"proj_in{sep}weight") and len(shapes[prefix + k]) == 2 for k in keys
        )
        return "sd2" if linear_proj else "sd1"
    if blocks:
        return "sdxl"
    return None


# -- LoRAs ---------------------------------------------------------------------


def _module_of(key: str) -> tuple[str, str]:
    module, _, suffix = key.partition(".")
    return module, suffix


def _most_common(values: list[Any]) -> Any:
    if not values:
        return None
    counts = Counter(values)
    # Ties go to the larger value so the answer never depends on key order.
    return max(counts, key=lambda v: (counts[v], v))


def _detect_lora(shapes: Mapping[str, tuple[int, ...]], alphas: Mapping[str, float] | None) -> Detection:
    suffixes: dict[str, set[str]] = {}
    for key in shapes:
        module, suffix = _module_of(key)
        suffixes.setdefault(module, set()).add(suffix)
    notes: list[str] = []
    ranks: list[int] = []
    conv_ranks: list[int] = []
    kinds: Counter[str] = Counter()
    for module, sfx in suffixes.items():
        if any(s.startswith("hada_") for s in sfx):
            kinds["loha"] += 1
            if (s := shapes.get(f"{module}.hada_w1_b")) is not None:
                ranks.append(s[0])
        elif any(s.startswith("lokr_") for s in sfx):
            kinds["lokr"] += 1
            for part in ("lokr_w1_b", "lokr_w2_b"):
                if (s := shapes.get(f"{module}.{part}")) is not None:
                    ranks.append(s[0])
                    break
        elif "lora_down.weight" in sfx:
            down = shapes[f"{module}.lora_down.weight"]
            conv3 = len(down) == 4 and tuple(down[2:]) != (1, 1)
            if conv3 or "lora_mid.weight" in sfx or CONV_MODULE.search(module):
                kinds["locon"] += 1
            else:
                kinds["lora"] += 1
            (conv_ranks if conv3 else ranks).append(down[0])
        if any(s == "dora_scale" for s in sfx):
            notes.append("DoRA")
    notes = sorted(set(notes))
    if kinds["loha"]:
        lora_kind: LoraKind | None = "loha"
    elif kinds["lokr"]:
        lora_kind = "lokr"
    elif kinds["locon"]:
        lora_kind = "locon"
    elif kinds["lora"]:
        lora_kind = "lora"
    else:
        lora_kind = None
    rank = _most_common(ranks) or _most_common(conv_ranks)
    conv_rank = _most_common(conv_ranks)
    alpha = None
    if alphas:
        alpha = _most_common([float(v) for k, v in alphas.items() if k.endswith(".alpha")])
    return Detection(
        "lora",
        lora_kind=lora_kind,
        rank=rank,
        alpha=alpha,
        base=_lora_base(shapes, suffixes),
        conv_rank=conv_rank if conv_rank != rank else None,
        modules=sum(kinds.values()),
        notes=notes,
    )


def _lora_in_dim(shapes: Mapping[str, tuple[int, ...]], module: str) -> int | None:
    for part in ("lora_down.weight", "hada_w1_b", "hada_w2_b", "lokr_w2_b"):
        if (s := shapes.get(f"{module}.{part}")) is not None and len(s) >= 2:
            return s[1]
    return None


def _lora_base(shapes: Mapping[str, tuple[int, ...]], suffixes: Mapping[str, set[str]]) -> Arch | None:
    modules = list(suffixes)
    if any(m.startswith("lora_unet_double_blocks_") or m.startswith("lora_unet_single_blocks_") for m in modules):
        return "flux"
    if any(m.startswith(("lora_te1_", "lora_te2_")) for m in modules):
        return "sdxl"
    # Cross-attention key/value projections read the text context: its width
    # is 768 (SD1), 1024 (SD2) or 2048 (SDXL).
    for m in modules:
        if m.startswith("lora_unet_") and m.endswith(("attn2_to_k", "attn2_to_v")):
            dim = _lora_in_dim(shapes, m)
            if dim in _CONTEXT_ARCH:
                return _CONTEXT_ARCH[dim]  # type: ignore[return-value]
            break
    for m in modules:
        if m.startswith("lora_te_") and m.endswith("self_attn_q_proj"):
            dim = _lora_in_dim(shapes, m)
            if dim in _EMBED_DIM_ARCH:
                return _EMBED_DIM_ARCH[dim]  # type: ignore[return-value]
            break
    # Narrow (test) models: fall back on the block structure in the names.
    unet = [m[len("lora_unet_"):] for m in modules if m.startswith("lora_unet_")]
    if any(m.startswith(("label_emb_", "add_embedding_")) for m in unet):
        return "sdxl"
    ldm_in = [int(x.group(1)) for m in unet if (x := re.match(r"input_blocks_(\d+)_", m))]
    ldm_out = [int(x.group(1)) for m in unet if (x := re.match(r"output_blocks_(\d+)_", m))]
    if max(ldm_in + ldm_out, default=-1) >= 9:
        return "sd1"
    # SD1 has attention in down block 0 (input blocks 1-2); SDXL has none there,
    # and SDXL has no fourth down block.
    if any(m.startswith(("down_blocks_0_attentions_", "down_blocks_3_", "up_blocks_3_")) for m in unet):
        return "sd1"
    if any(re.match(r"input_blocks_[12]_1_", m) for m in unet):
        return "sd1"
    if any(re.match(r"(down_blocks_[12]_attentions|input_blocks_[4578]_1)_", m) for m in unet):
        return "sdxl"
    if any(m.startswith("lora_te_") for m in modules):
        return "sd1"
    return None


# -- VAEs and embeddings -------------------------------------------------------


def _detect_vae(shapes: Mapping[str, tuple[int, ...]]) -> Detection | None:
    keys = list(shapes)
    if all(k.startswith("first_stage_model.") for k in keys):
        inner = {k[len("first_stage_model."):]: v for k, v in shapes.items()}
    else:
        inner = dict(shapes)
    if not any(k.startswith(("encoder.", "decoder.")) for k in inner):
        return None
    if not all(k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")) for k in inner):
        return None
    conv_in = inner.get("decoder.conv_in.weight")
    # 16 latent channels and no quant convs: Flux's VAE. SD1/SD2/SDXL VAEs
    # share one layout (4 channels) and differ only in weights.
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] == 16:
        return Detection("vae", arch="flux")
    return Detection("vae")


def _detect_embedding(shapes: Mapping[str, tuple[int, ...]]) -> Detection | None:
    if "clip_l" in shapes and "clip_g" in shapes:
        return Detection("embedding", arch="sdxl", vectors=_vectors(shapes["clip_l"]))
    candidates = [k for k in shapes if k == "emb_params" or k.startswith("string_to_param.")]
    if not candidates:
        return None
    shape = shapes[candidates[0]]
    dim = shape[-1] if shape else None
    return Detection("embedding", arch=_EMBED_DIM_ARCH.get(dim), vectors=_vectors(shape))  # type: ignore[arg-type]


def _vectors(shape: tuple[int, ...]) -> int:
    return shape[0] if len(shape) == 2 else 1
