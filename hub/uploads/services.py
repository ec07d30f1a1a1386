"""The upload protocol's writes: create, parts, complete, abort, ingest, attach, expire.

State lives in the Upload row and changes only by conditional updates or
under a row lock, so a double-clicked Complete, a redelivered ingest task or
housekeeping running beside a user never act on one upload twice. Bytes live
in the staging backend (S3 multipart or local disk, see `backends`) until the
ingest worker has re-read them and they match what the client declared; only
then are they promoted to their content-addressed blob key.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError, model_create, model_version_create, model_version_publish
from hub.files.models import ModelFile
from hub.files.scanning import FileQuarantined, file_stream_verify, pickle_scan
from hub.files.services import BlobInfo, FileRejected, blob_lock, model_file_create
from hub.files.storage import blob_key as content_key
from hub.files.storage import S3BlobStorage, blob_storage
from hub.tasks_enqueue import task_send
from hub.uploads.backends import (
    MAX_PARTS,
    S3_MIN_PART_SIZE,
    LocalStaging,
    S3Staging,
    backend_for,
    backend_name,
    staging_key_for,
)
from hub.uploads.errors import UploadError
from hub.uploads.models import Upload
from hub.uploads.prefill import form_suggestions

log = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")
MAX_ACTIVE_UPLOADS_PER_USER = 20
# Ready uploads nobody attached to a version are given up after this long.
READY_TTL = timedelta(days=7)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# Control characters, and the bidirectional ones that make a name display as another extension.
_CONTROL = re.compile("[\x00-\x1f\x7f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _clean_filename(filename: str) -> str:
    name = Path(str(filename).replace("\\", "/")).name.strip()
    if not name or name in {".", ".."} or _CONTROL.search(name):
        raise UploadError("bad_filename", "the file name is empty or contains control or bidirectional characters")
    if len(name) > 255:
        raise UploadError("bad_filename", "the file name is longer than 255 characters")
    if not name.lower().endswith(ALLOWED_EXTENSIONS):
        raise UploadError(
            "unsupported_extension",
            f"only {', '.join(ALLOWED_EXTENSIONS)} files can be uploaded (the content decides how it is checked)",
        )
    return name


def _clean_sha256(sha256: str | None) -> str:
    value = (sha256 or "").strip().lower()
    if value and not _SHA256.match(value):
        raise UploadError("bad_sha256", "sha256 must be 64 hexadecimal characters")
    return value


def _part_size(size: int, backend: str) -> int:
    part = max(1, settings.UPLOAD_PART_SIZE)
    if backend == Upload.Backend.S3:
        part = max(part, S3_MIN_PART_SIZE)
    if math.ceil(size / part) > MAX_PARTS:
        mib = 1024 * 1024
        part = math.ceil(math.ceil(size / MAX_PARTS) / mib) * mib
    return part


def _send_ingest(upload_id) -> None:
    # By name, so the web process needs no import of the worker's modules; the
    # route to the ingest queue comes from CELERY_TASK_ROUTES.
    task_send("workers.tasks.ingest.upload_ingest", args=[str(upload_id)])


def upload_create(*, owner: User, filename: str, size: int, sha256: str = "", model: Model | None = None) -> Upload:
    """Start an upload: check limits up front, open the multipart upload, return the row.

    `sha256` may be given now or with `upload_complete` (browsers hash while
    they send). `model` makes the upload a new version of that model.
    """
    name = _clean_filename(filename)
    if not isinstance(size, int) or size <= 0:
        raise UploadError("bad_size", "size must be a positive number of bytes")
    if size > settings.MAX_UPLOAD_BYTES:
        raise UploadError(
            "file_too_large", f"the file is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES} bytes", status=413
        )
    declared = _clean_sha256(sha256)
    if model is not None and model.owner_id != owner.pk:
        raise UploadError("forbidden", "you can only upload new versions of your own models", status=403)
    active = Upload.objects.filter(owner=owner, status__in=Upload.ACTIVE).count()
    if active >= MAX_ACTIVE_UPLOADS_PER_USER:
        raise UploadError(
            "too_many_uploads",
            f"you have {active} unfinished uploads; finish or cancel some first",
            status=429,
        )
    backend_kind = backend_name()
    part_size = _part_size(size, backend_kind)
    upload = Upload(
        id=uuid.uuid4(),
        owner=owner,
        model=model,
        filename=name,
        size_bytes=size,
        declared_sha256=declared,
        part_size=part_size,
        part_count=math.ceil(size / part_size),
        backend=backend_kind,
    )
    upload.staging_key = staging_key_for(upload.id)
    # The multipart upload is opened before the row exists; if the insert
    # fails, housekeeping aborts the orphan (it lists the store, not the table).
    upload.multipart_id = backend_for(upload).begin(upload)
    upload.save(force_insert=True)
    return upload


def upload_part_write(*, upload: Upload, number: int, reader: BinaryIO, length: int) -> int:
    """Store one part sent to the hub (local-disk backend only)."""
    if upload.status != Upload.Status.RECEIVING:
        raise UploadError("upload_closed", f"this upload is {upload.status} and accepts no more parts", status=409)
    if not 1 <= number <= upload.part_count:
        raise UploadError("bad_part", f"part numbers run from 1 to {upload.part_count}", status=404)
    backend = backend_for(upload)
    if not isinstance(backend, LocalStaging):
        raise UploadError("wrong_backend", "parts of this upload go straight to the object store", status=409)
    return backend.write_part(upload, number, reader, length)


def upload_complete(*, upload: Upload, sha256: str = "") -> Upload:
    """Seal the parts and queue the ingest. Calling it again is harmless."""
    declared = _clean_sha256(sha256)
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status in (Upload.Status.QUEUED, Upload.Status.PROCESSING, Upload.Status.READY, Upload.Status.ATTACHED):
            if declared and declared != locked.declared_sha256:
                raise UploadError("sha256_conflict", "this upload was completed with a different sha256", status=409)
            return locked
        if locked.status != Upload.Status.RECEIVING:
            raise UploadError("upload_closed", f"this upload is {locked.status}", status=409)
        if declared and locked.declared_sha256 and declared != locked.declared_sha256:
            raise UploadError("sha256_conflict", "sha256 differs from the one declared when the upload was created", status=409)
        locked.declared_sha256 = declared or locked.declared_sha256
        if not locked.declared_sha256:
            raise UploadError("sha256_required", "declare the file's sha256 when creating or completing the upload")
        backend_for(locked).seal(locked)
        locked.status = Upload.Status.QUEUED
        locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "declared_sha256", "completed_at", "updated_at"])
        transaction.on_commit(lambda: _send_ingest(locked.pk))
    return locked


def upload_abort(*, upload: Upload) -> Upload:
    """Cancel an upload and drop its staged bytes. A file already in a version stays."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status == Upload.Status.ABORTED:
            return locked
        if locked.status == Upload.Status.ATTACHED:
            raise UploadError("already_attached", "this file is already part of a model version", status=409)
        if locked.status in (Upload.Status.QUARANTINED, Upload.Status.EXPIRED):
            raise UploadError("upload_closed", f"this upload is {locked.status}", status=409)
        was = locked.status
        locked.status = Upload.Status.ABORTED
        locked.save(update_fields=["status", "updated_at"])
    # A running ingest notices the abort when it finishes and cleans up itself;
    # pulling the bytes from under it would only turn the abort into an error.
    if was != Upload.Status.PROCESSING:
        backend_for(locked).discard(locked)
    return locked


