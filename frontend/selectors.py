"""Reads for the website's pages, built on the catalogue's visibility selectors.

Every query starts from `models_visible_to` / `model_get_for`, so a page can
never show a row the catalogue would hide from the same user.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet

from hub.accounts.models import ApiKey
from hub.catalog.models import Model, ModelVersion, Tag
from hub.catalog.selectors import model_get_for, models_visible_to
from hub.files.models import ModelFile
from hub.uploads.image_selectors import with_covers

SORTS = {
    "Newest": ("-published_at", "-id"),
    "Most Downloaded": ("-download_count", "-id"),
    "Highest Rated": ("-community_stats__rating_score", "-id"),
}
DEFAULT_SORT = "Newest"


@dataclass(frozen=True)
class ModelFilters:
    query: str = ""
    type: str = ""
    base_model: str = ""
    tag: str = ""
    nsfw: bool = False
    sort: str = DEFAULT_SORT


def _published_versions() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(status=ModelVersion.Status.PUBLISHED, moderation="").order_by("-published_at", "-id")


def model_listing(*, user, filters: ModelFilters, owner=None) -> QuerySet[Model]:
    """Visible models matching `filters`, with what a card shows prefetched."""
    qs = models_visible_to(user).select_related("owner", "community_stats")
    if owner is not None:
        qs = qs.filter(owner=owner)
    if not filters.nsfw:
        qs = qs.filter(nsfw=False)
    if filters.type:
        qs = qs.filter(type=filters.type)
    if filters.base_model:
        qs = qs.filter(
            Exists(ModelVersion.objects.filter(model=OuterRef("pk"), base_model=filters.base_model))
        )
    if filters.tag:
        qs = qs.filter(Exists(Tag.models.through.objects.filter(model_id=OuterRef("pk"), tag__name=filters.tag.lower())))
    query = filters.query.strip()
    if query:
        # Exists() rather than a join, so a model matching several tags is not
        # listed twice and no DISTINCT fights the ORDER BY.
        tag_hit = Exists(Tag.models.through.objects.filter(model_id=OuterRef("pk"), tag__name=query.lower()))
        qs = qs.filter(Q(name__icontains=query) | Q(owner__username__iexact=query) | tag_hit)
    # Each card's cover is a column of the models query, not a query per card.
    qs = with_covers(qs, user)
    order = SORTS.get(filters.sort, SORTS[DEFAULT_SORT])
    # Drafts (the owner's own) have no published_at; keep them after the rest.
    ordering = [F(order[0].lstrip("-")).desc(nulls_last=True), order[1]]
    return qs.order_by(*ordering).prefetch_related(
        "tags",
        Prefetch("versions", queryset=_published_versions(), to_attr="published_versions"),
    )


def model_detail(*, user, model_id: int) -> Model | None:
    return model_get_for(user, model_id)


def model_versions_for(*, user, model: Model) -> list[ModelVersion]:
    """The versions of `model` a user may see, newest first, with files and no extra queries per file."""
    versions = model.versions.all()
    is_owner = user is not None and user.is_authenticated and model.owner_id == user.pk
    if not is_owner:
        versions = versions.filter(status=ModelVersion.Status.PUBLISHED, moderation="")
    files = ModelFile.objects.order_by("-primary", "id")
    return list(versions.order_by("-created_at", "-id").prefetch_related(Prefetch("files", queryset=files)))


def creator_get(*, username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()


def api_keys_of(*, user) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by(F("revoked_at").asc(nulls_first=True), "-created_at")


def api_key_of(*, user, key_id: int) -> ApiKey | None:
    return ApiKey.objects.filter(user=user, pk=key_id).first()
