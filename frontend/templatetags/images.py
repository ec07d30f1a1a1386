"""Template helpers for pictures: cover URLs, NSFW level labels, generation parameter fields."""
from __future__ import annotations

from django import template

from hub.catalog.nsfw import level_label
from hub.files.image_meta import display_fields
from hub.uploads.image_selectors import cover_url

register = template.Library()

register.filter("cover_url", cover_url)
register.filter("nsfw_label", level_label)


@register.filter
def generation_fields(meta) -> list[tuple[str, str, str]]:
    return display_fields(meta if isinstance(meta, dict) else {})
