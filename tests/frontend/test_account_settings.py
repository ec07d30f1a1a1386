"""Account settings (email, password) and password reset by email, through the website's forms."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client

from hub.accounts.models import User

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LINK_RE = re.compile(r"(https?://[^/\s]+)(/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture(autouse=True)
def _no_reset_throttle(settings):
    settings.PASSWORD_RESET_EMAIL_INTERVAL = 0  # the cache outlives a test; see test_reset_emails_are_throttled


def reset_link(message) -> tuple[str, str]:
    origin, path = LINK_RE.search(message.body).groups()
    return origin, path


def test_settings_page_needs_sign_in(client):
    response = client.get("/account/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/account/")


def test_settings_page_shows_sections(alice, client):
    client.force_login(alice)
    html = client.get("/account/").content.decode()
    assert "alice@example.com" in html
    assert 'name="email-email"' in html and 'name="password-new_password1"' in html
    assert 'href="/account/api-keys/"' in html
    assert 'href="/account/" aria-current="page">Settings' in html


def test_change_email_needs_current_password(alice, client):
    client.force_login(alice)
    response = client.post("/account/", {"form": "email", "email-email": "new@example.com",
                                         "email-current_password": "wrong"})
    assert response.status_code == 200 and "not your current password" in response.content.decode()
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"

    response = client.post("/account/", {"form": "email", "email-email": "Alice@Example.ORG",
                                         "email-current_password": "alice-password-1"}, follow=True)
    alice.refresh_from_db()
    assert alice.email == "Alice@example.org"  # the domain part is case-insensitive
    assert "Your email is now Alice@example.org" in response.content.decode()


def test_change_email_rejects_bad_address_and_allows_removing_it(alice, client):
    client.force_login(alice)
    response = client.post("/account/", {"form": "email", "email-email": "not an address",
                                         "email-current_password": "alice-password-1"})
    assert "Enter a valid email address." in response.content.decode()
    response = client.post("/account/", {"form": "email", "email-email": "",
                                         "email-current_password": "alice-password-1"}, follow=True)
    alice.refresh_from_db()
    assert alice.email == "" and "can no longer be reset" in response.content.decode()


def test_change_password_keeps_this_session_and_ends_others(alice):
    here, elsewhere = Client(), Client()
    here.force_login(alice)
    elsewhere.force_login(alice)
    weak = here.post("/account/", {"form": "password", "password-old_password": "alice-password-1",
                                   "password-new_password1": "password", "password-new_password2": "password"})
    assert "too common" in weak.content.decode()
    wrong_old = here.post("/account/", {"form": "password", "password-old_password": "nope",
                                        "password-new_password1": "a-new-passphrase-77",
                                        "password-new_password2": "a-new-passphrase-77"})
    assert "old password was entered incorrectly" in wrong_old.content.decode()

    response = here.post("/account/", {"form": "password", "password-old_password": "alice-password-1",
                                       "password-new_password1": "a-new-passphrase-77",
                                       "password-new_password2": "a-new-passphrase-77"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-new-passphrase-77")
    assert here.get("/account/").status_code == 200
    assert elsewhere.get("/account/").status_code == 302


def test_password_reset_by_email(alice, settings):
    settings.SITE_URL = "https://hub.example.org"
    client = Client(enforce_csrf_checks=True)
    html = client.get("/password-reset/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post("/password-reset/", {"csrfmiddlewaretoken": token, "email": "ALICE@example.com"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"] and "password" in message.subject.lower()
    origin, path = reset_link(message)
    assert origin == "https://hub.example.org"

    form = client.get(path, follow=True)
    assert "Set a new password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
    done = client.post(set_url, {"csrfmiddlewaretoken": token, "new_password1": "reset-passphrase-31",
                                 "new_password2": "reset-passphrase-31"})
    assert done.status_code == 302 and done["Location"] == "/password-reset/complete/"
    alice.refresh_from_db()
    assert alice.check_password("reset-passphrase-31")

    # The link works once.
    again = Client().get(path, follow=True).content.decode()
    assert "no longer works" in again


def test_password_reset_link_ignores_a_forged_host(alice, settings):
    settings.SITE_URL = "https://hub.example.org"
    Client().post("/password-reset/", {"email": "alice@example.com"}, HTTP_HOST="evil.example")
    origin, _ = reset_link(mail.outbox[0])
    assert origin == "https://hub.example.org"


def test_password_reset_uses_the_request_host_when_hosts_are_checked(alice, settings):
    settings.ALLOWED_HOSTS = ["hub.internal"]
    Client().post("/password-reset/", {"email": "alice@example.com"}, HTTP_HOST="hub.internal")
    origin, _ = reset_link(mail.outbox[0])
    assert origin == "http://hub.internal"


def test_password_reset_does_not_tell_who_has_an_account(alice):
    response = Client().post("/password-reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert mail.outbox == []
    response = Client().post("/password-reset/", {"email": "not an address"})
    assert response.status_code == 200 and "Enter a valid email address." in response.content.decode()


def test_reset_emails_are_throttled_per_address(db, settings):
    from hub.accounts.services import user_create

    settings.PASSWORD_RESET_EMAIL_INTERVAL = 60
    # Unique per run: the throttle lives in the cache (Redis here), which outlives the test.
    address = f"throttle-{os.getpid()}-{time.time_ns()}@example.com"
    user_create(username="throttled", password="throttle-password-1", email=address)
    other = user_create(username="other", password="other-password-1", email=f"other-{address}")
    for _ in range(3):
        response = Client().post("/password-reset/", {"email": address.upper()})
        assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    Client().post("/password-reset/", {"email": other.email})
    assert [m.to for m in mail.outbox] == [[address], [other.email]]


def test_login_page_links_to_password_reset(client):
    assert 'href="/password-reset/"' in client.get("/login/").content.decode()


def _settings_in_child(env: dict[str, str]) -> dict:
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "from django.core.mail import send_mail; "
        "sent = send_mail('hi', 'body', None, ['x@example.com']) if s.EMAIL_BACKEND.endswith('filebased.EmailBackend') else 0; "
        "print(json.dumps({'backend': s.EMAIL_BACKEND, 'path': str(getattr(s, 'EMAIL_FILE_PATH', '')), "
        "'host': s.EMAIL_HOST, 'port': s.EMAIL_PORT, 'tls': s.EMAIL_USE_TLS, 'user': s.EMAIL_HOST_USER, "
        "'password': s.EMAIL_HOST_PASSWORD, 'from': s.DEFAULT_FROM_EMAIL, 'sent': sent}))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "DATABASE_URL", "REDIS_URL", "S3_"))}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**base, **env}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_email_backend_is_a_file_in_embedded_mode_and_smtp_from_the_environment(tmp_path):
    embedded = _settings_in_child({"MERGEWORKS_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "hub.settings"})
    assert embedded["backend"] == "django.core.mail.backends.filebased.EmailBackend"
    assert embedded["path"] == str(tmp_path / "mail") and embedded["sent"] == 1
    assert "body" in next((tmp_path / "mail").iterdir()).read_text()

    smtp = _settings_in_child({
        "MERGEWORKS_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "hub.settings",
        "EMAIL_HOST": "smtp.example.org", "EMAIL_PORT": "2525", "EMAIL_HOST_USER": "hub",
        "EMAIL_HOST_PASSWORD": "s3cret", "EMAIL_USE_TLS": "false", "DEFAULT_FROM_EMAIL": "Hub <hub@example.org>",
    })
    assert smtp == {**smtp, "backend": "django.core.mail.backends.smtp.EmailBackend", "host": "smtp.example.org",
                    "port": 2525, "tls": False, "user": "hub", "password": "s3cret", "from": "Hub <hub@example.org>",
                    "sent": 0}
