"""Response contracts: each v1 endpoint's body against a snapshot under snapshots/."""
from __future__ import annotations

from hub.accounts.services import api_key_create


def _bearer(user, scopes=("read", "download")):
    return {"HTTP_AUTHORIZATION": f"Bearer {api_key_create(user=user, name='t', scopes=list(scopes)).plaintext}"}


def test_models_list(client, catalogue, snapshot):
    response = client.get("/api/v1/models")
    assert response.status_code == 200
    snapshot("models_list", response.json())


def test_models_list_with_next_page(client, catalogue, snapshot):
    response = client.get("/api/v1/models?limit=1&sort=Most%20Downloaded&types=Checkpoint,LORA")
    assert response.status_code == 200
    snapshot("models_list_page", response.json())


def test_model_detail(client, catalogue, snapshot):
    response = client.get(f"/api/v1/models/{catalogue['checkpoint'].id}")
    assert response.status_code == 200
    snapshot("model_detail", response.json())


def test_model_version_detail(client, catalogue, snapshot):
    version = catalogue["lora"].versions.get()
    response = client.get(f"/api/v1/model-versions/{version.id}")
    assert response.status_code == 200
    snapshot("model_version_detail", response.json())


def test_model_version_by_hash(client, catalogue, snapshot):
    sha256 = catalogue["lora"].versions.get().files.get().sha256
    response = client.get(f"/api/v1/model-versions/by-hash/{sha256}")
    assert response.status_code == 200
    snapshot("model_version_by_hash", response.json())


def test_model_versions_by_hash_bulk(client, catalogue, snapshot):
    old = catalogue["checkpoint"].versions.get(name="v1").files.get()
    lora = catalogue["lora"].versions.get().files.get()
    secret = catalogue["secret"].versions.get().files.get()
    body = [old.autov2.upper(), lora.blake3, secret.sha256, "0" * 64]
    response = client.post("/api/v1/model-versions/by-hash", body, content_type="application/json")
    assert response.status_code == 200
    snapshot("model_versions_by_hash_bulk", response.json())


def test_tags(client, catalogue, snapshot):
    response = client.get("/api/v1/tags")
    assert response.status_code == 200
    snapshot("tags", response.json())


def test_creators(client, catalogue, snapshot):
    response = client.get("/api/v1/creators")
    assert response.status_code == 200
    snapshot("creators", response.json())


def test_me_with_api_key(client, alice, snapshot):
    response = client.get("/api/v1/me", **_bearer(alice))
    assert response.status_code == 200
    snapshot("me_api_key", response.json())


def test_me_with_session(client, alice, snapshot):
    client.force_login(alice)
    response = client.get("/api/v1/me")
    assert response.status_code == 200
    snapshot("me_session", response.json())


def test_api_key_create_and_list(client, alice, snapshot):
    client.force_login(alice)
    created = client.post("/api/v1/api-keys", {"name": "laptop", "scopes": ["read"]}, content_type="application/json")
    assert created.status_code == 201
    snapshot("api_key_created", created.json())
    listed = client.get("/api/v1/api-keys")
    snapshot("api_keys_list", listed.json())


def test_error_bodies(client, db, snapshot):
    snapshot("error_not_found", client.get("/api/v1/models/999999").json())
    snapshot("error_bad_sort", client.get("/api/v1/models?sort=Best").json())
    snapshot("error_unauthenticated", client.get("/api/v1/me").json())
    snapshot("error_download_not_found", client.get("/api/download/models/999999").json())
