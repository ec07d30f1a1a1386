"""Model and creator pages: who may see what, and that uploader text cannot inject markup."""
from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import model_version_create, model_version_publish
from hub.files.models import ModelFile
from hub.files.services import blob_ingest_stream, model_file_create
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db


def model_url(model: Model) -> str:
    return reverse("frontend:model", kwargs={"model_id": model.pk, "slug": model.slug})


def test_model_page_shows_version_files_hashes_and_download_link(client, alice):
    model = make_published_model(
        alice, "Watercolor Dreams", tags=["watercolor", "style"], allow_commercial_use=["Image"], allow_no_credit=False
    )
    version = model.versions.get()
    version.trained_words = ["wcstyle", "soft light"]
    version.save()
    file = version.files.get()

    response = client.get(model_url(model))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Watercolor Dreams" in html
    assert f"/api/download/models/{version.pk}?fileId={file.pk}" in html
    for value in (file.sha256, file.autov2, file.autov3, file.crc32, file.blake3):
        assert value.upper() in html
    assert 'data-copy="wcstyle"' in html and 'data-copy="soft light"' in html
    assert "SD 1.5" in html and "SafeTensor" in html and "fp16" in html
    assert "Pickle scan: Success" in html
    # Licence badges state both the allowed and the forbidden terms.
    assert "Allowed: </span>Sell images they generate" in html
    assert "Not allowed: </span>Use the model without crediting the creator" in html
    assert "Not allowed: </span>Sell this model or merges using this model" in html


def test_file_size_is_human_readable(client, alice):
    model = make_published_model(alice, "Sized")
    ModelFile.objects.filter(version__model=model).update(size_bytes=2_132_000_000)
    html = client.get(model_url(model)).content.decode()
    assert "2.0\xa0GB" in html


def test_wrong_or_missing_slug_redirects_to_canonical_url(client, alice):
    model = make_published_model(alice, "Canonical Name")
    short = client.get(reverse("frontend:model-short", kwargs={"model_id": model.pk}))
    wrong = client.get(reverse("frontend:model", kwargs={"model_id": model.pk, "slug": "old-name"}))
    assert short.status_code == 302 and short["Location"] == model_url(model)
    assert wrong.status_code == 301 and wrong["Location"] == model_url(model)


def test_private_model_is_404_to_others_and_anonymous_but_visible_to_owner(client, alice, bob):
    model = make_published_model(alice, "Secret Sauce", visibility="private")
    assert client.get(model_url(model)).status_code == 404
    client.force_login(bob)
    response = client.get(model_url(model))
    assert response.status_code == 404
    assert b"Secret Sauce" not in response.content
    client.force_login(alice)
    assert client.get(model_url(model)).status_code == 200


def test_draft_model_is_404_to_others(client, alice, bob):
    model = make_published_model(alice, "Unfinished", publish=False)
    client.force_login(bob)
    assert client.get(model_url(model)).status_code == 404
    client.force_login(alice)
    response = client.get(model_url(model))
    assert response.status_code == 200
    assert b"Not yet (draft)" in response.content


def test_draft_version_of_published_model_is_hidden_from_others(client, alice, bob):
    model = make_published_model(alice, "Growing")
    draft = model_version_create(model=model, name="v2-wip")
    client.force_login(bob)
    response = client.get(model_url(model), {"modelVersionId": draft.pk})
    assert response.status_code == 200
    assert b"v2-wip" not in response.content
    client.force_login(alice)
    assert b"v2-wip" in client.get(model_url(model), {"modelVersionId": draft.pk}).content


def test_version_tabs_select_a_version(client, alice):
    model = make_published_model(alice, "Two Versions", version_name="v1")
    v2 = model_version_create(model=model, name="v2", base_model=ModelVersion.BaseModel.SDXL_1_0)
    data = tiny_safetensors_bytes(7)
    blob = blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
    model_file_create(version=v2, blob=blob, name="two-v2.safetensors")
    model_version_publish(version=v2)
    v1 = model.versions.get(name="v1")

    html = client.get(model_url(model), {"modelVersionId": v1.pk}).content.decode()
    assert f'href="?modelVersionId={v1.pk}" aria-current="page"' in html
    assert f"/api/download/models/{v1.pk}?" in html and f"/api/download/models/{v2.pk}?" not in html
    html = client.get(model_url(model)).content.decode()
    assert f"/api/download/models/{v2.pk}?" in html  # newest version first by default


