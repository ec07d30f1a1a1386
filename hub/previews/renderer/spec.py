"""What to render: prompts x seeds, sampler settings and size, validated and normalised.

The accepted document is a superset of a recipe's ``preview`` block
(``{prompts, negative, seeds, steps, cfg, size}``) plus ``sampler``,
``lora_strength`` and ``alphas`` (the alpha-sweep layout). Sampler names are
A1111's, so the ``parameters`` chunk of every PNG reads as A1111 writes it.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from hub.previews.renderer.errors import RenderSpecError

# Part of every render key: bump it whenever the pixels or files for a request could change.
RENDERER_VERSION = "1"

# A1111 sampler name -> (diffusers scheduler class, config overrides).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "UniPC": ("UniPCMultistepScheduler", {}),
}
DEFAULT_SAMPLER = "Euler a"

MAX_PROMPTS = 16
MAX_SEEDS = 16
MAX_ALPHAS = 11
MAX_PROMPT_CHARS = 2000
MIN_SIDE, MAX_SIDE = 32, 2048
MAX_STEPS = 150
MAX_CFG = 30.0
SEED_MAX = 2**32 - 1
_KNOWN = {"prompts", "negative", "seeds", "steps", "cfg", "size", "sampler", "scheduler", "lora_strength", "alphas"}


@dataclass(frozen=True)
class RenderSpec:
    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    negative: str = ""
    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = DEFAULT_SAMPLER
    lora_strength: float = 1.0
    # Alpha-sweep layout: columns are these weights of the second checkpoint.
    alphas: tuple[float, ...] = ()

    @property
    def is_sweep(self) -> bool:
        return bool(self.alphas)

    @property
    def image_count(self) -> int:
        if self.is_sweep:
            return len(self.prompts) * len(self.seeds) * len(self.alphas)
        return len(self.prompts) * len(self.seeds)

    def as_dict(self) -> dict[str, Any]:
        """The normalised document (JSON-safe; ``parse_spec(spec.as_dict()) == spec``)."""
        data = asdict(self)
        data["prompts"] = list(self.prompts)
        data["seeds"] = list(self.seeds)
        data["size"] = [data.pop("width"), data.pop("height")]
        data["alphas"] = list(self.alphas)
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _int(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RenderSpecError(field, f"expected an integer from {lo} to {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise RenderSpecError(field, f"expected an integer from {lo} to {hi}, got {value}")
    return value


def _float(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RenderSpecError(field, f"expected a number from {lo:g} to {hi:g}, got {value!r}")
    if not lo <= value <= hi:
        raise RenderSpecError(field, f"expected a number from {lo:g} to {hi:g}, got {value:g}")
    return float(value)


def _text(field: str, value: Any, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise RenderSpecError(field, f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_PROMPT_CHARS:
        raise RenderSpecError(field, f"at most {MAX_PROMPT_CHARS} characters, got {len(value)}")
    if "\x00" in value:
        raise RenderSpecError(field, "must not contain NUL characters")
    if not allow_empty and not value.strip():
        raise RenderSpecError(field, "must not be empty")
    return value


def parse_spec(data: Mapping[str, Any], *, defaults: RenderSpec | None = None, max_images: int = 64) -> RenderSpec:
    """Validate a spec document; missing fields come from ``defaults``. Raises RenderSpecError."""
    if not isinstance(data, Mapping):
        raise RenderSpecError("spec", "expected a mapping")
    unknown = sorted(str(k) for k in data if k not in _KNOWN)
    if unknown:
        raise RenderSpecError(unknown[0], "unknown field")
    base = defaults or RenderSpec(prompts=(), seeds=(1,))

    prompts = data.get("prompts", list(base.prompts))
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not 1 <= len(prompts) <= MAX_PROMPTS:
        raise RenderSpecError("prompts", f"expected 1 to {MAX_PROMPTS} prompts")
    prompts = tuple(_text(f"prompts[{i}]", p, allow_empty=False) for i, p in enumerate(prompts))

    negative = _text("negative", data.get("negative", base.negative), allow_empty=True)

    seeds = data.get("seeds", list(base.seeds))
    if not isinstance(seeds, (list, tuple)) or not 1 <= len(seeds) <= MAX_SEEDS:
        raise RenderSpecError("seeds", f"expected 1 to {MAX_SEEDS} seeds")
    seeds = tuple(_int(f"seeds[{i}]", s, 0, SEED_MAX) for i, s in enumerate(seeds))
    if len(set(seeds)) != len(seeds):
        raise RenderSpecError("seeds", "seeds must be distinct (each is a column of the grid)")

    steps = _int("steps", data.get("steps", base.steps), 1, MAX_STEPS)
    cfg = _float("cfg", data.get("cfg", base.cfg), 0.0, MAX_CFG)

    size = data.get("size", [base.width, base.height])
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise RenderSpecError("size", "expected [width, height]")
    width, height = (_int(f"size[{i}]", v, MIN_SIDE, MAX_SIDE) for i, v in enumerate(size))
    if width % 8 or height % 8:
        raise RenderSpecError("size", f"width and height must be multiples of 8, got {width}x{height}")

    sampler = data.get("sampler", data.get("scheduler", base.sampler))
    if sampler not in SAMPLERS:
        raise RenderSpecError("sampler", f"unknown sampler {sampler!r}; one of: {', '.join(SAMPLERS)}")

    lora_strength = _float("lora_strength", data.get("lora_strength", base.lora_strength), -4.0, 4.0)

    alphas = data.get("alphas", list(base.alphas))
    if not isinstance(alphas, (list, tuple)) or len(alphas) == 1 or len(alphas) > MAX_ALPHAS:
        raise RenderSpecError("alphas", f"expected 2 to {MAX_ALPHAS} weights (or none)")
    alphas = tuple(_float(f"alphas[{i}]", a, 0.0, 1.0) for i, a in enumerate(alphas))
    if len(set(alphas)) != len(alphas):
        raise RenderSpecError("alphas", "alphas must be distinct")

    spec = RenderSpec(
        prompts=prompts,
        seeds=seeds,
        negative=negative,
        steps=steps,
        cfg=cfg,
        width=width,
        height=height,
        sampler=sampler,
        lora_strength=lora_strength,
        alphas=alphas,
    )
    if spec.image_count > max_images:
        raise RenderSpecError("seeds", f"{spec.image_count} images requested; at most {max_images} per grid")
    return spec
