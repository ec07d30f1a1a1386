"""Shared fixtures. The suite runs on the production parts: PostgreSQL, Redis and
S3 over HTTP (moto's standalone server). `infra/scripts/run-tests.sh` starts them
and sets DATABASE_URL, REDIS_URL and S3_*; running pytest bare needs the same env.
"""
from __future__ import annotations

import pytest

from tests.support.browser import browser, browser_context, page  # noqa: F401
from tests.support.builders import make_published_model, tiny_safetensors_bytes  # noqa: F401
from tests.support.worker import live_worker  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket(django_db_setup):
    from hub.files.storage import blob_storage

    storage = blob_storage()
    if hasattr(storage, "ensure_bucket"):
        storage.ensure_bucket()


@pytest.fixture(autouse=True)
def _own_rate_limit_counters(settings):
    """Each test counts its rate limits from zero: Redis outlives the test database."""
    import uuid

    settings.LIMITS_KEY_PREFIX = f"mw:test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def alice(db):
    from hub.accounts.services import user_create

    return user_create(username="alice", password="alice-password-1", email="alice@example.com")


@pytest.fixture
def bob(db):
    from hub.accounts.services import user_create

    return user_create(username="bob", password="bob-password-1", email="bob@example.com")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def local_storage(settings, tmp_path):
    """Switch the blob store to local disk for one test."""
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "hub.files.storage.LocalBlobStorage", "OPTIONS": {"location": str(tmp_path / "store")}},
    }
    from hub.files.storage import blob_storage

    return blob_storage()
