"""A1111-style generation parameters, and the PNG/WebP bytes that carry them.

Every preview PNG has a ``parameters`` text chunk written the way A1111's
``create_infotext`` writes it, so A1111's "PNG Info" tab, Civitai and other
tools read prompt, sampler, seed and model hash back::

    a photo of a cat
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: tiny

Images are always encoded here from decoded pixels (never passed through as
bytes from elsewhere), so what is stored is exactly a PNG or a WebP.
"""
from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import Image
from PIL.PngImagePlugin import PngInfo

PARAMETERS_KEY = "parameters"
THUMBNAIL_SIDE = 256


def _quote(value: str) -> str:
    # A1111's infotext quoting: plain unless the value would break the "k: v, k: v" line.
    if "," not in value and "\n" not in value and ":" not in value:
        return value
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class GenerationParameters:
    prompt: str
    negative: str
    steps: int
    sampler: str
    cfg: float
    seed: int
    width: int
    height: int
    model_hash: str
    model_name: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def infotext(self) -> str:
        params: dict[str, str] = {
            "Steps": str(self.steps),
            "Sampler": self.sampler,
            "CFG scale": f"{self.cfg:g}",
            "Seed": str(self.seed),
            "Size": f"{self.width}x{self.height}",
            "Model hash": self.model_hash,
        }
        if self.model_name:
            params["Model"] = self.model_name
        params.update(self.extra)
        line = ", ".join(f"{k}: {_quote(v)}" for k, v in params.items() if v != "")
        negative = f"\nNegative prompt: {self.negative}" if self.negative else ""
        return f"{self.prompt}{negative}\n{line}".strip()


_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_infotext(text: str) -> dict[str, str]:
    """Read an infotext back into a flat dict (``Prompt``, ``Negative prompt`` and each parameter).

    Follows A1111's ``parse_generation_parameters``: the last line holds the
    parameters, lines before it the prompt, and a line starting with
    ``Negative prompt:`` starts the negative prompt.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM_RE.findall(last)) < 3:  # no parameter line at all
        lines.append(last)
        last = ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    out = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in _PARAM_RE.findall(last):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        out[key.strip()] = value
    return out


def png_bytes(image: Image.Image, parameters: str | None = None) -> bytes:
    info = PngInfo()
    if parameters is not None:
        info.add_text(PARAMETERS_KEY, parameters)  # tEXt, or iTXt when the text is not Latin-1
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", pnginfo=info, compress_level=6)
    return buf.getvalue()


def webp_thumbnail_bytes(image: Image.Image, max_side: int = THUMBNAIL_SIDE, quality: int = 82) -> bytes:
    """A WebP no larger than ``max_side`` on its long side (never upscaled)."""
    thumb = image.convert("RGB")
    if max(thumb.size) > max_side:
        thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="WEBP", quality=quality, method=4)
    return buf.getvalue()


def read_parameters(data: bytes) -> str | None:
    """The ``parameters`` text of a PNG, or None."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.text.get(PARAMETERS_KEY) if hasattr(img, "text") else None
