"""What is in a model file: architecture, kind, rank, dtypes, hashes, metadata.

``inspect_file`` backs ``python -m merges.engine inspect`` and the upload
pipeline, so everything it reads is attacker-controlled: metadata is parsed
with ``json.loads`` only (never ``eval``), every string and list it returns is
capped, numbers must be finite, and malformed fields are dropped with a
warning instead of failing the whole inspection. Pickle checkpoints are
recognised by their bytes (pickle opcode or zip layout, whatever the file is
called) and are never unpickled here.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections import Counter
from collections.abc import Mapping
from typing import Any

from merges.engine.booru_tags import is_generic, specificity
from merges.engine.detect import Detection, detect
from merges.engine.hashing import hash_file
from merges.engine.safetensors_io import (
    Header,
    SafetensorsError,
    SafetensorsReader,
    read_header,
    sniff_pickle_or_zip,
)

__all__ = ["inspect_file", "suggest_trigger_words", "summarize_metadata"]

# Caps on what attacker-written metadata can make us parse and return.
MAX_JSON_CHARS = 1 << 20  # ss_tag_frequency of big datasets is a few 100 KB
MAX_RECIPE_CHARS = 64 << 10
MAX_STRING = 512
MAX_TAG_CHARS = 100
MAX_TAGS_SCANNED = 200_000
MAX_TRIGGER_WORDS = 100
MAX_LIST = 64
MAX_MERGE_MODELS = 64
MAX_ALPHAS_READ = 4096

KOHYA_FIELDS = (
    "ss_base_model_version",
    "ss_sd_model_name",
    "ss_network_module",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
    "ss_output_name",
    "ss_v2",
    "ss_clip_skip",
    "ss_resolution",
    "ss_num_train_images",
    "ss_training_comment",
    "sshs_model_hash",
    "sshs_legacy_hash",
    "modelspec.architecture",
    "modelspec.title",
    "modelspec.trigger_phrase",
)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _cap(value: str, limit: int = MAX_STRING) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def _load_json(text: str, limit: int) -> Any:
    """``json.loads`` within a size cap; ``None`` for anything malformed."""
    if not isinstance(text, str) or len(text) > limit:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and int strings over Python's
        # digit limit; RecursionError covers deeply nested arrays.
        return None


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer of a few thousand digits
        return None
    return number if math.isfinite(number) else None


def suggest_trigger_words(tag_frequency_json: str, limit: int = 10) -> list[str]:
    """Tags of kohya's ``ss_tag_frequency`` that are specific to this dataset, most telling first.

    The JSON is ``{dataset: {tag: count}}``. A tag's weight is tf-idf style:
    its count over all datasets (relative to the most frequent tag) times how
    rare it is on Danbooru (``booru_tags.specificity``). Tags on a large share
    of all anime images (``1girl``, ``solo``, ``smile``…, see
    ``booru_tags.is_generic``) describe the pictures, not what was learnt, and
    are left out. Malformed parts are skipped; garbage in gives ``[]``, never
    an exception. Ties are broken by the tag so the order does not depend on
    the file's key order.
    """
    limit = max(0, min(int(limit), MAX_TRIGGER_WORDS))
    data = _load_json(tag_frequency_json, MAX_JSON_CHARS)
    if not isinstance(data, dict) or limit == 0:
        return []
    totals: Counter[str] = Counter()
    scanned = 0
    for tags in data.values():
        if not isinstance(tags, dict):
            continue
        for tag, count in tags.items():
            scanned += 1
            if scanned > MAX_TAGS_SCANNED:
                break
            number = _finite_number(count)
            if number is None or number <= 0 or not isinstance(tag, str):
                continue
            # kohya keeps the leading space of comma-separated captions.
            name = " ".join(tag.split())
            if name and len(name) <= MAX_TAG_CHARS and name.isprintable():
                totals[name] += number
    if not totals:
        return []
    top = max(totals.values())
    weights = {tag: count / top * specificity(tag) for tag, count in totals.items() if not is_generic(tag)}
    ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
    return [tag for tag, _ in ranked[:limit]]


def _clean_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _finite_number(value)
    if isinstance(value, str):
        return _cap(value)
    return None


def _clean_recipe(raw: Any) -> dict[str, Any] | None:
    """Scalar fields (and short lists of scalars) of an A1111/supermerger recipe."""
    if isinstance(raw, str):
        raw = _load_json(raw, MAX_RECIPE_CHARS)
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in list(raw.items())[:MAX_LIST]:
        if not isinstance(key, str) or len(key) > 64:
            continue
        if isinstance(value, list):
            if len(value) <= MAX_LIST and all(not isinstance(v, (list, dict)) for v in value):
                out[key] = [_clean_scalar(v) for v in value]
        elif not isinstance(value, dict):
            out[key] = _clean_scalar(value)
    return out


def _merge_models(raw: str) -> list[dict[str, Any]] | None:
    """A1111's ``sd_merge_models``: ``{sha256: {name, legacy_hash, sd_merge_recipe}}``."""
    data = _load_json(raw, MAX_RECIPE_CHARS)
    if not isinstance(data, dict):
        return None
    models = []
    for sha256, info in list(data.items())[:MAX_MERGE_MODELS]:
        if not isinstance(sha256, str) or not _HEX64.match(sha256) or not isinstance(info, dict):
            continue
        entry: dict[str, Any] = {"sha256": sha256.lower()}
        for field in ("name", "legacy_hash"):
            if isinstance(info.get(field), str):
                entry[field] = _cap(info[field], 256)
        recipe = _clean_recipe(info.get("sd_merge_recipe"))
        if recipe is not None:
            entry["recipe"] = recipe
        models.append(entry)
    return models


