"""A client for the upload protocol (see `hub.uploads.api`), standard library only.

Used by the CLI, the tests and the benchmark; it needs no Django, so scripts
can copy it as is. It sends parts in parallel straight from the file
(`sendfile` on plain HTTP, `os.pread` in 1 MiB blocks over TLS; no part is
ever held whole in memory), hashes the file on another
thread meanwhile and declares the SHA-256 on completion, retries a failed
part with backoff, asks the hub for fresh part URLs when one has expired, and
resumes an interrupted upload from the parts the hub says it already has.

    client = UploadClient("https://hub.example", token="mw_…")
    state = client.upload("model.safetensors")          # returns once queued for ingest
    state = client.wait(state["id"])                     # "ready", "failed" or "quarantined"
    client.create_version(state["id"], name="My LoRA", publish=True)
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

PUT_BLOCK = 1024 * 1024
SENDFILE_BLOCK = 8 * 1024 * 1024
HASH_BLOCK = 8 * 1024 * 1024
TERMINAL = {"ready", "attached", "failed", "quarantined", "aborted", "expired"}


class UploadFailed(RuntimeError):
    def __init__(self, message: str, *, status: int | None = None, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.body = body or {}

    @property
    def code(self) -> str | None:
        return self.body.get("code")


class _SliceReader:
    """`read()` over bytes [offset, offset+length) of an open fd, without moving a shared file position."""

    def __init__(self, fd: int, offset: int, length: int, on_read: Callable[[int], None] | None = None):
        self._fd, self._pos, self._end = fd, offset, offset + length
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        if self._pos >= self._end:
            return b""
        n = self._end - self._pos if size is None or size < 0 else min(size, self._end - self._pos)
        data = os.pread(self._fd, n, self._pos)
        self._pos += len(data)
        if self._on_read and data:
            self._on_read(len(data))
        return data


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(HASH_BLOCK):
            h.update(chunk)
    return h.hexdigest()


class UploadClient:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        parallel: int = 4,
        retries: int = 5,
        timeout: float = 120.0,
        headers: dict[str, str] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.parallel = max(1, parallel)
        self.retries = retries
        self.timeout = timeout
        self.headers = {"Accept": "application/json", **(headers or {})}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    # --- JSON calls ---------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"{}")
            except ValueError:
                payload = {}
            raise UploadFailed(payload.get("error") or f"HTTP {exc.code}", status=exc.code, body=payload) from None
        return json.loads(raw) if raw else {}

    def create(self, *, filename: str, size: int, sha256: str = "", model_id: int | None = None) -> dict:
        body: dict = {"filename": filename, "size": size}
        if sha256:
            body["sha256"] = sha256
        if model_id is not None:
            body["modelId"] = model_id
        return self._call("POST", "/api/v1/uploads", body)

    def status(self, upload_id: str) -> dict:
        return self._call("GET", f"/api/v1/uploads/{upload_id}")

    def complete(self, upload_id: str, sha256: str = "") -> dict:
        return self._call("POST", f"/api/v1/uploads/{upload_id}/complete", {"sha256": sha256} if sha256 else {})

    def abort(self, upload_id: str) -> dict:
        return self._call("DELETE", f"/api/v1/uploads/{upload_id}")

    def create_version(self, upload_id: str, **fields) -> dict:
        return self._call("POST", f"/api/v1/uploads/{upload_id}/version", fields)

    def wait(self, upload_id: str, *, timeout: float = 600.0, poll: float = 0.5) -> dict:
        """Poll until the ingest has an outcome ("ready", "failed", "quarantined", …)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.status(upload_id)
            if state["status"] in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise UploadFailed(f"upload {upload_id} still {state['status']} after {timeout:.0f}s")
            time.sleep(poll)

    # --- Parts ----------------------------------------------------------------------

    def _put(self, conns: dict, url: str, f, offset: int, length: int, on_read) -> int:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        conn = conns.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            conn = cls(parts.netloc, timeout=self.timeout, blocksize=PUT_BLOCK)
            conns[key] = conn
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            if parts.scheme == "http":
                # Plain HTTP: the kernel copies file pages straight to the socket.
                conn.putrequest("PUT", target, skip_accept_encoding=True)
                conn.putheader("Content-Length", str(length))
                conn.putheader("Content-Type", "application/octet-stream")
                conn.endheaders()
                sent = 0
                while sent < length:
                    n = conn.sock.sendfile(f, offset + sent, min(SENDFILE_BLOCK, length - sent))
                    if n == 0:
                        raise ConnectionError("the connection closed while sending")
                    sent += n
                    on_read(n)
            else:
                conn.request(
                    "PUT", target, body=_SliceReader(f.fileno(), offset, length, on_read),
                    headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
                )
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(key, None)
            raise
        if response.status >= 400:
            raise UploadFailed(f"part PUT answered {response.status}: {body[:200]!r}", status=response.status)
        return response.status

    def send_parts(
        self, upload_id: str, path: str | os.PathLike[str], *, on_progress: Callable[[int, int], None] | None = None
    ) -> dict:
        """Send every part the hub does not have yet; returns the last status seen."""
        state = self.status(upload_id)
        size = state["size"]
        urls = {p["number"]: p["url"] for p in state["parts"] if not p["stored"]}
        sizes = {p["number"]: p["size"] for p in state["parts"]}
        done = [sum(p["size"] for p in state["parts"] if p["stored"])]
        lock = threading.Lock()
        todo: queue.Queue[int] = queue.Queue()
        for number in sorted(urls):
            todo.put(number)
        errors: list[BaseException] = []

        def progressed(n: int) -> None:
            with lock:
                done[0] += n
                if on_progress:
                    on_progress(done[0], size)

        def refresh_url(number: int) -> str | None:
            fresh = self.status(upload_id)
            return next((p["url"] for p in fresh["parts"] if p["number"] == number), None)

        def worker() -> None:
            conns: dict = {}
            f = open(path, "rb", buffering=0)
            try:
                while not errors:
                    try:
                        number = todo.get_nowait()
                    except queue.Empty:
                        return
                    offset, length = (number - 1) * state["partSize"], sizes[number]
                    url = urls[number]
                    for attempt in range(self.retries + 1):
                        sent = [0]

                        def count(n: int, sent=sent) -> None:
                            sent[0] += n
                            progressed(n)

                        try:
                            if url is None:
                                url = refresh_url(number)
                                if url is None:
                                    break  # the hub already has it
                            self._put(conns, url, f, offset, length, count)
                            break
                        except (OSError, http.client.HTTPException, UploadFailed) as exc:
                            progressed(-sent[0])
                            if isinstance(exc, UploadFailed) and exc.status in (400, 404, 409, 413):
                                errors.append(exc)
                                return
                            if attempt == self.retries:
                                errors.append(exc)
                                return
                            if isinstance(exc, UploadFailed) and exc.status == 403:
                                url = None  # expired URL: ask for a fresh one
                            time.sleep(min(30.0, 0.5 * 2**attempt))
            finally:
                f.close()
                for conn in conns.values():
                    conn.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.parallel, max(1, len(urls))))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise UploadFailed(f"upload {upload_id} interrupted: {errors[0]}") from errors[0]
        return self.status(upload_id)

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        filename: str | None = None,
        model_id: int | None = None,
        sha256: str | None = None,
        resume_id: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict:
        """Create (or resume) an upload, send its parts and complete it. Returns the completed state."""
        path = Path(path)
        size = path.stat().st_size
        digest: dict[str, str] = {}
        hasher = None
        if sha256 is None:
            # Hash on another thread while the parts go out; hashlib releases the GIL.
            hasher = threading.Thread(target=lambda: digest.setdefault("sha256", file_sha256(path)), daemon=True)
            hasher.start()
        else:
            digest["sha256"] = sha256
        if resume_id is None:
            state = self.create(filename=filename or path.name, size=size, sha256=sha256 or "", model_id=model_id)
            resume_id = state["id"]
        self.send_parts(resume_id, path, on_progress=on_progress)
        if hasher is not None:
            hasher.join()
        return self.complete(resume_id, digest["sha256"])
