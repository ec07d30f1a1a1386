"""The real huggingface_hub client on S3 is counted and rate-limited.

On S3 the client sends HEAD to `resolve`, reads the presigned URL from the 302
and fetches the bytes from the store: the HEAD is the only request the hub
sees, so it is what counts and what the limit refuses.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.utils import _http as hf_http

from hub.catalog.download_events import _outbox, download_events_flush
from hub.catalog.models import Download
from hub.hf.services import catalog_import_folder
from tests.hf.test_hub_client import write_fake_diffusers_folder
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_stale_events(transactional_db):
    """Events another test left in Redis name version ids this test may reuse: drop them first."""
    _outbox.send()
    download_events_flush().release()


def _downloads(version) -> int:
    """Downloads recorded so far. The live server counts after sending its answer, so wait for it to settle."""
    seen, last_change = None, time.monotonic()
    while time.monotonic() - last_change < 0.5:
        _outbox.send()
        download_events_flush().release()
        now = Download.objects.filter(version=version).count()
        if now != seen:
            seen, last_change = now, time.monotonic()
        time.sleep(0.05)
    return seen


def test_hf_hub_download_on_s3_is_counted_once_per_client_and_file(alice, bob, hub_url, tmp_path, served, api_key_for):
    data = tiny_safetensors_bytes(31)
    model = make_published_model(alice, "Counted Tiny", data=data)
    version = model.versions.get()

    path = hf_hub_download("alice/counted-tiny", "counted-tiny.safetensors", endpoint=hub_url,
                           cache_dir=tmp_path / "a", token=False)
    assert Path(path).read_bytes() == data
    assert [m for m, p, _ in served if "/resolve/" in p] == ["HEAD"]  # the bytes came from the store
    assert _downloads(version) == 1
    # The same client again, with an empty cache: the same download within the window.
    hf_hub_download("alice/counted-tiny", "counted-tiny.safetensors", endpoint=hub_url,
                    cache_dir=tmp_path / "b", token=False)
    assert _downloads(version) == 1
    # Another client (bob's key) is another download.
    hf_hub_download("alice/counted-tiny", "counted-tiny.safetensors", endpoint=hub_url,
                    cache_dir=tmp_path / "c", token=api_key_for(bob))
    assert _downloads(version) == 2


class ToldToWait(Exception):
    pass


@pytest.fixture
def client_waits(monkeypatch) -> list[float]:
    """The waits huggingface_hub chooses after a 429 (it honours Retry-After, up to a minute): raised, not slept."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        raise ToldToWait(seconds)

    monkeypatch.setattr(hf_http, "time", SimpleNamespace(sleep=sleep))
    return waits


def test_hf_hub_download_on_s3_is_rate_limited(alice, hub_url, tmp_path, settings, served, client_waits):
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 2
    model = make_published_model(alice, "Limited Tiny", data=tiny_safetensors_bytes(32))
    fetch = lambda cache: hf_hub_download(  # noqa: E731
        "alice/limited-tiny", "limited-tiny.safetensors", endpoint=hub_url, cache_dir=tmp_path / cache, token=False
    )
    fetch("a")
    fetch("b")
    for cache in ("c", "d"):
        served.clear()
        with pytest.raises(ToldToWait):
            fetch(cache)
        assert {m for m, p, _ in served} == {"HEAD"}
        assert not (tmp_path / cache / "models--alice--limited-tiny" / "blobs").exists()
    assert len(client_waits) == 2 and all(w >= 1 for w in client_waits)  # the hub's Retry-After
    assert _downloads(model.versions.get()) == 1


def test_snapshot_download_on_s3_is_counted_and_limited(alice, hub_url, tmp_path, settings, served, client_waits):
    folder = tmp_path / "pipe"
    files = write_fake_diffusers_folder(folder, seed=33)
    # Every HEAD that hands out a presigned URL counts against the limit: two
    # snapshots of these six files do not fit in a limit of eight.
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = len(files) + 2
    version = catalog_import_folder(path=folder, owner=alice, model_name="counted-pipe").version

    first = Path(snapshot_download("alice/counted-pipe", endpoint=hub_url, cache_dir=tmp_path / "a", token=False))
    assert {p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file()} == set(files)
    assert {m for m, p, _ in served if "/resolve/" in p} == {"HEAD"}
    assert _downloads(version) == 1  # one repo download: its primary file, not every config file

    with pytest.raises(ToldToWait):
        snapshot_download("alice/counted-pipe", endpoint=hub_url, cache_dir=tmp_path / "b", token=False)
    assert client_waits and _downloads(version) == 1


def test_resolve_on_local_disk_limits_every_ranged_get_and_counts_a_resume_once(client, alice, local_storage, settings):
    """Suffix and multi-range requests read the file like a plain GET: limited alike, and one download per client."""
    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 3
    data = tiny_safetensors_bytes(34)
    model = make_published_model(alice, "Ranged Tiny", data=data)
    url = "/alice/ranged-tiny/resolve/main/ranged-tiny.safetensors"
    assert client.head(url).status_code == 200  # headers only on local disk: no transfer, not limited
    first = client.get(url, HTTP_RANGE="bytes=-100000000")
    assert first.status_code == 206 and b"".join(first.streaming_content) == data
    multi = client.get(url, HTTP_RANGE="bytes=1-1,0-")
    assert multi.status_code == 200 and b"".join(multi.streaming_content) == data
    resumed = client.get(url, HTTP_RANGE="bytes=10-")
    assert resumed.status_code == 206 and b"".join(resumed.streaming_content) == data[10:]
    for header in ("bytes=-100000000", "bytes=1-1,0-", "bytes=0-", None):
        refused = client.get(url, **({"HTTP_RANGE": header} if header else {}))
        assert refused.status_code == 429 and refused["Content-Type"].startswith("application/json")
        assert "Retry-After" in refused
    assert _downloads(model.versions.get()) == 1
