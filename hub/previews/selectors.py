"""Reads of render jobs and preview grids, filtered by what the asking user may see.

Previews follow their model version: whoever can see the version can see its
grids and jobs (private versions: only their owner). A user also always sees
the jobs they asked for.
"""
from __future__ import annotations

from django.db.models import Case, IntegerField, Prefetch, Q, QuerySet, Value, When

from hub.catalog.api_selectors import version_visible_q
from hub.catalog.models import Model, ModelVersion
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


LORA_BASE_LIMIT = 50


def lora_base_candidates(user, lora: ModelVersion, *, query: str = "", limit: int = LORA_BASE_LIMIT) -> list[ModelVersion]:
    """Checkpoints a LoRA can be previewed on: same base model, visible to ``user``, ``query`` in the name.

    The user's own checkpoints come first, then the most downloaded.
    """
    qs = ModelVersion.objects.filter(
        version_visible_q(user),
        model__type=Model.Type.CHECKPOINT,
        base_model=lora.base_model,
    ).select_related("model")
    if query.strip():
        qs = qs.filter(Q(model__name__icontains=query.strip()) | Q(name__icontains=query.strip()))
    mine = Q(model__owner_id=user.pk) if user is not None and user.is_authenticated else Q(pk__in=[])
    qs = qs.annotate(_mine=Case(When(mine, then=Value(0)), default=Value(1), output_field=IntegerField()))
    return list(qs.order_by("_mine", "-model__download_count", "model__name", "-id")[: max(1, min(limit, 200))])


def render_jobs_for_version(version: ModelVersion, *, limit: int = 5) -> list[RenderJob]:
    return list(version.render_jobs.select_related("requested_by", "grid").order_by("-created_at", "-id")[:limit])


def grids_for_version(version: ModelVersion) -> list[PreviewGrid]:
    # Moderated grids are left out of listings; the owner is told on the model page instead.
    return list(_grids().filter(model_version=version, moderation="").order_by("-created_at", "-id"))


def _grid_moderation_q(user, *, prefix: str = "") -> Q:
    """A grid a moderator hid is seen by its version's owner only; one taken down, by nobody."""
    visible = Q(**{f"{prefix}moderation": ""})
    if user is not None and user.is_authenticated:
        visible |= Q(**{f"{prefix}moderation": "hidden", f"{prefix}model_version__model__owner_id": user.pk})
    return visible


def grid_get_for(user, grid_id: int) -> PreviewGrid | None:
    return _grids().filter(version_visible_q(user, prefix="model_version__"), _grid_moderation_q(user), pk=grid_id).first()


def image_get_for(user, image_id: int) -> PreviewImage | None:
    return (
        PreviewImage.objects.select_related("grid")
        .filter(
            version_visible_q(user, prefix="grid__model_version__"), _grid_moderation_q(user, prefix="grid__"), pk=image_id
        )
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
