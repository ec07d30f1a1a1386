"""A stand-in clamd on a TCP port, speaking clamd's real protocol (PING, INSTREAM).

It is a peer over a socket, like the real daemon: the code under test opens a
connection and speaks the wire protocol to it. Instead of a signature database
it knows one signature, the EICAR test string, and like clamd it refuses a
stream longer than its StreamMaxLength with `INSTREAM size limit exceeded. ERROR`
and closes the connection.
"""
from __future__ import annotations

import socketserver
import struct
import threading

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class _Handler(socketserver.BaseRequestHandler):
    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = self.request.recv(n - len(data))
            if not more:
                raise ConnectionError("client went away")
            data += more
        return data

    def _read_command(self) -> bytes:
        command = b""
        while not command.endswith((b"\0", b"\n")):
            command += self._read_exact(1)
        return command

    def handle(self) -> None:
        server: FakeClamd = self.server  # type: ignore[assignment]
        command = self._read_command()
        end = command[-1:]
        name = command[1:-1] if command[:1] in (b"z", b"n") else command[:-1]
        if name == b"PING":
            self.request.sendall(b"PONG" + end)
            return
        if name != b"INSTREAM":
            self.request.sendall(b"UNKNOWN COMMAND" + end)
            return
        received = bytearray()
        while True:
            (length,) = struct.unpack(">I", self._read_exact(4))
            if length == 0:
                break
            if len(received) + length > server.stream_max_length:
                self.request.sendall(b"INSTREAM size limit exceeded. ERROR" + end)
                return
            received += self._read_exact(length)
        server.scanned.append(len(received))
        if EICAR in received:
            self.request.sendall(b"stream: Eicar-Test-Signature FOUND" + end)
        else:
            self.request.sendall(b"stream: OK" + end)


class FakeClamd(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, stream_max_length: int = 25 * 1024 * 1024):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stream_max_length = stream_max_length
        self.scanned: list[int] = []  # bytes received per completed scan
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> FakeClamd:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
