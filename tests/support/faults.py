"""Real network faults on local ports, for outage tests and `bench/fault_drills.py`.

- `refused_port()`: a port nothing listens on (connections are refused).
- `HungListener`: accepts connections and never answers, like a PostgreSQL,
  Redis or S3 whose process is stopped.
- `FaultProxy`: forwards TCP to a real service and can be switched, while
  clients stay connected, to refusing new connections ("refuse"), to holding
  every connection silent ("hang"), and back ("forward").
"""
from __future__ import annotations

import socket
import threading
import time


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HungListener:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> "HungListener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = refused_port()
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket | None]] = []
        self._lock = threading.Lock()
        self._listen()

    # --- switching ---------------------------------------------------------------------------
    def refuse(self) -> None:
        """Close the listening port and drop every connection: clients see refused connections."""
        self.mode = "refuse"
        self._stop_listening()
        self._drop_all()

    def hang(self) -> None:
        """Keep accepting, but pass nothing on, in either direction, on new and existing connections."""
        if self._listener is None:
            self._listen()
        self.mode = "hang"

    def forward(self) -> None:
        """Back to normal; connections held silent during a hang are dropped (as a restarted service would)."""
        if self.mode == "hang":
            self._drop_all()
        self.mode = "forward"
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.mode = "refuse"
        self._stop_listening()
        self._drop_all()

    # --- plumbing --------------------------------------------------------------------------
    def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _stop_listening(self) -> None:
        if self._listener is not None:
            # close() alone leaves the port listening while accept() blocks in
            # another thread (connections would queue, not be refused);
            # shutdown() wakes accept() and stops listening at once.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            for s in (client, upstream):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = None
            if self.mode == "forward":
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                    upstream.settimeout(None)
                except OSError:
                    client.close()
                    continue
            with self._lock:
                self._pairs.append((client, upstream))
            if upstream is not None:
                threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            while self.mode == "hang":
                time.sleep(0.05)  # hold the bytes: the peer waits, as on a stopped process
            if self.mode != "forward":
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
