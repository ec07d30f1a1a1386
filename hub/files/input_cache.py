"""A local, content-addressed cache of merge inputs on a GPU worker host.

Merges read their inputs many times over (one tensor at a time, from
several files), so they need a local file; recipes that share a base model
should not fetch it again. Entries live at `<root>/<2 hex>/<sha256>` and are
verified against their SHA-256 when fetched. The cache is bounded in bytes:
after each insertion the least recently used entries are removed until it
fits again.

Several worker processes may share one root. An entry in use is held with a
shared `flock` on its lock file; eviction takes the lock exclusively without
waiting and skips entries it cannot take, so a merge never loses an input it
is reading. Insertion and eviction run under a cache-wide lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


class CacheVerifyError(IOError):
    """A fetched blob did not hash to the digest it was fetched for."""


@dataclass(frozen=True)
class CacheEntry:
    sha256: str
    path: Path
    size: int


class _HashingWriter:
    def __init__(self, out: BinaryIO):
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


class InputCache:
    def __init__(self, root: str | os.PathLike[str], max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    @contextlib.contextmanager
    def _global_lock(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def contains(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    @contextlib.contextmanager
    def lease(self, sha256: str, fetch: Writer) -> Iterator[CacheEntry]:
        """Yield a local copy of blob `sha256`, fetching it with `fetch(fileobj)` on a miss.

        The entry cannot be evicted while the context is open.
        """
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a+b") as entry_lock:
            # Take the shared lock first: from then on no evictor can remove the file.
            fcntl.flock(entry_lock, fcntl.LOCK_SH)
            try:
                if path.is_file():
                    os.utime(path)  # mtime is the LRU clock
                else:
                    self._fetch(sha256.lower(), path, fetch)
                yield CacheEntry(sha256=sha256.lower(), path=path, size=path.stat().st_size)
            finally:
                fcntl.flock(entry_lock, fcntl.LOCK_UN)

    def _fetch(self, sha256: str, path: Path, fetch: Writer) -> None:
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}-{time.monotonic_ns()}")
        try:
            with open(tmp, "wb") as out:
                writer = _HashingWriter(out)
                fetch(writer)  # type: ignore[arg-type]
            if writer.digest.hexdigest() != sha256:
                raise CacheVerifyError(
                    f"fetched blob hashes to {writer.digest.hexdigest()}, expected {sha256} ({writer.size} bytes)"
                )
            with self._global_lock():
                os.replace(tmp, path)
                self._evict_locked(keep=path)
        finally:
            tmp.unlink(missing_ok=True)

    def entries(self) -> list[CacheEntry]:
        found = []
        for sub in self.root.iterdir():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for item in sub.iterdir():
                if len(item.name) == 64 and item.is_file():
                    found.append(CacheEntry(sha256=item.name, path=item, size=item.stat().st_size))
        return found

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def evict(self) -> list[str]:
        with self._global_lock():
            return self._evict_locked(keep=None)

    def _evict_locked(self, keep: Path | None) -> list[str]:
        entries = self.entries()
        total = sum(e.size for e in entries)
        evicted: list[str] = []
        if total <= self.max_bytes:
            return evicted
        # Oldest first. An entry larger than the whole bound stays while it is
        # needed: a merge cannot run without its inputs.
        for entry in sorted(entries, key=lambda e: e.path.stat().st_mtime):
            if total <= self.max_bytes:
                break
            if entry.path == keep:
                continue
            with open(entry.path.with_name(entry.path.name + ".lock"), "a+b") as entry_lock:
                try:
                    fcntl.flock(entry_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use by a running merge
                try:
                    entry.path.unlink(missing_ok=True)
                finally:
                    fcntl.flock(entry_lock, fcntl.LOCK_UN)
            total -= entry.size
            evicted.append(entry.sha256)
        return evicted


def storage_fetcher(storage, key: str) -> Writer:
    """A `fetch` callable that copies blob `key` from a hub blob storage into a file object."""

    def fetch(out: BinaryIO) -> None:
        client = getattr(storage, "client", None)
        if client is not None and hasattr(storage, "bucket_name"):
            # Managed transfer: parallel ranged GETs for large objects.
            client.download_fileobj(storage.bucket_name, storage._key(key), out)
            return
        with storage.open(key, "rb") as src:
            while chunk := src.read(8 * 1024 * 1024):
                out.write(chunk)

    return fetch
