"""Housekeeping: abandoned uploads are aborted, blobs go only when nothing references them."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.files.storage import blob_storage
from hub.uploads.models import Upload
from hub.uploads.services import uploads_expire
from tests.uploads.conftest import ingest_now, send_file
from tests.uploads.files import lora_bytes

pytestmark = pytest.mark.django_db


def _age(upload_id, **delta) -> None:
    then = timezone.now() - timedelta(**delta)
    Upload.objects.filter(pk=upload_id).update(created_at=then, updated_at=then)


def _open_multipart_ids() -> set[str]:
    storage = blob_storage()
    response = storage.client.list_multipart_uploads(Bucket=storage.bucket_name, Prefix="staging/uploads/")
    return {u["UploadId"] for u in response.get("Uploads", [])}


def test_an_abandoned_s3_upload_is_aborted_and_marked_expired(alice_api, small_parts):
    data = lora_bytes(min_bytes=6 * 1024 * 1024)
    state = send_file(alice_api, data, skip={2})
    fresh = send_file(alice_api, lora_bytes(min_bytes=10_000, seed=5))
    upload = Upload.objects.get(pk=state["id"])
    assert upload.multipart_id in _open_multipart_ids()
    _age(upload.pk, hours=25)

    counts = uploads_expire()
    assert counts["expired"] == 1
    upload.refresh_from_db()
    assert upload.status == Upload.Status.EXPIRED and upload.error_code == "expired"
    assert upload.multipart_id not in _open_multipart_ids()
    # The young upload is untouched.
    assert Upload.objects.get(pk=fresh["id"]).status == Upload.Status.RECEIVING
    state = alice_api.get(f"/api/v1/uploads/{upload.pk}").json()
    assert state["status"] == "expired" and "not finished in time" in state["error"]["message"]


def test_an_abandoned_local_upload_loses_its_parts(alice_api, local_storage, small_parts):
    state = send_file(alice_api, lora_bytes(min_bytes=200_000), skip={1})
    upload = Upload.objects.get(pk=state["id"])
    staged = local_storage.path(upload.staging_key)
    import os

    assert os.path.isdir(staged)
    _age(upload.pk, hours=25)
    uploads_expire()
    assert not os.path.exists(staged)
    assert Upload.objects.get(pk=upload.pk).status == Upload.Status.EXPIRED


def test_a_multipart_upload_without_a_row_is_aborted(alice_api, small_parts):
    storage = blob_storage()
    orphan = storage.client.create_multipart_upload(Bucket=storage.bucket_name, Key="staging/uploads/crashed")["UploadId"]
    live = Upload.objects.get(pk=send_file(alice_api, lora_bytes(min_bytes=6 * 1024 * 1024), skip={2})["id"])
    # moto reports every multipart upload as initiated in 2010, so both look
    # old enough; only the one no live upload owns may go.
    counts = uploads_expire()
    assert counts["orphans_aborted"] >= 1
    assert orphan not in _open_multipart_ids()
    assert live.multipart_id in _open_multipart_ids()
    assert Upload.objects.get(pk=live.pk).status == Upload.Status.RECEIVING


def test_a_referenced_blob_is_never_deleted(alice_api, local_storage):
    data = lora_bytes(min_bytes=20_000, seed=11)
    key_of = lambda u: u.blob_key  # noqa: E731

    kept = Upload.objects.get(pk=send_file(alice_api, data, "a.safetensors")["id"])
    alice_api.post(f"/api/v1/uploads/{kept.pk}/complete", {}, format="json")
    ingest_now(str(kept.pk))
    assert alice_api.post(f"/api/v1/uploads/{kept.pk}/version", {"name": "Kept"}, format="json").status_code == 201

    dropped = Upload.objects.get(pk=send_file(alice_api, data, "b.safetensors")["id"])
    alice_api.post(f"/api/v1/uploads/{dropped.pk}/complete", {}, format="json")
    ingest_now(str(dropped.pk))
    dropped.refresh_from_db()
    assert dropped.deduplicated and key_of(dropped) == Upload.objects.get(pk=kept.pk).blob_key
    assert alice_api.delete(f"/api/v1/uploads/{dropped.pk}").status_code == 200

    counts = uploads_expire()
    assert counts["blobs_deleted"] == 0
    assert local_storage.exists(key_of(dropped))
    assert Upload.objects.get(pk=dropped.pk).blob_key == ""


def test_an_unreferenced_blob_of_a_forgotten_upload_is_deleted(alice_api, local_storage):
    data = lora_bytes(min_bytes=20_000, seed=12)
    upload = Upload.objects.get(pk=send_file(alice_api, data)["id"])
    alice_api.post(f"/api/v1/uploads/{upload.pk}/complete", {}, format="json")
    ingest_now(str(upload.pk))
    upload.refresh_from_db()
    key = upload.blob_key
    assert upload.status == Upload.Status.READY and local_storage.exists(key)
    Upload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timedelta(days=8))

    counts = uploads_expire()
    assert counts == {**counts, "expired": 1, "blobs_deleted": 1}
    assert not local_storage.exists(key)
    assert key.endswith(hashlib.sha256(data).hexdigest())


def test_a_lost_ingest_message_is_sent_again(alice_api, local_storage, monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr("hub.uploads.services._send_ingest", lambda upload_id: sent.append(str(upload_id)))
    state = send_file(alice_api, lora_bytes(min_bytes=10_000))
    alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    Upload.objects.filter(pk=state["id"]).update(updated_at=timezone.now() - timedelta(hours=1))
    assert uploads_expire()["requeued"] == 1
    assert sent == [state["id"]]
    assert uploads_expire()["requeued"] == 0  # not again on the next run