def summarize_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The parts of ``__metadata__`` worth showing, parsed defensively."""
    fields = {k: _cap(metadata[k]) for k in KOHYA_FIELDS if isinstance(metadata.get(k), str)}
    summary: dict[str, Any] = {
        "fields": fields,
        "trigger_words": suggest_trigger_words(metadata.get("ss_tag_frequency", "")),
        "merge_recipe": None,
        "merge_models": None,
        "keys": sorted(_cap(k, 128) for k in list(metadata)[:MAX_LIST * 4]),
        "warnings": [],
    }
    if "sd_merge_recipe" in metadata:
        summary["merge_recipe"] = _clean_recipe(metadata["sd_merge_recipe"])
        if summary["merge_recipe"] is None:
            summary["warnings"].append("sd_merge_recipe is not a JSON object; ignored")
    if "sd_merge_models" in metadata:
        summary["merge_models"] = _merge_models(metadata["sd_merge_models"])
        if summary["merge_models"] is None:
            summary["warnings"].append("sd_merge_models is not a JSON object; ignored")
    if "ss_tag_frequency" in metadata and not summary["trigger_words"]:
        summary["warnings"].append("ss_tag_frequency holds no usable tags")
    return summary


def _metadata_base(fields: Mapping[str, str]) -> str | None:
    """Base model named by kohya's or modelspec's metadata (a hint only)."""
    version = fields.get("ss_base_model_version", "")
    spec = fields.get("modelspec.architecture", "")
    if version.startswith("sdxl") or spec.startswith("stable-diffusion-xl"):
        return "sdxl"
    if version.startswith("sd_v2") or fields.get("ss_v2") == "True" or spec.startswith("stable-diffusion-v2"):
        return "sd2"
    if version.startswith("sd_v1") or spec.startswith("stable-diffusion-v1"):
        return "sd1"
    if version.startswith("flux") or spec.startswith("flux"):
        return "flux"
    return None


def _read_alphas(path: str | os.PathLike[str], header: Header) -> dict[str, float]:
    names = [k for k, t in header.tensors.items() if k.endswith(".alpha") and t.numel == 1]
    out: dict[str, float] = {}
    if not names:
        return out
    with SafetensorsReader(path) as reader:
        for name in names[:MAX_ALPHAS_READ]:
            info = header.tensors[name]
            if info.dtype in ("BOOL",):
                continue
            value = float(reader.read(name).reshape(-1)[0].double())
            if math.isfinite(value):
                out[name] = value
    return out


def _pickle_container(path: str | os.PathLike[str], prefix: bytes) -> str | None:
    kind = sniff_pickle_or_zip(prefix)
    if kind != "zip":
        return kind
    # PyTorch's zip format keeps the pickle in <archive>/data.pkl; reading the
    # zip directory lists names only, nothing is extracted or unpickled.
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:100_000]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return "zip" if any(n.endswith("data.pkl") for n in names) else None


def _dtype_summary(header: Header) -> tuple[dict[str, int], str | None, int]:
    counts: Counter[str] = Counter()
    params: Counter[str] = Counter()
    for info in header.tensors.values():
        counts[info.dtype] += 1
        params[info.dtype] += info.numel
    dominant = max(params, key=lambda d: (params[d], d)) if params else None
    return dict(sorted(counts.items())), dominant, sum(params.values())


def inspect_file(path: str | os.PathLike[str], *, hashes: bool = True) -> dict[str, Any]:
    """Describe a model file. Raises ``SafetensorsError`` for a file that is
    neither well-formed safetensors nor a pickle/zip checkpoint."""
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        f.seek(0)
        try:
            header: Header | None = read_header(f, size)
        except SafetensorsError as exc:
            if exc.code != "not_safetensors":
                raise
            header = None
    result: dict[str, Any] = {
        "format": "safetensors",
        "file_size": size,
        "kind": "unknown",
        "architecture": None,
        "lora": None,
        "embedding_vectors": None,
        "tensor_count": 0,
        "parameters": 0,
        "dtypes": {},
        "dtype": None,
        "hashes": None,
        "metadata": None,
        "warnings": [],
    }
    if header is None:
        container = _pickle_container(path, prefix)
        if container is None:
            raise SafetensorsError("not_safetensors", "neither a safetensors file nor a PyTorch checkpoint")
        result.update(format="pickle", container=container)
        result["warnings"].append(
            "pickle checkpoint: contents not inspected (loading it can run code); convert it to safetensors"
        )
    else:
        result.update(_describe(path, header))
    if hashes:
        result["hashes"] = hash_file(path)
    return result


def _describe(path: str | os.PathLike[str], header: Header) -> dict[str, Any]:
    shapes = header.shapes
    is_lora = any(k.endswith((".lora_down.weight", ".hada_w1_a", ".lokr_w1", ".lokr_w1_a")) for k in shapes)
    detection: Detection = detect(shapes, alphas=_read_alphas(path, header) if is_lora else None)
    dtypes, dominant, parameters = _dtype_summary(header)
    summary = summarize_metadata(header.metadata)
    warnings = list(summary.pop("warnings"))
    architecture = detection.arch if detection.kind != "lora" else detection.base
    hinted = _metadata_base(summary["fields"])
    if architecture is None and hinted is not None:
        architecture = hinted
        warnings.append(f"architecture {hinted} taken from metadata, not from the tensors")
    elif hinted is not None and hinted != architecture and detection.kind in ("checkpoint", "lora"):
        warnings.append(f"metadata says {hinted}, the tensors say {architecture}")
    lora = None
    if detection.kind == "lora":
        lora = {
            "kind": detection.lora_kind,
            "base": detection.base,
            "rank": detection.rank,
            "alpha": detection.alpha,
            "conv_rank": detection.conv_rank,
            "modules": detection.modules,
        }
        if "DoRA" in detection.notes:
            warnings.append("DoRA LoRA: can be listed but not baked into a checkpoint")
    return {
        "kind": detection.kind,
        "architecture": architecture,
        "lora": lora,
        "embedding_vectors": detection.vectors or None,
        "tensor_count": len(shapes),
        "parameters": parameters,
        "dtypes": dtypes,
        "dtype": dominant,
        "metadata": summary,
        "warnings": warnings,
    }
