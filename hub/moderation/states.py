"""The moderation state a piece of content carries, shared by every app that holds content.

This module imports nothing but Django's field classes, so catalogue, upload,
preview and recipe models can carry the field without depending on the
moderation app's models or services.

- ``""``: nothing done; the content's own visibility rules apply.
- ``hidden``: only its owner sees it, with a notice saying why.
- ``removed``: taken down: unpublished and never served, to anyone; its files
  are kept for evidence. The owner still sees the page and the notice.
"""
from __future__ import annotations

from django.db import models


class ModerationState(models.TextChoices):
    VISIBLE = "", "Visible"
    HIDDEN = "hidden", "Hidden by a moderator"
    REMOVED = "removed", "Taken down"


def moderation_field() -> models.CharField:
    return models.CharField(max_length=8, choices=ModerationState.choices, blank=True, default="")
