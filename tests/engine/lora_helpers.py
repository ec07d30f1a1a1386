"""Build kohya-format LoRAs for the tiny models, independently of the engine's key map.

Module names come from the diffusers/transformers modules themselves, the way
kohya's sd-scripts derives them (module path, dots to underscores), so the
tests check ``merges.engine.kohya_keys`` against kohya's naming rather than
against itself. LDM-style UNet names (kohya's SDXL trainer) are derived
through the tiny-model engineer's diffusers->LDM converter.
"""

from __future__ import annotations

from typing import Any

import torch

from merges.engine.ldm_convert import unet_to_ldm

# Module containers kohya's LoRA/LoCon target in the UNet (Transformer2DModel,
# ResnetBlock2D, Downsample2D, Upsample2D), by their place in the module path.
_UNET_CONTAINERS = (".attentions.", ".resnets.", ".downsamplers.", ".upsamplers.")
# Top-level UNet layers that LyCORIS' "full" preset adapts as well.
_UNET_TOP = ("conv_in", "conv_out", "time_embedding.linear_1", "time_embedding.linear_2")


def unet_module_paths(unet: torch.nn.Module, *, top_level: bool = True) -> dict[str, torch.nn.Module]:
    out = {}
    for path, module in unet.named_modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        if any(c in f".{path}" for c in _UNET_CONTAINERS) or (top_level and path in _UNET_TOP):
            out[path] = module
    return out


def text_module_paths(text_encoder: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """CLIPAttention/CLIPMLP linears, named as kohya names them (``text_model.`` included)."""
    out = {}
    for path, module in text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear) and (".self_attn." in path or ".mlp." in path):
            # transformers >= 5.6 dropped the text_model wrapper of CLIPTextModel;
            # kohya names (and real LoRA files) keep it.
            full = path if path.startswith("text_model.") else f"text_model.{path}"
            out[full] = module
    return out


def ldm_unet_paths(unet: torch.nn.Module, arch: str) -> dict[str, str]:
    """diffusers module path -> LDM module path (relative to model.diffusion_model.)."""
    sd = unet.state_dict()
    ids = {id(t): k for k, t in sd.items()}
    out = {}
    for ldm_key, tensor in unet_to_ldm(sd, arch, prefix="").items():
        diffusers_key = ids[id(tensor)]
        if diffusers_key.endswith(".weight"):
            out[diffusers_key[: -len(".weight")]] = ldm_key[: -len(".weight")]
    return out


def _factors(module: torch.nn.Module, rank: int, alpha: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    w = module.weight
    out_dim, in_dim = w.shape[0], w.shape[1]
    if w.dim() == 4:
        kh, kw = w.shape[2:]
        down = torch.randn(rank, in_dim, kh, kw, generator=gen) * 0.2
        up = torch.randn(out_dim, rank, 1, 1, generator=gen) * 0.2
    else:
        down = torch.randn(rank, in_dim, generator=gen) * 0.2
        up = torch.randn(out_dim, rank, generator=gen) * 0.2
    return {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(alpha)}


def kohya_lora(
    components: dict[str, Any],
    arch: str,
    *,
    rank: int = 4,
    alpha: float = 2.0,
    conv_rank: int = 2,
    conv_alpha: float = 3.0,
    seed: int = 0,
    ldm_unet_names: bool = False,
    top_level: bool = True,
) -> dict[str, torch.Tensor]:
    """Random kohya LoRA/LoCon over every attention, resnet, sampler and text-encoder layer.

    Like kohya's trainer, one (rank, alpha) serves linear and 1x1 layers and
    another the 3x3 convs: diffusers mis-keys per-module alphas of attention
    layers, so a per-module alpha could not be compared with it.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    unet = components["unet"]
    renames = ldm_unet_paths(unet, arch) if ldm_unet_names else {}
    for path, module in sorted(unet_module_paths(unet, top_level=top_level).items()):
        name = "lora_unet_" + renames.get(path, path).replace(".", "_")
        is_3x3 = module.weight.dim() == 4 and module.weight.shape[2:] != (1, 1)
        rank_alpha = (conv_rank, conv_alpha) if is_3x3 else (rank, alpha)
        for suffix, tensor in _factors(module, *rank_alpha, gen).items():
            state[f"{name}.{suffix}"] = tensor
    encoders = [("text_encoder", "lora_te_" if arch == "sd1" else "lora_te1_")]
    if arch == "sdxl":
        encoders.append(("text_encoder_2", "lora_te2_"))
    for component, prefix in encoders:
        for path, module in sorted(text_module_paths(components[component]).items()):
            name = prefix + path.replace(".", "_")
            for suffix, tensor in _factors(module, rank, alpha, gen).items():
                state[f"{name}.{suffix}"] = tensor
    return state
