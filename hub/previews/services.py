"""Requesting previews: validate, resolve files, create the job, enqueue it after commit.

Entry points:

* ``render_request_create(model_version=…, requested_by=…, spec=None)``: from
  the API, the model page and the registry. With ``spec=None`` the recipe's
  ``preview`` block is used when the version is a merge output, else the
  default prompt set of its base model.
* ``render_request_for_merge(model_version_id=…)``: called by the registry
  after a merge succeeds; never raises (a failed preview must not fail a merge).

An explicit spec or input that is invalid raises ``PreviewError`` (the caller
sees it at once). A recipe's own ``preview`` block that is invalid, or inputs
that cannot be rendered for an automatic request, give a job that is failed
from the start with the reason, so the model page shows why there is no grid.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.utils import timezone

from hub.catalog.models import Model, ModelVersion
from hub.catalog.selectors import version_get_for
from hub.files.models import ModelFile
from hub.previews import conf
from hub.previews.bases import BaseProfile, profile_for
from hub.previews.models import LoraPreviewBase, PreviewGrid, RenderJob
from hub.previews.renderer.errors import RenderSpecError
from hub.previews.renderer.spec import RENDERER_VERSION, RenderSpec, parse_spec

logger = logging.getLogger(__name__)

LORA_TYPES = (Model.Type.LORA, Model.Type.LOCON)
RENDER_TASK = "workers.tasks.render.render_job_run"


class PreviewError(Exception):
    """A preview request that cannot be served; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, code: str = "invalid", status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.field = field


# --- resolving what to render ----------------------------------------------------------------


def _render_file(version: ModelVersion) -> ModelFile:
    """The version's file to render: its primary (else first) safetensors file."""
    candidates = [f for f in version.files.all() if f.format == ModelFile.Format.SAFETENSOR]
    candidates.sort(key=lambda f: (not f.primary, f.pk))
    if not candidates:
        raise PreviewError(f"version {version.pk} has no safetensors file to render", code="no_file")
    return candidates[0]


def _file_ref(model_file: ModelFile) -> dict[str, Any]:
    return {
        "sha256": model_file.sha256,
        "storage_key": model_file.storage_key,
        "size": model_file.size_bytes,
        "name": model_file.name,
        "autov2": model_file.autov2 or model_file.sha256[:10],
        "autov3": model_file.autov3 or "",
        "model_version": model_file.version_id,
    }


def _merge_output(version: ModelVersion) -> Any:
    try:
        return version.merge_output
    except (ObjectDoesNotExist, AttributeError):
        return None


def _profile(version: ModelVersion) -> BaseProfile:
    profile = profile_for(version.base_model)
    if profile is None:
        raise PreviewError(f"previews are not available for {version.base_model} models", code="unsupported_base")
    return profile


def _default_spec(profile: BaseProfile) -> dict[str, Any]:
    return {**profile.defaults.as_dict(), **conf.default_spec_overrides()}


def _parse(data: Mapping[str, Any], profile: BaseProfile) -> RenderSpec:
    defaults = parse_spec(_default_spec(profile), max_images=10**6)
    return parse_spec(data, defaults=defaults, max_images=conf.max_images())


def _lora_base(version: ModelVersion, base_version: ModelVersion | None, user) -> ModelVersion:
    if base_version is None:
        row = LoraPreviewBase.objects.select_related("checkpoint", "checkpoint__model").filter(
            base_model=version.base_model
        ).first()
        if row is None:
            raise PreviewError(
                f"no default checkpoint is set for previewing {version.base_model} LoRAs; choose a base checkpoint",
                code="no_base",
                field="baseVersionId",
            )
        base_version = row.checkpoint
    elif user is not None and version_get_for(user, base_version.pk) is None:
        raise PreviewError(f"model version {base_version.pk} not found", code="not_found", status=404)
    if base_version.model.type != Model.Type.CHECKPOINT:
        raise PreviewError("a LoRA is previewed on a checkpoint", code="bad_base", field="baseVersionId")
    if _profile(base_version).arch != _profile(version).arch:
        raise PreviewError(
            f"a {version.base_model} LoRA cannot be previewed on a {base_version.base_model} checkpoint",
            code="bad_base",
            field="baseVersionId",
        )
    return base_version


