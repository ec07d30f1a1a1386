"""Model files for upload tests: kohya-style LoRAs of any size, and clean torch checkpoints."""
from __future__ import annotations

import io
import json

import torch
from safetensors.torch import save

# Real kohya SD1 module names with their (in, out) widths. attn2 to_k/to_v read
# the 768-wide text context, which is how the engine recognises SD1.
_SD1_MODULES = [
    (f"lora_unet_{block}_attentions_{a}_transformer_blocks_0_{proj}", dims)
    for block, width in (("down_blocks_0", 320), ("down_blocks_1", 640), ("down_blocks_2", 1280), ("up_blocks_1", 1280))
    for a in (0, 1)
    for proj, dims in (
        ("attn1_to_q", (width, width)),
        ("attn1_to_k", (width, width)),
        ("attn1_to_v", (width, width)),
        ("attn1_to_out_0", (width, width)),
        ("attn2_to_k", (768, width)),
        ("attn2_to_v", (768, width)),
        ("ff_net_2", (width * 4, width)),
    )
]
TAG_FREQUENCY = {"10_mychar": {"mychar": 40, "1girl": 38, "smile": 12, "<b>bold</b>": 3}}


def lora_bytes(*, min_bytes: int = 0, rank: int = 16, alpha: float = 8.0, seed: int = 0, metadata: dict | None = None) -> bytes:
    """A valid SD1 LoRA (fp16) of at least `min_bytes`, with kohya training metadata."""
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    total = 0
    repeat = 0
    while True:
        for name, (d_in, d_out) in _SD1_MODULES:
            key = name if repeat == 0 else name.replace("transformer_blocks_0", f"transformer_blocks_{repeat}")
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, d_in, generator=g).half()
            tensors[f"{key}.lora_up.weight"] = (torch.randn(d_out, rank, generator=g) * 0.01).half()
            tensors[f"{key}.alpha"] = torch.tensor(alpha).half()
            total += 2 * rank * (d_in + d_out) + 2
            if total >= min_bytes and len(tensors) >= 12:
                break
        else:
            repeat += 1
            continue
        break
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "sd_v1",
        "ss_output_name": "mychar-v1",
        "ss_tag_frequency": json.dumps(TAG_FREQUENCY),
    }
    meta.update(metadata or {})
    return save(tensors, metadata=meta)


def merged_checkpoint_bytes(*, parents: dict[str, str]) -> bytes:
    """A small SD1 checkpoint carrying A1111's merge provenance for `parents` (sha256 -> name)."""
    from tests.support.builders import tiny_safetensors_bytes

    shas = list(parents)
    recipe = {
        "type": "webui",
        "primary_model_hash": shas[0],
        "secondary_model_hash": shas[1] if len(shas) > 1 else None,
        "interp_method": "Weighted sum",
        "multiplier": 0.3,
    }
    models = {sha: {"name": name, "legacy_hash": sha[:8], "sd_merge_recipe": None} for sha, name in parents.items()}
    return tiny_safetensors_bytes(
        7, metadata={"sd_merge_recipe": json.dumps(recipe), "sd_merge_models": json.dumps(models)}
    )


def torch_checkpoint_bytes(*, legacy: bool = False) -> bytes:
    """A clean pickle checkpoint as torch.save writes it (zip, or the pre-1.6 legacy stream)."""
    state = {"state_dict": {"model.diffusion_model.out.2.weight": torch.zeros(4, 8, 3, 3)}}
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()
