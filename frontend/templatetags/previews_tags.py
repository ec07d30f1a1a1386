"""Template tags for the preview section of a model page."""
from __future__ import annotations

from django import template

from hub.previews.selectors import lora_base_candidates

register = template.Library()


@register.simple_tag
def lora_base_choices(version, user):
    """The first checkpoints a LoRA's owner may render it on (the search box asks the API for more)."""
    return lora_base_candidates(user, version)
