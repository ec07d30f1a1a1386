"""Checking an uploaded model file: one streaming pass, then a pickle scan.

`file_stream_verify` reads the object once, front to back: it feeds every
byte to the engine's `FileHasher` (all six Civitai hashes), validates a
safetensors header strictly with the engine's `read_header` as soon as its
bytes have gone by, and keeps the header and the few bytes of LoRA `.alpha`
tensors as they pass. The engine's `inspect_file` (architecture, kind, rank,
alpha, metadata summary) then runs on a sparse local replica holding exactly
those bytes at their offsets, so it needs no second read of the object,
wherever the object is stored.

Pickle checkpoints (`.ckpt`/`.pt`/`.bin`, decided by their bytes) are then
scanned with picklescan, which disassembles the pickle opcodes and never
executes them. Nothing in this module unpickles anything.
"""
from __future__ import annotations

import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import BinaryIO

from hub.files.models import ModelFile
from hub.files.services import DTYPE_PRECISION, FileRejected
from merges.engine.hashing import FileHasher
from merges.engine.inspect import inspect_file
from merges.engine.safetensors_io import HEADER_CAP, Header, SafetensorsError, read_header, sniff_pickle_or_zip

READ_CHUNK = 8 * 1024 * 1024
# Header metadata is attacker-controlled and may be megabytes: keep what a page
# can show (inspect parses the keys suggestions need from the full header).
METADATA_VALUE_CAP = 16 * 1024
METADATA_TOTAL_CAP = 256 * 1024
# `.alpha` tensors are scalars; anything larger is not what inspect reads.
SMALL_TENSOR_BYTES = 8


class FileQuarantined(FileRejected):
    """A file that would run code if loaded; it is kept aside, never served."""


@dataclass
class PickleScan:
    container: str  # "zip" (torch.save since 1.6) or "pickle" (legacy)
    dangerous: list[str] = field(default_factory=list)
    suspicious: list[str] = field(default_factory=list)
    innocuous: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.dangerous:
            return f"dangerous imports: {', '.join(self.dangerous)}"
        if self.suspicious:
            return f"no dangerous imports; imports outside the known-safe list: {', '.join(self.suspicious)}"
        return "no dangerous imports"

    def as_dict(self) -> dict:
        return {
            "container": self.container,
            "dangerous": self.dangerous,
            "suspicious": self.suspicious,
            "innocuous": self.innocuous,
            "message": self.message,
        }


@dataclass
class StreamResult:
    """What one pass over the bytes established."""

    size: int
    hashes: dict[str, str | None]
    format: str
    container: str | None = None  # for pickle checkpoints: "zip" or "pickle"
    precision: str = ""
    header_summary: dict = field(default_factory=dict)


def content_kind(head: bytes) -> str:
    """"safetensors", "zip" or "pickle", from the first bytes (at least 9).

    A safetensors header length can itself begin with 0x80 0x02, so the magic
    bytes of a pickle only count when the bytes are not a plausible header.
    """
    if len(head) >= 9:
        n = struct.unpack("<Q", head[:8])[0]
        if n <= HEADER_CAP and head[8:9] == b"{":
            return "safetensors"
    return sniff_pickle_or_zip(head) or "safetensors"


class _TeeReader:
    """Serves `prefix` then `reader`, feeding what it reads to the hasher and keeping a copy.

    `read_header` reads through it, so the header bytes are hashed, validated
    and kept (for the inspect replica) in the same pass.
    """

    def __init__(self, prefix: bytes, reader: BinaryIO, hasher: FileHasher):
        self._prefix = prefix
        self._reader = reader
        self._hasher = hasher
        self.seen = bytearray()

    @property
    def pos(self) -> int:
        return len(self.seen)

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            take = len(self._prefix) if size < 0 else min(size, len(self._prefix))
            chunk, self._prefix = self._prefix[:take], self._prefix[take:]
        else:
            chunk = self._reader.read(size)
            if chunk:
                self._hasher.update(chunk)
        self.seen += chunk
        return chunk