# --- Ingest -------------------------------------------------------------------------


def _verify(upload: Upload, backend) -> dict:
    """Re-read the staged bytes; return the fields to store, or raise FileRejected."""
    size = backend.object_size(upload)
    if size is None:
        raise FileRejected("missing_object", "the uploaded bytes are no longer in staging")
    if size != upload.size_bytes:
        raise FileRejected("size_mismatch", f"{size} bytes arrived, but the upload declared {upload.size_bytes}")
    with contextlib.closing(backend.open_stream(upload)) as stream:
        result = file_stream_verify(stream, size=size)
    sha256 = result.hashes["sha256"]
    if sha256 != upload.declared_sha256:
        raise FileRejected(
            "sha256_mismatch",
            f"the received bytes hash to sha256 {sha256}, not the declared {upload.declared_sha256}: "
            "the file changed during the upload or was corrupted in transit",
        )
    filename = upload.filename
    scan: dict = {}
    if result.format == ModelFile.Format.PICKLE_TENSOR:
        with contextlib.closing(backend.open_seekable(upload)) as f:
            try:
                scan = pickle_scan(f, container=result.container or "pickle").as_dict()
            except FileQuarantined as exc:
                released = upload.pickle_scan.get("released") if isinstance(upload.pickle_scan, dict) else None
                if not released:
                    raise
                # A moderator judged the finding and let the file through; the record says who and why.
                scan = {"released": released, "message": f"released by a moderator ({released.get('reason', '')}); "
                                                         f"the scanner said: {exc}"}
        if filename.lower().endswith(".safetensors"):
            raise FileRejected(
                "extension_mismatch",
                "this file is a pickle checkpoint named .safetensors; tools would load it as safetensors and fail. "
                "Rename it to .ckpt and upload it again",
            )
    elif not filename.lower().endswith(".safetensors"):
        # Safetensors content under a pickle name: name it for what it is, so
        # tools that pick a loader by extension never torch.load it.
        filename = f"{Path(filename).stem}.safetensors"
    return {
        "filename": filename,
        "format": result.format,
        "precision": result.precision,
        "hashes": result.hashes,
        "header_summary": result.header_summary,
        "pickle_scan": scan,
        "suggestions": form_suggestions(filename=upload.filename, header_summary=result.header_summary, format=result.format),
    }


