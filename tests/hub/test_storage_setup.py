"""`manage.py hub_storage_setup`: the bucket exists and browsers on the site may PUT upload parts."""
from __future__ import annotations

import io
import uuid

from django.core.management import call_command

from hub.files.storage import blob_storage


def test_creates_the_bucket_and_allows_uploads_from_the_site(settings):
    settings.SITE_URL = "https://hub.example.org/"
    settings.CSRF_TRUSTED_ORIGINS = ["https://hub.example.org", "https://www.example.org"]
    storage = blob_storage()
    original = storage.bucket_name
    storage.bucket_name = f"setup-{uuid.uuid4().hex[:12]}"
    try:
        out = io.StringIO()
        call_command("hub_storage_setup", stdout=out)
        storage.client.head_bucket(Bucket=storage.bucket_name)
        rule = storage.client.get_bucket_cors(Bucket=storage.bucket_name)["CORSRules"][0]
        assert rule["AllowedOrigins"] == ["https://hub.example.org", "https://www.example.org"]
        assert "PUT" in rule["AllowedMethods"]
        assert "browser uploads allowed" in out.getvalue()
        call_command("hub_storage_setup", stdout=io.StringIO())  # idempotent
    finally:
        storage.client.delete_bucket_cors(Bucket=storage.bucket_name)
        storage.client.delete_bucket(Bucket=storage.bucket_name)
        storage.bucket_name = original


def test_local_disk_needs_nothing(local_storage):
    out = io.StringIO()
    call_command("hub_storage_setup", stdout=out)
    assert "nothing to set up" in out.getvalue()
