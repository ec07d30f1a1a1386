"""Moderation limits: Django settings when set there (tests use the `settings` fixture), else the environment."""
from __future__ import annotations

from django.conf import settings

from hub.env import env_int

MODERATORS_GROUP = "Moderators"


def reports_per_hour() -> int:
    value = getattr(settings, "MODERATION_REPORTS_PER_HOUR", None)
    return value if value is not None else env_int("MODERATION_REPORTS_PER_HOUR", 20)


def claims_per_hour() -> int:
    value = getattr(settings, "MODERATION_CLAIMS_PER_HOUR", None)
    return value if value is not None else env_int("MODERATION_CLAIMS_PER_HOUR", 5)
