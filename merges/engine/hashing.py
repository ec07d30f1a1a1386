"""All the hashes Civitai shows for a file, from one pass over its bytes.

* ``sha256``, ``blake3``: whole file, lowercase hex.
* ``crc32``: whole file, 8 uppercase hex digits, as Civitai prints it.
* ``autov1``: A1111's legacy ``model_hash``: first 8 hex of SHA-256 over the
  64 KiB at offset 1 MiB; ``None`` for files under 2 MiB.
* ``autov2``: first 10 hex of the whole-file SHA-256.
* ``autov3``: SHA-256 of the tensor data (every byte after the safetensors
  header), which survives metadata edits; kohya writes the same digest as
  ``sshs_model_hash``. Full 64 hex here (Civitai displays a prefix of it);
  ``None`` when the file is not a valid safetensors file.

The digests run on two background threads (hashlib, zlib and blake3 release
the GIL on large buffers), split so each thread has about the same work:
SHA-256 + CRC32 on one, AutoV3's SHA-256 + BLAKE3 on the other.
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import threading
import zlib
from typing import Callable

import blake3

from .safetensors_io import HEADER_CAP, SafetensorsError, parse_header_bytes

__all__ = ["FileHasher", "HASH_KINDS", "autov1_of_file", "hash_file"]

HASH_KINDS = ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3")

AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
AUTOV1_MIN_SIZE = 2 * 1024 * 1024

_BATCH = 256 << 10  # coalesce smaller updates so each queue item releases the GIL for long
_QUEUE_DEPTH = 8
_READ_CHUNK = 8 << 20


class _Worker(threading.Thread):
    """Runs ``fn(item)`` for each queued item; re-raises its failure on join."""

    def __init__(self, name: str, fn: Callable[[tuple[bytes, int]], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.q: queue.Queue[tuple[bytes, int] | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self._fn(item)
                except BaseException as e:  # surfaced by finish()
                    self.error = e

    def abandon(self) -> None:
        self.error = self.error or RuntimeError("hashing abandoned")
        self.q.put(None)
        self.join()

    def finish(self) -> None:
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class FileHasher:
    """Feed bytes in file order with ``update``; read ``hexdigests()`` once at the end.

    ``kinds`` limits the work to some of ``HASH_KINDS`` (the others come back
    as ``None``), e.g. ``("sha256",)`` for a merge output.
    """

    def __init__(self, kinds: tuple[str, ...] = HASH_KINDS) -> None:
        unknown = set(kinds) - set(HASH_KINDS)
        if unknown:
            raise ValueError(f"unknown hash kinds: {sorted(unknown)}")
        self._kinds = frozenset(kinds)
        sha_needed = bool(self._kinds & {"sha256", "autov2"})
        self._do_crc = "crc32" in self._kinds
        self._do_b3 = "blake3" in self._kinds
        self._do_v3 = "autov3" in self._kinds
        self._sha = hashlib.sha256()
        self._crc = 0
        self._v3 = hashlib.sha256()
        self._b3 = blake3.blake3()
        self._v1 = bytearray()
        self._prefix = bytearray()  # the safetensors length + header, once known
        self._v3_start: int | None = None  # offset where tensor data starts
        self._not_st = False
        self._pos = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._pending_start = 0
        self._result: dict[str, str | None] | None = None
        self._a = _Worker("hash-sha256-crc32", self._work_a) if sha_needed or self._do_crc else None
        self._b = _Worker("hash-autov3-blake3", self._work_b) if self._do_b3 or self._do_v3 else None
        self._sha_needed = sha_needed
        self._workers = [w for w in (self._a, self._b) if w is not None]
        for w in self._workers:
            w.start()

    # -- workers -----------------------------------------------------------
    def _work_a(self, item: tuple[bytes, int]) -> None:
        data, _ = item
        if self._sha_needed:
            self._sha.update(data)
        if self._do_crc:
            self._crc = zlib.crc32(data, self._crc)

    def _work_b(self, item: tuple[bytes, int]) -> None:
        data, v3_from = item
        if self._do_b3:
            self._b3.update(data)
        if self._do_v3 and v3_from >= 0:
            self._v3.update(memoryview(data)[v3_from:] if v3_from else data)

    # -- feeding -----------------------------------------------------------
    @property
    def size(self) -> int:
        return self._pos

    def update(self, chunk: bytes | bytearray | memoryview, *, owned: bool = False) -> None:
        """Hash the next bytes of the file.

        The workers read the data after ``update`` returns, so anything but
        ``bytes`` is copied first, unless ``owned`` promises the caller will
        never modify that memory again.
        """
        if self._result is not None:
            raise RuntimeError("FileHasher already finished")
        if isinstance(chunk, bytes) or owned:
            data = chunk if isinstance(chunk, bytes) else memoryview(chunk).cast("B")
        else:
            data = bytes(chunk)
        if not data:
            return
        start = self._pos
        self._pos += len(data)
        self._track_small_ranges(data, start)
        if len(data) >= _BATCH:
            # Big enough on its own: no copy into a batch.
            if self._pending:
                self._dispatch()
            self._pending_start = start
            self._pending = [data]
            self._dispatch()
            return
        if not self._pending:
            self._pending_start = start
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= _BATCH:
            self._dispatch()

    def _track_small_ranges(self, data: bytes, start: int) -> None:
        end = start + len(data)
        # AutoV1's 64 KiB window.
        lo, hi = max(start, AUTOV1_OFFSET), min(end, AUTOV1_OFFSET + AUTOV1_LENGTH)
        if lo < hi:
            self._v1 += data[lo - start : hi - start]
        # The safetensors header: first its 8-byte length, then that many bytes.
        if self._not_st:
            return
        limit = 8 if self._v3_start is None else self._v3_start
        if start < limit:
            self._prefix += data[: limit - start]
        if self._v3_start is None and len(self._prefix) >= 8:
            n = struct.unpack("<Q", bytes(self._prefix[:8]))[0]
            if n > HEADER_CAP or n < 2:
                self._not_st = True
                self._prefix = bytearray()
                return
            self._v3_start = 8 + n
            # This chunk reached byte 8 (start < 8): keep the header part of it.
            self._prefix += data[8 - start : self._v3_start - start]

    def _dispatch(self) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        start = self._pending_start
        self._pending, self._pending_len = [], 0
        # Where AutoV3 starts inside this batch: -1 means not in it (yet).
        # Before the header length is known nothing can be after the header.
        v3_from = -1
        if self._v3_start is not None and not self._not_st:
            if start + len(data) > self._v3_start:
                v3_from = max(0, self._v3_start - start)
        if self._a is not None:
            self._a.q.put((data, -1))
        if self._b is not None:
            self._b.q.put((data, v3_from))

    # -- results -----------------------------------------------------------
    def hexdigests(self) -> dict[str, str | None]:
        if self._result is not None:
            if not self._result:
                raise RuntimeError("FileHasher was closed before finishing")
            return dict(self._result)
        if self._pending:
            self._dispatch()
        for w in self._workers:
            w.finish()
        sha = self._sha.hexdigest()
        autov1 = None
        if self._pos >= AUTOV1_MIN_SIZE:
            autov1 = hashlib.sha256(bytes(self._v1)).hexdigest()[:8]
        result: dict[str, str | None] = {
            "sha256": sha,
            "autov1": autov1,
            "autov2": sha[:10],
            "autov3": self._v3.hexdigest() if self._do_v3 and self._is_safetensors() else None,
            "crc32": f"{self._crc & 0xFFFFFFFF:08X}",
            "blake3": self._b3.hexdigest(),
        }
        self._result = {k: (v if k in self._kinds else None) for k, v in result.items()}
        return dict(self._result)

    def _is_safetensors(self) -> bool:
        if self._not_st or self._v3_start is None or len(self._prefix) < self._v3_start:
            return False
        try:
            parse_header_bytes(bytes(self._prefix), self._pos)
        except SafetensorsError:
            return False
        return True

    def close(self) -> None:
        """Stop the threads without a result (e.g. when an upload is abandoned)."""
        if self._result is None:
            self._result = {}
            self._pending = []
            for w in self._workers:
                w.abandon()


def hash_file(
    path: str | os.PathLike[str], chunk_size: int = _READ_CHUNK, kinds: tuple[str, ...] = HASH_KINDS
) -> dict[str, str | None]:
    """Every hash of ``kinds`` (default all) for the file at ``path``, in one read."""
    h = FileHasher(kinds)
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(chunk_size):
                h.update(chunk)
    except BaseException:
        h.close()
        raise
    return h.hexdigests()


def autov1_of_file(path: str | os.PathLike[str]) -> str | None:
    """A1111's legacy model hash, reading only its 64 KiB window."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < AUTOV1_MIN_SIZE:
            return None
        f.seek(AUTOV1_OFFSET)
        return hashlib.sha256(f.read(AUTOV1_LENGTH)).hexdigest()[:8]
