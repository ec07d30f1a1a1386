"""A TCP proxy in front of the live server that can cut one response short.

It stands in for a flaky network: the real client talks to it over real
sockets, it forwards each request to the real server, and for the first
request that matches `cut_when` it sends only part of the body before closing
the connection, as a dropped link would. Each client connection carries one
request (`Connection: close` both ways) so responses never need reframing.
"""
from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    status: int
    cut: bool


@dataclass
class CuttingProxy:
    upstream: tuple[str, int]
    # (method, path, request headers) -> body bytes to pass before cutting, or None
    cut_when: Callable[[str, str, dict[str, str]], int | None] = lambda m, p, h: None
    exchanges: list[Exchange] = field(default_factory=list)
    _cut_done: bool = False

    def __enter__(self) -> "CuttingProxy":
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _handle(self, client: socket.socket) -> None:
        head, body = _read_message_head(client)
        if head is None:
            return
        request_line, headers = _parse_head(head)
        method, path, _ = request_line.split(" ", 2)
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                return
            body += chunk
        upstream_head = _with_connection_close(request_line, headers)
        with socket.create_connection(self.upstream) as up:
            up.sendall(upstream_head + body)
            raw = b""
            while chunk := up.recv(1 << 20):
                raw += chunk
        response_head, _, response_body = raw.partition(b"\r\n\r\n")
        status_line, response_headers = _parse_head(response_head)
        keep = None
        if not self._cut_done:
            keep = self.cut_when(method, path, headers)
        cut = keep is not None and keep < len(response_body)
        if cut:
            self._cut_done = True
            response_body = response_body[:keep]
        self.exchanges.append(Exchange(method, path, headers, int(status_line.split(" ")[1]), cut))
        client.sendall(_with_connection_close(status_line, response_headers) + response_body)
        client.shutdown(socket.SHUT_RDWR)


def _read_message_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _with_connection_close(first_line: str, headers: dict[str, str]) -> bytes:
    lines = [first_line] + [f"{k}: {v}" for k, v in headers.items() if k not in {"connection", "keep-alive"}]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
