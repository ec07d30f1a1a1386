"""Outages answer quickly, in JSON, and say what is down (issue 19 §1).

Each fault is real: a port nothing listens on (refused), or a listener that
accepts and never answers (hung), put where Redis, S3 or PostgreSQL should
be. The database cases run a live gunicorn in a subprocess, since the test
process itself needs its database.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.builders import make_published_model
from tests.support.faults import HungListener, refused_port

ROOT = Path(__file__).resolve().parents[2]
BOUND = 5.0  # seconds an outage may cost a request


def _assert_503(response, part: str, elapsed: float):
    assert elapsed <= BOUND, f"took {elapsed:.1f}s"
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == f"{part}_unavailable" and body["details"] == {"part": part}
    assert int(response["Retry-After"]) > 0


@pytest.fixture(params=["refused", "hung"])
def dead_port(request):
    if request.param == "refused":
        yield refused_port()
    else:
        with HungListener() as listener:
            yield listener.port


@pytest.fixture
def redis_down(settings, dead_port):
    url = f"redis://127.0.0.1:{dead_port}/0"
    settings.REDIS_URL = url
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    return url


def test_download_with_redis_down_is_a_json_503(client, alice, redis_down):
    version = make_published_model(alice).versions.get()
    started = time.monotonic()
    response = client.get(f"/api/download/models/{version.pk}")
    _assert_503(response, "cache", time.monotonic() - started)


def test_health_names_redis_when_it_is_down(client, db, redis_down):
    started = time.monotonic()
    response = client.get("/api/v1/health")
    elapsed = time.monotonic() - started
    assert elapsed <= BOUND and response.status_code == 503 and response["Retry-After"]
    body = response.json()
    assert body["status"] == "unavailable" and body["down"] == ["broker"]
    assert body["checks"]["database"]["status"] == "ok" and body["checks"]["broker"]["status"] == "down"
    assert client.get("/api/v1/health/live").json() == {"status": "ok"}


@pytest.fixture
def s3_down(settings, dead_port):
    from hub.api import health

    blobs = settings.STORAGES["blobs"]
    if blobs["BACKEND"] != "hub.files.storage.S3BlobStorage":
        pytest.skip("needs the S3 store")
    options = {**blobs["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{dead_port}",
               "connect_timeout": 1, "read_timeout": 2, "max_attempts": 1}
    settings.STORAGES = {**settings.STORAGES, "blobs": {**blobs, "OPTIONS": options}}
    from hub.files.storage import blob_storage

    blob_storage().client  # built before the clock starts: a cold boto3 client takes seconds on a busy machine
    health._s3_client = None
    health._storage_result = None
    yield
    health._s3_client = None
    health._storage_result = None


def test_upload_start_with_s3_down_is_a_json_503(alice, s3_down):
    from rest_framework.test import APIClient

    from hub.accounts.services import api_key_create

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=alice, name='t', scopes=['upload']).plaintext}")
    started = time.monotonic()
    response = api.post("/api/v1/uploads", {"filename": "a.safetensors", "size": 10_000_000}, format="json")
    _assert_503(response, "storage", time.monotonic() - started)
    from hub.uploads.models import Upload

    assert not Upload.objects.exists()


def test_health_names_the_store_when_it_is_down(client, db, s3_down):
    started = time.monotonic()
    response = client.get("/api/v1/health")
    assert time.monotonic() - started <= BOUND
    assert response.status_code == 503 and response.json()["down"] == ["storage"]


def test_health_reports_every_part_when_all_is_well(client, db):
    from hub.api import health

    health._storage_result = None
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert body["checks"]["database"]["vendor"] == "postgresql"
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["latencyMs"] >= 0


def test_a_bug_in_an_api_view_is_a_json_500(client, db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("hub.api.views_catalog.ModelListView.get", broken)
    response = client.get("/api/v1/models")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "server_error" and "a bug" not in response.content.decode()


# --- database down: a live gunicorn pointed at a dead port --------------------------------------

def _get(port: int, path: str) -> tuple[int, str, bytes, float]:
    started = time.monotonic()
    try:
        response = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30)
        status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    return status, headers.get("Content-Type", ""), body, time.monotonic() - started


@pytest.mark.slow
def test_database_down_health_and_api_answer_json_503_quickly(dead_port, tmp_path):
    port = refused_port()
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{dead_port}/nowhere", "DB_CONNECT_TIMEOUT": "2"}
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "4"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(port, "/api/v1/health/live")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-2000:]
            time.sleep(0.2)
        status, content_type, body, elapsed = _get(port, "/api/v1/health")
        assert status == 503 and elapsed <= BOUND, (status, elapsed)
        report = json.loads(body)
        assert "database" in report["down"] and report["checks"]["database"]["status"] == "down"
        for path in ("/api/v1/models", "/api/download/models/1", "/api/v1/recipes/1/run",
                     "/alice/model/resolve/main/model.safetensors"):
            status, content_type, body, elapsed = _get(port, path)
            assert elapsed <= BOUND, (path, elapsed)
            assert content_type.startswith("application/json"), (path, status, body[:200])
            if status == 503:
                assert json.loads(body)["code"] == "database_unavailable"
            else:
                assert status == 405 and path.endswith("/run")  # GET on a POST route answers before any query
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=20)
        log.close()
