"""A client for ClamAV's daemon, clamd, speaking its INSTREAM protocol over a socket.

No Django and no dependency: the protocol is a few lines (clamd(8),
"INSTREAM"). Over a Unix socket (`CLAMD_SOCKET`) or TCP (`CLAMD_HOST`,
`CLAMD_PORT`):

1. send the command `zINSTREAM\\0` (`z`: replies end with NUL, not newline);
2. send the bytes as chunks, each prefixed with its length as a 4-byte
   big-endian unsigned integer;
3. send a zero length to say the stream is over;
4. read one NUL-terminated reply: `stream: OK`, `stream: <signature> FOUND`,
   or `<reason> ERROR` (for instance `INSTREAM size limit exceeded. ERROR`
   when the file is larger than clamd's `StreamMaxLength`; clamd then closes
   the connection while we may still be sending).

The signature database is the operator's business (freshclam).
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

CHUNK = 256 * 1024
MAX_REPLY = 4096


class ClamdError(Exception):
    """clamd could not scan the stream; the message says why."""


class ClamdUnavailable(ClamdError):
    """clamd could not be reached at all (worth trying again later)."""


@dataclass(frozen=True)
class Verdict:
    clean: bool
    signature: str = ""  # the name of what clamd found, when not clean


@dataclass(frozen=True)
class Clamd:
    socket_path: str | None = None
    host: str | None = None
    port: int = 3310
    timeout: float = 600.0

    def _connect(self) -> socket.socket:
        try:
            if self.socket_path:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                return sock
            return socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise ClamdUnavailable(f"cannot reach clamd at {self.address}: {exc}") from exc

    @property
    def address(self) -> str:
        return self.socket_path or f"{self.host}:{self.port}"

    def ping(self) -> bool:
        with self._connect() as sock:
            sock.sendall(b"zPING\0")
            return _read_reply(sock) == "PONG"

    def scan(self, chunks: Iterable[bytes]) -> Verdict:
        """Stream the bytes to clamd and return its verdict; raises ClamdError if it gave none."""
        with self._connect() as sock:
            try:
                sock.sendall(b"zINSTREAM\0")
                for chunk in chunks:
                    for start in range(0, len(chunk), CHUNK):
                        piece = chunk[start:start + CHUNK]
                        sock.sendall(struct.pack(">I", len(piece)) + piece)
                sock.sendall(struct.pack(">I", 0))
            except (BrokenPipeError, ConnectionResetError):
                pass  # clamd stopped reading (size limit): its reply says why
            except OSError as exc:
                raise ClamdError(f"clamd at {self.address}: {exc}") from exc
            return _verdict(_read_reply(sock), self.address)


def _read_reply(sock: socket.socket) -> str:
    reply = b""
    try:
        while not reply.endswith(b"\0") and len(reply) < MAX_REPLY:
            data = sock.recv(MAX_REPLY)
            if not data:
                break
            reply += data
    except OSError as exc:
        if not reply:
            raise ClamdError(f"clamd gave no reply: {exc}") from exc
    return reply.rstrip(b"\0\n").decode("utf-8", "replace").strip()


def _verdict(reply: str, address: str) -> Verdict:
    if not reply:
        raise ClamdError(f"clamd at {address} closed the connection without a verdict")
    if reply.endswith("ERROR"):
        raise ClamdError(f"clamd: {reply.removesuffix('ERROR').strip()}")
    # "stream: OK", or "stream: Eicar-Test-Signature FOUND" (older clamd say "stream:" too).
    _, _, result = reply.partition(": ")
    result = result or reply
    if result == "OK":
        return Verdict(clean=True)
    if result.endswith(" FOUND"):
        return Verdict(clean=False, signature=result.removesuffix(" FOUND").strip()[:200])
    raise ClamdError(f"clamd at {address} answered something unexpected: {reply[:200]!r}")