class _SmallTensorCapture:
    """Collects the bytes of a few small tensors as the stream goes past them."""

    def __init__(self, header: Header, names: list[str]):
        self._ranges = sorted(
            (header.data_start + header.tensors[n].begin, header.data_start + header.tensors[n].end) for n in names
        )
        self._i = 0
        self._partial = bytearray()
        self.done: list[tuple[int, bytes]] = []  # (file offset, bytes)

    def feed(self, pos: int, chunk: bytes) -> None:
        end = pos + len(chunk)
        while self._i < len(self._ranges):
            begin, stop = self._ranges[self._i]
            if begin >= end:
                return
            self._partial += chunk[max(begin, pos) - pos : min(stop, end) - pos]
            if stop > end:
                return
            self.done.append((begin, bytes(self._partial)))
            self._partial = bytearray()
            self._i += 1


def _read_exact(reader: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        chunk = reader.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def metadata_capped(metadata: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    total = 0
    for key in sorted(metadata):
        value = metadata[key]
        if len(value) > METADATA_VALUE_CAP:
            value = value[:METADATA_VALUE_CAP] + "…"
        total += len(key) + len(value)
        if total > METADATA_TOTAL_CAP:
            out["__truncated__"] = "metadata too large to keep in full"
            break
        out[key[:256]] = value
    return out


def _inspect_replica(prefix: bytes, pieces: list[tuple[int, bytes]], size: int) -> dict:
    """Run the engine's `inspect_file` on a sparse file with the header and alpha bytes in place.

    Every byte inspect reads is real; the tensor data it does not read is a
    hole (no disk space), so this costs the same for 2 MB and 20 GB files.
    """
    with tempfile.TemporaryDirectory(prefix="mw-inspect-") as tmp:
        path = os.path.join(tmp, "replica.safetensors")
        with open(path, "wb") as f:
            f.write(prefix)
            for offset, data in pieces:
                f.seek(offset)
                f.write(data)
            f.truncate(size)
        return inspect_file(path, hashes=False)


def _safetensors_summary(header: Header, prefix: bytes, pieces: list[tuple[int, bytes]], size: int) -> tuple[str, dict]:
    dtypes = sorted({t.dtype for t in header.tensors.values()})
    if len(dtypes) == 1:
        precision = DTYPE_PRECISION.get(dtypes[0], "")
    else:
        precision = "mixed" if dtypes else ""
    inspected = _inspect_replica(prefix, pieces, size)
    summary = {
        "tensor_count": len(header.tensors),
        "dtypes": dtypes,
        "parameters": sum(t.numel for t in header.tensors.values()),
        "header_bytes": header.header_len,
        # kind, architecture, lora {kind, base, rank, alpha}, metadata summary, warnings
        "inspect": {k: v for k, v in inspected.items() if k not in ("hashes", "file_size", "format")},
        "metadata": metadata_capped(header.metadata),
    }
    return precision, summary


def file_stream_verify(reader: BinaryIO, *, size: int, chunk_size: int = READ_CHUNK) -> StreamResult:
    """Hash every byte of `reader` and validate what can be validated on the way.

    `size` is the size of the stored object. Raises FileRejected (with the
    safetensors validator's code) as soon as the header is known to be bad.
    """
    hasher = FileHasher()
    try:
        head = _read_exact(reader, 9)
        kind = content_kind(head)
        hasher.update(head)
        pos = len(head)
        header: Header | None = None
        prefix = b""
        capture: _SmallTensorCapture | None = None
        if kind == "safetensors":
            tee = _TeeReader(head, reader, hasher)
            try:
                header = read_header(tee, size)
            except SafetensorsError as exc:
                raise FileRejected(exc.code, f"not a valid safetensors file: {exc}") from exc
            pos = tee.pos
            prefix = bytes(tee.seen)
            small = [
                name
                for name, info in header.tensors.items()
                if name.endswith(".alpha") and 0 < info.nbytes <= SMALL_TENSOR_BYTES
            ]
            capture = _SmallTensorCapture(header, small)
        while True:
            chunk = reader.read(chunk_size)
            if not chunk:
                break
            hasher.update(chunk)
            if capture is not None:
                capture.feed(pos, chunk)
            pos += len(chunk)
        if pos != size:
            raise FileRejected("size_mismatch", f"the stored file has {pos} bytes, expected {size}")
        # Lowercase like `blob_ingest_stream`, so every ModelFile stores hashes alike.
        hashes = {k: (v.lower() if isinstance(v, str) else v) for k, v in hasher.hexdigests().items()}
    except BaseException:
        hasher.close()
        raise

    if header is None:
        return StreamResult(size=size, hashes=hashes, format=ModelFile.Format.PICKLE_TENSOR, container=kind)
    try:
        precision, summary = _safetensors_summary(header, prefix, capture.done if capture else [], size)
    except SafetensorsError as exc:  # inspect validates again; if it ever disagrees, refuse rather than guess
        raise FileRejected(exc.code, f"not a valid safetensors file: {exc}") from exc
    return StreamResult(
        size=size,
        hashes=hashes,
        format=ModelFile.Format.SAFETENSOR,
        precision=precision,
        header_summary=summary,
    )


def _globals(result) -> tuple[list[str], list[str], list[str]]:
    from picklescan.scanner import SafetyLevel

    buckets: dict[SafetyLevel, set[str]] = {level: set() for level in SafetyLevel}
    for g in result.globals:
        buckets[g.safety].add(f"{g.module}.{g.name}")
    return (
        sorted(buckets[SafetyLevel.Dangerous]),
        sorted(buckets[SafetyLevel.Suspicious]),
        sorted(buckets[SafetyLevel.Innocuous]),
    )


def pickle_scan(f: BinaryIO, *, container: str) -> PickleScan:
    """Scan a pickle or torch-zip checkpoint; `f` must be seekable.

    Raises FileQuarantined when the file imports something that can run code,
    FileRejected when it cannot be scanned or holds no tensors at all.
    """
    from picklescan.scanner import InvalidMagicError, scan_pickle_bytes, scan_pytorch, scan_zip_bytes

    try:
        if container == "zip":
            try:
                names = zipfile.ZipFile(f).namelist()
            except zipfile.BadZipFile as exc:
                raise FileRejected("bad_zip", f"the zip container is damaged: {exc}") from exc
            if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                raise FileRejected("not_a_checkpoint", "this zip archive is not a PyTorch checkpoint (no data.pkl)")
            f.seek(0)
            result = scan_zip_bytes(f, "upload")
        else:
            try:
                result = scan_pytorch(f, "upload")
            except InvalidMagicError:
                f.seek(0)
                result = scan_pickle_bytes(f, "upload")
    except FileRejected:
        raise
    except Exception as exc:  # picklescan raises plain exceptions on malformed input
        raise FileRejected("scan_failed", f"the pickle could not be scanned: {exc}") from exc
    dangerous, suspicious, innocuous = _globals(result)
    scan = PickleScan(container=container, dangerous=dangerous, suspicious=suspicious, innocuous=innocuous)
    if dangerous:
        raise FileQuarantined(
            "dangerous_pickle",
            f"this checkpoint would run code when loaded ({', '.join(dangerous)}); it has been quarantined",
        )
    if result.scan_err:
        raise FileRejected("scan_failed", "the pickle is malformed and could not be scanned completely")
    if not any(name.startswith("torch._utils._rebuild_") for name in innocuous + suspicious):
        raise FileRejected("not_a_checkpoint", "this pickle holds no tensors, so it is not a model checkpoint")
    return scan
