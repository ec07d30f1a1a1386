"""REST API v1 for preview renders. Views are thin: parse, call the service, render.

* ``POST /api/v1/model-versions/{id}/previews``: anyone signed in (API keys
  need the `run` scope) may ask for a grid of a version they can see.
* ``GET /api/v1/model-versions/{id}/previews``: its grids.
* ``GET /api/v1/render-jobs/{id}``: status and progress (images done / total).
* ``GET /api/v1/preview-grids/{id}``: one grid and its images.
* ``GET /api/v1/model-versions/{id}/preview-bases?query=``: for a LoRA, the
  checkpoints of its base model the caller may render it on.
"""
from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts.auth import HasScope
from hub.api.errors import error_body
from hub.api.negotiation import JsonOnlyNegotiation
from hub.api.permissions import ReadScopeIfKey
from hub.api.schemas import ErrorOut
from hub.catalog.api_serialize import iso
from hub.catalog.selectors import version_get_for
from hub.previews import conf, selectors, services
from hub.previews.models import PreviewGrid, PreviewImage, RenderJob

_JSON = OpenApiTypes.OBJECT
_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 429: ErrorOut}


def file_url(kind: str, pk: int, ext: str) -> str:
    return reverse("frontend:preview-file", kwargs={"kind": kind, "pk": pk, "ext": ext})


def image_out(image: PreviewImage) -> dict[str, Any]:
    return {
        "id": image.pk,
        "row": image.row,
        "col": image.col,
        "prompt": image.prompt,
        "negativePrompt": image.negative,
        "seed": image.seed,
        "alpha": image.alpha,
        "width": image.width,
        "height": image.height,
        "sha256": image.sha256,
        "parameters": image.parameters,
        "url": file_url("image", image.pk, "png"),
        "thumbnailUrl": file_url("image", image.pk, "webp"),
    }


def grid_out(grid: PreviewGrid) -> dict[str, Any]:
    return {
        "id": grid.pk,
        "modelVersionId": grid.model_version_id,
        "layout": grid.layout,
        "spec": grid.spec,
        "rows": grid.row_labels,
        "columns": grid.col_labels,
        "width": grid.width,
        "height": grid.height,
        "checkpointSha256": grid.checkpoint_sha256,
        "loraSha256": grid.lora_sha256 or None,
        "secondarySha256": grid.secondary_sha256 or None,
        "baseVersionId": grid.base_version_id,
        "secondaryVersionId": grid.secondary_version_id,
        "createdAt": iso(grid.created_at),
        "url": file_url("grid", grid.pk, "png"),
        "thumbnailUrl": file_url("grid", grid.pk, "webp"),
        "images": [image_out(i) for i in grid.images.all()],
    }


def job_out(job: RenderJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "progress": round(job.progress, 4),
        "images": {"done": job.images_done, "total": job.images_total},
        "attempts": job.attempts,
        "maxAttempts": conf.max_attempts(),
        # The plain reason only: the technical detail (paths, exceptions) is for logs and the admin.
        "error": (job.reason or job.error or None) if job.status == RenderJob.Status.FAILED else None,
        "trigger": job.trigger,
        "modelVersionId": job.model_version_id,
        "baseVersionId": job.base_version_id,
        "secondaryVersionId": job.secondary_version_id,
        "spec": job.spec,
        "requestedBy": job.requested_by.username,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
        "renderSeconds": job.render_seconds,
        "gridId": job.grid_id,
        "url": reverse("api:render-job", kwargs={"job_id": job.pk}),
    }


class PreviewRequestIn(serializers.Serializer):
    prompts = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False)
    negative = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    seeds = serializers.ListField(child=serializers.IntegerField(), required=False)
    steps = serializers.IntegerField(required=False)
    cfg = serializers.FloatField(required=False)
    size = serializers.ListField(child=serializers.IntegerField(), required=False)
    sampler = serializers.CharField(required=False)
    loraStrength = serializers.FloatField(required=False)
    alphas = serializers.ListField(child=serializers.FloatField(), required=False)
    baseVersionId = serializers.IntegerField(required=False)
    secondaryVersionId = serializers.IntegerField(required=False)


_SPEC_FIELDS = {"prompts", "negative", "seeds", "steps", "cfg", "size", "sampler", "alphas"}


class PreviewView(APIView):
    content_negotiation_class = JsonOnlyNegotiation
    permission_classes = [AllowAny]

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            # As in the catalogue: anyone may read, but an API key only with `read`.
            return [ReadScopeIfKey()]
        self.required_scope = "run"
        return [HasScope()]

    def handle_exception(self, exc):
        if isinstance(exc, services.PreviewError):
            details = {exc.field: [exc.message]} if exc.field else None
            return Response(
                error_body(exc.message, code=exc.code, status_code=exc.status, details=details), status=exc.status
            )
        return super().handle_exception(exc)

    def version(self, version_id: int):
        version = version_get_for(self.request.user, version_id)
        if version is None:
            raise NotFound(f"model version {version_id} not found")
        return version


