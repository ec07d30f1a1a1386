"""Virus scanning through clamd's INSTREAM protocol, against a stand-in clamd over TCP."""
from __future__ import annotations

import socket
import time

import pytest
import torch
from safetensors.torch import save

from hub.files.clamd import Clamd, ClamdError, ClamdUnavailable
from hub.files.models import ModelFile
from hub.files.virus_scan import model_file_virus_scan, model_file_virus_scan_give_up
from tests.support.builders import make_published_model, tiny_safetensors_bytes
from tests.support.fake_clamd import EICAR, FakeClamd


@pytest.fixture
def clamd():
    with FakeClamd() as server:
        yield server


@pytest.fixture
def with_clamd(settings, clamd):
    settings.CLAMD_HOST, settings.CLAMD_PORT = "127.0.0.1", clamd.port
    return clamd


def eicar_safetensors() -> bytes:
    """A valid safetensors file whose tensor bytes hold the EICAR test string."""
    return save({"payload": torch.frombuffer(bytearray(EICAR), dtype=torch.uint8)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_client_speaks_instream(clamd):
    client = Clamd(host="127.0.0.1", port=clamd.port, timeout=10)
    assert client.ping()
    assert client.scan([b"harmless ", b"bytes"]).clean
    verdict = client.scan([EICAR[:20], EICAR[20:]])
    assert not verdict.clean and verdict.signature == "Eicar-Test-Signature"
    assert client.scan([]).clean
    # Chunks bigger than the wire chunk are split; clamd sees every byte once.
    assert client.scan([b"x" * 1_000_000]).clean and clamd.scanned[-1] == 1_000_000


def test_a_stream_over_clamds_limit_is_an_error_not_a_verdict():
    with FakeClamd(stream_max_length=100_000) as small:
        with pytest.raises(ClamdError, match="size limit exceeded"):
            Clamd(host="127.0.0.1", port=small.port, timeout=10).scan([b"y" * 4_000_000])


def test_an_unreachable_clamd_is_unavailable():
    with pytest.raises(ClamdUnavailable):
        Clamd(host="127.0.0.1", port=_free_port(), timeout=5).scan([b"z"])


@pytest.mark.django_db
def test_without_a_scanner_no_status_is_shown(client, alice, settings):
    settings.CLAMD_HOST = settings.CLAMD_SOCKET = None
    model = make_published_model(alice, "Unscanned")
    file = model.versions.get().files.get()
    assert file.virus_scan_status == ""
    html = client.get(f"/models/{model.pk}/{model.slug}/").content.decode()
    assert "Virus scan" not in html and "Pickle scan: Success" in html
    body = client.get(f"/api/v1/models/{model.pk}").json()
    assert body["modelVersions"][0]["files"][0]["virusScanResult"] is None


@pytest.mark.django_db
def test_a_configured_scanner_settles_each_file(client, alice, with_clamd, django_capture_on_commit_callbacks,
                                                local_storage):
    with django_capture_on_commit_callbacks() as queued:
        clean = make_published_model(alice, "Clean").versions.get().files.get()
    # The scan task is sent after commit (beside the followers' fan-out of the new version).
    assert clean.virus_scan_status == "Pending"
    assert [cb.__qualname__ for cb in queued].count("virus_scan_enqueue.<locals>.send") == 1
    assert model_file_virus_scan(model_file_id=clean.pk) == "Success"
    clean.refresh_from_db()
    assert clean.virus_scan_status == "Success" and with_clamd.scanned == [clean.size_bytes]
    assert model_file_virus_scan(model_file_id=clean.pk) is None  # a redelivered task does nothing

    bad_model = make_published_model(alice, "Infected", data=eicar_safetensors())
    bad = bad_model.versions.get().files.get()
    assert model_file_virus_scan(model_file_id=bad.pk) == "Danger"
    bad.refresh_from_db()
    assert bad.virus_scan_message == "ClamAV found Eicar-Test-Signature"
    html = client.get(f"/models/{bad_model.pk}/{bad_model.slug}/").content.decode()
    assert "Virus scan: Danger" in html and "The virus scanner flagged this file" in html
    refused = client.get(f"/api/download/models/{bad.version_id}")
    assert refused.status_code == 403 and refused.json()["code"] == "unsafe_file"
    client.force_login(alice)  # its owner may still fetch it (a HEAD probe: nothing is counted)
    assert client.head(f"/api/download/models/{bad.version_id}").status_code == 200

    # The same bytes in another file reuse the verdict without another scan.
    copy = make_published_model(alice, "Infected Copy", data=eicar_safetensors()).versions.get().files.get()
    scans = len(with_clamd.scanned)
    assert model_file_virus_scan(model_file_id=copy.pk) == "Danger" and len(with_clamd.scanned) == scans


@pytest.mark.django_db
def test_scan_errors_end_pending(alice, settings, local_storage):
    with FakeClamd(stream_max_length=64) as small:
        settings.CLAMD_HOST, settings.CLAMD_PORT = "127.0.0.1", small.port
        file = make_published_model(alice, "Too Big For Clamd").versions.get().files.get()
        assert model_file_virus_scan(model_file_id=file.pk) == "Error"
    file.refresh_from_db()
    assert "size limit exceeded" in file.virus_scan_message

    settings.CLAMD_PORT = _free_port()
    gone = make_published_model(alice, "Clamd Down", data=tiny_safetensors_bytes(3)).versions.get().files.get()
    with pytest.raises(ClamdUnavailable):  # the task retries this, then gives up:
        model_file_virus_scan(model_file_id=gone.pk)
    model_file_virus_scan_give_up(model_file_id=gone.pk, reason="cannot reach clamd")
    gone.refresh_from_db()
    assert gone.virus_scan_status == "Error"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_ingest_worker_scans_new_files(alice, with_clamd, monkeypatch, live_worker):
    monkeypatch.setenv("CLAMD_HOST", "127.0.0.1")
    monkeypatch.setenv("CLAMD_PORT", str(with_clamd.port))
    live_worker("ingest")
    file = make_published_model(alice, "Scanned By The Worker", data=eicar_safetensors()).versions.get().files.get()
    deadline = time.monotonic() + 60
    while ModelFile.objects.get(pk=file.pk).virus_scan_status == "Pending" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ModelFile.objects.get(pk=file.pk).virus_scan_status == "Danger"
