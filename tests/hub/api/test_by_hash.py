"""By-hash lookups: every hash kind in both cases, visibility, and the bulk update check."""
from __future__ import annotations

import pytest

from tests.support.builders import add_published_version, make_published_model, tiny_safetensors_bytes

HASH_KINDS = ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3")


@pytest.fixture
def big_model(alice, local_storage):
    # AutoV1 reads 64 KiB at offset 1 MiB, so the file must exceed 2 MiB to have one.
    import torch
    from safetensors.torch import save

    g = torch.Generator().manual_seed(7)
    data = save({"model.diffusion_model.out.2.weight": torch.randn(1100, 1024, generator=g).half()})
    assert len(data) > 2 * 1024 * 1024
    return make_published_model(alice, "Big One", data=data)


@pytest.mark.parametrize("kind", HASH_KINDS)
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_get_by_hash_for_every_kind_and_case(client, big_model, kind, case):
    model_file = big_model.versions.get().files.get()
    value = getattr(model_file, kind)
    assert value, f"{kind} missing"
    response = client.get(f"/api/v1/model-versions/by-hash/{case(value)}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == model_file.version_id
    assert body["model"]["name"] == "Big One"
    assert body["files"][0]["hashes"]["SHA256"] == model_file.sha256.upper()
    assert body["files"][0]["hashes"]["AutoV1"] == model_file.autov1.upper()


def test_stored_hashes_are_lowercase(big_model):
    model_file = big_model.versions.get().files.get()
    for kind in HASH_KINDS:
        assert getattr(model_file, kind) == getattr(model_file, kind).lower()


def test_unknown_and_malformed_hashes(client, db):
    response = client.get(f"/api/v1/model-versions/by-hash/{'ab' * 32}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    for bad in ("xyz", "12345", "g" * 64):
        response = client.get(f"/api/v1/model-versions/by-hash/{bad}")
        assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_private_and_draft_files_are_found_by_their_owner_only(client, alice, bob, local_storage):
    private = make_published_model(alice, "Hidden", data=tiny_safetensors_bytes(1), visibility="private")
    draft = make_published_model(alice, "Unpublished", data=tiny_safetensors_bytes(2), publish=False)
    for model in (private, draft):
        sha = model.versions.get().files.get().sha256
        assert client.get(f"/api/v1/model-versions/by-hash/{sha}").status_code == 404
        client.force_login(bob)
        assert client.get(f"/api/v1/model-versions/by-hash/{sha}").status_code == 404
        client.force_login(alice)
        assert client.get(f"/api/v1/model-versions/by-hash/{sha}").status_code == 200
        client.logout()


def test_shared_blob_resolves_to_a_visible_copy(client, alice, bob, local_storage):
    data = tiny_safetensors_bytes(3)
    make_published_model(alice, "Original Private", data=data, visibility="private")
    public = make_published_model(bob, "Public Copy", data=data)
    sha = public.versions.get().files.get().sha256
    body = client.get(f"/api/v1/model-versions/by-hash/{sha}").json()
    assert body["model"]["name"] == "Public Copy"


def test_bulk_reports_newer_versions(client, alice, local_storage):
    model = make_published_model(alice, "Evolving", data=tiny_safetensors_bytes(10), version_name="v1")
    v1_file = model.versions.get(name="v1").files.get()
    v2 = add_published_version(model, "v2", data=tiny_safetensors_bytes(11))
    add_published_version(model, "v3-draft", data=tiny_safetensors_bytes(12), publish=False)
    v2_file = v2.files.get()
    body = [v1_file.sha256.upper(), v2_file.crc32, v1_file.sha256.lower(), "ff" * 32]
    response = client.post("/api/v1/model-versions/by-hash", body, content_type="application/json")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["hash"] for i in items] == [v1_file.sha256.upper(), v2_file.crc32.upper(), "FF" * 32]  # deduplicated
    old, new, missing = items
    assert old["modelVersion"]["name"] == "v1" and old["newerVersionAvailable"] is True
    assert old["latestVersion"]["id"] == v2.id  # the draft v3 is not offered
    assert old["latestVersion"]["downloadUrl"].endswith(f"/api/download/models/{v2.id}")
    assert new["hashType"] == "CRC32" and new["newerVersionAvailable"] is False
    assert missing == {"hash": "FF" * 32, "hashType": None, "modelVersion": None, "latestVersion": None,
                       "newerVersionAvailable": False}


def test_bulk_accepts_object_form_and_rejects_bad_input(client, db):
    ok = client.post("/api/v1/model-versions/by-hash", {"hashes": ["ab" * 5]}, content_type="application/json")
    assert ok.status_code == 200 and len(ok.json()["items"]) == 1
    too_many = client.post("/api/v1/model-versions/by-hash", ["ab" * 32] * 1001, content_type="application/json")
    assert too_many.status_code == 400
    assert client.post("/api/v1/model-versions/by-hash", ["ab" * 32] * 1000,
                       content_type="application/json").status_code == 200
    for bad in ({"nope": 1}, '"abc"', ["zz"], [123]):
        response = client.post("/api/v1/model-versions/by-hash", bad, content_type="application/json")
        assert response.status_code == 400 and response.json()["code"] == "invalid"
    not_json = client.post("/api/v1/model-versions/by-hash", "[abc", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["code"] == "parse_error"


def test_bulk_query_count_does_not_grow_with_hashes(client, alice, local_storage, django_assert_max_num_queries):
    shas = []
    for i in range(6):
        model = make_published_model(alice, f"Many {i}", data=tiny_safetensors_bytes(40 + i))
        shas.append(model.versions.get().files.get().sha256)
    with django_assert_max_num_queries(2):  # the hash lookup with its versions and files, the latest versions
        response = client.post("/api/v1/model-versions/by-hash", shas, content_type="application/json")
    assert all(item["modelVersion"] for item in response.json()["items"])
