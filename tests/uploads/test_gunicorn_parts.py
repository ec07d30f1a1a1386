"""Local-disk parts through a real gunicorn: the socket fast path, keep-alive and the protocol client."""
from __future__ import annotations

import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub.uploads.client import UploadClient
from hub.uploads.models import Upload
from tests.support.worker import ROOT, _test_database_url
from tests.uploads.conftest import ingest_now
from tests.uploads.files import lora_bytes

pytestmark = [pytest.mark.slow]
PART = 256 * 1024


@pytest.fixture
def gunicorn_hub(transactional_db, tmp_path, settings):
    """gunicorn serving the hub on the test database, with local-disk storage under tmp_path."""
    settings.UPLOAD_PART_SIZE = PART
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "hub.files.storage.LocalBlobStorage", "OPTIONS": {"location": str(tmp_path / "store")}},
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("S3_")}
    env.update(DATABASE_URL=_test_database_url(), DB_CONN_MAX_AGE="0", MERGEWORKS_DATA_DIR=str(tmp_path),
               UPLOAD_PART_SIZE=str(PART))
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "-k", "gthread",
         "--threads", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{base}/api/v1/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def test_parts_stream_to_disk_through_gunicorn_and_keep_alive_survives(gunicorn_hub, alice, tmp_path):
    from hub.accounts.services import api_key_create

    token = api_key_create(user=alice, name="cli", scopes=["upload"]).plaintext
    data = lora_bytes(min_bytes=2 * 1024 * 1024, seed=41)
    path = tmp_path / "mychar.safetensors"
    path.write_bytes(data)
    client = UploadClient(gunicorn_hub, token, parallel=2)
    created = client.create(filename=path.name, size=len(data))
    assert created["partCount"] >= 8

    # One connection: a part, a refused part (wrong length, body left unread), another part, then a GET.
    first, second = created["parts"][0], created["parts"][1]
    conn = http.client.HTTPConnection(urlsplit(gunicorn_hub).netloc, timeout=30)

    def put(part, body: bytes) -> int:
        target = urlsplit(part["url"])
        conn.request("PUT", f"{target.path}?{target.query}", body=body)
        response = conn.getresponse()
        response.read()
        return response.status

    assert put(first, data[:PART]) == 200
    assert put(second, data[PART : PART + 1000]) == 400
    assert put(second, data[PART : 2 * PART]) == 200
    conn.request("GET", "/api/v1/health")
    assert conn.getresponse().status == 200
    conn.close()

    # The client sends the rest (several parts per kept-alive connection) and completes.
    state = client.upload(path, resume_id=created["id"])
    assert state["status"] == "queued"
    upload = Upload.objects.get(pk=created["id"])
    with open(tmp_path / "store" / upload.staging_key / "data", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    ingest_now(created["id"])
    upload.refresh_from_db()
    assert upload.status == "ready" and upload.hashes["sha256"] == hashlib.sha256(data).hexdigest()
    assert Path(tmp_path / "store" / upload.blob_key).read_bytes() == data
