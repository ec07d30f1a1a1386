"""The upload pages: sign-in, CSRF, ownership, the pre-filled form, drafts and publishing."""
from __future__ import annotations

import io

import pytest
from django.test import Client

from hub.catalog.models import Model
from hub.uploads.models import Upload
from tests.uploads.conftest import ingest_now, send_file
from tests.uploads.files import lora_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_browser(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


def _csrf(client, path: str = "/upload/") -> str:
    client.get(path)
    return client.cookies["csrftoken"].value


@pytest.fixture
def ready_upload(alice_api, local_storage):
    state = send_file(alice_api, lora_bytes(min_bytes=20_000), "mychar.safetensors")
    alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    ingest_now(state["id"])
    return Upload.objects.get(pk=state["id"])


def test_the_upload_page_needs_a_signed_in_user(client):
    response = client.get("/upload/")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/upload/")


def test_the_website_enforces_csrf_on_the_upload_api(alice_browser):
    body = '{"filename": "m.safetensors", "size": 10}'
    refused = alice_browser.post("/api/v1/uploads", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    token = _csrf(alice_browser)
    accepted = alice_browser.post("/api/v1/uploads", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_the_website_enforces_csrf_on_the_form(alice_browser, ready_upload):
    url = f"/upload/{ready_upload.pk}/"
    data = {"target": "new", "name": "X", "type": "LORA", "version_name": "v1", "base_model": "SD 1.5",
            "visibility": "public", "action": "publish"}
    assert alice_browser.post(url, data).status_code == 403
    assert not Model.objects.exists()
    data["csrfmiddlewaretoken"] = _csrf(alice_browser, url)
    assert alice_browser.post(url, data).status_code == 302
    assert Model.objects.get().status == "published"


def test_the_form_is_prefilled_from_the_file(alice_browser, ready_upload):
    page = alice_browser.get(f"/upload/{ready_upload.pk}/").content.decode()
    assert 'value="mychar, &lt;b&gt;bold&lt;/b&gt;"' in page
    assert 'value="mychar-v1"' in page
    assert '<option value="LORA" selected>' in page and '<option value="SD 1.5" selected>' in page
    assert '<dd id="fact-rank">16</dd>' in page and '<dd id="fact-alpha">8</dd>' in page
    assert "<b>bold</b>" not in page
    # Said in words, once; and a LoRA's form starts without the checkpoint-only field.
    assert '<dd id="fact-detected">LoRA for SD 1.x</dd>' in page and "lora (lora)" not in page
    assert '<div class="form-field" data-field="checkpoint_type" hidden>' in page


def test_save_a_draft_then_publish_it(alice_browser, ready_upload):
    url = f"/upload/{ready_upload.pk}/"
    token = _csrf(alice_browser, url)
    png = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (16, 16), "blue").save(png, "PNG")
    png.seek(0)
    png.name = "example.png"
    response = alice_browser.post(url, {
        "csrfmiddlewaretoken": token, "target": "new", "name": "Drafty", "type": "LORA", "version_name": "v1.0",
        "base_model": "SD 1.5", "visibility": "unlisted", "trained_words": "mychar, smile", "tags": "a, b",
        "allow_commercial_use": ["Image"], "action": "draft", "images": [png],
    })
    assert response.status_code == 302 and response["Location"] == url
    model = Model.objects.get(name="Drafty")
    version = model.versions.get()
    assert (model.status, version.status, model.visibility) == ("draft", "draft", "unlisted")
    assert version.trained_words == ["mychar", "smile"] and model.allow_commercial_use == ["Image"]
    assert version.images.count() == 1
    page = alice_browser.get(url).content.decode()
    assert "is a draft" in page
    response = alice_browser.post(f"/upload/{ready_upload.pk}/publish/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == "published"


def test_a_new_version_of_someone_elses_model_is_refused(alice_browser, bob):
    from tests.support.builders import make_published_model

    theirs = make_published_model(bob, "Theirs")
    assert alice_browser.get(f"/upload/?model={theirs.pk}").status_code == 403


def test_other_users_cannot_see_an_upload_page(bob, ready_upload):
    client = Client()
    client.force_login(bob)
    assert client.get(f"/upload/{ready_upload.pk}/").status_code == 404


def test_markdown_preview_is_sanitised(alice_browser):
    token = _csrf(alice_browser)
    response = alice_browser.post("/upload/preview/", {
        "csrfmiddlewaretoken": token, "text": "**bold** <script>alert(1)</script> <img src=x onerror=alert(1)>",
    })
    html = response.content.decode()
    assert "<strong>bold</strong>" in html and "<script" not in html and "onerror" not in html and "<img" not in html


def test_a_rejected_upload_shows_its_reason(alice_api, alice_browser, local_storage):
    from merges.engine import hostile

    state = send_file(alice_api, hostile.duplicate_keys(), "dup.safetensors")
    alice_api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json")
    ingest_now(state["id"])
    page = alice_browser.get(f"/upload/{state['id']}/").content.decode()
    assert "Rejected" in page and "more than once" in page and "duplicate_key" in page


def test_the_publish_form_rates_the_model_and_each_image_and_picks_the_cover(alice_browser, ready_upload):
    from hub.uploads.models import ExampleImage

    url = f"/upload/{ready_upload.pk}/"
    token = _csrf(alice_browser, url)
    files = []
    for i, color in enumerate(("red", "green", "blue")):
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), color).save(buffer, "PNG")
        buffer.seek(0)
        buffer.name = f"example-{i}.png"
        files.append(buffer)
    response = alice_browser.post(url, {
        "csrfmiddlewaretoken": token, "target": "new", "name": "Rated", "type": "LORA", "version_name": "v1.0",
        "base_model": "SD 1.5", "visibility": "public", "nsfw_level": "2", "action": "publish",
        "images": files, "image_levels": "1,4,2", "image_cover": "2",
    })
    assert response.status_code == 302
    model = Model.objects.get(name="Rated")
    assert (model.nsfw_level, model.nsfw) == (2, True)
    images = list(ExampleImage.objects.filter(model=model).order_by("position"))
    assert [i.nsfw_level for i in images] == [1, 4, 2]
    assert [i.is_cover for i in images] == [False, False, True]
    assert all(i.status == "processing" for i in images)
