"""Blob storage: local disk by default, any S3-compatible store by configuration.

Both backends are Django storages (so `storages["blobs"]` resolves lazily from
settings.STORAGES) and add the few operations the hub needs beyond Django's API:
streaming writes from a reader, an atomic move from a staging key to the final
content-addressed key, and a download URL that never routes bytes through the
web process when the store can serve them itself.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO, Iterator

import boto3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.client import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode
from django.core.files.storage import FileSystemStorage, storages
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

CHUNK_SIZE = 8 * 1024 * 1024


def blob_key(sha256: str) -> str:
    sha256 = sha256.lower()
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def blob_storage() -> "LocalBlobStorage | S3BlobStorage":
    return storages["blobs"]


class LocalBlobStorage(FileSystemStorage):
    supports_presigned_urls = False

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_overwrite", True)
        super().__init__(**kwargs)

    def put_stream(self, key: str, reader: BinaryIO, chunk_size: int = CHUNK_SIZE) -> int:
        path = Path(self.path(key))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        written = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := reader.read(chunk_size):
                    out.write(chunk)
                    written += len(chunk)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return written

    def move(self, src: str, dst: str) -> None:
        dst_path = Path(self.path(dst))
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(src), dst_path)

    def copy(self, src: str, dst: str) -> None:
        dst_path = Path(self.path(dst))
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst_path.with_name(f".{dst_path.name}.partial-{os.getpid()}")
        shutil.copyfile(self.path(src), tmp)
        os.replace(tmp, dst_path)

    def iter_range(self, key: str, start: int, end: int, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield bytes [start, end] inclusive."""
        with open(self.path(key), "rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = f.read(min(chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def download_url(self, key: str, filename: str, expires: int | None = None) -> str | None:
        return None

    def inline_url(self, key: str, *, filename: str, content_type: str, cache_control: str = "",
                   expires: int | None = None) -> str | None:
        return None


# Query names of get_object's response-header overrides.
_PRESIGN_QUERY_NAMES = {
    "ResponseCacheControl": "response-cache-control",
    "ResponseContentDisposition": "response-content-disposition",
    "ResponseContentType": "response-content-type",
}


class S3BlobStorage(S3Storage):
    supports_presigned_urls = True

    def __init__(
        self,
        *,
        public_endpoint_url: str | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 20.0,
        max_attempts: int = 3,
        **kwargs,
    ):
        self.public_endpoint_url = public_endpoint_url
        self._fast_signer = None
        if "client_config" not in kwargs:
            # Bounded waits: botocore's defaults (60 s per read, legacy retries)
            # let a silent store hold a request for minutes.
            kwargs["client_config"] = Config(
                s3={"addressing_style": kwargs.get("addressing_style") or "path"},
                signature_version=kwargs.get("signature_version", "s3v4"),
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
            )
        super().__init__(**kwargs)

    @property
    def client(self):
        return self.connection.meta.client

    def _signing_client(self):
        # Presigned URLs embed the host in the signature, so sign with the
        # endpoint that clients will actually reach.
        if not self.public_endpoint_url or self.public_endpoint_url == self.endpoint_url:
            return self.client
        if not hasattr(self, "_public_client"):
            self._public_client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.public_endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                region_name=self.region_name,
                config=Config(signature_version="s3v4", s3={"addressing_style": self.addressing_style or "path"}),
            )
        return self._public_client

    def _key(self, name: str) -> str:
        return self._normalize_name(clean_name(name))

    def put_stream(self, key: str, reader: BinaryIO, chunk_size: int = CHUNK_SIZE) -> int:
        counter = _CountingReader(reader)
        self.client.upload_fileobj(counter, self.bucket_name, self._key(key))
        return counter.count

    def move(self, src: str, dst: str) -> None:
        self.copy(src, dst)
        self.client.delete_object(Bucket=self.bucket_name, Key=self._key(src))

    def copy(self, src: str, dst: str) -> None:
        # Managed copy switches to multipart copy above 5 GB, which single
        # CopyObject cannot do.
        self.client.copy({"Bucket": self.bucket_name, "Key": self._key(src)}, self.bucket_name, self._key(dst))

    def iter_range(self, key: str, start: int, end: int, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        obj = self.client.get_object(Bucket=self.bucket_name, Key=self._key(key), Range=f"bytes={start}-{end}")
        yield from obj["Body"].iter_chunks(chunk_size)

    def download_url(self, key: str, filename: str, expires: int | None = None) -> str:
        safe = filename.replace('"', "").replace("\\", "")
        params = {
            "ResponseContentDisposition": f'attachment; filename="{safe}"',
            "ResponseContentType": "application/octet-stream",
        }
        return self._presigned_get(key, params, expires)

    def inline_url(self, key: str, *, filename: str, content_type: str, cache_control: str = "",
                   expires: int | None = None) -> str:
        """A presigned GET shown in the browser (images): our content type, inline, optionally cacheable."""
        safe = filename.replace('"', "").replace("\\", "")
        params = {"ResponseContentDisposition": f'inline; filename="{safe}"', "ResponseContentType": content_type}
        if cache_control:
            params["ResponseCacheControl"] = cache_control
        return self._presigned_get(key, params, expires)

    def _presigned_get(self, key: str, params: dict[str, str], expires: int | None) -> str:
        expires = expires or self.querystring_expire
        fast = self._presign_path_style(self._key(key), params, expires)
        if fast is not None:
            return fast
        return self._signing_client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket_name, "Key": self._key(key), **params}, ExpiresIn=expires
        )

    def _presign_path_style(self, key: str, params: dict[str, str], expires: int) -> str | None:
        """The presigned GET that boto3 would produce, signed by botocore's own SigV4 query signer.

        `generate_presigned_url` spends most of a download request resolving the
        endpoint ruleset and running its event hooks; for a path-style URL on a
        known endpoint with static keys the URL is fixed, so only the signing
        step is needed. Anything else (virtual hosts, AWS's default endpoints,
        credentials from the environment chain) takes boto3's full path.
        """
        endpoint = self.public_endpoint_url or self.endpoint_url
        if self.addressing_style != "path" or not endpoint or not (self.access_key and self.secret_key):
            return None
        if self._fast_signer is None:
            self._fast_signer = (
                Credentials(self.access_key, self.secret_key, getattr(self, "security_token", None) or None),
                self.region_name or "us-east-1",
            )
        credentials, region = self._fast_signer
        request = AWSRequest(
            method="GET",
            url=f"{endpoint.rstrip('/')}/{self.bucket_name}/{percent_encode(key, safe='/~')}",
            params={_PRESIGN_QUERY_NAMES[name]: value for name, value in params.items()},
        )
        S3SigV4QueryAuth(credentials, "s3", region, expires=expires).add_auth(request)
        return request.url

    def ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket_name)
        except self.client.exceptions.ClientError:
            self.client.create_bucket(Bucket=self.bucket_name)

    CORS_RULE_ID = "mergeworks-uploads"

    def cors_allow_uploads(self, origins: list[str]) -> None:
        """Let browsers on `origins` PUT upload parts straight to the bucket (and GET downloads).

        Our rule is replaced by ID; rules an operator added stay. Raises
        botocore's ClientError where the store has no per-bucket CORS API
        (MinIO configures CORS server-wide and allows every origin by default).
        """
        try:
            rules = self.client.get_bucket_cors(Bucket=self.bucket_name)["CORSRules"]
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                raise
            rules = []
        rules = [r for r in rules if r.get("ID") != self.CORS_RULE_ID]
        rules.append({
            "ID": self.CORS_RULE_ID,
            "AllowedOrigins": origins,
            "AllowedMethods": ["PUT", "GET", "HEAD"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag", "Content-Length", "Content-Range"],
            "MaxAgeSeconds": 3600,
        })
        self.client.put_bucket_cors(Bucket=self.bucket_name, CORSConfiguration={"CORSRules": rules})


class _CountingReader:
    def __init__(self, reader: BinaryIO):
        self._reader = reader
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._reader.read(size)
        self.count += len(chunk)
        return chunk
