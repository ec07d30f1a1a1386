"""Mergeworks merge engine: recipes, methods and the streaming executor.

A library with no Django import. ``import merges.engine`` is light (no
torch): the executor is imported only when a merge runs, so web processes
can validate recipes without loading torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import RunResult
    from .recipe import Recipe

__all__ = ["ENGINE_VERSION", "run_recipe"]

# Part of every merge key: bump it whenever output bytes could change.
ENGINE_VERSION = "0.1.0"


def run_recipe(
    recipe: "Recipe | str | bytes | Mapping[str, Any]",
    inputs: Mapping[str, str | os.PathLike[str]],
    output_path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    progress: Callable[[int, int, int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    input_sha256s: Mapping[str, str] | None = None,
    output_hashes: bool = False,
    hash_output: bool = True,
) -> "RunResult":
    """Run a recipe into ``output_path``; see ``executor.execute``.

    ``progress(done_tensors, total_tensors, done_bytes, total_bytes)`` is
    called after every tensor; ``should_cancel()`` is polled between tensors
    and a true answer raises ``MergeCancelled`` (no output is left behind).
    """
    from .executor import execute

    return execute(
        recipe,
        inputs,
        output_path,
        device=device,
        progress=progress,
        should_cancel=should_cancel,
        input_sha256s=input_sha256s,
        output_hashes=output_hashes,
        hash_output=hash_output,
    )
