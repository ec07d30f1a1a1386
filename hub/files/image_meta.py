"""Generation parameters as A1111 and ComfyUI write them, parsed defensively.

A1111 (and Forge, Fooocus's A1111 mode, our own renderer) writes one text:

    a cat, masterpiece
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: 6ce0161689, Model: sd15

in a PNG `parameters` chunk or a JPEG/WebP EXIF UserComment. ComfyUI writes
its graph instead: a PNG `prompt` chunk holding the API-format JSON (node id
-> `{class_type, inputs}`, an input being a value or a `[node id, output]`
link) and a `workflow` chunk for its editor. From `prompt` we follow the
first sampler node's links to its text encoders, checkpoint loader and empty
latent, and write the result as A1111 text so that every image carries its
parameters one way.

Everything here is hostile input: sizes are capped before parsing, JSON is
read with `json.loads` only (depth errors caught), link chains are followed
a bounded number of steps, and only strings and numbers come out.
No Django import: the ingest worker and tests use it as a plain library.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_TEXT_CHARS = 64 * 1024
MAX_COMFY_JSON_CHARS = 512 * 1024
MAX_COMFY_NODES = 5000
MAX_FIELD_CHARS = 8 * 1024
MAX_LINK_STEPS = 16
MAX_SETTINGS = 64

# A1111's pattern for `Key: value` pairs on the settings line (values may be quoted JSON strings), with
# bounded repeats: unbounded, a long line without a colon takes quadratic time.
_SETTING = re.compile(r'\s*([\w ]{1,64}):\s*("(?:\\.|[^\\"]){1,4096}"|[^,]*)(?:,|$)')
MAX_SETTINGS_LINE = 16 * 1024
_SIZE = re.compile(r"^\s*(\d{1,6})\s*x\s*(\d{1,6})\s*$")

# A1111 setting name -> our field name and how to read its value.
_KNOWN = {
    "Steps": ("steps", "int"),
    "Sampler": ("sampler", "str"),
    "Schedule type": ("scheduler", "str"),
    "CFG scale": ("cfgScale", "float"),
    "Seed": ("seed", "int"),
    "Size": ("size", "size"),
    "Model hash": ("modelHash", "str"),
    "Model": ("model", "str"),
    "Clip skip": ("clipSkip", "int"),
    "Denoising strength": ("denoisingStrength", "float"),
}
FIELD_LABELS = (
    ("prompt", "Prompt"), ("negativePrompt", "Negative prompt"), ("seed", "Seed"), ("steps", "Steps"),
    ("sampler", "Sampler"), ("scheduler", "Schedule type"), ("cfgScale", "CFG scale"), ("size", "Size"),
    ("modelHash", "Model hash"), ("model", "Model"),
)


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    return "".join(ch for ch in text[:limit] if ch in "\n\t" or ch.isprintable()).strip()


def _number(raw: Any, kind: str):
    try:
        if kind == "int":
            if isinstance(raw, float) and not raw.is_integer():
                return None
            value = int(str(raw).strip()) if not isinstance(raw, (int, float)) else int(raw)
            return value if -(2**63) <= value < 2**64 else None
        value = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
        return value if math.isfinite(value) else None
    except (TypeError, ValueError, OverflowError):
        return None


def _setting(meta: dict[str, Any], key: str, raw: str) -> None:
    name, kind = _KNOWN.get(key, (None, "str"))
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        try:
            decoded = json.loads(raw)
            raw = decoded if isinstance(decoded, str) else raw
        except (ValueError, RecursionError):
            pass
    raw = _clip(raw, 1024)
    if name is None:
        other = meta.setdefault("other", {})
        if len(other) < MAX_SETTINGS:
            other[_clip(key, 64)] = raw
        return
    if kind == "size":
        match = _SIZE.match(raw)
        if match:
            meta["size"] = f"{int(match.group(1))}x{int(match.group(2))}"
        return
    if kind in ("int", "float"):
        value = _number(raw, kind)
        if value is not None:
            meta[name] = value
        return
    if raw:
        meta[name] = raw


def parse_a1111(text: str) -> dict[str, Any]:
    """The fields of an A1111 parameters text; {} for text that is not one."""
    if not isinstance(text, str) or not text.strip():
        return {}
    text = text[:MAX_TEXT_CHARS].replace("\r\n", "\n")
    *lines, last = text.strip().split("\n")
    settings = _SETTING.findall(last) if len(last) <= MAX_SETTINGS_LINE else []
    if len(settings) < 3:
        # No settings line: the whole text is the prompt.
        lines.append(last)
        settings = []
    prompt: list[str] = []
    negative: list[str] = []
    target = prompt
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("Negative prompt:"):
            target = negative
            stripped = stripped[len("Negative prompt:"):].strip()
        target.append(stripped)
    meta: dict[str, Any] = {}
    if prompt_text := _clip("\n".join(prompt)):
        meta["prompt"] = prompt_text
    if negative_text := _clip("\n".join(negative)):
        meta["negativePrompt"] = negative_text
    for key, raw in settings:
        _setting(meta, key.strip(), raw.strip())
    return meta


# --- ComfyUI ------------------------------------------------------------------------------

_SAMPLERS = ("KSampler", "KSamplerAdvanced")
_TEXT_INPUTS = ("text", "text_g", "string", "value", "prompt")


def _node(graph: dict, ref: Any) -> dict | None:
    if isinstance(ref, list) and ref and isinstance(ref[0], (str, int)):
        node = graph.get(str(ref[0]))
        return node if isinstance(node, dict) else None
    return None


def _inputs(node: dict | None) -> dict:
    if node is None:
        return {}
    inputs = node.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _follow_text(graph: dict, ref: Any) -> str | None:
    """The prompt text behind a sampler's `positive`/`negative` link, through encoders and primitives."""
    for _ in range(MAX_LINK_STEPS):
        if isinstance(ref, str):
            return _clip(ref)
        node = _node(graph, ref)
        if node is None:
            return None
        inputs = _inputs(node)
        nxt = None
        for name in _TEXT_INPUTS:
            if name in inputs:
                nxt = inputs[name]
                break
        if nxt is None:
            # Conditioning combiners and the like: follow their first conditioning input.
            nxt = inputs.get("conditioning") or inputs.get("conditioning_1") or inputs.get("conditioning_to")
        ref = nxt
    return None


