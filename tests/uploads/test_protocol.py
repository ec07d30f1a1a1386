"""The upload protocol through the API: limits, parts, resume, complete, abort, permissions."""
from __future__ import annotations

import hashlib

import pytest

from hub.uploads.models import Upload
from tests.uploads.conftest import put_part, send_file
from tests.uploads.files import lora_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["s3", "local"])
def backend(request, small_parts):
    if request.param == "local":
        request.getfixturevalue("local_storage")
    return request.param


def test_create_returns_parts_with_urls_for_either_backend(alice_api, backend):
    data = lora_bytes(min_bytes=300_000) if backend == "local" else lora_bytes(min_bytes=11 * 1024 * 1024)
    response = alice_api.post(
        "/api/v1/uploads", {"filename": "mychar.safetensors", "size": len(data)}, format="json"
    )
    assert response.status_code == 201, response.content
    state = response.json()
    assert state["status"] == "receiving" and state["backend"] == backend
    assert state["partCount"] >= 3
    assert sum(p["size"] for p in state["parts"]) == len(data)
    assert all(p["url"] and not p["stored"] for p in state["parts"])
    if backend == "s3":
        assert state["partSize"] == 5 * 1024 * 1024  # S3's minimum, above the 64 KiB setting
        assert "uploadId=" in state["parts"][0]["url"] and "X-Amz-Signature" in state["parts"][0]["url"]
        assert "content-length" in state["parts"][0]["url"].lower()  # the size is part of the signature
    else:
        assert state["partSize"] == 64 * 1024
        assert state["parts"][0]["url"].startswith(f"http://testserver/api/v1/uploads/{state['id']}/parts/1?")


def test_status_lists_stored_parts_so_a_client_can_resume(alice_api, backend):
    data = lora_bytes(min_bytes=300_000) if backend == "local" else lora_bytes(min_bytes=11 * 1024 * 1024)
    state = send_file(alice_api, data, skip={2})
    status = alice_api.get(f"/api/v1/uploads/{state['id']}").json()
    stored = {p["number"]: p["stored"] for p in status["parts"]}
    assert stored[2] is False and all(v for n, v in stored.items() if n != 2)
    assert status["parts"][1]["url"] and status["parts"][0]["url"] is None
    assert status["storedBytes"] == len(data) - status["parts"][1]["size"]

    # Completing with a part missing says which one.
    response = alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "missing_parts" and response.json()["details"]["missing"] == [2]

    # Resume: send only the missing part, then complete.
    part = status["parts"][1]
    start = state["partSize"]
    assert put_part(alice_api, part["url"], data[start : start + part["size"]]) == 200
    response = alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    # Completing twice is harmless.
    assert alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json").status_code == 202