def _finish_rejected(upload: Upload, task_id: str, status: str, code: str, message: str, **fields) -> bool:
    return bool(
        Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING, ingest_task_id=task_id).update(
            status=status, error_code=code, error_message=message, ingested_at=timezone.now(),
            updated_at=timezone.now(), **fields,
        )
    )


def upload_ingest(*, upload_id, task_id: str) -> Upload | None:
    """Verify a completed upload and make its bytes a blob; the ingest task's body.

    Claims the row with a conditional update: a queued upload, or one this
    very task (same id, i.e. a redelivery or retry) had claimed. Returns None
    when there is nothing to do.
    """
    claimed = (
        Upload.objects.filter(pk=upload_id)
        .filter(Q(status=Upload.Status.QUEUED) | Q(status=Upload.Status.PROCESSING, ingest_task_id=task_id))
        .update(
            status=Upload.Status.PROCESSING, ingest_task_id=task_id, ingest_attempts=F("ingest_attempts") + 1,
            updated_at=timezone.now(),
        )
    )
    if claimed != 1:
        return None
    upload = Upload.objects.get(pk=upload_id)
    backend = backend_for(upload)
    try:
        fields = _verify(upload, backend)
    except FileQuarantined as exc:
        backend.quarantine(upload)
        _finish_rejected(upload, task_id, Upload.Status.QUARANTINED, exc.code, str(exc),
                         format=ModelFile.Format.PICKLE_TENSOR)
        log.warning("upload %s quarantined: %s", upload.pk, exc)
        return Upload.objects.get(pk=upload_id)
    except FileRejected as exc:
        backend.discard(upload)
        _finish_rejected(upload, task_id, Upload.Status.FAILED, exc.code, str(exc))
        return Upload.objects.get(pk=upload_id)

    key = content_key(fields["hashes"]["sha256"])
    with transaction.atomic():
        blob_lock(key)
        existed = backend.promote(upload, key)
        done = Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING, ingest_task_id=task_id).update(
            status=Upload.Status.READY, blob_key=key, deduplicated=existed, ingested_at=timezone.now(),
            updated_at=timezone.now(), error_code="", error_message="", **fields,
        )
    # The blob is safe; the staging copy is not needed whether or not the upload
    # was cancelled meanwhile (an unreferenced new blob is housekeeping's).
    backend.discard(upload)
    if not done:
        log.info("upload %s changed state during ingest; result dropped", upload.pk)
    return Upload.objects.get(pk=upload_id)


def upload_quarantine_release(*, upload: Upload, moderator: User, reason: str) -> Upload:
    """Send a quarantined file through the ingest again, this time past the scanner's finding.

    The file goes back to staging and the ingest runs as for any completed
    upload, so its hashes are checked again and the owner publishes it from
    the upload page as usual.
    """
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status != Upload.Status.QUARANTINED:
            raise UploadError("not_quarantined", f"this upload is {locked.status}, not quarantined", status=409)
        if not backend_for(locked).unquarantine(locked):
            raise UploadError("missing_object", "the quarantined file is no longer stored", status=409)
        locked.status = Upload.Status.QUEUED
        locked.pickle_scan = {"released": {"by": moderator.username, "reason": reason,
                                           "finding": locked.error_message}}
        locked.error_code = ""
        locked.error_message = ""
        locked.save(update_fields=["status", "pickle_scan", "error_code", "error_message", "updated_at"])
        transaction.on_commit(lambda: _send_ingest(locked.pk))
    return locked


