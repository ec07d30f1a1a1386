"""Alpha sweeps (supermerger's XY plot over alpha) without writing any merged checkpoint.

Both checkpoints are converted by diffusers into the pipeline's module layout
once; each alpha's weights are then ``weighted_sum(A, B, alpha)`` (the
engine's method) over those state dicts, copied into the pipeline's modules.
The single-file -> diffusers conversion only renames, reshapes, splits and
transposes tensors, and weighted_sum is elementwise, so merging after the
conversion gives exactly the weights of converting the merged checkpoint:
a sweep cell equals the render of the checkpoint the engine would write
(in float32; on CUDA the merged weights are cast to the pipeline's fp16).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hub.previews.renderer.pipeline import load_pipeline

MODULES = ("unet", "vae", "text_encoder", "text_encoder_2")
Merge = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def _states(pipe: Any) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for name in MODULES:
        module = getattr(pipe, name, None)
        if module is not None:
            out[name] = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    return out


class AlphaSweep:
    def __init__(
        self,
        pipe: Any,
        first: dict[str, dict[str, torch.Tensor]],
        second: dict[str, dict[str, torch.Tensor]],
        merge: Merge,
        describe: Callable[[float], dict[str, str]] | None = None,
    ):
        self.pipe = pipe
        self.first = first
        self.second = second
        self.merge = merge
        self.describe = describe
        if first.keys() != second.keys() or any(first[m].keys() != second[m].keys() for m in first):
            raise ValueError("the two checkpoints do not have the same modules")

    @classmethod
    def prepare(
        cls,
        pipe: Any,
        arch: str,
        second_checkpoint: Path,
        config_dir: Path,
        *,
        describe: Callable[[float], dict[str, str]] | None = None,
        merge: Merge | None = None,
    ) -> "AlphaSweep":
        """Capture ``pipe``'s current weights as A and load ``second_checkpoint`` (on the CPU) as B."""
        if merge is None:
            from merges.engine.methods import weighted_sum as merge
        other = load_pipeline(arch, second_checkpoint, config_dir, device="cpu")
        second = _states(other)
        del other
        return cls(pipe, _states(pipe), second, merge, describe)

    def weights(self, alpha: float) -> dict[str, dict[str, torch.Tensor]]:
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name, a_state in self.first.items():
            b_state = self.second[name]
            merged = {}
            for key, a in a_state.items():
                b = b_state[key]
                if a.shape != b.shape:
                    raise ValueError(f"{name}.{key}: shapes differ ({tuple(a.shape)} vs {tuple(b.shape)})")
                # Integer buffers (position ids) are not weights: keep A's.
                merged[key] = self.merge(a, b, alpha).to(a.dtype) if a.is_floating_point() else a
            out[name] = merged
        return out

    def apply(self, alpha: float) -> None:
        with torch.no_grad():
            for name, state in self.weights(alpha).items():
                getattr(self.pipe, name).load_state_dict(state, strict=True)

    def parameters(self, alpha: float) -> dict[str, str]:
        return self.describe(alpha) if self.describe else {}
