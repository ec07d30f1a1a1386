from __future__ import annotations

from celery import shared_task

from hub.catalog.services import downloads_rollup as downloads_rollup_service


@shared_task
def ping(payload: str = "") -> dict:
    """Round-trip probe used by health checks and tests."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        db_ok = cursor.fetchone()[0] == 1
    return {"pong": payload, "db": db_ok, "vendor": connection.vendor}


@shared_task
def downloads_rollup() -> int:
    return downloads_rollup_service()


@shared_task
def uploads_expire() -> dict:
    """Abort abandoned uploads (multipart included) and drop unreferenced blobs of ended ones.

    Example images stuck in processing are asked for again (or given up) here too.
    """
    from hub.uploads.image_services import example_images_sweep
    from hub.uploads.services import uploads_expire as uploads_expire_service

    return {**uploads_expire_service(), **example_images_sweep()}


@shared_task
def staging_sweep() -> dict:
    """Remove staging objects and multipart uploads that a killed process left behind."""
    from hub.uploads.services import staging_sweep as staging_sweep_service

    return staging_sweep_service()