def upload_quarantine_delete(*, upload: Upload, reason: str) -> Upload:
    """Delete a quarantined file for good; the row stays, failed, saying why."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status != Upload.Status.QUARANTINED:
            raise UploadError("not_quarantined", f"this upload is {locked.status}, not quarantined", status=409)
        locked.status = Upload.Status.FAILED
        locked.error_code = "deleted_by_moderator"
        locked.error_message = f"a moderator deleted this file: {reason} (the scanner said: {locked.error_message})"
        locked.save(update_fields=["status", "error_code", "error_message", "updated_at"])
    backend_for(locked).purge_quarantine(locked)
    return locked


def upload_ingest_give_up(*, upload_id, task_id: str, reason: str) -> None:
    """The ingest failed for reasons not in the file (store down, out of time) and won't be retried."""
    Upload.objects.filter(pk=upload_id, status=Upload.Status.PROCESSING, ingest_task_id=task_id).update(
        status=Upload.Status.FAILED,
        error_code="ingest_error",
        error_message=f"the file could not be checked ({reason}); please upload it again",
        updated_at=timezone.now(),
    )
    with contextlib.suppress(Exception):
        upload = Upload.objects.get(pk=upload_id)
        backend_for(upload).discard(upload)


# --- Attaching to a model version -----------------------------------------------------


def upload_version_create(
    *,
    upload: Upload,
    user: User,
    model: Model | None = None,
    name: str = "",
    type: str = Model.Type.CHECKPOINT,
    checkpoint_type: str = "",
    description: str = "",
    tags: Iterable[str] = (),
    nsfw: bool = False,
    visibility: str = Model.Visibility.PUBLIC,
    allow_no_credit: bool = True,
    allow_commercial_use: Iterable[str] = (),
    allow_derivatives: bool = True,
    allow_different_license: bool = True,
    version_name: str = "v1.0",
    base_model: str = ModelVersion.BaseModel.SD_1_5,
    trained_words: Iterable[str] = (),
    version_description: str = "",
    publish: bool = False,
    reupload_of: int | None = None,
) -> ModelVersion:
    """Turn a verified upload into a version: of `model` if given (the user's own), else of a new model.

    The model fields apply only to a new model. With `publish` the version
    (and a draft model) goes public; otherwise both stay drafts. Publishing
    another creator's file needs `reupload_of` (hub.catalog.licences); a
    refusal leaves nothing behind, the upload stays ready.
    """
    if upload.owner_id != user.pk:
        raise UploadError("not_found", "no such upload", status=404)
    model = model or upload.model
    if model is not None and model.owner_id != user.pk:
        raise UploadError("forbidden", "you can only add versions to your own models", status=403)
    storage = blob_storage()
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        if locked.status != Upload.Status.READY:
            raise UploadError("not_ready", f"this upload is {locked.status}, not ready", status=409)
        blob_lock(locked.blob_key)
        if not storage.exists(locked.blob_key):
            raise UploadError("blob_gone", "the stored file has disappeared; please upload it again", status=409)
        if model is None:
            model = model_create(
                owner=user, name=name, type=type, checkpoint_type=checkpoint_type, description=description,
                tags=tags, nsfw=nsfw, visibility=visibility, allow_no_credit=allow_no_credit,
                allow_commercial_use=allow_commercial_use, allow_derivatives=allow_derivatives,
                allow_different_license=allow_different_license,
            )
        version = model_version_create(
            model=model, name=version_name, base_model=base_model, trained_words=trained_words,
            description=version_description,
        )
        blob = BlobInfo(
            sha256=locked.hashes["sha256"], size=locked.size_bytes, hashes=locked.hashes, format=locked.format,
            precision=locked.precision, header_summary=locked.header_summary,
        )
        try:
            model_file = model_file_create(version=version, blob=blob, name=locked.filename, primary=True)
        except FileRejected as exc:
            raise CatalogError(str(exc), field="filename") from exc
        if locked.format == ModelFile.Format.PICKLE_TENSOR:
            # Scanned clean by the ingest worker before the upload became ready.
            ModelFile.objects.filter(pk=model_file.pk).update(
                pickle_scan_status=ModelFile.ScanStatus.SUCCESS,
                pickle_scan_message=locked.pickle_scan.get("message", ""),
            )
        locked.status = Upload.Status.ATTACHED
        locked.model_file = model_file
        locked.model = model
        locked.save(update_fields=["status", "model_file", "model", "updated_at"])
        if publish:
            model_version_publish(version=version, reupload_of=reupload_of)
    version.refresh_from_db()
    return version


