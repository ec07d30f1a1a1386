"""Tiny real-topology checkpoints, LoRAs and base configs on disk, for preview tests.

Built with ``merges.engine.tiny`` and cached under the test data dir (building
the diffusers models takes seconds), keyed by architecture, seed and dtype.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG_NAMES = {"sd1": "sd15", "sdxl": "sdxl"}


def fixtures_dir() -> Path:
    path = Path(os.environ.get("MERGEWORKS_DATA_DIR", ROOT / "var" / "test")) / "fixtures" / "previews"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic(path: Path, write) -> Path:
    if not path.exists():
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        write(tmp)
        os.replace(tmp, path)
    return path


def tiny_checkpoint(arch: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    from merges.engine.tiny import save_single_file, tiny_components

    name = f"tiny-{arch}-{seed}-{str(dtype).removeprefix('torch.')}.safetensors"
    return _atomic(fixtures_dir() / name, lambda p: save_single_file(tiny_components(arch, seed), p, arch, dtype=dtype))


def tiny_lora(arch: str, seed: int = 7, base_seed: int = 0) -> Path:
    """A kohya LoRA/LoCon over every attention, resnet and text-encoder layer of the tiny model."""
    from merges.engine.tiny import tiny_components
    from tests.engine.lora_helpers import kohya_lora

    def write(p: Path) -> None:
        state = kohya_lora(tiny_components(arch, base_seed), arch, seed=seed)
        save_file({k: v.contiguous() for k, v in state.items()}, str(p))

    return _atomic(fixtures_dir() / f"tiny-{arch}-lora-{seed}.safetensors", write)


def write_base_configs(root: Path, archs=("sd1", "sdxl")) -> Path:
    """BASE_CONFIGS_DIR with a weightless diffusers folder per base (sd15/, sdxl/)."""
    from merges.engine.tiny import tiny_components, write_pipeline_config_dir

    for arch in archs:
        target = root / CONFIG_NAMES[arch]
        if not (target / "model_index.json").exists():
            write_pipeline_config_dir(tiny_components(arch, 0), target, arch)
    return root


def bake(recipe_steps: list[dict], inputs: dict[str, Path], arch: str, out: Path) -> Path:
    """Run an engine recipe over files (fp32 output) and return the merged checkpoint."""
    from merges.engine import run_recipe

    document = {
        "format": "mergeworks/recipe@1",
        "architecture": arch,
        "inputs": {name: {"path": str(path)} for name, path in inputs.items()},
        "steps": recipe_steps,
        "output": {"step": recipe_steps[-1]["id"], "dtype": "fp32"},
    }
    run_recipe(document, {k: str(v) for k, v in inputs.items()}, str(out))
    return out
