"""Fixtures for driving the real huggingface_hub client against the live server.

huggingface_hub reads HF_ENDPOINT once, at import, into `constants.ENDPOINT`;
in this process every call passes `endpoint=` instead (and HfApi takes
`endpoint=`), and tests that need HF_ENDPOINT itself (diffusers has no
endpoint argument) run the client in a subprocess.
"""
from __future__ import annotations

import pytest
from django.core.signals import request_started


@pytest.fixture(autouse=True)
def _hf_client_env(settings, monkeypatch, tmp_path):
    # A token lying around on the machine must never be sent; tests pass token= explicitly.
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Each test downloads many files from 127.0.0.1 within a minute; the per-IP
    # limit is tested with the download endpoint, not here.
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 0


@pytest.fixture(params=["s3", "local"])
def storage_backend(request) -> str:
    """Run a test once on S3 (moto, presigned redirects) and once on local disk (Range/206)."""
    if request.param == "local":
        request.getfixturevalue("local_storage")
    return request.param


@pytest.fixture
def hub_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def served(live_server):
    """(method, path, Range header) of every request the live server handles during the test."""
    seen: list[tuple[str, str, str | None]] = []

    def record(sender, environ, **kwargs):
        seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ.get("HTTP_RANGE")))

    request_started.connect(record, weak=False, dispatch_uid="tests.hf.served")
    yield seen
    request_started.disconnect(dispatch_uid="tests.hf.served")


@pytest.fixture
def api_key_for():
    from hub.accounts.services import api_key_create

    def make(user, scopes=("read", "download")) -> str:
        return api_key_create(user=user, name="hf test", scopes=list(scopes)).plaintext

    return make