def preview_request(request, version, data: dict[str, Any], trigger: str) -> RenderJob:
    """Shared by the API and the model page: map the body onto the service call."""
    spec = {k: v for k, v in data.items() if k in _SPEC_FIELDS}
    if "loraStrength" in data:
        spec["lora_strength"] = data["loraStrength"]
    related = {}
    for field, arg in (("baseVersionId", "base_version"), ("secondaryVersionId", "secondary_version")):
        if data.get(field) is not None:
            other = version_get_for(request.user, data[field])
            if other is None:
                raise services.PreviewError(f"model version {data[field]} not found", code="not_found", status=404)
            related[arg] = other
    return services.render_request_create(
        model_version=version, requested_by=request.user, spec=spec, trigger=trigger, **related
    )


class VersionPreviewsView(PreviewView):
    @extend_schema(
        operation_id="model_versions_previews_list",
        summary="Preview grids of a model version",
        responses={200: OpenApiResponse(_JSON, description="{items: [PreviewGrid]}"), 404: ErrorOut},
        tags=["previews"],
    )
    def get(self, request, version_id: int):
        version = self.version(version_id)
        return Response({"items": [grid_out(g) for g in selectors.grids_for_version(version)]})

    @extend_schema(
        operation_id="model_versions_previews_create",
        summary="Render a preview grid",
        description=(
            "Needs a signed-in user (API keys: the `run` scope). Fields left out come from the base model's default "
            "prompt set. Rows are prompts and columns seeds; with `alphas` (and `secondaryVersionId`, or a merge "
            "output's recipe) the columns sweep the weight of the second checkpoint. A LoRA is rendered on "
            "`baseVersionId` or the default checkpoint for its base model. 202 with the job; 200 with a finished "
            "job when this exact grid exists already. Poll `url` for progress."
        ),
        request=PreviewRequestIn,
        responses={200: OpenApiResponse(_JSON), 202: OpenApiResponse(_JSON), **_ERRORS},
        tags=["previews"],
    )
    def post(self, request, version_id: int):
        version = self.version(version_id)
        body = PreviewRequestIn(data=request.data)
        body.is_valid(raise_exception=True)
        job = preview_request(request, version, dict(body.validated_data), RenderJob.Trigger.API)
        code = status.HTTP_200_OK if job.status == RenderJob.Status.SUCCEEDED else status.HTTP_202_ACCEPTED
        return Response(job_out(job), status=code)


class RenderJobView(PreviewView):
    @extend_schema(
        operation_id="render_jobs_retrieve",
        summary="A render job's status and progress (images done / total)",
        responses={200: OpenApiResponse(_JSON), 404: ErrorOut},
        tags=["previews"],
    )
    def get(self, request, job_id: int):
        job = selectors.render_job_get_for(request.user, job_id)
        if job is None:
            raise NotFound(f"render job {job_id} not found")
        response = Response(job_out(job))
        response["Cache-Control"] = "no-store"
        return response


class PreviewGridView(PreviewView):
    @extend_schema(
        operation_id="preview_grids_retrieve",
        summary="A preview grid and its images",
        responses={200: OpenApiResponse(_JSON), 404: ErrorOut},
        tags=["previews"],
    )
    def get(self, request, grid_id: int):
        grid = selectors.grid_get_for(request.user, grid_id)
        if grid is None:
            raise NotFound(f"preview grid {grid_id} not found")
        return Response(grid_out(grid))


def base_out(version) -> dict[str, Any]:
    return {"id": version.pk, "name": version.name, "modelId": version.model_id, "modelName": version.model.name,
            "baseModel": version.base_model, "label": f"{version.model.name} · {version.name}"}


class PreviewBasesView(PreviewView):
    @extend_schema(
        operation_id="model_versions_preview_bases_list",
        summary="Checkpoints a LoRA can be previewed on",
        description="Checkpoints of the LoRA's base model that the caller may see (their own first), "
        "filtered by `query` (model or version name); at most `limit` (default 50, at most 200).",
        responses={200: OpenApiResponse(_JSON, description="{items: [{id, name, modelId, modelName, label}]}"), 404: ErrorOut},
        tags=["previews"],
    )
    def get(self, request, version_id: int):
        version = self.version(version_id)
        try:
            limit = int(request.query_params.get("limit", selectors.LORA_BASE_LIMIT))
        except ValueError:
            raise services.PreviewError("limit must be a whole number", field="limit") from None
        query = request.query_params.get("query", "")[:200]
        items = selectors.lora_base_candidates(request.user, version, query=query, limit=limit)
        return Response({"items": [base_out(v) for v in items]})
