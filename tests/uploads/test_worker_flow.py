"""The whole flow through the API alone: a live server, S3 (moto), and a real Celery worker on Redis."""
from __future__ import annotations

import hashlib
import json
import os
import urllib.request

import pytest

from hub.uploads.client import UploadClient
from merges.engine import hostile
from tests.uploads.files import lora_bytes

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@pytest.fixture
def uploader(live_server, alice, small_parts):
    from hub.accounts.services import api_key_create

    token = api_key_create(user=alice, name="cli", scopes=["read", "download", "upload"]).plaintext
    return UploadClient(live_server.url, token, parallel=3), token


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_upload_verify_publish_list_and_download_byte_identical(live_server, live_worker, uploader, tmp_path):
    client, token = uploader
    data = lora_bytes(min_bytes=16 * 1024 * 1024, seed=21)
    path = tmp_path / "mychar.safetensors"
    path.write_bytes(data)
    live_worker()

    # Interrupted: the first attempt sends only some parts.
    created = client.create(filename=path.name, size=len(data))
    assert created["partCount"] == 4 and created["backend"] == "s3"
    first = created["parts"][0]
    request = urllib.request.Request(
        first["url"], data=data[: first["size"]], method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    assert [p["stored"] for p in client.status(created["id"])["parts"]] == [True, False, False, False]

    # Resumed: the client sends only what is missing, then completes with the hash.
    progress: list[int] = []
    state = client.upload(path, resume_id=created["id"], on_progress=lambda done, total: progress.append(done))
    assert state["status"] in ("queued", "processing", "ready")
    assert min(progress) > first["size"] - 1 and max(progress) == len(data)

    state = client.wait(created["id"], timeout=120)
    assert state["status"] == "ready", state
    assert state["result"]["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert state["suggestions"]["trained_words"][:2] == ["mychar", "<b>bold</b>"]

    made = client.create_version(created["id"], name="My Char", type="LORA", baseModel="SD 1.5",
                                 trainedWords=state["suggestions"]["trained_words"][:1], publish=True)
    listing = _get_json(f"{live_server.url}/api/v1/models?query=My%20Char")
    assert [m["id"] for m in listing["items"]] == [made["modelId"]]

    download = f"{live_server.url}/api/download/models/{made['modelVersionId']}?token={token}"
    with urllib.request.urlopen(download, timeout=60) as response:
        assert response.read() == data


def test_a_hostile_upload_is_rejected_by_the_worker_and_nothing_runs(live_server, live_worker, uploader, tmp_path,
                                                                      no_bomb_marker):
    client, _ = uploader
    live_worker()
    path = tmp_path / "innocent.safetensors"
    path.write_bytes(hostile.pickle_bomb())
    state = client.wait(client.upload(path)["id"], timeout=120)
    assert state["status"] == "quarantined" and state["error"]["code"] == "dangerous_pickle"
    assert "os.system" in state["error"]["message"]
    assert not os.path.exists(no_bomb_marker)
    path.write_bytes(hostile.duplicate_keys())
    state = client.wait(client.upload(path)["id"], timeout=120)
    assert (state["status"], state["error"]["code"]) == ("failed", "duplicate_key")
    assert _get_json(f"{live_server.url}/api/v1/models")["items"] == []
