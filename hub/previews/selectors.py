"""Reads of render jobs and preview grids, filtered by what the asking user may see.

Previews follow their model version: whoever can see the version can see its
grids and jobs (private versions: only their owner). A user also always sees
the jobs they asked for.
"""
from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from hub.catalog.api_selectors import version_visible_q
from hub.catalog.models import ModelVersion
from hub.previews.models import PreviewGrid, PreviewImage, RenderJob


def _grids() -> QuerySet[PreviewGrid]:
    return PreviewGrid.objects.select_related("model_version", "model_version__model").prefetch_related(
        Prefetch("images", queryset=PreviewImage.objects.order_by("row", "col"))
    )


def render_job_get_for(user, job_id: int) -> RenderJob | None:
    visible = version_visible_q(user, prefix="model_version__")
    if user is not None and user.is_authenticated:
        visible |= Q(requested_by_id=user.pk)
    return (
        RenderJob.objects.filter(visible, pk=job_id)
        .select_related("model_version", "model_version__model", "requested_by", "grid")
        .first()
    )


def render_jobs_for_version(version: ModelVersion, *, limit: int = 5) -> list[RenderJob]:
    return list(version.render_jobs.select_related("requested_by", "grid").order_by("-created_at", "-id")[:limit])


def grids_for_version(version: ModelVersion) -> list[PreviewGrid]:
    return list(_grids().filter(model_version=version).order_by("-created_at", "-id"))


def grid_get_for(user, grid_id: int) -> PreviewGrid | None:
    return _grids().filter(version_visible_q(user, prefix="model_version__"), pk=grid_id).first()


def image_get_for(user, image_id: int) -> PreviewImage | None:
    return (
        PreviewImage.objects.select_related("grid")
        .filter(version_visible_q(user, prefix="grid__model_version__"), pk=image_id)
        .first()
    )


def _comparable(spec: dict) -> tuple:
    # Same prompts, seeds and sampler settings; the LoRA strength and sweep are part of the comparison too.
    return tuple(sorted((k, repr(v)) for k, v in spec.items()))


def grid_pairs(first: ModelVersion, second: ModelVersion) -> list[tuple[PreviewGrid, PreviewGrid]]:
    """Grids of two versions rendered with the same prompts, seeds and settings, newest first."""
    theirs: dict[tuple, PreviewGrid] = {}
    for grid in grids_for_version(second):
        theirs.setdefault(_comparable(grid.spec), grid)
    pairs = []
    seen = set()
    for grid in grids_for_version(first):
        key = _comparable(grid.spec)
        if key in theirs and key not in seen:
            seen.add(key)
            pairs.append((grid, theirs[key]))
    return pairs


def compare_candidates(user, first: ModelVersion, query: str, *, limit: int = 20) -> list[ModelVersion]:
    """Listed versions with preview grids whose model name contains `query`, to compare `first` with.

    Versions of the same base model come first (their grids can share prompts
    and seeds), then the most downloaded. Unlisted and private models are only
    offered to their owner, as in every list.
    """
    from django.db.models import Case, Exists, IntegerField, OuterRef, Value, When

    from hub.catalog.selectors import models_visible_to

    return list(
        ModelVersion.objects.filter(
            version_visible_q(user), model__in=models_visible_to(user), model__name__icontains=query.strip()[:200])
        .filter(Exists(PreviewGrid.objects.filter(model_version=OuterRef("pk"))))
        .exclude(pk=first.pk)
        .annotate(other_base=Case(When(base_model=first.base_model, then=Value(0)), default=Value(1),
                                  output_field=IntegerField()))
        .select_related("model", "model__owner")
        .order_by("other_base", "-model__download_count", "-id")[:limit]
    )
