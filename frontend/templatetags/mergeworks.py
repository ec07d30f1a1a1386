"""Template helpers: Markdown, licence badges, file hashes, query-string links."""
from __future__ import annotations

from dataclasses import dataclass

from django import template

from frontend.markdown import render_markdown
from hub.catalog.models import Model
from hub.files.models import ModelFile

register = template.Library()


# Model.Type values are Civitai's API spellings; people read these.
TYPE_LABELS = {
    Model.Type.TEXTUAL_INVERSION: "Textual Inversion",
    Model.Type.CONTROLNET: "ControlNet",
}


def type_label(value: str) -> str:
    return TYPE_LABELS.get(value, value)


register.filter("type_label", type_label)


@register.filter(name="markdown")
def markdown_filter(text: str):
    return render_markdown(text)


_KIND_LABELS = {"checkpoint": "Checkpoint", "vae": "VAE", "embedding": "Textual inversion embedding"}
_LORA_LABELS = {"lora": "LoRA", "locon": "LoCon (LyCORIS)", "loha": "LoHa (LyCORIS)", "lokr": "LoKr (LyCORIS)"}
_ARCH_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "flux": "Flux", "sd3": "SD 3"}


@register.filter
def detected_label(inspected: dict | None) -> str:
    """The engine's inspection in words: "LoRA for SD 1.x", not "lora (lora) for sd1"."""
    inspected = inspected or {}
    kind = str(inspected.get("kind") or "")
    if kind == "lora":
        lora_kind = str((inspected.get("lora") or {}).get("kind") or "lora")
        label = _LORA_LABELS.get(lora_kind, f"LoRA ({lora_kind})")
    else:
        label = _KIND_LABELS.get(kind, kind)
    arch = inspected.get("architecture")
    return f"{label} for {_ARCH_LABELS.get(arch, arch)}" if arch else label


@dataclass(frozen=True)
class LicenceTerm:
    allowed: bool
    label: str


# What each permission governs, in Civitai's order and, where the meaning is the
# same, its words. Civitai's "Run on Civitai" (RentCivit) lets the site's own
# image generator use the model; here that is generating images on Mergeworks,
# which has nothing to do with merging: merges are "Share merges using this model".
LICENCE_LABELS = {
    "allow_no_credit": "Use the model without crediting the creator",
    Model.CommercialUse.IMAGE: "Sell images they generate",
    Model.CommercialUse.RENT_CIVIT: "Generate images with it on Mergeworks",
    Model.CommercialUse.RENT: "Run on services that generate images for money",
    "allow_derivatives": "Share merges using this model",
    Model.CommercialUse.SELL: "Sell this model or merges using this model",
    "allow_different_license": "Have different permissions when sharing merges",
}


@register.filter
def licence_terms(model: Model) -> list[LicenceTerm]:
    """The permissions Civitai shows for a model, in its order, labelled by what each governs."""
    uses = set(model.allow_commercial_use or [])
    return [
        LicenceTerm(model.allow_no_credit, LICENCE_LABELS["allow_no_credit"]),
        LicenceTerm(Model.CommercialUse.IMAGE in uses, LICENCE_LABELS[Model.CommercialUse.IMAGE]),
        LicenceTerm(Model.CommercialUse.RENT_CIVIT in uses, LICENCE_LABELS[Model.CommercialUse.RENT_CIVIT]),
        LicenceTerm(Model.CommercialUse.RENT in uses, LICENCE_LABELS[Model.CommercialUse.RENT]),
        LicenceTerm(model.allow_derivatives, LICENCE_LABELS["allow_derivatives"]),
        LicenceTerm(Model.CommercialUse.SELL in uses, LICENCE_LABELS[Model.CommercialUse.SELL]),
        LicenceTerm(model.allow_different_license, LICENCE_LABELS["allow_different_license"]),
    ]


HASH_FIELDS = [
    ("SHA256", "sha256"),
    ("AutoV1", "autov1"),
    ("AutoV2", "autov2"),
    ("AutoV3", "autov3"),
    ("CRC32", "crc32"),
    ("BLAKE3", "blake3"),
]


@register.filter
def file_hashes(model_file: ModelFile) -> list[tuple[str, str]]:
    """(kind, value) for every hash the file has, upper-case as Civitai shows them.

    AutoV1 is absent for files under 2 MiB, so empty values are left out.
    """
    return [(label, getattr(model_file, attr).upper()) for label, attr in HASH_FIELDS if getattr(model_file, attr)]


TRAINING_KEYS = [
    ("Base model", "ss_base_model_version"),
    ("Trained on", "ss_sd_model_name"),
    ("Network", "ss_network_module"),
    ("Rank (dim)", "ss_network_dim"),
    ("Alpha", "ss_network_alpha"),
    ("Output name", "ss_output_name"),
]


@register.filter
def training_metadata(model_file: ModelFile) -> list[tuple[str, str]]:
    """The kohya training facts a file declares (uploader-written, so escaped like any text)."""
    metadata = (model_file.header_summary or {}).get("metadata") or {}
    return [(label, str(metadata[key])[:200]) for label, key in TRAINING_KEYS if metadata.get(key)]


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with `changes` applied (None removes a key), for filter and page links."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def thousands(value) -> str:
    """12345 -> "12,345"."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""


@register.filter
def compact_count(value) -> str:
    """1234 -> "1.2K", as download counters on model cards read."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return ""
    for limit, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if n >= limit:
            text = f"{n / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return str(n)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@register.filter
def job_summary(job) -> str:
    """One line saying what a merge job is doing; recipe-jobs.js writes the same from the job API."""
    if job.status == "queued":
        return "Waiting for a worker"
    if job.status == "running":
        if job.phase == "merging" and job.tensors_total:
            text = f"Merging: {job.tensors_done:,} / {job.tensors_total:,} tensors"
            if job.bytes_total:
                text += f" · {_size(job.bytes_done)} of {_size(job.bytes_total)}"
            return f"{text} · {job.progress * 100:.0f}%"
        if job.phase == "storing":
            return "Storing the output"
        if job.phase == "merging":
            return "Merging: reading the inputs"
        return "Fetching the input models"
    if job.status == "succeeded":
        if not job.tensors_total:
            return "Done: this exact merge had already been published"
        text = f"Done: {job.tensors_total:,} tensors"
        return f"{text} in {job.engine_seconds:.1f} s" if job.engine_seconds is not None else text
    if job.status == "cancelled":
        return "Cancelled"
    return "Failed"


@register.filter
def job_progress_known(job) -> bool:
    """Whether the job's progress bar can show a fraction (otherwise it shows activity only)."""
    if job.status == "running":
        return job.phase == "merging" and bool(job.tensors_total)
    return job.status != "queued"
