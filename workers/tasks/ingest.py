"""Ingest queue: verify a completed upload, process an example image. Thin: the work is in hub.uploads services."""
from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from hub.files import virus_scan
from hub.files.clamd import ClamdUnavailable
from hub.uploads.services import upload_ingest as upload_ingest_service
from hub.uploads.services import upload_ingest_give_up
from hub.uploads.image_services import example_image_process as example_image_process_service

log = logging.getLogger(__name__)

# Failures of the store or the disk, not of the file: worth another try.
TRANSIENT = (BotoCoreError, ClientError, OSError, ConnectionError)
MAX_RETRIES = 4


@shared_task(bind=True, max_retries=MAX_RETRIES)
def upload_ingest(self, upload_id: str) -> str | None:
    """Returns the upload's final status, or None if another task owns (or finished) it."""
    task_id = self.request.id or f"local-{upload_id}"
    try:
        upload = upload_ingest_service(upload_id=upload_id, task_id=task_id)
    except SoftTimeLimitExceeded:
        upload_ingest_give_up(upload_id=upload_id, task_id=task_id, reason="it took longer than the time limit")
        raise
    except TRANSIENT as exc:
        if self.request.retries >= MAX_RETRIES:
            upload_ingest_give_up(upload_id=upload_id, task_id=task_id, reason=f"storage error: {type(exc).__name__}")
            raise
        log.warning("ingest of %s failed (%s); retrying", upload_id, exc)
        # A retry keeps the task id, so it can take the row back from PROCESSING.
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
    return upload.status if upload is not None else None


@shared_task(bind=True, max_retries=MAX_RETRIES)
def example_image_process(self, image_id: int) -> str | None:
    """Decode, strip and thumbnail an example image here, never in a web process (a small PNG can be 50 Mpx)."""
    try:
        image = example_image_process_service(image_id=image_id)
    except TRANSIENT as exc:
        if self.request.retries >= MAX_RETRIES:
            raise
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
    return image.status if image is not None else None


@shared_task(bind=True, max_retries=MAX_RETRIES)
def model_file_virus_scan(self, model_file_id: int) -> str | None:
    """Scan a file with clamd (only sent when one is configured); retried while clamd is unreachable."""
    try:
        return virus_scan.model_file_virus_scan(model_file_id=model_file_id)
    except (ClamdUnavailable, *TRANSIENT) as exc:
        if self.request.retries >= MAX_RETRIES:
            virus_scan.model_file_virus_scan_give_up(model_file_id=model_file_id, reason=str(exc)[:255])
            raise
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
