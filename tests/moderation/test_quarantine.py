"""Files the upload scanner quarantined: in the moderators' queue with the scanner's reason, released or deleted."""
from __future__ import annotations

import pytest
from django.core import mail
from django.test import TestCase

from hub.files.storage import blob_key, blob_storage
from hub.moderation.models import ModerationAction
from hub.uploads.backends import quarantine_key_for
from hub.uploads.models import Upload
from merges.engine import hostile
from tests.uploads.conftest import alice_api, alice_token, ingest_now, no_bomb_marker, send_file  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def backend(request):
    if request.param == "local":
        request.getfixturevalue("local_storage")
    return request.param


def quarantined_upload(api) -> Upload:
    state = send_file(api, hostile.zip_checkpoint(), "bomb.ckpt")
    assert api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json").status_code == 202
    ingest_now(state["id"])
    upload = Upload.objects.get(pk=state["id"])
    assert upload.status == Upload.Status.QUARANTINED
    return upload


def moderate(client, upload, action, reason):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post("/moderation/act/", {"target_kind": "upload", "target_id": str(upload.pk),
                                                "action": action, "reason": reason})


def test_a_quarantined_file_is_in_the_queue_and_released_goes_on_to_publishing(
    alice_api, carol, client, backend, no_bomb_marker
):
    upload = quarantined_upload(alice_api)
    client.force_login(carol)
    page = client.get("/moderation/")
    assert page.status_code == 200
    assert upload.filename.encode() in page.content and b"os.system" in page.content  # the scanner's reason

    sent = []
    import hub.uploads.services as uploads

    original = uploads._send_ingest
    uploads._send_ingest = sent.append
    try:
        response = moderate(client, upload, "release", "false positive: checked by hand")
    finally:
        uploads._send_ingest = original
    assert response.status_code == 302
    upload.refresh_from_db()
    assert upload.status == Upload.Status.QUEUED and sent == [upload.pk]
    assert not blob_storage().exists(quarantine_key_for(upload.pk))

    ingest_now(str(upload.pk))  # the ingest task's body, as the worker would run it
    upload.refresh_from_db()
    assert upload.status == Upload.Status.READY, upload.error_message
    assert "released by a moderator" in upload.pickle_scan["message"] and "os.system" in upload.pickle_scan["message"]
    assert blob_storage().exists(upload.blob_key)
    published = alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"name": "Released", "publish": True},
                               format="json")
    assert published.status_code in (200, 201), published.content
    record = ModerationAction.objects.get()
    assert (record.action, record.target_kind, record.actor) == ("release", "upload", carol)
    assert "os.system" in record.details["finding"]
    assert mail.outbox and "released" in mail.outbox[0].subject
    assert b"No quarantined files" in client.get("/moderation/").content


def test_a_quarantined_file_can_be_deleted(alice_api, carol, client, backend, no_bomb_marker):
    upload = quarantined_upload(alice_api)
    client.force_login(carol)
    assert moderate(client, upload, "delete", "a real pickle bomb").status_code == 302
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED and upload.error_code == "deleted_by_moderator"
    assert "a real pickle bomb" in upload.error_message
    assert not blob_storage().exists(quarantine_key_for(upload.pk))
    assert not blob_storage().exists(blob_key(upload.declared_sha256))
    # Deciding twice does nothing more.
    assert moderate(client, upload, "release", "oops").status_code == 302
    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED
    assert ModerationAction.objects.count() == 1
