"""Account journeys in a real browser: a new API key survives a reload without a
second key, revoking asks first (also with JavaScript off), and a forgotten
password is reset by email; email and password are changed from Settings."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from hub.accounts.models import ApiKey, User
from hub.accounts.services import api_key_authenticate
from tests.support.browser import DEFAULT_TIMEOUT_MS

pytestmark = pytest.mark.browser


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=username)).to_be_visible()


def test_new_key_survives_a_reload_and_revoking_asks_first(page, browser, live_server, alice):
    sign_in(page, "alice", "alice-password-1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("my script")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your new API key")
    assert page.url.endswith("/account/api-keys/new/")
    plaintext = page.get_by_label("API key").input_value()
    assert api_key_authenticate(plaintext).user == alice

    # Reloading the page neither creates a second key nor shows the secret again.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("API keys")
    expect(page.get_by_text("A new key is shown only once")).to_be_visible()
    assert plaintext not in page.content()
    assert ApiKey.objects.filter(user=alice).count() == 1
    page.go_back()  # Back to the secret's address: nothing there either
    assert plaintext not in page.content()
    assert ApiKey.objects.filter(user=alice).count() == 1

    # Revoke asks first; keeping the key changes nothing.
    page.goto("/account/api-keys/")
    page.get_by_role("link", name="Revoke my script").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Revoke “my script”?")
    page.get_by_role("link", name="Keep it").click()
    expect(page.get_by_role("cell", name="my script", exact=True)).to_be_visible()
    assert ApiKey.objects.get(user=alice).revoked_at is None

    # The confirmation is a page with a form, so it works with JavaScript off too.
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        no_js = context.new_page()
        sign_in(no_js, "alice", "alice-password-1")
        no_js.goto("/account/api-keys/")
        no_js.get_by_role("link", name="Revoke my script").click()
        no_js.get_by_role("button", name="Revoke key").click()
        expect(no_js.get_by_text(re.compile(r"Key “my script” \(mw_[0-9a-f]{12}…\) is revoked"))).to_be_visible()
        expect(no_js.get_by_text(re.compile(r"^Revoked "))).to_be_visible()
    finally:
        context.close()
    assert ApiKey.objects.get(user=alice).revoked_at is not None


def test_reset_a_forgotten_password_by_email_then_change_email_and_password(page, live_server, alice, mailoutbox,
                                                                           settings):
    settings.SITE_URL = live_server.url  # reset links are built from it (ALLOWED_HOSTS is "*" here)
    settings.PASSWORD_RESET_EMAIL_INTERVAL = 0  # a rerun within the minute must get its email too

    page.goto("/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["alice@example.com"]
    link = re.search(r"https?://\S+/password-reset/\S+/\S+/", mailoutbox[0].body).group(0)
    assert link.startswith(live_server.url)
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Set a new password")
    page.get_by_label("New password", exact=True).fill("reset-passphrase-31")
    page.get_by_label("New password confirmation").fill("reset-passphrase-31")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your password is set")
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("reset-passphrase-31")
    page.get_by_role("button", name="Sign in").click()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="alice")).to_be_visible()

    # The reset link works once.
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")

    # Settings: change the email (needs the current password), then the password.
    nav.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    email_form = page.get_by_role("form", name="Change email")
    email_form.get_by_label("Email").fill("alice@new.example")
    email_form.get_by_label("Current password").fill("wrong-password")
    email_form.get_by_role("button", name="Save email").click()
    expect(page.get_by_text("That is not your current password.")).to_be_visible()
    email_form.get_by_label("Current password").fill("reset-passphrase-31")
    email_form.get_by_role("button", name="Save email").click()
    expect(page.get_by_text("Your email is now alice@new.example")).to_be_visible()
    assert User.objects.get(username="alice").email == "alice@new.example"

    password_form = page.get_by_role("form", name="Change password")
    password_form.get_by_label("Old password").fill("reset-passphrase-31")
    password_form.get_by_label("New password", exact=True).fill("changed-passphrase-58")
    password_form.get_by_label("New password confirmation").fill("changed-passphrase-58")
    password_form.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    expect(nav.get_by_role("link", name="alice")).to_be_visible()  # this browser stays signed in

    nav.get_by_role("button", name="Sign out").click()
    sign_in(page, "alice", "changed-passphrase-58")
    assert User.objects.get(username="alice").check_password("changed-passphrase-58")
