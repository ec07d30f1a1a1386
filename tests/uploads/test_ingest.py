"""Ingest: one pass of hashing and validation, the pickle scan, dedupe, and the hostile corpus."""
from __future__ import annotations

import hashlib
import io
import os

import pytest

from hub.catalog.models import Model, ModelVersion
from hub.files.models import ModelFile
from hub.files.storage import blob_key, blob_storage
from hub.uploads.models import Upload
from merges.engine import hostile
from merges.engine.hashing import FileHasher
from tests.uploads import hostile_files
from tests.uploads.conftest import ingest_now, send_file
from tests.uploads.files import TAG_FREQUENCY, lora_bytes, merged_checkpoint_bytes, torch_checkpoint_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["s3", "local"])
def backend(request):
    if request.param == "local":
        request.getfixturevalue("local_storage")
    return request.param


def upload_and_ingest(api, data: bytes, filename: str, **kwargs) -> Upload:
    state = send_file(api, data, filename, **kwargs)
    response = api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert response.status_code == 202, response.content
    ingest_now(state["id"])
    return Upload.objects.get(pk=state["id"])


def expected_hashes(data: bytes) -> dict:
    h = FileHasher()
    h.update(data)
    return {k: (v.lower() if v else v) for k, v in h.hexdigests().items()}


def test_a_lora_is_verified_hashed_and_prefilled(alice_api, backend, small_parts):
    data = lora_bytes(min_bytes=3 * 1024 * 1024, rank=16, alpha=8.0)
    upload = upload_and_ingest(alice_api, data, "mychar.safetensors")
    assert upload.status == Upload.Status.READY, upload.error_message
    assert upload.hashes == expected_hashes(data)
    assert upload.hashes["autov1"] and upload.hashes["autov3"]
    assert upload.format == ModelFile.Format.SAFETENSOR and upload.precision == "fp16"
    assert upload.blob_key == blob_key(hashlib.sha256(data).hexdigest())
    with blob_storage().open(upload.blob_key, "rb") as f:
        assert f.read() == data
    s = upload.suggestions
    assert (s["type"], s["base_model"], s["rank"], s["alpha"]) == ("LORA", "SD 1.5", 16, 8.0)
    assert s["trained_words"] == ["mychar", "<b>bold</b>"]  # 1girl and smile are generic
    assert s["name"] == "mychar-v1"
    # The staged parts are gone once the blob exists.
    from hub.uploads.backends import backend_for

    assert backend_for(upload).object_size(upload) is None

    state = alice_api.get(f"/api/v1/uploads/{upload.pk}").json()
    assert state["status"] == "ready" and state["result"]["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert state["result"]["inspect"]["lora"]["rank"] == 16


def test_attaching_creates_and_publishes_the_version(alice_api, alice, local_storage):
    data = lora_bytes(min_bytes=100_000)
    upload = upload_and_ingest(alice_api, data, "mychar.safetensors")
    response = alice_api.post(
        f"/api/v1/uploads/{upload.pk}/version",
        {"name": "My Char", "type": "LORA", "baseModel": "SD 1.5", "trainedWords": ["mychar"], "tags": ["character"],
         "description": "**hi** <script>alert(1)</script>", "publish": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    version = ModelVersion.objects.get(pk=body["modelVersionId"])
    assert version.status == "published" and version.model.status == "published"
    assert version.trained_words == ["mychar"] and version.model.owner == alice
    f = version.files.get()
    assert (f.sha256, f.autov3, f.size_bytes, f.storage_key) == (
        upload.hashes["sha256"], upload.hashes["autov3"], len(data), upload.blob_key
    )
    assert f.pickle_scan_status == ModelFile.ScanStatus.SUCCESS
    assert f.header_summary["inspect"]["kind"] == "lora"
    upload.refresh_from_db()
    assert upload.status == Upload.Status.ATTACHED and upload.model_file == f
    # An upload becomes one file once.
    again = alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"name": "Again"}, format="json")
    assert again.status_code == 409


def test_a_new_version_of_an_existing_model(alice_api, alice, bob, local_storage):
    from tests.support.builders import make_published_model

    model = make_published_model(alice, "Series")
    data = lora_bytes(min_bytes=50_000, seed=3)
    state = send_file(alice_api, data, "v2.safetensors", modelId=model.pk)
    alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    ingest_now(state["id"])
    response = alice_api.post(f"/api/v1/uploads/{state['id']}/version", {"versionName": "v2.0", "publish": True}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["modelId"] == model.pk
    assert list(model.versions.order_by("id").values_list("name", flat=True)) == ["v1.0", "v2.0"]

    # Someone else's model cannot receive the version, even from a ready upload.
    bobs = make_published_model(bob, "Bob's")
    data = lora_bytes(min_bytes=50_000, seed=4)
    upload = upload_and_ingest(alice_api, data, "x.safetensors")
    response = alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"modelId": bobs.pk}, format="json")
    assert response.status_code == 403
    assert bobs.versions.count() == 1


