"""Staging housekeeping: what a killed store left under staging/ goes, live uploads stay (moto and local disk)."""
from __future__ import annotations

import io
import os
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.files.storage import blob_storage
from hub.uploads.models import Upload
from hub.uploads.services import staging_sweep
from tests.uploads.conftest import send_file
from tests.uploads.files import lora_bytes

pytestmark = pytest.mark.django_db


def _keys(prefix: str) -> set[str]:
    storage = blob_storage()
    found: set[str] = set()
    for page in storage.client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket_name, Prefix=prefix):
        found.update(obj["Key"] for obj in page.get("Contents", []))
    return found


def _multipart_ids() -> dict[str, str]:
    storage = blob_storage()
    response = storage.client.list_multipart_uploads(Bucket=storage.bucket_name)
    return {u["UploadId"]: u["Key"] for u in response.get("Uploads", [])}


def test_s3_leftovers_of_a_killed_store_are_removed_and_live_uploads_kept(alice_api, small_parts):
    storage = blob_storage()
    client, bucket = storage.client, storage.bucket_name
    ingest_key = f"staging/ingest/{uuid.uuid4().hex}"
    client.put_object(Bucket=bucket, Key=ingest_key, Body=b"half a merge output")
    # A killed upload_fileobj leaves its multipart upload open; so might any other writer, under any key.
    ingest_mp = client.create_multipart_upload(Bucket=bucket, Key=f"staging/ingest/{uuid.uuid4().hex}")["UploadId"]
    other_mp = client.create_multipart_upload(Bucket=bucket, Key="blobs/sha256/ab/abandoned")["UploadId"]
    orphan_upload_key = f"staging/uploads/{uuid.uuid4()}"
    client.put_object(Bucket=bucket, Key=orphan_upload_key, Body=b"no row owns this")
    live = Upload.objects.get(pk=send_file(alice_api, lora_bytes(min_bytes=6 * 1024 * 1024), skip={2})["id"])
    client.put_object(Bucket=bucket, Key=live.staging_key, Body=b"a live upload's staging object")

    # Young objects are left alone (a store may be in progress); moto dates every multipart upload 2010.
    counts = staging_sweep()
    assert ingest_key in _keys("staging/ingest/")
    assert ingest_mp not in _multipart_ids() and other_mp not in _multipart_ids()
    assert counts["multipart_aborted"] >= 2
    # The live upload's own multipart upload follows its row (uploads_expire), not this TTL.
    assert live.multipart_id in _multipart_ids()

    counts = staging_sweep(now=timezone.now() + timedelta(seconds=5), ttl=1)
    left = _keys("staging/")
    assert ingest_key not in left and orphan_upload_key not in left
    assert live.staging_key in left and live.multipart_id in _multipart_ids()
    assert counts["objects_deleted"] >= 2
    # Twice is harmless: nothing left to do, no error.
    assert staging_sweep(now=timezone.now() + timedelta(seconds=5), ttl=1)["objects_deleted"] == 0
    assert Upload.objects.get(pk=live.pk).status == Upload.Status.RECEIVING


def test_local_leftovers_of_a_killed_store_are_removed_and_live_uploads_kept(alice_api, local_storage, small_parts):
    root = local_storage.path("")
    live = Upload.objects.get(pk=send_file(alice_api, lora_bytes(min_bytes=200_000), skip={1})["id"])
    live_dir = local_storage.path(live.staging_key)
    assert os.path.isdir(live_dir)
    ingest = local_storage.put_stream(f"staging/ingest/{uuid.uuid4().hex}", io.BytesIO(b"x" * 10))
    assert ingest == 10
    dead_upload = os.path.join(root, "staging", "uploads", str(uuid.uuid4()), "parts")
    os.makedirs(dead_upload)
    with open(os.path.join(dead_upload, "00001"), "wb") as f:
        f.write(b"part")
    partial = os.path.join(root, "blobs", "sha256", "ab", ".abcd.partial-4242")
    os.makedirs(os.path.dirname(partial))
    with open(partial, "wb") as f:
        f.write(b"killed mid-write")
    old = time.time() - 3600
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))

    counts = staging_sweep(ttl=600)
    assert counts["objects_deleted"] == 3
    assert not os.listdir(os.path.join(root, "staging", "ingest"))
    assert not os.path.exists(os.path.dirname(dead_upload)) and not os.path.exists(partial)
    assert os.path.isdir(live_dir) and os.listdir(live_dir)
    assert staging_sweep(ttl=600)["objects_deleted"] == 0
