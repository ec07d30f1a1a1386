"""The O_DIRECT output writer: same bytes as a plain write, whatever the sizes."""
from __future__ import annotations

import os
import random

import pytest

from merges.engine import direct_io
from merges.engine.direct_io import DirectFileWriter


def _write(path, pieces, buffer_bytes=64 << 10):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        out = DirectFileWriter(fd, buffer_bytes=buffer_bytes)
        for piece in pieces:
            out.write(memoryview(piece))
        out.close()
        return out.direct
    finally:
        os.close(fd)


@pytest.mark.parametrize("sizes", [[0], [1], [4096], [65536], [65536 * 3], [7, 65529, 1, 4095, 200_000, 13]])
def test_bytes_equal_a_plain_write(tmp_path, sizes):
    rng = random.Random(sum(sizes))
    pieces = [rng.randbytes(n) for n in sizes]
    direct = _write(tmp_path / "out", pieces)
    assert (tmp_path / "out").read_bytes() == b"".join(pieces)
    assert direct is True  # /tmp here is ext4; the fallback is tested below


def test_without_o_direct_the_file_is_written_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(direct_io, "_set_direct", lambda fd, on: False)
    pieces = [b"x" * 5000, b"y" * 70_000]
    assert _write(tmp_path / "out", pieces) is False
    assert (tmp_path / "out").read_bytes() == b"".join(pieces)


def test_a_refused_direct_write_falls_back_without_losing_bytes(tmp_path, monkeypatch):
    real_write = os.write
    calls = {"n": 0}

    def short_then_refuse(fd, view):
        calls["n"] += 1
        if calls["n"] == 2:  # the first block: part of it goes out, then O_DIRECT is refused
            return real_write(fd, view[:4096])
        if calls["n"] == 3:
            raise OSError(22, "Invalid argument")
        return real_write(fd, view)

    pieces = [os.urandom(200_000)]
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        out = DirectFileWriter(fd, buffer_bytes=64 << 10)
        monkeypatch.setattr(direct_io.os, "write", short_then_refuse)
        out.write(memoryview(pieces[0]))
        out.close()
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == pieces[0]


def test_a_file_not_at_its_start_is_written_plainly(tmp_path):
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"abc")
        out = DirectFileWriter(fd)
        assert out.direct is False
        out.write(memoryview(b"x" * 10_000))
        out.close()
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"abc" + b"x" * 10_000


def test_a_disk_error_reaches_the_caller(tmp_path, monkeypatch):
    def broken(fd, view):
        raise OSError(28, "No space left on device")

    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        out = DirectFileWriter(fd, buffer_bytes=8192)
        monkeypatch.setattr(direct_io.os, "write", broken)
        with pytest.raises(OSError, match="No space"):
            for _ in range(10):
                out.write(memoryview(b"z" * 8192))
            out.close()
        out.abort()
    finally:
        os.close(fd)


def test_abort_writes_no_more_than_the_buffer_on_the_disk(tmp_path, monkeypatch):
    """Cancelling drops the buffers still queued instead of writing them to a doomed file."""
    import threading

    started, release = threading.Event(), threading.Event()
    real_write = direct_io.os.write

    def slow(fd, view):
        started.set()
        release.wait(10)
        return real_write(fd, view)

    # The ring (and so abort) exists only in direct mode; claim it on any file system.
    monkeypatch.setattr(direct_io, "_set_direct", lambda fd, on: True)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        out = DirectFileWriter(fd, buffer_bytes=8192, buffers=4)
        assert out.direct
        monkeypatch.setattr(direct_io.os, "write", slow)
        for _ in range(3):  # one buffer being written, two queued behind it
            out.write(memoryview(b"z" * 8192))
        assert started.wait(10)
        threading.Timer(0.2, release.set).start()
        out.abort()
    finally:
        os.close(fd)
    assert os.path.getsize(tmp_path / "out") == 8192