def test_identical_content_links_to_the_existing_blob(alice_api, bob, local_storage):
    data = lora_bytes(min_bytes=50_000, seed=9)
    first = upload_and_ingest(alice_api, data, "a.safetensors")
    second = upload_and_ingest(alice_api, data, "b.safetensors")
    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert first.blob_key == second.blob_key
    for upload, name in ((first, "A"), (second, "B")):
        assert alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"name": name}, format="json").status_code == 201
    assert ModelFile.objects.filter(storage_key=first.blob_key).count() == 2


def test_declared_sha256_must_match_the_bytes(alice_api, backend, no_bomb_marker):
    data = lora_bytes(min_bytes=50_000)
    upload = upload_and_ingest(alice_api, data, "m.safetensors", sha256="0" * 64)
    assert upload.status == Upload.Status.FAILED and upload.error_code == "sha256_mismatch"
    assert hashlib.sha256(data).hexdigest() in upload.error_message
    assert not blob_storage().exists(blob_key(hashlib.sha256(data).hexdigest()))
    state = alice_api.get(f"/api/v1/uploads/{upload.pk}").json()
    assert state["error"]["code"] == "sha256_mismatch"


def test_a_part_of_the_wrong_size_is_caught_on_completion(alice_api, small_parts):
    # moto accepts any body on a presigned URL; real S3 refuses it (Content-Length is signed).
    data = lora_bytes(min_bytes=6 * 1024 * 1024)
    state = send_file(alice_api, data, skip={1})
    from tests.uploads.conftest import put_part

    put_part(alice_api, state["parts"][0]["url"], data[:1000])
    response = alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "part_size_mismatch"


HOSTILE = [
    (f"{name}.safetensors", generator, Upload.Status.FAILED, code)
    for name, (code, generator) in hostile.SAFETENSORS_CASES.items()
    if code != "not_safetensors"
] + [
    # Pickles are decided by content, whatever their name, and scanned, never loaded.
    ("bomb.ckpt", hostile.pickle_bomb, Upload.Status.QUARANTINED, "dangerous_pickle"),
    ("bomb.safetensors", hostile.pickle_bomb, Upload.Status.QUARANTINED, "dangerous_pickle"),
    ("bomb.pt", hostile.zip_checkpoint, Upload.Status.QUARANTINED, "dangerous_pickle"),
    ("legacy.ckpt", hostile_files.legacy_stream_bomb, Upload.Status.QUARANTINED, "dangerous_pickle"),
    ("archive.ckpt", hostile_files.zip_without_checkpoint, Upload.Status.FAILED, "not_a_checkpoint"),
    ("data.ckpt", hostile_files.pickle_without_tensors, Upload.Status.FAILED, "not_a_checkpoint"),
    ("renamed.safetensors", torch_checkpoint_bytes, Upload.Status.FAILED, "extension_mismatch"),
]


@pytest.mark.parametrize("filename, generator, status, code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_files_are_rejected_each_with_its_own_reason(alice_api, local_storage, no_bomb_marker,
                                                             filename, generator, status, code):
    data = generator()
    upload = upload_and_ingest(alice_api, data, filename)
    assert (upload.status, upload.error_code) == (status, code), upload.error_message
    assert upload.error_message and len(upload.error_message) > 20
    assert not blob_storage().exists(blob_key(hashlib.sha256(data).hexdigest()))
    assert not Model.objects.exists() and not ModelFile.objects.exists()
    response = alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"name": "x", "publish": True}, format="json")
    assert response.status_code == 409
    assert not Model.objects.exists()
    if status == Upload.Status.QUARANTINED:
        quarantined = os.path.join(local_storage.location, "quarantine", "uploads", str(upload.pk))
        with open(quarantined, "rb") as f:
            assert f.read() == data  # kept aside for review, never under a blob key


