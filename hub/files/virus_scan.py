"""Virus scanning of model files with ClamAV's daemon, when an operator configures one.

1. `model_file_create` asks `virus_scan_initial_status()`: with no clamd
   configured (`CLAMD_SOCKET` or `CLAMD_HOST` unset) a file gets a blank
   status and nothing, neither page nor API, claims a scan; with one it is
   Pending, and the `workers.tasks.ingest.model_file_virus_scan` task is sent
   by name once the row is committed.
2. The task calls `model_file_virus_scan`: it streams the blob from storage
   to clamd (INSTREAM, `hub.files.clamd`) and records Success, or Danger with
   the signature clamd found. Identical bytes already scanned reuse that
   verdict.
3. A stream clamd refuses (bigger than its `StreamMaxLength`) is an Error at
   once; an unreachable clamd is retried by the task with backoff, then an
   Error (`model_file_virus_scan_give_up`). Either way Pending always ends.

Files found dangerous are not served to anyone but their owner, as with the pickle scan.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from hub.files.clamd import Clamd, ClamdError, ClamdUnavailable
from hub.files.models import ModelFile
from hub.files.storage import blob_storage

log = logging.getLogger(__name__)

SCAN_TASK = "workers.tasks.ingest.model_file_virus_scan"
Status = ModelFile.ScanStatus


def clamd_configured() -> Clamd | None:
    if settings.CLAMD_SOCKET:
        return Clamd(socket_path=settings.CLAMD_SOCKET, timeout=settings.CLAMD_TIMEOUT)
    if settings.CLAMD_HOST:
        return Clamd(host=settings.CLAMD_HOST, port=settings.CLAMD_PORT, timeout=settings.CLAMD_TIMEOUT)
    return None


def virus_scan_initial_status() -> str:
    return Status.PENDING if clamd_configured() is not None else ""


def virus_scan_enqueue(*, model_file_id: int) -> None:
    """Send the scan task once the file's row is committed (call inside the creating transaction)."""

    def send() -> None:
        from hub.tasks_enqueue import task_send

        task_send(SCAN_TASK, args=[model_file_id])

    transaction.on_commit(send)


def _settle(model_file_id: int, status: str, message: str = "") -> int:
    # Only a Pending row is settled: a redelivered task for a finished scan does nothing.
    return ModelFile.objects.filter(pk=model_file_id, virus_scan_status=Status.PENDING).update(
        virus_scan_status=status, virus_scan_message=message[:255]
    )


def model_file_virus_scan(*, model_file_id: int) -> str | None:
    """Scan one Pending file with clamd; returns the status it ends with (None: nothing to do).

    Raises ClamdUnavailable when clamd cannot be reached, for the task to retry.
    """
    row = ModelFile.objects.filter(pk=model_file_id, virus_scan_status=Status.PENDING).values(
        "storage_key", "size_bytes").first()
    if row is None:
        return None
    clamd = clamd_configured()
    if clamd is None:  # the scanner was switched off meanwhile: no claim either way
        _settle(model_file_id, "")
        return ""
    same_bytes = (
        ModelFile.objects.filter(storage_key=row["storage_key"], virus_scan_status__in=[Status.SUCCESS, Status.DANGER])
        .values("virus_scan_status", "virus_scan_message").first()
    )
    if same_bytes is not None:
        status, message = same_bytes["virus_scan_status"], same_bytes["virus_scan_message"]
    else:
        chunks = blob_storage().iter_range(row["storage_key"], 0, row["size_bytes"] - 1) if row["size_bytes"] else []
        try:
            verdict = clamd.scan(chunks)
        except ClamdUnavailable:
            raise
        except ClamdError as exc:
            log.warning("virus scan of file %s failed: %s", model_file_id, exc)
            status, message = Status.ERROR, str(exc)
        else:
            status = Status.SUCCESS if verdict.clean else Status.DANGER
            message = "" if verdict.clean else f"ClamAV found {verdict.signature}"
    _settle(model_file_id, status, message)
    return status


def model_file_virus_scan_give_up(*, model_file_id: int, reason: str) -> None:
    _settle(model_file_id, Status.ERROR, reason)