def _recipe_sweep_inputs(version: ModelVersion) -> tuple[dict[str, Any], dict[str, Any]]:
    """For a merge output: the two inputs of its recipe's first weighted_sum over recipe inputs."""
    output = _merge_output(version)
    job = getattr(output, "job", None) if output is not None else None
    if output is None or job is None:
        raise PreviewError(
            "an alpha sweep needs a second checkpoint (secondaryVersionId) or a merge output",
            code="no_secondary",
            field="secondaryVersionId",
        )
    document = output.recipe_version.document
    for step in document.get("steps", []):
        names = step.get("inputs", [])
        if step.get("op") == "weighted_sum" and len(names) == 2 and all(n in job.inputs for n in names):
            return tuple({**job.inputs[n], "name": n, "autov2": job.inputs[n]["sha256"][:10]} for n in names)  # type: ignore[return-value]
    raise PreviewError("the recipe has no weighted_sum of two of its inputs to sweep", code="no_sweep")


def _resolve(
    version: ModelVersion,
    spec: RenderSpec,
    *,
    base_version: ModelVersion | None,
    secondary_version: ModelVersion | None,
    user,
) -> tuple[dict[str, Any], ModelVersion | None, ModelVersion | None]:
    """Files for the job: ``{checkpoint, lora?, secondary?}`` plus the base and secondary versions used."""
    kind = version.model.type
    if spec.is_sweep:
        if kind != Model.Type.CHECKPOINT:
            raise PreviewError("alpha sweeps are rendered for checkpoints", code="bad_sweep", field="alphas")
        if secondary_version is not None:
            if user is not None and version_get_for(user, secondary_version.pk) is None:
                raise PreviewError(f"model version {secondary_version.pk} not found", code="not_found", status=404)
            if secondary_version.model.type != Model.Type.CHECKPOINT:
                raise PreviewError("the second checkpoint must be a checkpoint", field="secondaryVersionId")
            if _profile(secondary_version).arch != _profile(version).arch:
                raise PreviewError("both checkpoints must have the same architecture", field="secondaryVersionId")
            first, second = _file_ref(_render_file(version)), _file_ref(_render_file(secondary_version))
        else:
            first, second = _recipe_sweep_inputs(version)
        return {"checkpoint": first, "secondary": second}, None, secondary_version
    if kind == Model.Type.CHECKPOINT:
        if base_version is not None:
            raise PreviewError("a base checkpoint is only chosen for LoRAs", field="baseVersionId")
        return {"checkpoint": _file_ref(_render_file(version))}, None, None
    if kind in LORA_TYPES:
        base = _lora_base(version, base_version, user)
        return {"checkpoint": _file_ref(_render_file(base)), "lora": _file_ref(_render_file(version))}, base, None
    raise PreviewError(f"previews are not rendered for {version.model.get_type_display()} files", code="unsupported_type")


