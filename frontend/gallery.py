"""The model page's gallery: example images, then the latest preview grid's cells, each as the viewer may see it.

An item is one of three states for a viewer: shown (at or below their NSFW
level, or their own model), hidden but revealable (a signed-in viewer who
opted in to click-to-reveal), or hidden. A hidden item carries only its
blurred placeholder, never its pixels' URL or its prompt.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.catalog.models import ModelVersion
from hub.catalog.nsfw import level_label, viewer_may_reveal
from hub.files.image_meta import display_fields, parse_a1111
from hub.uploads.image_selectors import allowed_levels, image_shown_to, images_of_version_for
from hub.uploads.models import ExampleImage


@dataclass
class GalleryItem:
    kind: str  # "image" or "preview"
    id: int
    width: int
    height: int
    level: int
    shown: bool
    revealable: bool
    status: str = "ready"
    thumb_url: str = ""
    large_url: str = ""
    full_url: str = ""
    blur_url: str = ""
    page_url: str = ""
    parameters: str = ""
    fields: list[tuple[str, str, str]] = field(default_factory=list)
    is_cover: bool = False

    @property
    def level_label(self) -> str:
        return level_label(self.level)

    def lightbox(self) -> dict[str, Any]:
        """What the page's script gets: nothing of a hidden item but its placeholder."""
        data: dict[str, Any] = {"kind": self.kind, "id": self.id, "level": self.level_label, "shown": self.shown,
                                "revealable": self.revealable, "blur": self.blur_url}
        if self.shown or self.revealable:
            data.update({"thumb": self.thumb_url, "large": self.large_url, "full": self.full_url,
                         "parameters": self.parameters, "fields": [[k, label, text] for k, label, text in self.fields],
                         "page": self.page_url, "width": self.width, "height": self.height})
        return data


def _image_item(user, image: ExampleImage) -> GalleryItem:
    shown = image_shown_to(user, image)
    base = f"/api/v1/images/{image.pk}"
    item = GalleryItem(
        kind="image", id=image.pk, width=image.width, height=image.height, level=image.nsfw_level, shown=shown,
        revealable=not shown and viewer_may_reveal(user), status=image.status, is_cover=image.is_cover,
        blur_url=f"{base}/blur" if image.blur_key else "", page_url=f"/images/{image.pk}/",
    )
    if (item.shown or item.revealable) and image.is_ready:
        item.thumb_url, item.large_url, item.full_url = f"{base}/thumb", f"{base}/large", base
        item.parameters = image.parameters
        item.fields = display_fields(image.meta or {})
    return item


def _preview_items(user, version: ModelVersion) -> list[GalleryItem]:
    grid = version.preview_grids.order_by("-created_at", "-id").prefetch_related("images").first()
    if grid is None:
        return []
    level = version.model.nsfw_level
    owner = user is not None and user.is_authenticated and user.pk == version.model.owner_id
    shown = owner or level in allowed_levels(user)
    items = []
    for cell in grid.images.all():
        item = GalleryItem(
            kind="preview", id=cell.pk, width=cell.width, height=cell.height, level=level, shown=shown,
            revealable=not shown and viewer_may_reveal(user),
        )
        if item.shown or item.revealable:
            item.thumb_url = item.large_url = f"/previews/image/{cell.pk}.webp"
            item.full_url = f"/previews/image/{cell.pk}.png"
            item.parameters = cell.parameters
            item.fields = display_fields(parse_a1111(cell.parameters))
        items.append(item)
    return items


def gallery_for(user, version: ModelVersion | None) -> list[GalleryItem]:
    if version is None:
        return []
    items = [_image_item(user, image) for image in images_of_version_for(user, version)]
    return items + _preview_items(user, version)