# --- Housekeeping ------------------------------------------------------------------------


def _blob_release(upload: Upload) -> bool:
    """Forget an ended upload's blob; delete it only if nothing else references it."""
    key = upload.blob_key
    deleted = False
    with transaction.atomic():
        blob_lock(key)
        referenced = (
            ModelFile.objects.filter(storage_key=key).exists()
            or Upload.objects.filter(blob_key=key, status__in=Upload.HOLDS_BLOB)
            .exclude(pk=upload.pk)
            .exists()
        )
        if not referenced:
            blob_storage().delete(key)
            deleted = True
        Upload.objects.filter(pk=upload.pk).update(blob_key="")
    return deleted


def uploads_expire(*, now=None, ttl: int | None = None) -> dict[str, int]:
    """Abort uploads left unfinished longer than `ttl` seconds and clean up after ended ones.

    * receiving uploads older than the TTL: multipart upload aborted (or local
      parts deleted), row marked expired;
    * ready uploads never attached to a version within READY_TTL: expired;
    * blobs of expired/aborted uploads are deleted only when no file and no
      other upload references them;
    * multipart uploads in the store that no live row knows (a crash between
      opening one and saving its row) are aborted too.
    """
    now = now or timezone.now()
    ttl = settings.UPLOAD_TTL if ttl is None else ttl
    cutoff = now - timedelta(seconds=ttl)
    counts = {"expired": 0, "blobs_deleted": 0, "orphans_aborted": 0, "requeued": 0}

    stale = Upload.objects.filter(
        Q(status=Upload.Status.RECEIVING, created_at__lt=cutoff)
        | Q(status=Upload.Status.READY, updated_at__lt=now - READY_TTL)
    )
    for upload in stale.iterator():
        claimed = Upload.objects.filter(pk=upload.pk, status=upload.status, updated_at=upload.updated_at).update(
            status=Upload.Status.EXPIRED,
            error_code="expired",
            error_message="the upload was not finished in time and has been discarded",
            updated_at=now,
        )
        if claimed:
            counts["expired"] += 1
            with contextlib.suppress(UploadError):
                backend_for(upload).discard(upload)

    for upload in Upload.objects.filter(status__in=[Upload.Status.EXPIRED, Upload.Status.ABORTED]).exclude(blob_key=""):
        counts["blobs_deleted"] += _blob_release(upload)

    counts["requeued"] = _uploads_requeue_stuck(now=now)

    if backend_name() == Upload.Backend.S3:
        backend = S3Staging(blob_storage())
        live = set(Upload.objects.filter(status=Upload.Status.RECEIVING).values_list("multipart_id", flat=True))
        for key, multipart_id in backend.abandoned_multipart_uploads(older_than=cutoff.timestamp()):
            if multipart_id not in live:
                backend.abort_raw(key, multipart_id)
                counts["orphans_aborted"] += 1
    return counts


# Statuses whose staging key is still in use (parts arriving, or waiting for / in the ingest).
_STAGING_LIVE = (Upload.Status.RECEIVING, Upload.Status.QUEUED, Upload.Status.PROCESSING)


def staging_sweep(*, now=None, ttl: int | None = None) -> dict[str, int]:
    """Remove what a killed process left under `staging/`, and abort forgotten multipart uploads.

    Everything the hub writes before it is final goes under `staging/`:
    `staging/ingest/<uuid>` (a blob being stored: merge outputs, imports,
    ingests) and `staging/uploads/<id>` (a browser or API upload). A worker
    killed mid-store leaves the object, or on S3 an unfinished multipart upload
    that is billed and invisible to listings. Anything there older than `ttl`
    (STAGING_TTL: longer than any task may run) and not held by a live upload
    row is removed; so is a local `.partial-*` file left by a killed write.
    Multipart uploads of any key are aborted past the same TTL, except those
    under `staging/uploads/`, which follow UPLOAD_TTL and their rows
    (`uploads_expire`). Safe to run twice or on two hosts at once: each step
    is a delete that tolerates the object being gone already.
    """
    now = now or timezone.now()
    ttl = settings.STAGING_TTL if ttl is None else ttl
    cutoff = (now - timedelta(seconds=ttl)).timestamp()
    live = {
        str(pk) for pk in Upload.objects.filter(status__in=_STAGING_LIVE).values_list("pk", flat=True)
    }
    storage = blob_storage()
    if isinstance(storage, S3BlobStorage):
        return _staging_sweep_s3(storage, cutoff=cutoff, live=live)
    return _staging_sweep_local(storage, cutoff=cutoff, live=live)


