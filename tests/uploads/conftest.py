from __future__ import annotations

import hashlib
import urllib.request
from urllib.parse import urlsplit

import pytest

from merges.engine.hostile import PICKLE_BOMB_MARKER


@pytest.fixture
def small_parts(settings):
    """64 KiB parts, so small files still come in several (S3 raises this to its 5 MiB minimum)."""
    settings.UPLOAD_PART_SIZE = 64 * 1024
    return settings.UPLOAD_PART_SIZE


@pytest.fixture
def alice_token(alice):
    from hub.accounts.services import api_key_create

    return api_key_create(user=alice, name="uploader", scopes=["read", "download", "upload"]).plaintext


@pytest.fixture
def alice_api(api_client, alice_token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_token}")
    return api_client


@pytest.fixture
def no_bomb_marker():
    import os

    if os.path.exists(PICKLE_BOMB_MARKER):
        os.unlink(PICKLE_BOMB_MARKER)
    yield PICKLE_BOMB_MARKER
    assert not os.path.exists(PICKLE_BOMB_MARKER), "a pickle was executed"


def put_part(api_client, url: str, data: bytes):
    """PUT one part: to moto over HTTP (S3), or through the test client (the hub's local part endpoint)."""
    parts = urlsplit(url)
    if parts.netloc == "testserver":
        return api_client.generic(
            "PUT", f"{parts.path}?{parts.query}", data=data, content_type="application/octet-stream"
        ).status_code
    request = urllib.request.Request(
        url, data=data, method="PUT",
        headers={"Content-Length": str(len(data)), "Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def send_file(api_client, data: bytes, filename: str = "model.safetensors", *, sha256: str | None = None,
              skip: set[int] = frozenset(), **extra) -> dict:
    """Create an upload and PUT its parts (except `skip`); returns the create response."""
    body = {"filename": filename, "size": len(data), "sha256": sha256 or hashlib.sha256(data).hexdigest(), **extra}
    response = api_client.post("/api/v1/uploads", body, format="json")
    assert response.status_code == 201, response.content
    state = response.json()
    for part in state["parts"]:
        if part["number"] in skip:
            continue
        start = (part["number"] - 1) * state["partSize"]
        assert put_part(api_client, part["url"], data[start : start + part["size"]]) == 200
    return state


def ingest_now(upload_id: str):
    """Run the ingest service in-process (the worker tests cover the real task)."""
    from hub.uploads.services import upload_ingest

    return upload_ingest(upload_id=upload_id, task_id="test-task")


@pytest.fixture
def local_media(settings, tmp_path):
    """Example images (the `default` storage) on local disk for one test, so the hub streams them."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "hub.files.storage.LocalBlobStorage", "OPTIONS": {"location": str(tmp_path / "media")}},
    }
    from django.core.files.storage import storages

    return storages["default"]
