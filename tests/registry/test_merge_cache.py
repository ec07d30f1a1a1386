from __future__ import annotations

import hashlib
import os
import time

import pytest

from hub.files.input_cache import CacheVerifyError, InputCache


def blob(n: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([n % 251]) * size
    return hashlib.sha256(data).hexdigest(), data


def writer(data: bytes, calls: list | None = None):
    def fetch(out):
        if calls is not None:
            calls.append(1)
        out.write(data[: len(data) // 2])
        out.write(data[len(data) // 2 :])

    return fetch


def test_miss_fetches_and_verifies_then_hits_reuse(tmp_path):
    cache = InputCache(tmp_path, max_bytes=10_000)
    sha, data = blob(1)
    calls: list = []
    with cache.lease(sha, writer(data, calls)) as entry:
        assert entry.path.read_bytes() == data and entry.size == len(data)
        assert entry.path == tmp_path / sha[:2] / sha
    with cache.lease(sha, writer(data, calls)):
        pass
    assert len(calls) == 1


def test_wrong_bytes_are_refused_and_leave_nothing(tmp_path):
    cache = InputCache(tmp_path, max_bytes=10_000)
    sha, _ = blob(1)
    with pytest.raises(CacheVerifyError):
        with cache.lease(sha, writer(b"not the file")):
            pass
    assert not cache.contains(sha)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "partial" in p.name]


def test_least_recently_used_entries_are_evicted_to_fit(tmp_path):
    cache = InputCache(tmp_path, max_bytes=3_000)
    blobs = [blob(i) for i in range(3)]
    for n, (sha, data) in enumerate(blobs):
        with cache.lease(sha, writer(data)):
            pass
        os.utime(tmp_path / sha[:2] / sha, (time.time() - 100 + n, time.time() - 100 + n))
    # Touch the oldest: it becomes the most recently used.
    with cache.lease(blobs[0][0], writer(blobs[0][1])):
        pass
    sha, data = blob(3)
    with cache.lease(sha, writer(data)):
        pass
    assert cache.total_bytes() <= 3_000
    assert cache.contains(blobs[0][0]) and cache.contains(sha)
    assert not cache.contains(blobs[1][0])  # least recently used went first


def test_entries_in_use_are_never_evicted(tmp_path):
    cache = InputCache(tmp_path, max_bytes=1_500)
    first, data1 = blob(1)
    second, data2 = blob(2)
    with cache.lease(first, writer(data1)):
        with cache.lease(second, writer(data2)) as entry:
            # Over the bound, but both are held by a running merge.
            assert cache.contains(first) and entry.path.exists()
            assert cache.evict() == []
    assert cache.evict() == [first]  # released: the older one goes
    assert cache.total_bytes() <= 1_500


def test_rejects_what_is_not_a_digest(tmp_path):
    with pytest.raises(ValueError):
        with InputCache(tmp_path, 1).lease("../../etc/passwd", writer(b"")):
            pass
