"""A newcomer's first visit, in a real browser: sign up, make an API key,
find a model from the listing and download its file from the model page."""
from __future__ import annotations

import re
import urllib.request

import pytest

from hub.accounts.services import api_key_authenticate
from hub.files.storage import blob_storage
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.browser


def test_sign_up_create_key_browse_and_download(page, live_server, bob):
    data = tiny_safetensors_bytes(11, metadata={"ss_output_name": "inkwash"})
    model = make_published_model(bob, "Ink Wash Style", data=data, type="LORA", tags=["ink", "style"])
    make_published_model(bob, "Some Other Model")
    version = model.versions.get()
    model_file = version.files.get()

    # Sign up.
    page.goto("/")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Email").fill("newcomer@example.com")
    page.get_by_label("Password", exact=True).fill("a-long-passphrase-42")
    page.get_by_label("Password confirmation").fill("a-long-passphrase-42")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{live_server.url}/")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="newcomer").is_visible()

    # Create an API key; the plaintext is on the result page, once.
    nav.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("my script")
    page.get_by_label("download: download model files").check()
    page.get_by_role("button", name="Create key").click()
    plaintext = page.get_by_label("API key").input_value()
    assert re.fullmatch(r"mw_[0-9a-f]{12}_[A-Za-z0-9_\-]+", plaintext)
    key = api_key_authenticate(plaintext)
    assert key.user.username == "newcomer" and set(key.scopes) == {"read", "download"}
    page.get_by_role("link", name="Back to your keys").click()
    assert plaintext not in page.content()
    assert page.get_by_role("cell", name="my script", exact=True).is_visible()

    # Browse from the listing to the model.
    nav.get_by_role("link", name="Models").click()
    page.get_by_role("searchbox", name="Search").fill("ink wash")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="Ink Wash Style").click()
    page.wait_for_url(re.compile(rf"/models/{model.pk}/{model.slug}/$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Ink Wash Style"
    page.get_by_text("Hashes").click()
    assert page.get_by_text(model_file.sha256.upper()).is_visible()

    # Download the file with the browser's own session.
    with page.expect_download() as download_info:
        page.get_by_test_id("download-file").click()
    download = download_info.value
    assert download.suggested_filename == model_file.name
    downloaded = open(download.path(), "rb").read()
    with blob_storage().open(model_file.storage_key, "rb") as stored:
        assert downloaded == stored.read() == data

    # The key read from the page works on its own, outside the browser session.
    url = f"{live_server.url}/api/download/models/{version.pk}?fileId={model_file.pk}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {plaintext}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.read() == data
