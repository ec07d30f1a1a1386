"""Blob storage housekeeping: `hub_storage_setup` (bucket, CORS for browser uploads) and when a blob may go."""
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
        # An operator's own rule survives a rerun, and ours is not duplicated.
        own = {"ID": "cdn", "AllowedOrigins": ["https://cdn.example.org"], "AllowedMethods": ["GET"]}
        storage.client.put_bucket_cors(Bucket=storage.bucket_name, CORSConfiguration={"CORSRules": [own, rule]})
        call_command("hub_storage_setup", stdout=io.StringIO())
        rules = storage.client.get_bucket_cors(Bucket=storage.bucket_name)["CORSRules"]
        assert sorted(r.get("ID") for r in rules) == ["cdn", "mergeworks-uploads"]
    finally:
        storage.client.delete_bucket_cors(Bucket=storage.bucket_name)
        storage.client.delete_bucket(Bucket=storage.bucket_name)
        storage.bucket_name = original


def test_local_disk_needs_nothing(local_storage):
    out = io.StringIO()
    call_command("hub_storage_setup", stdout=out)
    assert "nothing to set up" in out.getvalue()


def test_deleting_a_file_keeps_a_blob_that_a_ready_upload_holds(alice, local_storage):
    from hub.files.services import model_file_delete
    from hub.uploads.models import Upload
    from hub.uploads.services import upload_create
    from tests.support.builders import make_published_model, tiny_safetensors_bytes

    data = tiny_safetensors_bytes(41)
    first = make_published_model(alice, "First", data=data).versions.get().files.get()
    second = make_published_model(alice, "Second", data=tiny_safetensors_bytes(42)).versions.get().files.get()
    # A verified upload of the first file's bytes, waiting for its model form.
    upload = upload_create(owner=alice, filename="same.safetensors", size=len(data))
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.READY, blob_key=first.storage_key)

    model_file_delete(model_file=first)
    assert local_storage.exists(first.storage_key)  # the upload still needs it
    model_file_delete(model_file=second)
    assert not local_storage.exists(second.storage_key)  # nothing else held this one
