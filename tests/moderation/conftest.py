from __future__ import annotations

import io

import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    """Rate-limit counters live in the shared cache (this helper's own Redis DB); start each test at zero."""
    from django.core.cache import cache

    cache.clear()
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 100_000


@pytest.fixture
def carol(db):
    """A moderator, by group membership (neither staff nor superuser)."""
    from hub.accounts.services import user_create
    from hub.moderation.services import moderator_grant

    user = user_create(username="carol", password="carol-password-1", email="carol@example.com")
    moderator_grant(user=user)
    return user


def png_bytes(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, "PNG")
    return out.getvalue()


def add_image(version, user):
    from hub.uploads.services import example_image_add

    data = png_bytes()
    return example_image_add(version=version, user=user, f=io.BytesIO(data), size=len(data))


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client