def render_key(*, arch: str, config: str, spec: RenderSpec, inputs: Mapping[str, Mapping[str, Any]]) -> str:
    payload = {
        "renderer": RENDERER_VERSION,
        "arch": arch,
        "config": config,
        "spec": spec.as_dict(),
        "files": {role: ref["sha256"] for role, ref in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- creating jobs -------------------------------------------------------------------------------


def _enqueue(job_id: int) -> None:
    """Send the job to the `gpu` queue by task name (called on commit; the route comes from settings)."""
    from hub.tasks_enqueue import task_send

    task_send(RENDER_TASK, args=[job_id])


def _failed_job(version: ModelVersion, user, trigger: str, reason: str, spec: Any) -> RenderJob:
    now = timezone.now()
    return RenderJob.objects.create(
        model_version=version,
        requested_by=user,
        trigger=trigger,
        spec=spec if isinstance(spec, dict) else {},
        render_key="",
        status=RenderJob.Status.FAILED,
        error=reason,
        reason=reason,
        finished_at=now,
    )


def render_request_create(
    *,
    model_version: ModelVersion,
    requested_by,
    spec: Mapping[str, Any] | None = None,
    base_version: ModelVersion | None = None,
    secondary_version: ModelVersion | None = None,
    trigger: str = RenderJob.Trigger.API,
    attach_examples: bool = False,
) -> RenderJob:
    """Ask for a preview grid of ``model_version``; returns the job (new, already running, or already done).

    The same request (same files, base config and spec) shares one active
    job, and a request whose grid exists gets a finished job pointing at it.
    """
    automatic = spec is None
    profile = _profile(model_version)
    if automatic:
        output = _merge_output(model_version)
        document = output.recipe_version.document if output is not None else {}
        raw = document.get("preview") or {}
        try:
            parsed = _parse(raw, profile)
        except RenderSpecError as exc:
            return _failed_job(model_version, requested_by, trigger, f"invalid preview settings: {exc}", raw)
    else:
        try:
            parsed = _parse(spec, profile)
        except RenderSpecError as exc:
            raise PreviewError(str(exc), field=exc.field) from exc
    viewer = None if automatic else requested_by
    try:
        inputs, base, secondary = _resolve(
            model_version, parsed, base_version=base_version, secondary_version=secondary_version, user=viewer
        )
    except PreviewError as exc:
        if automatic:
            return _failed_job(model_version, requested_by, trigger, exc.message, parsed.as_dict())
        raise
    if not automatic and trigger != RenderJob.Trigger.MERGE:
        active = RenderJob.objects.filter(requested_by=requested_by, status__in=RenderJob.ACTIVE).count()
        if active >= conf.max_active_per_user():
            raise PreviewError(
                f"you have {active} preview renders waiting; try again when one has finished",
                code="too_many_jobs",
                status=429,
            )
    key = render_key(arch=profile.arch, config=profile.config, spec=parsed, inputs=inputs)
    fields = dict(
        model_version=model_version,
        base_version=base,
        secondary_version=secondary,
        requested_by=requested_by,
        trigger=trigger,
        spec=parsed.as_dict(),
        inputs=inputs,
        arch=profile.arch,
        base_config=profile.config,
        render_key=key,
        images_total=parsed.image_count,
        attach_examples=attach_examples,
    )
    existing_grid = PreviewGrid.objects.filter(model_version=model_version, render_key=key).first()
    if existing_grid is not None:
        now = timezone.now()
        return RenderJob.objects.create(
            **fields,
            status=RenderJob.Status.SUCCEEDED,
            images_done=parsed.image_count,
            grid=existing_grid,
            started_at=now,
            finished_at=now,
        )
    active_job = RenderJob.objects.filter(model_version=model_version, render_key=key, status__in=RenderJob.ACTIVE)
    if (job := active_job.first()) is not None:
        return job
    try:
        with transaction.atomic():
            job = RenderJob.objects.create(**fields)
    except IntegrityError:
        # A concurrent identical request won the partial unique index: share its job.
        job = active_job.first()
        if job is None:
            raise
        return job
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def render_request_for_merge(*, model_version_id: int) -> RenderJob | None:
    """After a merge: render its preview grid as its owner. Logs instead of raising."""
    try:
        version = ModelVersion.objects.select_related("model", "model__owner").get(pk=model_version_id)
        return render_request_create(
            model_version=version, requested_by=version.model.owner, spec=None, trigger=RenderJob.Trigger.MERGE
        )
    except PreviewError as exc:
        logger.info("previews: nothing rendered for merge output %s: %s", model_version_id, exc.message)
    except Exception:
        logger.exception("previews: could not request a grid for merge output %s", model_version_id)
    return None


def lora_preview_base_set(*, base_model: str, checkpoint: ModelVersion) -> LoraPreviewBase:
    """Set the checkpoint LoRAs of ``base_model`` are previewed on by default."""
    if checkpoint.model.type != Model.Type.CHECKPOINT:
        raise PreviewError("the default base must be a checkpoint")
    if profile_for(base_model) is None or _profile(checkpoint).arch != profile_for(base_model).arch:
        raise PreviewError(f"a {checkpoint.base_model} checkpoint cannot preview {base_model} LoRAs")
    row, _ = LoraPreviewBase.objects.update_or_create(base_model=base_model, defaults={"checkpoint": checkpoint})
    return row
