"""Small checkpoints with real SD1/SDXL key names, for executor, CLI and hostile-input tests.

Shapes are tiny, but the names follow the LDM layout so architecture
detection and block assignment see real keys; one key is larger than the
slice size the tests use, so slicing is exercised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from merges.engine.safetensors_io import save_tensors

UNET = "model.diffusion_model."
BIG_KEY = UNET + "input_blocks.4.1.proj_in.weight"
SLICE = 4096  # chunk_elems the tests pass, far below BIG_KEY's 21,000 elements


def sd1_keys() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (20, 8),
        "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight": (16, 8),
        UNET + "time_embed.0.weight": (16, 8),
        UNET + "middle_block.1.proj_in.weight": (8, 8),
        UNET + "out.2.weight": (4, 8, 3, 3),
        "first_stage_model.decoder.conv_in.weight": (8, 4, 3, 3),
        BIG_KEY: (300, 70),
    }
    for i in range(12):
        keys[f"{UNET}input_blocks.{i}.0.weight"] = (6, 4)
        keys[f"{UNET}output_blocks.{i}.0.weight"] = (6, 4)
    return keys


def sdxl_keys() -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (20, 8),
        "conditioner.embedders.1.model.token_embedding.weight": (20, 12),
        UNET + "label_emb.0.0.weight": (16, 8),
        UNET + "middle_block.1.proj_in.weight": (8, 8),
    }
    for i in range(9):
        keys[f"{UNET}input_blocks.{i}.0.weight"] = (6, 4)
        keys[f"{UNET}output_blocks.{i}.0.weight"] = (6, 4)
    return keys


def checkpoint(
    seed: int,
    arch: str = "sd1",
    dtype: torch.dtype = torch.float16,
    drop: tuple[str, ...] = (),
    reshape: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = sd1_keys() if arch == "sd1" else sdxl_keys()
    shapes.update(reshape or {})
    sd = {k: torch.randn(*s, generator=g).to(dtype) for k, s in sorted(shapes.items()) if k not in drop}
    if arch == "sd1":
        # An integer buffer: never merged, copied from the first model.
        sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).reshape(1, 77)
    return sd


def write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    save_tensors(path, tensors, metadata)
    return path


def recipe(steps: list[dict[str, Any]], inputs: list[str], output: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "format": "mergeworks/recipe@1",
        "architecture": extra.pop("architecture", "sd1"),
        "inputs": {name: {"path": f"{name}.safetensors"} for name in inputs},
        "steps": steps,
        "output": {"step": output or steps[-1]["id"], "dtype": extra.pop("dtype", "fp16")},
        **extra,
    }


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """Files in ``directory`` other than ``keep`` (temp files, partial outputs)."""
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)