def _follow_model(graph: dict, ref: Any) -> str | None:
    for _ in range(MAX_LINK_STEPS):
        node = _node(graph, ref)
        if node is None:
            return None
        inputs = _inputs(node)
        for name in ("ckpt_name", "unet_name", "model_name"):
            if isinstance(inputs.get(name), str):
                return _clip(inputs[name], 512)
        ref = inputs.get("model")
    return None


def _follow_size(graph: dict, ref: Any) -> str | None:
    for _ in range(MAX_LINK_STEPS):
        node = _node(graph, ref)
        if node is None:
            return None
        inputs = _inputs(node)
        width, height = _number(inputs.get("width"), "int"), _number(inputs.get("height"), "int")
        if width and height and 0 < width < 100_000 and 0 < height < 100_000:
            return f"{width}x{height}"
        ref = inputs.get("samples") or inputs.get("latent_image") or inputs.get("latent")
    return None


def parse_comfyui(prompt_json: str) -> dict[str, Any]:
    """The fields of a ComfyUI API-format `prompt` graph; {} when it cannot be read."""
    if not isinstance(prompt_json, str) or len(prompt_json) > MAX_COMFY_JSON_CHARS:
        return {}
    try:
        graph = json.loads(prompt_json)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(graph, dict) or len(graph) > MAX_COMFY_NODES:
        return {}
    samplers = [
        (key, node) for key, node in graph.items()
        if isinstance(node, dict) and node.get("class_type") in _SAMPLERS
    ]
    if not samplers:
        return {}

    def order(item):
        key = item[0]
        return (0, int(key)) if key.isdigit() else (1, 0)

    _, sampler = sorted(samplers, key=order)[0]
    inputs = _inputs(sampler)
    meta: dict[str, Any] = {}
    if text := _follow_text(graph, inputs.get("positive")):
        meta["prompt"] = text
    if text := _follow_text(graph, inputs.get("negative")):
        meta["negativePrompt"] = text
    seed = _number(inputs.get("seed", inputs.get("noise_seed")), "int")
    if seed is not None:
        meta["seed"] = seed
    steps = _number(inputs.get("steps"), "int")
    if steps is not None:
        meta["steps"] = steps
    cfg = _number(inputs.get("cfg"), "float")
    if cfg is not None:
        meta["cfgScale"] = cfg
    if isinstance(inputs.get("sampler_name"), str):
        meta["sampler"] = _clip(inputs["sampler_name"], 128)
    if isinstance(inputs.get("scheduler"), str):
        meta["scheduler"] = _clip(inputs["scheduler"], 128)
    if size := _follow_size(graph, inputs.get("latent_image")):
        meta["size"] = size
    if model := _follow_model(graph, inputs.get("model")):
        meta["model"] = model
    return meta


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    # A1111 quotes values holding its separators.
    return json.dumps(text) if ("," in text or ":" in text or "\n" in text) else text


def format_a1111(meta: dict[str, Any]) -> str:
    """A1111 parameters text for parsed fields (the inverse of parse_a1111 for what we keep)."""
    lines = []
    if meta.get("prompt"):
        lines.append(str(meta["prompt"]))
    if meta.get("negativePrompt"):
        lines.append(f"Negative prompt: {meta['negativePrompt']}")
    settings = []
    for key, (name, _kind) in _KNOWN.items():
        if name in meta and meta[name] not in (None, ""):
            settings.append(f"{key}: {_fmt(meta[name])}")
    if settings:
        lines.append(", ".join(settings))
    return "\n".join(lines)


def generation_meta(*, parameters: str = "", comfy_prompt: str = "") -> tuple[str, dict[str, Any]]:
    """(A1111 text, parsed fields) from whatever the image carried; A1111 text wins over a ComfyUI graph."""
    parameters = _clip(parameters or "", MAX_TEXT_CHARS)
    meta = parse_a1111(parameters)
    if not meta and comfy_prompt:
        meta = parse_comfyui(comfy_prompt)
        parameters = format_a1111(meta) if meta else ""
    return parameters, meta


def display_fields(meta: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, label, text) for the fields a page shows, in a fixed order."""
    out = []
    for key, label in FIELD_LABELS:
        value = meta.get(key) if isinstance(meta, dict) else None
        if value not in (None, ""):
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            out.append((key, label, text))
    return out
