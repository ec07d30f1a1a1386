"""Where upload parts land before ingest: S3 multipart, or the hub's own disk.

Both backends stage an upload under a key unique to it
(`staging/uploads/<upload id>`), never under a content-addressed key, and
offer the same operations to the services: part URLs, the parts stored so
far, sealing (after which no byte can change), a sequential and a seekable
reader for the ingest worker, promotion to the blob key, and clean-up.

* S3: a multipart upload. Part URLs are presigned `UploadPart` requests
  (SigV4, with `Content-Length` signed, so the store itself refuses a part of
  the wrong size); the bytes never pass through the hub. Sealing is
  `CompleteMultipartUpload`.
* Local disk: part URLs point at the hub (`PUT /api/v1/uploads/<id>/parts/<n>`)
  and carry an HMAC signature and expiry like a presigned URL, so a client
  treats both backends alike. Parts are written with `pwrite` straight into
  one staging file, so sealing needs no concatenation, and ingest can hard-
  link that file to its blob key. Writers hold a shared `flock` on the file
  and check a `sealed` marker under it; sealing sets the marker and then
  takes the lock exclusively, so once an upload is sealed no write can still
  be in flight or start later.
"""
from __future__ import annotations

import fcntl
import io
import os
import shutil
import time
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlencode

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError
from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

from hub.files.storage import LocalBlobStorage, S3BlobStorage, blob_storage
from hub.uploads.errors import UploadError
from hub.uploads.models import Upload

# S3 refuses parts under 5 MiB (except the last) and more than 10,000 parts.
S3_MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000
WRITE_CHUNK = 1024 * 1024
SEAL_WAIT_SECONDS = 10.0


def staging_key_for(upload_id) -> str:
    return f"staging/uploads/{upload_id}"


def quarantine_key_for(upload_id) -> str:
    return f"quarantine/uploads/{upload_id}"


class StagingBackend(Protocol):
    name: str

    def begin(self, upload: Upload) -> str: ...
    def part_urls(self, upload: Upload, numbers: list[int], *, base_url: str) -> dict[int, str]: ...
    def stored_parts(self, upload: Upload) -> dict[int, int]: ...
    def seal(self, upload: Upload) -> None: ...
    def object_size(self, upload: Upload) -> int | None: ...
    def open_stream(self, upload: Upload) -> BinaryIO: ...
    def open_seekable(self, upload: Upload) -> BinaryIO: ...
    def promote(self, upload: Upload, blob_key: str) -> bool: ...
    def quarantine(self, upload: Upload) -> None: ...
    def discard(self, upload: Upload) -> None: ...


def backend_name() -> str:
    """The backend new uploads use, from the configured blob store."""
    return Upload.Backend.S3 if isinstance(blob_storage(), S3BlobStorage) else Upload.Backend.LOCAL


def backend_for(upload: Upload) -> "S3Staging | LocalStaging":
    storage = blob_storage()
    if upload.backend == Upload.Backend.S3:
        if not isinstance(storage, S3BlobStorage):
            raise UploadError("backend_changed", "this upload was staged on S3, which is no longer configured", status=409)
        return S3Staging(storage)
    if not isinstance(storage, LocalBlobStorage):
        raise UploadError("backend_changed", "this upload was staged on local disk, which is no longer configured", status=409)
    return LocalStaging(storage)


def _missing(expected: dict[int, int], stored: dict[int, int]) -> tuple[list[int], list[str]]:
    missing = [n for n in expected if n not in stored]
    wrong = [f"part {n} has {stored[n]} bytes, expected {size}" for n, size in expected.items() if n in stored and stored[n] != size]
    return missing, wrong


def _check_parts(upload: Upload, stored: dict[int, int]) -> None:
    expected = {n: upload.part_length(n) for n in range(1, upload.part_count + 1)}
    missing, wrong = _missing(expected, stored)
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
        raise UploadError(
            "missing_parts", f"{len(missing)} of {upload.part_count} parts are not stored yet: {shown}",
            status=409, details={"missing": missing},
        )
    if wrong:
        raise UploadError("part_size_mismatch", "; ".join(wrong[:10]), status=409)


