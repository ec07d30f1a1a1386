"""Sign up, sign in, sign out and API keys through the website's forms."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from hub.accounts.models import ApiKey, User
from hub.accounts.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r'id="new-api-key" type="text" value="(mw_[A-Za-z0-9_\-]+)"')


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client, url: str) -> str:
    html = client.get(url).content.decode()
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_sign_up_creates_account_and_signs_in():
    client = csrf_client()
    token = csrf_token(client, "/signup/")
    response = client.post(
        "/signup/",
        {"csrfmiddlewaretoken": token, "username": "carol", "email": "carol@example.com",
         "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42"},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="carol")
    assert user.check_password("a-long-passphrase-42")
    home = client.get("/").content.decode()
    assert 'href="/users/carol/"' in home and "Sign out" in home


def test_sign_up_rejects_taken_username_and_weak_password(alice):
    response = Client().post(
        "/signup/", {"username": "ALICE", "password1": "password", "password2": "password"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "already exists" in html
    assert "too common" in html
    assert User.objects.filter(username__iexact="alice").count() == 1


def test_sign_up_ignores_offsite_next():
    response = Client().post(
        "/signup/?next=https://evil.example/",
        {"username": "dave", "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42",
         "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_sign_in_and_sign_out(alice):
    client = csrf_client()
    token = csrf_token(client, "/login/")
    response = client.post("/login/", {"csrfmiddlewaretoken": token, "username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    assert client.get("/account/api-keys/").status_code == 200

    token = csrf_token(client, "/")
    assert client.get("/logout/").status_code == 405  # sign out only by POST
    assert client.post("/logout/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/account/api-keys/").status_code == 302


def test_sign_in_with_wrong_password_shows_error(alice):
    response = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.parametrize("url", ["/signup/", "/login/", "/logout/"])
def test_auth_forms_enforce_csrf(url, alice):
    client = csrf_client()
    client.force_login(alice)
    response = client.post(url, {"username": "x", "password": "y"})
    assert response.status_code == 403
    assert b"That form has expired" in response.content


def test_api_keys_page_requires_sign_in(client):
    response = client.get("/account/api-keys/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/account/api-keys/")


def test_create_api_key_shows_plaintext_once(alice):
    client = csrf_client()
    client.force_login(alice)
    token = csrf_token(client, "/account/api-keys/")

    response = client.post(
        "/account/api-keys/", {"csrfmiddlewaretoken": token, "name": "ComfyUI", "scopes": ["read", "download"]}
    )

    # Post/redirect/get: the POST answers with a redirect, the GET shows the secret.
    assert response.status_code == 302 and response["Location"] == reverse("frontend:api-key-created")
    shown = client.get(response["Location"])
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    plaintext = KEY_RE.search(shown.content.decode()).group(1)
    key = api_key_authenticate(plaintext)
    assert key.user == alice and key.name == "ComfyUI" and key.scopes == ["read", "download"]
    assert plaintext not in {key.secret_hash, key.prefix}
    assert plaintext not in str(client.session.items())

    # A reload shows nothing and creates nothing.
    reloaded = client.get(response["Location"], follow=True)
    html = reloaded.content.decode()
    assert reloaded.redirect_chain == [(reverse("frontend:api-keys"), 302)]
    assert plaintext not in html and "shown only once" in html
    assert ApiKey.objects.filter(user=alice).count() == 1

    listing = client.get("/account/api-keys/").content.decode()
    assert "ComfyUI" in listing and f"mw_{key.prefix}_" in listing
    assert plaintext not in listing


def test_unread_secret_is_dropped_when_the_list_is_opened(alice, client):
    client.force_login(alice)
    client.post("/account/api-keys/", {"name": "never opened", "scopes": ["read"]})
    assert client.session.get("frontend.issued_api_key")
    client.get("/account/api-keys/")
    assert "frontend.issued_api_key" not in client.session
    response = client.get(reverse("frontend:api-key-created"))
    assert response.status_code == 302


def test_secret_page_shows_only_the_users_own_key(alice, bob, client):
    issued = api_key_create(user=alice, name="alice's key", scopes=["read"])
    client.force_login(bob)
    session = client.session
    session["frontend.issued_api_key"] = {"id": issued.api_key.pk, "plaintext": issued.plaintext}
    session.save()
    response = client.get(reverse("frontend:api-key-created"))
    assert response.status_code == 302 and issued.plaintext not in client.get("/account/api-keys/").content.decode()


def test_create_api_key_validates_name_and_scopes(alice, client):
    client.force_login(alice)
    response = client.post("/account/api-keys/", {"name": "  ", "scopes": ["root"]})
    assert response.status_code == 200
    html = response.content.decode()
    assert "This field is required." in html or "Give the key a name." in html
    assert "Select a valid choice" in html
    assert not ApiKey.objects.exists()


def test_create_api_key_enforces_csrf(alice):
    client = csrf_client()
    client.force_login(alice)
    response = client.post("/account/api-keys/", {"name": "sneaky", "scopes": ["upload"]})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_revoke_api_key_asks_first(alice):
    issued = api_key_create(user=alice, name="old laptop", scopes=["read"])
    client = csrf_client()
    client.force_login(alice)
    url = reverse("frontend:api-key-revoke", args=[issued.api_key.pk])

    listing = client.get("/account/api-keys/").content.decode()
    assert f'href="{url}"' in listing
    confirm = client.get(url)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Revoke “old laptop”?" in html and f'action="{url}"' in html
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is None  # asking is not revoking

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(url, {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None
    listing = client.get("/account/api-keys/").content.decode()
    assert "Revoked" in listing and "is revoked" in listing
    again = client.get(url, follow=True)
    assert "already revoked" in again.content.decode()


def test_revoke_enforces_csrf(alice):
    issued = api_key_create(user=alice, name="k", scopes=["read"])
    client = csrf_client()
    client.force_login(alice)
    url = reverse("frontend:api-key-revoke", args=[issued.api_key.pk])
    assert client.post(url).status_code == 403
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is None


def test_cannot_see_or_revoke_someone_elses_key(alice, bob, client):
    issued = api_key_create(user=alice, name="alice's key", scopes=["read"])
    client.force_login(bob)
    assert b"alice&#x27;s key" not in client.get("/account/api-keys/").content
    url = reverse("frontend:api-key-revoke", args=[issued.api_key.pk])
    assert client.get(url).status_code == 404
    response = client.post(url)
    assert response.status_code == 404
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is None


def test_navigation_reflects_sign_in_state(alice, client):
    html = client.get("/").content.decode()
    assert 'href="/login/"' in html and 'href="/signup/"' in html and "Sign out" not in html
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert 'href="/account/api-keys/"' in html and "Sign out" in html
    assert 'href="/upload/"' in html and 'href="/recipes/"' in html and 'href="/api/docs/"' in html
