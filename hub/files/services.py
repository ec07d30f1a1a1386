"""Turning bytes into catalogue files.

Every path into the catalogue (the import command, browser uploads, merge
outputs) goes through `blob_ingest_stream`: hash and validate in one streaming
pass into a staging key, then move to the content-addressed key. Nothing is
visible until the ModelFile row is committed.
"""
from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.apps import apps
from django.db import connection, transaction

from hub.catalog.models import ModelVersion
from hub.files.models import ModelFile
from hub.files.storage import blob_key, blob_storage
from hub.files.virus_scan import virus_scan_enqueue, virus_scan_initial_status
from merges.engine.hashing import FileHasher
from merges.engine.safetensors_io import SafetensorsError, read_header

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"
DTYPE_PRECISION = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


class FileRejected(ValueError):
    """The bytes are not an acceptable model file; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class BlobInfo:
    sha256: str
    size: int
    hashes: dict[str, str | None]
    format: str
    precision: str = ""
    header_summary: dict = field(default_factory=dict)

    @property
    def storage_key(self) -> str:
        return blob_key(self.sha256)


class _HashingReader:
    def __init__(self, reader: BinaryIO, hasher: FileHasher):
        self._reader = reader
        self._hasher = hasher
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._reader.read(size)
        if chunk:
            self._hasher.update(chunk)
            self.size += len(chunk)
        return chunk


def sniff_format(head: bytes) -> str:
    if head.startswith(ZIP_MAGIC) or head[:2] in PICKLE_MAGIC:
        return ModelFile.Format.PICKLE_TENSOR
    return ModelFile.Format.SAFETENSOR


def safetensors_summary(f: BinaryIO, size: int) -> tuple[str, dict]:
    """Validate a safetensors header strictly and summarise it; raises FileRejected."""
    try:
        header = read_header(f, size)
    except SafetensorsError as exc:
        raise FileRejected(exc.code, str(exc)) from exc
    dtypes = sorted({t.dtype for t in header.tensors.values()})
    precision = DTYPE_PRECISION.get(dtypes[0], "") if len(dtypes) == 1 else ("mixed" if dtypes else "")
    summary = {
        "tensor_count": len(header.tensors),
        "dtypes": dtypes,
        "parameters": sum(_numel(t.shape) for t in header.tensors.values()),
        "metadata": dict(header.metadata),
    }
    return precision, summary


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def blob_ingest_stream(
    *,
    reader: BinaryIO,
    size: int,
    head: bytes,
    header_reader: BinaryIO | None = None,
    format: str | None = None,
) -> BlobInfo:
    """Stream `reader` into storage, hashing as it goes.

    `head` is the first bytes of the file (for format sniffing) and
    `header_reader` a seekable view used to validate the safetensors header
    before any byte is stored.

    `format=ModelFile.Format.DIFFUSERS` stores a non-weight member of a
    diffusers folder (a config or tokenizer file): its kind comes from its
    place in the folder, so it is not sniffed as a checkpoint, but pickled or
    zipped bytes are still refused. The folder's `.safetensors` weights go
    through the default path, with full header validation.
    """
    if format is not None and format != ModelFile.Format.DIFFUSERS:
        raise ValueError(f"format may only be {ModelFile.Format.DIFFUSERS!r}; other formats are sniffed")
    if format == ModelFile.Format.DIFFUSERS and sniff_format(head) == ModelFile.Format.PICKLE_TENSOR:
        raise FileRejected("pickle_not_allowed", "pickled files are not accepted in a diffusers folder")
    fmt = format or sniff_format(head)
    precision, summary = "", {}
    if fmt == ModelFile.Format.SAFETENSOR:
        precision, summary = safetensors_summary(header_reader or io.BytesIO(head), size)
    hasher = FileHasher()
    hashing = _HashingReader(reader, hasher)
    storage = blob_storage()
    staging = f"staging/ingest/{uuid.uuid4().hex}"
    try:
        storage.put_stream(staging, hashing)
        if hashing.size != size:
            raise FileRejected("size_mismatch", f"expected {size} bytes, read {hashing.size}")
        hashes = {k: (v.lower() if isinstance(v, str) else v) for k, v in hasher.hexdigests().items()}
        info = BlobInfo(
            sha256=hashes["sha256"], size=size, hashes=hashes, format=fmt, precision=precision, header_summary=summary
        )
        if storage.exists(info.storage_key):
            storage.delete(staging)
        else:
            storage.move(staging, info.storage_key)
    except BaseException:
        if storage.exists(staging):
            storage.delete(staging)
        raise
    return info


def blob_ingest_path(*, path: Path) -> BlobInfo:
    size = path.stat().st_size
    with open(path, "rb") as header_reader, open(path, "rb") as reader:
        head = header_reader.read(16)
        header_reader.seek(0)
        return blob_ingest_stream(reader=reader, size=size, head=head, header_reader=header_reader)


# Characters that reorder how a name is displayed, so it can pretend to another extension.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _clean_file_name(name: str, *, format: str) -> str:
    """A plain file name, or for files of a diffusers folder a relative path like `unet/config.json`.

    Relative paths are checked, not normalised: `..`, empty or `.` segments,
    absolute paths, backslashes and control characters are refused so that a
    name can never point outside the folder it is downloaded into.
    """
    name = name.strip()
    if format != ModelFile.Format.DIFFUSERS:
        name = Path(name).name.strip()
    elif "\\" in name or name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
        raise FileRejected("bad_name", f"{name!r} is not a clean relative path (no '..', '.', '//', '\\' or leading '/')")
    if not name:
        raise FileRejected("bad_name", "file name must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise FileRejected("bad_name", "file name must not contain control characters")
    if BIDI_CONTROLS.search(name):
        # U+202E turns "model\u202eorcim.safetensors" into what reads as "...snosrefatsm.micro".
        raise FileRejected("bad_name", "file name must not contain bidirectional control characters")
    if len(name) > ModelFile._meta.get_field("name").max_length:
        raise FileRejected("bad_name", "file name is too long")
    return name


def model_file_create(*, version: ModelVersion, blob: BlobInfo, name: str, primary: bool | None = None) -> ModelFile:
    name = _clean_file_name(name, format=blob.format)
    with transaction.atomic():
        if primary is None:
            primary = not version.files.filter(primary=True).exists()
        if version.files.filter(name=name).exists():
            raise FileRejected("duplicate_name", f"this version already has a file named {name!r}")
        if primary:
            version.files.filter(primary=True).update(primary=False)
        virus_scan_status = virus_scan_initial_status()
        model_file = ModelFile.objects.create(
            version=version,
            name=name,
            storage_key=blob.storage_key,
            size_bytes=blob.size,
            format=blob.format,
            precision=blob.precision,
            primary=primary,
            sha256=blob.sha256,
            autov1=blob.hashes.get("autov1") or "",
            autov2=blob.hashes.get("autov2") or "",
            autov3=blob.hashes.get("autov3") or "",
            crc32=blob.hashes.get("crc32") or "",
            blake3=blob.hashes.get("blake3") or "",
            # Diffusers members are validated safetensors or non-pickle files
            # (blob_ingest_stream refuses pickles there), so there is nothing to scan.
            pickle_scan_status=(
                ModelFile.ScanStatus.SUCCESS
                if blob.format in (ModelFile.Format.SAFETENSOR, ModelFile.Format.DIFFUSERS)
                else ModelFile.ScanStatus.PENDING
            ),
            header_summary=blob.header_summary,
            virus_scan_status=virus_scan_status,
        )
        if virus_scan_status == ModelFile.ScanStatus.PENDING:
            virus_scan_enqueue(model_file_id=model_file.pk)
        return model_file


def blob_lock(key: str) -> None:
    """Serialise, until the transaction ends, everything that creates or deletes one blob
    (ingest's dedupe against clean-up and file deletion)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [key])


def model_file_delete(*, model_file: ModelFile) -> None:
    """Delete a file row, and its blob only if nothing else refers to it.

    Besides other files with the same content, an upload being verified or
    waiting for its model form holds the blob it was stored under. The check
    and the delete happen under the blob's lock, which ingest takes too.
    """
    key = model_file.storage_key
    with transaction.atomic():
        blob_lock(key)
        model_file.delete()
        if not (ModelFile.objects.filter(storage_key=key).exists() or _upload_holds(key)):
            blob_storage().delete(key)


def _upload_holds(key: str) -> bool:
    # Looked up by label: uploads builds on this app, not the other way round.
    if not apps.is_installed("hub.uploads"):
        return False
    Upload = apps.get_model("uploads", "Upload")
    return Upload.objects.filter(blob_key=key, status__in=Upload.HOLDS_BLOB).exists()
