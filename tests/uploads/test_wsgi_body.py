"""The socket fast path for part bodies, against a socketpair standing in for gunicorn's connection."""
from __future__ import annotations

import io
import os
import socket
import threading

import pytest

from hub.uploads.wsgi_body import SocketBody


class FakeUnreader:
    """gunicorn's SocketUnreader as far as SocketBody uses it."""

    def __init__(self, buffered: bytes):
        self.buf = io.BytesIO(buffered)

    def take_buffered(self) -> bytes:
        data = self.buf.getvalue()
        self.buf = io.BytesIO()
        return data

    def unread(self, data: bytes) -> None:
        rest = self.buf.getvalue()
        self.buf = io.BytesIO(data + rest)


class FakeLengthReader:
    def __init__(self, length: int):
        self.length = length


@pytest.fixture
def connection():
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def _send(sock: socket.socket, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["splice", "recv_into"])
def test_copy_to_writes_the_body_and_keeps_gunicorns_count(connection, tmp_path, timeout):
    server, client = connection
    server.settimeout(timeout)
    body = os.urandom(3 * 1024 * 1024 + 17)
    buffered, rest = body[:5000], body[5000:]
    # The next pipelined request is already on the wire behind the body.
    sender = _send(client, rest + b"GET /next HTTP/1.1\r\n\r\n")
    unreader, reader = FakeUnreader(buffered), FakeLengthReader(len(body))
    out = tmp_path / "data"
    fd = os.open(out, os.O_RDWR | os.O_CREAT)
    try:
        written = SocketBody(server, unreader, reader, len(body)).copy_to(fd, 100, len(body))
    finally:
        os.close(fd)
    sender.join()
    assert written == len(body) and reader.length == 0
    assert out.read_bytes()[100:] == body
    assert server.recv(100) == b"GET /next HTTP/1.1\r\n\r\n"  # not one byte of the next request taken


def test_a_short_read_leaves_the_rest_for_gunicorn(connection):
    server, client = connection
    body = b"x" * 1000
    unreader, reader = FakeUnreader(body[:300] + b"NEXT"), FakeLengthReader(len(body))
    reader_body = SocketBody(server, unreader, reader, len(body))
    view = memoryview(bytearray(100))
    assert reader_body.readinto(view) == 100
    # What was buffered and not asked for goes back, and the count says 900 are left.
    assert unreader.buf.getvalue() == body[100:300] + b"NEXT" and reader.length == 900


def test_the_client_hanging_up_ends_the_copy(connection, tmp_path):
    server, client = connection
    client.sendall(b"y" * 4096)
    client.close()
    fd = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT)
    try:
        written = SocketBody(server, FakeUnreader(b""), FakeLengthReader(10_000), 10_000).copy_to(fd, 0, 10_000)
    finally:
        os.close(fd)
    assert written == 4096
