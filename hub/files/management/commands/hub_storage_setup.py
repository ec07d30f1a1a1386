from __future__ import annotations

import time
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hub.files.storage import blob_storage


ATTEMPTS = 10
RETRY_SECONDS = 3


def site_origins() -> list[str]:
    """The origins the website is served from: SITE_URL and CSRF_TRUSTED_ORIGINS."""
    origins = []
    for url in [settings.SITE_URL, *settings.CSRF_TRUSTED_ORIGINS]:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


class Command(BaseCommand):
    help = (
        "Prepare the file store: create the bucket if it is missing and allow browser uploads from the "
        "site's origins (S3 CORS). Safe to run on every deploy; nothing to do on local disk."
    )

    def handle(self, *args, **opts):
        storage = blob_storage()
        if not hasattr(storage, "cors_allow_uploads"):
            self.stdout.write("local-disk storage: nothing to set up")
            return
        origins = site_origins()
        if not origins:
            raise CommandError("SITE_URL is not an absolute URL (e.g. https://hub.example.org): no origin to allow")
        # The store may still be starting (compose starts services together).
        for attempt in range(1, ATTEMPTS + 1):
            try:
                storage.ensure_bucket()
                break
            except (BotoCoreError, ClientError) as exc:
                if attempt == ATTEMPTS:
                    raise CommandError(f"bucket {storage.bucket_name}: the store is not usable: {exc}") from exc
                time.sleep(RETRY_SECONDS)
        try:
            storage.cors_allow_uploads(origins)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            self.stderr.write(
                f"bucket {storage.bucket_name}: could not set a CORS rule ({code}). If browser uploads fail, "
                f"allow PUT from {', '.join(origins)} in the store's own CORS settings "
                "(MinIO: MINIO_API_CORS_ALLOW_ORIGIN, which allows every origin by default)."
            )
            return
        self.stdout.write(f"bucket {storage.bucket_name}: ready; browser uploads allowed from {', '.join(origins)}")