def test_size_limits_are_checked_up_front(alice_api, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    response = alice_api.post("/api/v1/uploads", {"filename": "big.safetensors", "size": 1001}, format="json")
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    response = alice_api.post("/api/v1/uploads", {"filename": "x.safetensors", "size": 0}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body, code",
    [
        ({"filename": "notes.txt", "size": 10}, "unsupported_extension"),
        ({"filename": "../../etc/passwd", "size": 10}, "unsupported_extension"),
        ({"filename": "a\x1b[31m.safetensors", "size": 10}, "bad_filename"),
        ({"filename": "a.safetensors", "size": 10, "sha256": "abc"}, "bad_sha256"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(alice_api, body, code):
    response = alice_api.post("/api/v1/uploads", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_local_parts_are_checked_for_size_and_signature(alice_api, local_storage, small_parts):
    data = lora_bytes(min_bytes=200_000)
    state = alice_api.post(
        "/api/v1/uploads", {"filename": "m.safetensors", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        format="json",
    ).json()
    url = state["parts"][0]["url"].replace("http://testserver", "")
    too_big = alice_api.generic("PUT", url, data=data[: 64 * 1024 + 1], content_type="application/octet-stream")
    assert too_big.status_code == 413 and too_big.json()["code"] == "part_size_mismatch"
    too_small = alice_api.generic("PUT", url, data=data[:100], content_type="application/octet-stream")
    assert too_small.status_code == 400
    forged = alice_api.generic(
        "PUT", url.replace("/parts/1?", "/parts/2?"), data=data[64 * 1024 : 128 * 1024],
        content_type="application/octet-stream",
    )
    assert forged.status_code == 403 and forged.json()["code"] == "bad_signature"
    expired = url.split("expires=")[0] + "expires=1&signature=00"
    assert alice_api.generic("PUT", expired, data=b"x", content_type="application/octet-stream").status_code == 403


def test_no_part_is_accepted_after_completion(alice_api, local_storage, small_parts):
    data = lora_bytes(min_bytes=200_000)
    state = send_file(alice_api, data)
    assert alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json").status_code == 202
    url = state["parts"][0]["url"]
    response = alice_api.generic("PUT", url.replace("http://testserver", ""), data=b"\0" * (64 * 1024),
                                 content_type="application/octet-stream")
    assert response.status_code == 409 and response.json()["code"] == "upload_closed"


def test_sha256_can_be_declared_on_completion_but_is_required(alice_api, local_storage, small_parts):
    data = lora_bytes(min_bytes=100_000)
    state = alice_api.post("/api/v1/uploads", {"filename": "m.safetensors", "size": len(data)}, format="json").json()
    for part in state["parts"]:
        start = (part["number"] - 1) * state["partSize"]
        put_part(alice_api, part["url"], data[start : start + part["size"]])
    response = alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "sha256_required"
    response = alice_api.post(
        f"/api/v1/uploads/{state['id']}/complete", {"sha256": hashlib.sha256(data).hexdigest()}, format="json"
    )
    assert response.status_code == 202 and response.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_abort_drops_the_staged_parts(alice_api, backend):
    data = lora_bytes(min_bytes=300_000) if backend == "local" else lora_bytes(min_bytes=6 * 1024 * 1024)
    state = send_file(alice_api, data, skip={2})
    upload = Upload.objects.get(pk=state["id"])
    response = alice_api.delete(f"/api/v1/uploads/{state['id']}")
    assert response.status_code == 200 and response.json()["status"] == "aborted"
    from hub.uploads.backends import backend_for

    assert backend_for(upload).stored_parts(upload) == {}
    assert alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json").status_code == 409


def test_uploads_are_private_to_their_owner(alice_api, api_client, bob):
    state = alice_api.post("/api/v1/uploads", {"filename": "m.safetensors", "size": 10}, format="json").json()
    from rest_framework.test import APIClient

    other = APIClient()
    other.force_authenticate(bob)
    assert other.get(f"/api/v1/uploads/{state['id']}").status_code == 404
    assert other.delete(f"/api/v1/uploads/{state['id']}").status_code == 404
    assert other.get("/api/v1/uploads").json()["items"] == []
    anonymous = APIClient()
    assert anonymous.get(f"/api/v1/uploads/{state['id']}").status_code == 401


def test_api_key_needs_the_upload_scope(api_client, alice):
    from hub.accounts.services import api_key_create

    key = api_key_create(user=alice, name="reader", scopes=["read", "download"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api_client.post("/api/v1/uploads", {"filename": "m.safetensors", "size": 10}, format="json")
    assert response.status_code == 403
    assert "upload" in response.json()["error"]


def test_uploading_a_version_of_someone_elses_model_is_forbidden(alice_api, bob):
    from tests.support.builders import make_published_model

    bobs = make_published_model(bob, "Bob's model")
    response = alice_api.post(
        "/api/v1/uploads", {"filename": "m.safetensors", "size": 10, "modelId": bobs.pk}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    private = make_published_model(bob, "Bob's secret", visibility="private")
    response = alice_api.post(
        "/api/v1/uploads", {"filename": "m.safetensors", "size": 10, "modelId": private.pk}, format="json"
    )
    assert response.status_code == 404


def test_unfinished_uploads_per_user_are_limited(alice_api):
    from hub.uploads.services import MAX_ACTIVE_UPLOADS_PER_USER

    for _ in range(MAX_ACTIVE_UPLOADS_PER_USER):
        assert alice_api.post("/api/v1/uploads", {"filename": "m.safetensors", "size": 10}, format="json").status_code == 201
    response = alice_api.post("/api/v1/uploads", {"filename": "m.safetensors", "size": 10}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "too_many_uploads"


def test_the_protocol_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/v1/uploads", "/api/v1/uploads/{upload_id}/complete", "/api/v1/uploads/{upload_id}/parts/{number}",
                 "/api/v1/uploads/{upload_id}/version", "/api/v1/model-versions/{version_id}/images"):
        assert path in schema
