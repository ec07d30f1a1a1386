"""Reading a large request body straight from the socket when gunicorn serves the hub.

gunicorn's `wsgi.input` hands out a body through two layers of `BytesIO`
buffers, so every byte of a part is copied five or six times in Python before
it reaches the disk; on a 2 GB upload that halves the throughput of the
local-disk part endpoint. When the request is a plain `Content-Length` body
that nothing has started reading, `body_reader` instead serves it with
`recv_into` on the connection's socket (what gunicorn had already buffered
first), or, better, has the kernel splice it from the socket into the part's
file, and keeps gunicorn's own count of the bytes left in step, so the
server still knows where the next request on the connection begins, and
can skip whatever body a refused request leaves unread.

Anything else (another server, the test client, a chunked body) gets the
ordinary `request`.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Protocol

# Bytes moved per splice(2) call, and the pipe size asked for (Linux's default
# cap for unprivileged pipes is 1 MiB).
SPLICE_CHUNK = 1024 * 1024


class BodyReader(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class SocketBody:
    """The rest of one request body, read from the socket into the caller's buffer.

    Whatever gunicorn has already buffered is served first, and only as much
    of it as asked for: the rest goes straight back, so if the view stops
    early gunicorn's buffer, its byte count and the socket still agree and it
    can skip the unread body as usual.
    """

    def __init__(self, sock: socket.socket, unreader, length_reader, length: int):
        self._sock = sock
        self._unreader = unreader
        self._length_reader = length_reader
        self._left = length

    def readinto(self, buffer: memoryview) -> int:
        if self._left <= 0 or len(buffer) == 0:
            return 0
        want = min(len(buffer), self._left)
        lead = self._unreader.take_buffered()
        if lead:
            n = min(want, len(lead))
            buffer[:n] = lead[:n]
            if len(lead) > n:
                self._unreader.unread(lead[n:])
        else:
            n = self._sock.recv_into(buffer[:want])
            if n == 0:
                return 0
        self._left -= n
        self._length_reader.length -= n
        return n

    def read(self, size: int = -1) -> bytes:
        chunk = bytearray(self._left if size is None or size < 0 else min(size, self._left))
        n = self.readinto(memoryview(chunk))
        return bytes(chunk[:n])

    def _consume(self, n: int) -> None:
        self._left -= n
        self._length_reader.length -= n

    def copy_to(self, fd: int, offset: int, count: int) -> int:
        """Write up to `count` body bytes into file `fd` at `offset`; returns how many.

        With splice(2) the kernel moves the socket's pages through a pipe into
        the file, and no byte passes through Python. Where splice is missing
        (not Linux) or the socket has a timeout (non-blocking underneath), it
        falls back to `readinto` and `pwrite`.
        """
        count = min(count, self._left)
        done = 0
        lead = self._unreader.take_buffered()
        if lead:
            n = min(count, len(lead))
            os.pwrite(fd, memoryview(lead)[:n], offset)
            if len(lead) > n:
                self._unreader.unread(lead[n:])
            self._consume(n)
            done = n
        if done >= count:
            return done
        if not hasattr(os, "splice") or self._sock.gettimeout() is not None:
            return done + self._copy_by_reading(fd, offset + done, count - done)
        read_end, write_end = os.pipe()
        try:
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SPLICE_CHUNK)
            while done < count:
                n = os.splice(self._sock.fileno(), write_end, min(SPLICE_CHUNK, count - done), flags=os.SPLICE_F_MOVE)
                if n == 0:
                    break
                self._consume(n)
                moved = 0
                while moved < n:
                    moved += os.splice(read_end, fd, n - moved, offset_dst=offset + done + moved, flags=os.SPLICE_F_MOVE)
                done += n
        finally:
            os.close(read_end)
            os.close(write_end)
        return done

    def _copy_by_reading(self, fd: int, offset: int, count: int) -> int:
        view = memoryview(bytearray(min(SPLICE_CHUNK, count)))
        done = 0
        while done < count:
            n = self.readinto(view[: min(len(view), count - done)])
            if n == 0:
                break
            os.pwrite(fd, view[:n], offset + done)
            done += n
        return done


def _gunicorn_socket_body(request, length: int) -> SocketBody | None:
    environ = request.META
    sock = environ.get("gunicorn.socket")
    body = environ.get("wsgi.input")
    if sock is None or body is None or not type(body).__module__.startswith("gunicorn."):
        return None
    if getattr(request, "_read_started", True):
        return None
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if (
        type(reader).__name__ != "LengthReader"
        or getattr(reader, "length", None) != length
        or not hasattr(unreader, "take_buffered")
        or not hasattr(unreader, "unread")
        or getattr(body, "buf", None) is None
        or body.buf.tell() != 0
    ):
        return None
    request._read_started = True
    return SocketBody(sock, unreader, reader, length)


def body_reader(request, length: int) -> BodyReader:
    """A reader over the request body: the socket fast path under gunicorn, else the request itself."""
    return _gunicorn_socket_body(request, length) or request