def _staging_sweep_s3(storage: S3BlobStorage, *, cutoff: float, live: set[str]) -> dict[str, int]:
    counts = {"objects_deleted": 0, "multipart_aborted": 0}
    client, bucket = storage.client, storage.bucket_name
    staging = storage._key("staging") + "/"
    uploads = staging + "uploads/"
    kwargs = {"Bucket": bucket, "Prefix": staging}
    while True:
        page = client.list_objects_v2(**kwargs)
        for item in page.get("Contents", []):
            key = item["Key"]
            if item["LastModified"].timestamp() >= cutoff:
                continue
            if key.startswith(uploads) and key[len(uploads):].split("/", 1)[0] in live:
                continue
            client.delete_object(Bucket=bucket, Key=key)
            counts["objects_deleted"] += 1
        if not page.get("IsTruncated"):
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    kwargs = {"Bucket": bucket}
    while True:
        page = client.list_multipart_uploads(**kwargs)
        for item in page.get("Uploads", []):
            if item["Key"].startswith(uploads) or item["Initiated"].timestamp() >= cutoff:
                continue
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=item["Key"], UploadId=item["UploadId"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
                continue
            counts["multipart_aborted"] += 1
        if not page.get("IsTruncated"):
            break
        kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
    return counts


def _staging_sweep_local(storage, *, cutoff: float, live: set[str]) -> dict[str, int]:
    counts = {"objects_deleted": 0, "multipart_aborted": 0}
    root = Path(storage.path("staging"))

    def remove_old_files(top: Path) -> None:
        for path in list(top.rglob("*")) if top.is_dir() else []:
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    counts["objects_deleted"] += 1
            except FileNotFoundError:
                pass
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()  # only once empty

    if root.is_dir():
        for child in root.iterdir():
            if child.name == "uploads" and child.is_dir():
                for upload_dir in child.iterdir():
                    if upload_dir.name not in live:
                        remove_old_files(upload_dir)
                        with contextlib.suppress(OSError):
                            upload_dir.rmdir()
            elif child.is_dir():
                remove_old_files(child)
            elif child.stat().st_mtime < cutoff:
                child.unlink(missing_ok=True)
                counts["objects_deleted"] += 1
    # A write killed between open and rename leaves `.<name>.partial-<pid>` beside its target.
    blobs = Path(storage.path("blobs"))
    for path in blobs.rglob(".*.partial-*") if blobs.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                counts["objects_deleted"] += 1
    return counts


def _uploads_requeue_stuck(*, now) -> int:
    """Send the ingest again for uploads whose task was lost.

    A queued upload waiting long may just be behind a backlog, and a second
    message is harmless (only one task can claim the row). A processing upload
    older than the task time limit belonged to a worker that died without its
    message coming back; it is put back in the queue.
    """
    requeued = 0
    waiting = Upload.objects.filter(status=Upload.Status.QUEUED, updated_at__lt=now - timedelta(minutes=30))
    for upload in waiting:
        if Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED, updated_at=upload.updated_at).update(
            updated_at=now
        ):
            _send_ingest(upload.pk)
            requeued += 1
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 300)
    for upload in Upload.objects.filter(status=Upload.Status.PROCESSING, updated_at__lt=now - limit):
        if Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING, updated_at=upload.updated_at).update(
            status=Upload.Status.QUEUED, ingest_task_id="", updated_at=now
        ):
            _send_ingest(upload.pk)
            requeued += 1
    return requeued


# --- Example images ----------------------------------------------------------------------
# They live in image_services; the names stay importable from here.
from hub.uploads.image_services import (  # noqa: E402,F401
    MAX_IMAGES_PER_VERSION,
    example_image_add,
    example_image_cover_set,
    example_image_delete,
    example_image_process,
    example_image_update,
    example_images_reorder,
    image_nsfw_level_set,
)