def test_reasons_are_distinct_across_the_corpus():
    codes = [code for _, _, _, code in HOSTILE]
    safetensors_codes = {code for _, (code, _) in hostile.SAFETENSORS_CASES.items()}
    assert {"duplicate_key", "header_not_object", "header_too_large", "gap", "overlap", "trailing_bytes",
            "size_mismatch", "bad_metadata", "truncated"} <= set(codes) & safetensors_codes


def test_a_pickle_bomb_on_s3_is_quarantined_without_running(alice_api, no_bomb_marker):
    upload = upload_and_ingest(alice_api, hostile.zip_checkpoint(), "bomb.ckpt")
    assert upload.status == Upload.Status.QUARANTINED
    assert "os.system" in upload.error_message
    storage = blob_storage()
    assert storage.exists(f"quarantine/uploads/{upload.pk}")
    assert not storage.exists(upload.staging_key)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_clean_pickle_checkpoint_is_accepted_after_the_scan(alice_api, backend, legacy, no_bomb_marker):
    data = torch_checkpoint_bytes(legacy=legacy)
    upload = upload_and_ingest(alice_api, data, "old.ckpt")
    assert upload.status == Upload.Status.READY, upload.error_message
    assert upload.format == ModelFile.Format.PICKLE_TENSOR
    assert upload.pickle_scan["dangerous"] == []
    assert "torch._utils._rebuild_tensor_v2" in upload.pickle_scan["innocuous"]
    assert upload.suggestions["type"] == "Checkpoint"
    response = alice_api.post(f"/api/v1/uploads/{upload.pk}/version", {"name": "Old"}, format="json")
    assert response.status_code == 201
    f = ModelFile.objects.get(pk=response.json()["fileId"])
    assert f.format == "PickleTensor" and f.pickle_scan_status == ModelFile.ScanStatus.SUCCESS


def test_safetensors_named_like_a_pickle_are_renamed(alice_api, local_storage):
    upload = upload_and_ingest(alice_api, lora_bytes(min_bytes=10_000), "mychar.ckpt")
    assert upload.status == Upload.Status.READY and upload.filename == "mychar.safetensors"


def test_merge_provenance_is_read_and_matched_to_catalogue_parents(alice_api, alice, local_storage):
    from hub.uploads.selectors import merge_parents
    from tests.support.builders import make_published_model, tiny_safetensors_bytes

    parent_bytes = tiny_safetensors_bytes(42)
    parent = make_published_model(alice, "Parent", data=parent_bytes)
    parent_sha = hashlib.sha256(parent_bytes).hexdigest()
    data = merged_checkpoint_bytes(parents={parent_sha: "parent.safetensors", "ab" * 32: "elsewhere.ckpt"})
    upload = upload_and_ingest(alice_api, data, "merged.safetensors")
    assert upload.status == Upload.Status.READY, upload.error_message
    merge = upload.suggestions["merge"]
    assert merge["recipe"]["primary_model_hash"] == parent_sha and merge["recipe"]["multiplier"] == 0.3
    assert {m["name"] for m in merge["models"]} == {"parent.safetensors", "elsewhere.ckpt"}
    assert upload.suggestions["checkpoint_type"] == "Merge" and upload.suggestions["base_model"] == "SD 1.5"
    parents = merge_parents(upload, alice)
    assert [p["modelId"] for p in parents] == [parent.pk]


def test_a_redelivered_or_duplicate_task_does_nothing(alice_api, local_storage):
    from hub.uploads.services import upload_ingest

    data = lora_bytes(min_bytes=10_000)
    state = send_file(alice_api, data)
    alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    assert upload_ingest(upload_id=state["id"], task_id="first").status == Upload.Status.READY
    assert upload_ingest(upload_id=state["id"], task_id="first") is None
    assert upload_ingest(upload_id=state["id"], task_id="second") is None


def test_the_stream_is_read_once_front_to_back():
    from hub.files.scanning import file_stream_verify

    data = lora_bytes(min_bytes=2 * 1024 * 1024)

    class OneWay(io.RawIOBase):
        def __init__(self):
            self.inner = io.BytesIO(data)
            self.reads = 0

        def read(self, n=-1):
            self.reads += 1
            return self.inner.read(n)

        def seek(self, *a):
            raise AssertionError("ingest must not seek")

    stream = OneWay()
    result = file_stream_verify(stream, size=len(data), chunk_size=1 << 16)
    assert stream.inner.tell() == len(data)
    assert result.hashes == expected_hashes(data)
    assert result.header_summary["inspect"]["lora"]["alpha"] == 8.0
    assert TAG_FREQUENCY  # the metadata the suggestions came from
