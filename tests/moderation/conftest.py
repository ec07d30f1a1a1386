from __future__ import annotations

import io

import pytest
from PIL import Image


def clear_moderation_limits() -> None:
    """Drop the moderation rate-limit counters only: the same Redis may hold the broker's queues."""
    from django.core.cache import cache

    if hasattr(cache, "_cache") and hasattr(cache._cache, "get_client"):
        client = cache._cache.get_client(write=True)
        for key in client.scan_iter(match="*moderation:rl:*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    clear_moderation_limits()
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
    from hub.uploads.services import example_image_add, example_image_process

    data = png_bytes()
    image = example_image_add(version=version, user=user, f=io.BytesIO(data), size=len(data))
    # The ingest worker makes the thumbnails; here the same service runs in-process so the image is ready.
    example_image_process(image_id=image.pk)
    image.refresh_from_db()
    return image


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client
