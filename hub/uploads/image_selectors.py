"""Reads of example images: covers for listings, galleries, and who may see which bytes.

A model's cover is, for one viewer, the first of these they may see:

1. the image its owner chose as cover,
2. the example images of its newest visible version first, by position,
3. a cell of its latest preview grid (rendered images carry the model's level),

never an image above the viewer's NSFW level, and only ready images of
versions the viewer may see. Listings get it as one column of the models
query (a correlated subquery returning a small JSON object), so a page of
any size still costs the same number of queries.
"""
from __future__ import annotations

import json
from typing import Any

from django.db.models import F, JSONField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, JSONObject

from hub.catalog.models import ModelVersion
from hub.catalog.nsfw import ALL_LEVELS_MASK, levels_in, mask_upto, viewer_level, viewer_may_reveal
from hub.catalog.selectors import version_get_for
from hub.uploads.models import ExampleImage

VARIANTS = {"full": "storage_key", "thumb": "thumb_key", "large": "large_key", "blur": "blur_key"}


def _viewer_id(user) -> int | None:
    return user.pk if user is not None and getattr(user, "is_authenticated", False) else None


def allowed_levels(user, mask: int | None = None) -> list[int]:
    """Levels a viewer may be shown unblurred: up to their preference, narrowed by a `browsingLevel` mask."""
    allowed = mask_upto(viewer_level(user))
    if mask is not None:
        allowed &= mask & ALL_LEVELS_MASK
    return levels_in(allowed)


def cover_expression(user, *, mask: int | None = None, model_ref: str = "pk"):
    """A `Model` queryset annotation: the viewer's cover as {kind, id, thumb, w, h}, or NULL."""
    from hub.previews.models import PreviewImage

    levels = allowed_levels(user, mask)
    viewer_id = _viewer_id(user)
    visible = Q(version__status=ModelVersion.Status.PUBLISHED)
    if viewer_id is not None:
        visible |= Q(version__model__owner_id=viewer_id)
    images = (
        ExampleImage.objects.filter(
            visible, model_id=OuterRef(model_ref), status=ExampleImage.Status.READY, nsfw_level__in=levels,
            moderation="", version__moderation="",
        )
        .order_by("-is_cover", "-version_id", "position", "id")
        .values(data=JSONObject(kind=Value("image"), id=F("id"), thumb=F("thumb_key"), w=F("width"), h=F("height")))
        [:1]
    )
    grid_visible = Q(grid__model_version__status=ModelVersion.Status.PUBLISHED)
    if viewer_id is not None:
        grid_visible |= Q(grid__model_version__model__owner_id=viewer_id)
    previews = (
        PreviewImage.objects.filter(
            grid_visible, grid__model_version__model_id=OuterRef(model_ref),
            grid__model_version__model__nsfw_level__in=levels, grid__moderation="", grid__model_version__moderation="",
        )
        .order_by("-grid__created_at", "-grid_id", "row", "col")
        .values(data=JSONObject(kind=Value("preview"), id=F("id"), thumb=Value(""), w=F("width"), h=F("height")))
        [:1]
    )
    # COALESCE stops at the first non-null, so the preview lookup runs only for models without an image.
    return Coalesce(Subquery(images, output_field=JSONField()), Subquery(previews, output_field=JSONField()),
                    output_field=JSONField())


def with_covers(qs: QuerySet, user, *, mask: int | None = None) -> QuerySet:
    return qs.annotate(cover=cover_expression(user, mask=mask))


def cover_url(cover: Any) -> str | None:
    """The thumbnail URL of a cover from `cover_expression` (a dict, or JSON text on backends that return it)."""
    if isinstance(cover, str):
        try:
            cover = json.loads(cover)
        except ValueError:
            return None
    if not isinstance(cover, dict) or not isinstance(cover.get("id"), int):
        return None
    if cover.get("kind") == "preview":
        return f"/previews/image/{cover['id']}.webp"
    variant = "thumb" if cover.get("thumb") else "full"
    return f"/api/v1/images/{cover['id']}/{variant}"


def normalized_cover(cover: Any) -> dict | None:
    url = cover_url(cover)
    if url is None:
        return None
    if isinstance(cover, str):
        cover = json.loads(cover)
    return {"kind": cover["kind"], "id": cover["id"], "url": url, "width": cover.get("w"), "height": cover.get("h")}


def images_of_version_for(user, version: ModelVersion) -> list[ExampleImage]:
    """The images of a version the viewer may reach (the page decides which are blurred).
    A moderator's hide leaves an image to its owner; a takedown leaves it to nobody."""
    qs = version.images.exclude(moderation="removed")
    if _viewer_id(user) != version.model.owner_id:
        qs = qs.filter(status=ExampleImage.Status.READY, moderation="")
    return list(qs)


def image_get_for(user, image_id: int) -> ExampleImage | None:
    """An image whose version the viewer may see (processing and failed ones only for the owner)."""
    image = ExampleImage.objects.select_related("version", "version__model").filter(pk=image_id).first()
    if image is None or version_get_for(user, image.version_id) is None:
        return None
    if "removed" in (image.moderation, image.version.moderation, image.version.model.moderation):
        return None
    if (not image.is_ready or image.moderation) and _viewer_id(user) != image.version.model.owner_id:
        return None
    return image


def image_shown_to(user, image: ExampleImage) -> bool:
    """Whether the viewer gets the image itself rather than its blurred placeholder by default."""
    return image.nsfw_level in allowed_levels(user) or _viewer_id(user) == image.version.model.owner_id


def image_revealable_by(user, image: ExampleImage) -> bool:
    """Whether the viewer may have the image's pixels at all (shown, or blurred with click to reveal)."""
    return image_shown_to(user, image) or viewer_may_reveal(user)
