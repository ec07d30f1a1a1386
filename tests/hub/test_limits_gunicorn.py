"""The download limit holds across two gunicorn workers, on PostgreSQL, Redis and S3, over new connections.

After the limit every further request is refused: plain or ranged (suffix and
multi-range included), with or without an X-Forwarded-For claim, on the
Civitai-style endpoint and on the Hugging Face `resolve` route. The access log
shows both workers served the requests, and no `?token=` key.
"""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from hub.accounts.services import api_key_create
from tests.support.builders import make_published_model, tiny_safetensors_bytes
from tests.support.worker import ROOT, _test_database_url

pytestmark = [pytest.mark.slow]
LIMIT = 6


@pytest.fixture
def two_workers(transactional_db, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTED_PROXY")}
    env.update(
        DATABASE_URL=_test_database_url(), DB_CONN_MAX_AGE="0", MERGEWORKS_DATA_DIR=str(tmp_path),
        DOWNLOAD_RATE_LIMIT_PER_MINUTE=str(LIMIT), LIMITS_KEY_PREFIX=f"mw:test-{uuid.uuid4().hex[:12]}:",
    )
    assert env.get("REDIS_URL") and env.get("S3_BUCKET"), "this test runs on Redis and S3"
    access_log = tmp_path / "access.log"
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2", "-k", "gthread",
         "--threads", "2", "--log-level", "warning", "--access-logfile", str(access_log),
         "--access-logformat", '%(p)s %(s)s "%(r)s"'],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = ("127.0.0.1", port)
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
    yield base, access_log
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def _request(base, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    """One request on a new connection; returns the status."""
    conn = http.client.HTTPConnection(*base, timeout=30)
    try:
        conn.request(method, path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _same_window() -> None:
    """Start in the first part of a limit window (they are whole minutes), so the test does not straddle two."""
    if time.time() % 60 > 40:
        time.sleep(60 - time.time() % 60 + 0.2)


def test_the_limit_holds_across_two_workers_for_every_kind_of_request(two_workers, alice, bob):
    base, access_log = two_workers
    model = make_published_model(alice, "Shared Limit", data=tiny_safetensors_bytes(41))
    version_id = model.versions.get().pk
    download = f"/api/download/models/{version_id}"
    resolve = "/alice/shared-limit/resolve/main/shared-limit.safetensors"
    key = api_key_create(user=bob, name="log check", scopes=["download"]).plaintext
    requests = [
        ("GET", download, {}),
        ("GET", download, {"Range": "bytes=-100000000"}),
        ("GET", download, {"Range": "bytes=1-1,0-"}),
        ("GET", download, {"X-Forwarded-For": "10.9.1.1"}),
        ("HEAD", resolve, {}),  # answered with the presigned URL on S3
        ("GET", resolve, {"Range": "bytes=10-"}),
        ("GET", resolve, {"X-Forwarded-For": "10.9.1.2", "Range": "bytes=1-1,0-"}),
        ("GET", resolve, {"Range": "bytes=-5"}),
    ]
    _same_window()
    allowed = [_request(base, m, p, h) for m, p, h in requests[:LIMIT]]
    assert allowed == [302] * LIMIT
    refused = [_request(base, m, p, h) for _ in range(4) for m, p, h in requests]
    assert refused == [429] * len(refused)
    # Another client (bob's key, passed as ?token=) has a limit of its own.
    assert _request(base, "GET", f"{download}?token={key}") == 302

    time.sleep(0.5)  # gunicorn writes the access line after the response
    lines = access_log.read_text().splitlines()
    served = [line for line in lines if "/api/v1/health" not in line]
    assert len(served) == LIMIT + len(refused) + 1
    assert len({line.split(" ", 1)[0] for line in served}) == 2, "both workers served requests"
    secret = key.split("_", 2)[2]
    assert secret not in access_log.read_text()
    assert any(re.search(r"\?token=\[redacted\]", line) for line in served)