def test_unlisted_model_is_reachable_by_link_but_not_listed(client, alice, bob):
    model = make_published_model(alice, "Hidden Gem", visibility="unlisted")
    client.force_login(bob)
    assert client.get(model_url(model)).status_code == 200
    assert b"Hidden Gem" not in client.get(reverse("frontend:models")).content
    assert b"Hidden Gem" not in client.get(reverse("frontend:creator", args=["alice"])).content


def test_description_markdown_is_rendered_and_sanitised(client, alice):
    description = (
        "# Notes\n\nSome **bold** text and a [link](https://example.com).\n\n"
        "<script>alert('xss')</script>\n\n"
        '<img src="https://tracker.example/pixel.gif" onerror="alert(1)">\n\n'
        "[click me](javascript:alert(1))\n\n"
        '<a href="https://example.org" onclick="steal()" style="position:fixed">styled</a>\n\n'
        "<iframe src=\"https://evil.example\"></iframe>"
    )
    model = make_published_model(alice, "Markdown Model", description=description)

    html = client.get(model_url(model)).content.decode()

    assert "<h1>Notes</h1>" in html
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.com" rel="nofollow noopener noreferrer ugc"' in html
    for forbidden in ("<script>alert", "alert('xss')", "onerror", "javascript:", "onclick", "steal()",
                      "<iframe", "tracker.example", "position:fixed"):
        assert forbidden not in html, forbidden


def test_attacker_controlled_metadata_is_escaped(client, alice):
    payload = '<script>alert("pwn")</script>'
    data = tiny_safetensors_bytes(
        3, metadata={"ss_network_module": payload, "ss_output_name": '"><img src=x onerror=alert(2)>'}
    )
    model = make_published_model(
        alice, f"Evil {payload}", data=data, tags=[payload], file_name='evil"<img src=y onerror=alert(4)>.safetensors'
    )
    version = model.versions.get()
    version.trained_words = ['"><svg onload=alert(3)>', payload]
    version.save()
    alice.bio = payload
    alice.save()

    pages = [
        client.get(model_url(model)),
        client.get(reverse("frontend:models")),
        client.get(reverse("frontend:creator", args=["alice"])),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert" not in html
        assert "<svg onload" not in html
        assert "<img src=x" not in html
        assert "<img src=y" not in html
    detail = pages[0].content.decode()
    assert "&lt;script&gt;alert(&quot;pwn&quot;)&lt;/script&gt;" in detail  # shown, as text
    assert "Training metadata" in detail
    assert "&lt;img src=y onerror=alert(4)&gt;" in detail


def test_creator_page_lists_only_visible_models(client, alice, bob):
    make_published_model(alice, "Alice Public")
    make_published_model(alice, "Alice Private", visibility="private")
    make_published_model(alice, "Alice Draft", publish=False)
    make_published_model(bob, "Bob Public")

    client.force_login(bob)
    html = client.get(reverse("frontend:creator", args=["alice"])).content.decode()
    assert "Alice Public" in html
    assert "Alice Private" not in html and "Alice Draft" not in html and "Bob Public" not in html

    client.force_login(alice)
    html = client.get(reverse("frontend:creator", args=["alice"])).content.decode()
    assert "Alice Private" in html and "Alice Draft" in html


def test_unknown_creator_and_model_get_friendly_404(client):
    for url in ("/users/nobody/", "/models/999999/nothing/"):
        response = client.get(url)
        assert response.status_code == 404
        assert b"find that page" in response.content
        assert b'href="/models/"' in response.content


def test_server_error_page_renders_without_a_request(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content


def test_header_metadata_json_keys_survive_rendering(client, alice):
    """Metadata values that look like JSON are shown as text, not parsed into markup."""
    data = tiny_safetensors_bytes(4, metadata={"ss_network_dim": json.dumps({"<k>": 1})})
    model = make_published_model(alice, "Json Meta", data=data)
    html = client.get(model_url(model)).content.decode()
    assert "{&quot;&lt;k&gt;&quot;: 1}" in html
