"""What the model/version form can guess from an uploaded file.

The facts come from the engine's `inspect_file` (kind, architecture, LoRA
rank and alpha, and its defensive summary of `__metadata__`: kohya fields,
trigger words from `ss_tag_frequency`, `sd_merge_recipe`/`sd_merge_models`).
This module only maps them onto the catalogue's vocabulary. Metadata is
attacker-controlled text: it is only ever rendered escaped.
"""
from __future__ import annotations

from pathlib import Path

from hub.catalog.models import Model, ModelVersion

MAX_TRIGGER_WORDS = 10

_LORA_TYPES = {
    "lora": Model.Type.LORA,
    "locon": Model.Type.LOCON,
    # LoKr is a LyCORIS format; the catalogue files LyCORIS under LoCon, as Civitai once did.
    "lokr": Model.Type.LOCON,
    "loha": Model.Type.LOHA,
}
_KIND_TYPES = {
    "checkpoint": Model.Type.CHECKPOINT,
    "vae": Model.Type.VAE,
    "embedding": Model.Type.TEXTUAL_INVERSION,
}
_ARCH_BASES = {
    "sd1": ModelVersion.BaseModel.SD_1_5,
    "sd2": ModelVersion.BaseModel.SD_2_1,
    "sdxl": ModelVersion.BaseModel.SDXL_1_0,
    "flux": ModelVersion.BaseModel.FLUX_1_D,
    "sd3": ModelVersion.BaseModel.SD_3_5,
}


def _number(value) -> float | None:
    try:
        n = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n == n and abs(n) < 1e9 else None


def _base_model(arch: str | None, fields: dict[str, str]) -> str | None:
    hints = " ".join(
        str(fields.get(k, ""))[:500].lower() for k in ("ss_sd_model_name", "modelspec.architecture", "modelspec.title")
    )
    if arch == "sdxl":
        # Pony and Illustrious are SDXL fine-tunes that people file separately.
        if "pony" in hints:
            return ModelVersion.BaseModel.PONY
        if "illustrious" in hints:
            return ModelVersion.BaseModel.ILLUSTRIOUS
    if arch == "flux" and "schnell" in hints:
        return ModelVersion.BaseModel.FLUX_1_S
    return _ARCH_BASES.get(arch or "")


def _name(filename: str, fields: dict[str, str]) -> str:
    for key in ("modelspec.title", "ss_output_name"):
        value = " ".join(str(fields.get(key, "")).split()).rstrip("…")
        if value:
            return value[:200]
    return Path(filename).stem.replace("_", " ").strip()[:200] or "Untitled"


def form_suggestions(*, filename: str, header_summary: dict, format: str) -> dict:
    """Initial values for the model/version form, keyed as `model_create`/`model_version_create` name them."""
    inspected = header_summary.get("inspect") or {}
    metadata = inspected.get("metadata") or {}
    fields = metadata.get("fields") or {}
    kind = inspected.get("kind")
    lora = inspected.get("lora") or {}
    if kind == "lora":
        model_type = _LORA_TYPES.get(lora.get("kind") or "lora", Model.Type.LORA)
    elif kind in _KIND_TYPES:
        model_type = _KIND_TYPES[kind]
    else:
        # Pickles are not inspected (that would mean loading them); they are almost always checkpoints.
        model_type = Model.Type.CHECKPOINT if format != "SafeTensor" else Model.Type.OTHER
    merge = None
    if metadata.get("merge_recipe") or metadata.get("merge_models"):
        merge = {"recipe": metadata.get("merge_recipe") or {}, "models": metadata.get("merge_models") or []}
    rank = lora.get("rank") or _number(fields.get("ss_network_dim"))
    alpha = lora.get("alpha")
    if alpha is None:
        alpha = _number(fields.get("ss_network_alpha"))
    return {
        "name": _name(filename, fields),
        "type": model_type,
        "checkpoint_type": Model.CheckpointType.MERGE if (merge and model_type == Model.Type.CHECKPOINT) else "",
        "base_model": _base_model(inspected.get("architecture"), fields),
        "trained_words": list(metadata.get("trigger_words") or [])[:MAX_TRIGGER_WORDS],
        "rank": int(rank) if rank else None,
        "alpha": alpha,
        "merge": merge,
        "warnings": list(inspected.get("warnings") or []),
    }