# --- S3 ------------------------------------------------------------------------

_signing_clients: dict[tuple, object] = {}


def _s3_signing_client(storage: S3BlobStorage):
    """A SigV4 client on the endpoint clients reach.

    SigV4 (unlike the legacy scheme botocore may pick for presigning) signs
    the `Content-Length` of a part, so a presigned part URL only accepts a
    body of exactly that size.
    """
    endpoint = storage.public_endpoint_url or storage.endpoint_url
    cache_key = (endpoint, storage.access_key, storage.region_name, storage.addressing_style)
    client = _signing_clients.get(cache_key)
    if client is None:
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=storage.access_key,
            aws_secret_access_key=storage.secret_key,
            region_name=storage.region_name,
            config=Config(signature_version="s3v4", s3={"addressing_style": storage.addressing_style or "path"}),
        )
        _signing_clients[cache_key] = client
    return client


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3RangeReader(io.RawIOBase):
    """A seekable read-only view of an S3 object, one ranged GET per fill.

    Wrapped in a BufferedReader it lets zipfile and picklescan seek around a
    checkpoint without downloading it.
    """

    def __init__(self, client, bucket: str, key: str, size: int):
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._pos + len(buffer)) - 1
        body = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}")["Body"]
        data = body.read()
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


class S3Staging:
    name = Upload.Backend.S3

    def __init__(self, storage: S3BlobStorage):
        self.storage = storage
        self.client = storage.client
        self.bucket = storage.bucket_name

    def _key(self, key: str) -> str:
        return self.storage._key(key)

    def begin(self, upload: Upload) -> str:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self._key(upload.staging_key), ContentType="application/octet-stream"
        )
        return response["UploadId"]

    def part_urls(self, upload: Upload, numbers: list[int], *, base_url: str) -> dict[int, str]:
        signer = _s3_signing_client(self.storage)
        return {
            n: signer.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": self._key(upload.staging_key),
                    "UploadId": upload.multipart_id,
                    "PartNumber": n,
                    "ContentLength": upload.part_length(n),
                },
                ExpiresIn=settings.UPLOAD_PART_URL_TTL,
            )
            for n in numbers
        }

    def stored_parts(self, upload: Upload) -> dict[int, int]:
        parts: dict[int, int] = {}
        self._etags: dict[int, str] = {}
        marker = 0
        while True:
            try:
                response = self.client.list_parts(
                    Bucket=self.bucket, Key=self._key(upload.staging_key), UploadId=upload.multipart_id,
                    PartNumberMarker=marker, MaxParts=1000,
                )
            except ClientError as exc:
                if _error_code(exc) == "NoSuchUpload":
                    return {}
                raise
            for part in response.get("Parts", []):
                parts[part["PartNumber"]] = part["Size"]
                self._etags[part["PartNumber"]] = part["ETag"]
            if not response.get("IsTruncated"):
                return parts
            marker = int(response["NextPartNumberMarker"])

    def seal(self, upload: Upload) -> None:
        stored = self.stored_parts(upload)
        if not stored and self.object_size(upload) == upload.size_bytes:
            return  # completed by an earlier request whose answer was lost
        _check_parts(upload, stored)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(upload.staging_key), UploadId=upload.multipart_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": n, "ETag": self._etags[n]} for n in range(1, upload.part_count + 1)]
                },
            )
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload" and self.object_size(upload) == upload.size_bytes:
                return
            raise UploadError("complete_failed", f"the store refused to assemble the parts: {exc}", status=409) from exc

    def object_size(self, upload: Upload, key: str | None = None) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key or upload.staging_key))
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return int(head["ContentLength"])

    def open_stream(self, upload: Upload) -> BinaryIO:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(upload.staging_key))["Body"]

    def open_seekable(self, upload: Upload) -> BinaryIO:
        size = self.object_size(upload) or 0
        raw = S3RangeReader(self.client, self.bucket, self._key(upload.staging_key), size)
        return io.BufferedReader(raw, buffer_size=1024 * 1024)

    def promote(self, upload: Upload, blob_key: str) -> bool:
        if self.object_size(upload, blob_key) is not None:
            return True
        self.storage.copy(upload.staging_key, blob_key)
        return False

    def quarantine(self, upload: Upload) -> None:
        if self.object_size(upload) is not None:
            self.storage.move(upload.staging_key, quarantine_key_for(upload.pk))

    def unquarantine(self, upload: Upload) -> bool:
        """Put a quarantined file back in staging for another ingest; False if it is gone."""
        if self.object_size(upload, quarantine_key_for(upload.pk)) is None:
            return False
        self.storage.move(quarantine_key_for(upload.pk), upload.staging_key)
        return True

    def purge_quarantine(self, upload: Upload) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(quarantine_key_for(upload.pk)))

    def discard(self, upload: Upload) -> None:
        if upload.multipart_id:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(upload.staging_key), UploadId=upload.multipart_id
                )
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":
                    raise
        self.client.delete_object(Bucket=self.bucket, Key=self._key(upload.staging_key))

    def abandoned_multipart_uploads(self, older_than: float) -> list[tuple[str, str]]:
        """(key, upload id) of multipart uploads under staging/uploads/ begun before `older_than` (epoch)."""
        found: list[tuple[str, str]] = []
        kwargs = {"Bucket": self.bucket, "Prefix": self._key("staging/uploads/")}
        while True:
            response = self.client.list_multipart_uploads(**kwargs)
            for item in response.get("Uploads", []):
                if item["Initiated"].timestamp() < older_than:
                    found.append((item["Key"], item["UploadId"]))
            if not response.get("IsTruncated"):
                return found
            kwargs.update(KeyMarker=response["NextKeyMarker"], UploadIdMarker=response["NextUploadIdMarker"])

    def abort_raw(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":
                raise


# --- Local disk -------------------------------------------------------------------


def part_signature(upload_id, number: int, expires: int) -> str:
    return salted_hmac("mergeworks.uploads.part", f"{upload_id}:{number}:{expires}", algorithm="sha256").hexdigest()


def part_signature_valid(upload_id, number: int, expires: int, signature: str) -> bool:
    if expires < time.time():
        return False
    return constant_time_compare(part_signature(upload_id, number, expires), signature)


def _copy_stream(reader: BinaryIO, fd: int, offset: int, count: int) -> int:
    """Copy up to `count` bytes from `reader` into `fd` at `offset`, WRITE_CHUNK at a time."""
    done = 0
    while done < count:
        chunk = reader.read(min(WRITE_CHUNK, count - done))
        if not chunk:
            break
        os.pwrite(fd, chunk, offset + done)
        done += len(chunk)
    return done


class LocalStaging:
    name = Upload.Backend.LOCAL

    def __init__(self, storage: LocalBlobStorage):
        self.storage = storage

    def _dir(self, upload: Upload) -> Path:
        return Path(self.storage.path(upload.staging_key))

    def _data(self, upload: Upload) -> Path:
        return self._dir(upload) / "data"

    def begin(self, upload: Upload) -> str:
        (self._dir(upload) / "parts").mkdir(parents=True, exist_ok=True)
        return ""

    def part_urls(self, upload: Upload, numbers: list[int], *, base_url: str) -> dict[int, str]:
        expires = int(time.time()) + settings.UPLOAD_PART_URL_TTL
        base = base_url.rstrip("/")
        return {
            n: f"{base}/api/v1/uploads/{upload.pk}/parts/{n}?"
            + urlencode({"expires": expires, "signature": part_signature(upload.pk, n, expires)})
            for n in numbers
        }

    def write_part(self, upload: Upload, number: int, reader: BinaryIO, length: int) -> int:
        """Stream one part from `reader` into place; never holds more than WRITE_CHUNK in memory."""
        expected = upload.part_length(number)
        if length != expected:
            raise UploadError(
                "part_size_mismatch", f"part {number} must have exactly {expected} bytes, got Content-Length {length}",
                status=413 if length > expected else 400,
            )
        folder = self._dir(upload)
        if not folder.is_dir():
            raise UploadError("upload_closed", "this upload no longer accepts parts", status=409)
        fd = os.open(self._data(upload), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if (folder / "sealed").exists():
                raise UploadError("upload_closed", "this upload is complete and no longer accepts parts", status=409)
            marker = folder / "parts" / str(number)
            marker.unlink(missing_ok=True)
            offset = (number - 1) * upload.part_size
            copy_to = getattr(reader, "copy_to", None)
            if copy_to is not None:
                # The socket fast path (see wsgi_body): the kernel moves the bytes.
                written = copy_to(fd, offset, expected)
            else:
                written = _copy_stream(reader, fd, offset, expected)
            if written != expected:
                raise UploadError(
                    "part_incomplete", f"part {number}: the connection ended after {written} of {expected} bytes"
                )
            tmp = marker.with_name(f".{number}.tmp")
            tmp.write_text(str(written))
            os.replace(tmp, marker)
            return written
        finally:
            os.close(fd)

    def stored_parts(self, upload: Upload) -> dict[int, int]:
        parts_dir = self._dir(upload) / "parts"
        if not parts_dir.is_dir():
            return {}
        out: dict[int, int] = {}
        for entry in parts_dir.iterdir():
            if entry.name.isdigit():
                try:
                    out[int(entry.name)] = int(entry.read_text() or "0")
                except (OSError, ValueError):
                    continue
        return out

    def seal(self, upload: Upload) -> None:
        folder = self._dir(upload)
        if not folder.is_dir():
            raise UploadError("upload_closed", "this upload's parts are gone", status=409)
        sealed = folder / "sealed"
        sealed.touch()
        fd = os.open(self._data(upload), os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + SEAL_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        sealed.unlink(missing_ok=True)
                        raise UploadError("parts_in_flight", "some parts are still being sent; complete again when they finish", status=409) from None
                    time.sleep(0.05)
            try:
                _check_parts(upload, self.stored_parts(upload))
            except UploadError:
                sealed.unlink(missing_ok=True)
                raise
            if os.fstat(fd).st_size != upload.size_bytes:
                sealed.unlink(missing_ok=True)
                raise UploadError("size_mismatch", "the stored parts do not add up to the declared size", status=409)
        finally:
            os.close(fd)

    def object_size(self, upload: Upload) -> int | None:
        try:
            return self._data(upload).stat().st_size
        except FileNotFoundError:
            return None

    def open_stream(self, upload: Upload) -> BinaryIO:
        return open(self._data(upload), "rb", buffering=0)

    def open_seekable(self, upload: Upload) -> BinaryIO:
        return open(self._data(upload), "rb")

    def promote(self, upload: Upload, blob_key: str) -> bool:
        target = Path(self.storage.path(blob_key))
        if target.exists():
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        # A hard link: the sealed staging file becomes the blob without a copy.
        try:
            os.link(self._data(upload), target)
        except FileExistsError:
            return True
        except OSError:
            self.storage.copy(f"{upload.staging_key}/data", blob_key)
        return False

    def quarantine(self, upload: Upload) -> None:
        target = Path(self.storage.path(quarantine_key_for(upload.pk)))
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._data(upload).exists():
            os.replace(self._data(upload), target)
        self.discard(upload)

    def unquarantine(self, upload: Upload) -> bool:
        """Put a quarantined file back in staging for another ingest; False if it is gone."""
        source = Path(self.storage.path(quarantine_key_for(upload.pk)))
        if not source.exists():
            return False
        self._dir(upload).mkdir(parents=True, exist_ok=True)
        os.replace(source, self._data(upload))
        return True

    def purge_quarantine(self, upload: Upload) -> None:
        Path(self.storage.path(quarantine_key_for(upload.pk))).unlink(missing_ok=True)

    def discard(self, upload: Upload) -> None:
        shutil.rmtree(self._dir(upload), ignore_errors=True)
