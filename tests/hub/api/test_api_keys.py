"""API keys over the API: stored hashed, plaintext only in the create response, scoped, revocable."""
from __future__ import annotations

import hashlib

from hub.accounts.models import ApiKey
from hub.accounts.services import api_key_create


def _bearer(plaintext: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def test_key_is_stored_hashed_and_shown_once(client, alice):
    client.force_login(alice)
    created = client.post("/api/v1/api-keys", {"name": "ci"}, content_type="application/json")
    assert created.status_code == 201
    plaintext = created.json()["key"]
    assert plaintext.startswith("mw_")
    assert created.json()["scopes"] == ["read", "download"]
    stored = ApiKey.objects.get(pk=created.json()["id"])
    secret = plaintext.split("_", 2)[2]
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    for value in ApiKey.objects.filter(pk=stored.pk).values().get().values():
        assert plaintext not in str(value) and secret not in str(value)
    listed = client.get("/api/v1/api-keys")
    assert secret not in listed.content.decode()
    assert "key" not in listed.json()["items"][0]
    assert listed.json()["items"][0]["prefix"] == f"mw_{stored.prefix}"
    # The new key works.
    client.logout()
    assert client.get("/api/v1/me", **_bearer(plaintext)).json()["username"] == "alice"


def test_revoke_makes_the_key_401(client, alice, bob):
    issued = api_key_create(user=alice, name="laptop")
    client.force_login(bob)
    assert client.delete(f"/api/v1/api-keys/{issued.api_key.id}").status_code == 404  # not bob's
    client.force_login(alice)
    assert client.delete(f"/api/v1/api-keys/{issued.api_key.id}").status_code == 204
    assert client.delete(f"/api/v1/api-keys/{issued.api_key.id}").status_code == 204  # idempotent
    client.logout()
    response = client.get("/api/v1/me", **_bearer(issued.plaintext))
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
    client.force_login(alice)
    (item,) = client.get("/api/v1/api-keys").json()["items"]
    assert item["active"] is False and item["revokedAt"]


def test_keys_cannot_escalate(client, alice):
    reader = api_key_create(user=alice, name="reader", scopes=["read"]).plaintext
    uploader = api_key_create(user=alice, name="uploader", scopes=["read", "upload"])
    denied = client.post("/api/v1/api-keys", {"name": "x", "scopes": ["read", "upload"]},
                         content_type="application/json", **_bearer(reader))
    assert denied.status_code == 403
    allowed = client.post("/api/v1/api-keys", {"name": "x", "scopes": ["read"]},
                          content_type="application/json", **_bearer(reader))
    assert allowed.status_code == 201
    assert client.delete(f"/api/v1/api-keys/{uploader.api_key.id}", **_bearer(reader)).status_code == 403


def test_validation_and_authentication(client, alice):
    assert client.get("/api/v1/api-keys").status_code == 401
    assert client.get("/api/v1/me").status_code == 401
    client.force_login(alice)
    bad_scope = client.post("/api/v1/api-keys", {"name": "x", "scopes": ["admin"]}, content_type="application/json")
    assert bad_scope.status_code == 400 and "scopes" in bad_scope.json()["details"]
    no_name = client.post("/api/v1/api-keys", {"scopes": ["read"]}, content_type="application/json")
    assert no_name.status_code == 400


def test_session_post_requires_csrf(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/api-keys", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403


def test_me_needs_read_scope(client, alice):
    key = api_key_create(user=alice, name="dl", scopes=["download"]).plaintext
    assert client.get("/api/v1/me", **_bearer(key)).status_code == 403
