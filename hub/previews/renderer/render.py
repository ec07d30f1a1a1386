"""Rendering a grid: prompts x seeds in batches, one generator per image, then the labelled grid.

Each image's initial latents come from its own CPU ``torch.Generator`` seeded
with its seed, and the same generator then feeds any sampler noise for that
image only, so an image depends on its prompt and seed alone, never on which
other images share its batch or on the device's RNG (as A1111's "CPU" RNG
source). On the CPU the pipeline runs inside ``batch_invariant`` so that a
cell of a batched grid is bit-identical to its single render; on CUDA it runs
batched in fp16 without that mode, so a cell and its single render may differ
by rounding (cuDNN/cuBLAS pick kernels by batch size; not measured here).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from hub.previews.renderer.errors import RenderError
from hub.previews.renderer.grid import GridLayout, compose_grid
from hub.previews.renderer.infotext import GenerationParameters
from hub.previews.renderer.invariance import batch_invariant
from hub.previews.renderer.pipeline import memory_savers_enable, sampler_set
from hub.previews.renderer.spec import RenderSpec

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    prompt: str
    seed: int
    alpha: float | None = None


@dataclass(frozen=True)
class GridPlan:
    cells: tuple[Cell, ...]
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.row_labels), len(self.col_labels)


def plan_grid(spec: RenderSpec) -> GridPlan:
    """Seed layout: rows = prompts, columns = seeds. Sweep layout: rows = prompt/seed pairs, columns = alphas."""
    if not spec.is_sweep:
        cells = tuple(
            Cell(r, c, prompt, seed) for r, prompt in enumerate(spec.prompts) for c, seed in enumerate(spec.seeds)
        )
        return GridPlan(cells, spec.prompts, tuple(f"seed {s}" for s in spec.seeds))
    pairs = [(p, s) for p in spec.prompts for s in spec.seeds]
    cells = tuple(
        Cell(r, c, prompt, seed, alpha)
        for c, alpha in enumerate(spec.alphas)
        for r, (prompt, seed) in enumerate(pairs)
    )
    rows = tuple(p if len(spec.seeds) == 1 else f"{p} (seed {s})" for p, s in pairs)
    return GridPlan(cells, rows, tuple(f"alpha {a:g}" for a in spec.alphas))


def initial_latents(pipe: Any, seed: int, width: int, height: int) -> tuple[torch.Tensor, torch.Generator]:
    """This image's starting noise, drawn on the CPU from its own generator (which is returned, advanced)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    channels = pipe.unet.config.in_channels
    factor = pipe.vae_scale_factor
    shape = (1, channels, height // factor, width // factor)
    return torch.randn(shape, generator=generator, dtype=torch.float32), generator


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def render_batch(pipe: Any, spec: RenderSpec, cells: Sequence[Cell], *, invariant: bool) -> list[Image.Image]:
    """Render ``cells`` (same weights) in one pipeline call; returns PIL images in order."""
    device = pipe.unet.device
    dtype = pipe.unet.dtype
    latents, generators = zip(*(initial_latents(pipe, c.seed, spec.width, spec.height) for c in cells))
    mode = batch_invariant() if invariant else contextlib.nullcontext()
    with torch.inference_mode(), mode:
        out = pipe(
            prompt=[c.prompt for c in cells],
            negative_prompt=[spec.negative] * len(cells),
            num_inference_steps=spec.steps,
            guidance_scale=spec.cfg,
            width=spec.width,
            height=spec.height,
            latents=torch.cat(latents).to(device=device, dtype=dtype),
            generator=list(generators),
            output_type="pil",
        )
    return list(out.images)


def render_cells(
    pipe: Any,
    spec: RenderSpec,
    cells: Sequence[Cell],
    *,
    batch_size: int,
    invariant: bool,
    on_batch: Callable[[int], None] | None = None,
) -> list[Image.Image]:
    """Render in batches of ``batch_size``; on out-of-memory, switch on the memory savers and halve the batch."""
    images: list[Image.Image] = []
    i = 0
    size = max(1, batch_size)
    while i < len(cells):
        chunk = cells[i : i + size]
        try:
            images.extend(render_batch(pipe, spec, chunk, invariant=invariant))
        except RuntimeError as exc:
            if not _is_oom(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            memory_savers_enable(pipe)
            if size == 1:
                raise RenderError(
                    f"not enough memory to render one {spec.width}x{spec.height} image on {pipe.unet.device}",
                    reason="The render ran out of memory. Try a smaller image size.",
                ) from exc
            size = max(1, size // 2)
            logger.warning("render: out of memory, retrying with batches of %d", size)
            continue
        i += len(chunk)
        if on_batch is not None:
            on_batch(len(chunk))
    return images


@dataclass
class RenderedCell:
    cell: Cell
    image: Image.Image
    parameters: str


@dataclass
class RenderedGrid:
    plan: GridPlan
    cells: list[RenderedCell]
    grid: Image.Image
    layout: GridLayout
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What the infotext says about the weights: A1111's short hash (AutoV2) and a display name."""

    hash: str
    name: str = ""
    lora_name: str = ""
    lora_hash: str = ""


def cell_parameters(spec: RenderSpec, cell: Cell, model: ModelInfo, extra: Mapping[str, str] | None = None) -> str:
    prompt = cell.prompt
    params: dict[str, str] = dict(extra or {})
    if model.lora_name:
        # A1111 names applied LoRAs in the prompt and lists their hashes, so the PNG reproduces there.
        prompt = f"{prompt} <lora:{model.lora_name}:{spec.lora_strength:g}>"
        params["Lora hashes"] = f"{model.lora_name}: {model.lora_hash}"
    return GenerationParameters(
        prompt=prompt,
        negative=spec.negative,
        steps=spec.steps,
        sampler=spec.sampler,
        cfg=spec.cfg,
        seed=cell.seed,
        width=spec.width,
        height=spec.height,
        model_hash=model.hash,
        model_name=model.name,
        extra=params,
    ).infotext()


def render_grid(
    pipe: Any,
    spec: RenderSpec,
    model: ModelInfo,
    *,
    batch_size: int = 4,
    invariant: bool | None = None,
    progress: Progress | None = None,
    sweep: Any = None,
) -> RenderedGrid:
    """Render every cell of ``spec``'s grid and compose it.

    ``sweep`` (an ``AlphaSweep``) is required for a spec with alphas: each
    column's weights are merged in memory before its cells are rendered.
    """
    if spec.is_sweep and sweep is None:
        raise RenderError("an alpha sweep needs a second checkpoint")
    if invariant is None:
        invariant = pipe.unet.device.type == "cpu"
    plan = plan_grid(spec)
    sampler_set(pipe, spec.sampler)
    total = len(plan.cells)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    rendered: list[RenderedCell] = []
    if spec.is_sweep:
        for alpha in spec.alphas:
            column = [c for c in plan.cells if c.alpha == alpha]
            sweep.apply(alpha)
            images = render_cells(pipe, spec, column, batch_size=batch_size, invariant=invariant, on_batch=advance)
            extra = sweep.parameters(alpha)
            rendered += [RenderedCell(c, img, cell_parameters(spec, c, model, extra)) for c, img in zip(column, images)]
    else:
        images = render_cells(pipe, spec, plan.cells, batch_size=batch_size, invariant=invariant, on_batch=advance)
        rendered = [RenderedCell(c, img, cell_parameters(spec, c, model)) for c, img in zip(plan.cells, images)]

    rows, cols = plan.shape
    by_pos = {(r.cell.row, r.cell.col): r.image for r in rendered}
    grid, layout = compose_grid(
        [[by_pos[(r, c)] for c in range(cols)] for r in range(rows)], plan.row_labels, plan.col_labels
    )
    rendered.sort(key=lambda r: (r.cell.row, r.cell.col))
    return RenderedGrid(plan=plan, cells=rendered, grid=grid, layout=layout)
