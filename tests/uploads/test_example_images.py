"""Example images end to end: staged by the web process, processed by the worker, managed, served, rated.

`example_image_process` is the ingest task's whole body; tests call it where
the worker would (tests/uploads/test_image_worker.py runs it on a real worker).
"""
from __future__ import annotations

import io
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import storages
from django.urls import reverse
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from hub.accounts.services import account_browsing_level_set, api_key_create
from hub.catalog.services import model_nsfw_level_set
from hub.files.image_meta import format_a1111, parse_a1111, parse_comfyui
from hub.uploads.image_services import (
    example_image_add,
    example_image_process,
    image_nsfw_level_set,
)
from hub.uploads.models import ExampleImage
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db

PARAMS = (
    "a lighthouse at dusk, oil painting\nNegative prompt: blurry, lowres\n"
    'Steps: 24, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567, Size: 640x480, Model hash: 6ce0161689, '
    'Model: dreamshaper_8, Lora hashes: "ink: 1a2b3c4d5e6f"'
)

COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 42, "steps": 30, "cfg": 5.5, "sampler_name": "euler_ancestral", "scheduler": "karras",
        "denoise": 1.0, "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
    }},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl_base.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "ink.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in snow", "clip": ["10", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "watermark", "clip": ["10", 1]}},
}


def png(*, size=(96, 64), text: dict | None = None, color=(10, 120, 200)) -> bytes:
    info = PngInfo()
    for key, value in (text or {"parameters": PARAMS}).items():
        info.add_text(key, value)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG", pnginfo=info, exif=exif.tobytes())
    return out.getvalue()


def stage(version, user, data: bytes, **kwargs) -> ExampleImage:
    return example_image_add(version=version, user=user, f=io.BytesIO(data), size=len(data), **kwargs)


def ready(version, user, data: bytes | None = None, **kwargs) -> ExampleImage:
    image = stage(version, user, data or png(), **kwargs)
    return example_image_process(image_id=image.pk)


@pytest.fixture
def version(alice):
    return make_published_model(alice, "Pictured").versions.get()


@pytest.fixture
def uploader(alice, api_client):
    token = api_key_create(user=alice, name="up", scopes=["read", "upload"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client


# --- parameters -----------------------------------------------------------------------------------


def test_a1111_parameters_are_parsed_into_fields():
    meta = parse_a1111(PARAMS)
    assert meta["prompt"] == "a lighthouse at dusk, oil painting"
    assert meta["negativePrompt"] == "blurry, lowres"
    assert (meta["steps"], meta["sampler"], meta["cfgScale"], meta["seed"]) == (24, "DPM++ 2M Karras", 6.5, 1234567)
    assert (meta["size"], meta["modelHash"], meta["model"]) == ("640x480", "6ce0161689", "dreamshaper_8")
    assert meta["other"]["Lora hashes"] == "ink: 1a2b3c4d5e6f"
    assert parse_a1111(format_a1111(meta))["seed"] == 1234567


def test_comfyui_prompt_graph_is_followed_to_its_texts_model_and_size():
    meta = parse_comfyui(json.dumps(COMFY_PROMPT))
    assert meta == {
        "prompt": "a red fox in snow", "negativePrompt": "watermark", "seed": 42, "steps": 30, "cfgScale": 5.5,
        "sampler": "euler_ancestral", "scheduler": "karras", "size": "1024x768", "model": "sdxl_base.safetensors",
    }


@pytest.mark.parametrize("hostile", [
    "[" * 100_000 + "]" * 100_000,  # nesting past the recursion limit
    json.dumps({"1": {"class_type": "KSampler", "inputs": {"positive": ["1", 0], "model": ["1", 0]}}}),  # a cycle
    json.dumps({"1": {"class_type": "KSampler", "inputs": {"seed": "1e999", "steps": 1e308, "cfg": "nan"}}}),
    json.dumps({str(i): {"class_type": "Note"} for i in range(6000)}),  # too many nodes
    "x" * 600_000,
    json.dumps(["not", "a", "graph"]),
    "__import__('os').system('touch /tmp/pwned')",
])
def test_hostile_comfyui_graphs_give_nothing_or_plain_values(hostile):
    meta = parse_comfyui(hostile)
    assert all(isinstance(v, (str, int, float)) for v in meta.values())
    assert "seed" not in meta and "cfgScale" not in meta


def test_hostile_a1111_text_is_capped_and_printable():
    meta = parse_a1111("p\x00rompt\x1b[31m" + "a" * 100_000 + "\nSteps: x, Sampler: \x07, CFG scale: inf, Seed: 99999999999999999999999")
    assert "\x00" not in meta["prompt"] and "\x1b" not in meta["prompt"] and len(meta["prompt"]) <= 8192
    assert "steps" not in meta and "cfgScale" not in meta and "seed" not in meta


# --- web process vs worker --------------------------------------------------------------------------


def test_the_web_process_reads_only_the_header_and_the_worker_does_the_rest(version, alice, monkeypatch):
    data = png(size=(2000, 1500))

    def never(*args, **kwargs):
        raise AssertionError("pixels were decoded in the web process")

    with monkeypatch.context() as m:
        m.setattr(Image.Image, "load", never)
        image = stage(version, alice, data)
    assert image.status == "processing" and (image.width, image.height) == (2000, 1500)
    assert image.storage_key == "" and image.model_id == version.model_id
    staged = image.staging_key
    assert storages["default"].exists(staged)

    done = example_image_process(image_id=image.pk)
    assert done.status == "ready" and not storages["default"].exists(staged)
    assert done.parameters == PARAMS and done.meta["seed"] == 1234567
    assert done.storage_key.endswith(f"{done.sha256}.png")
    with storages["default"].open(done.storage_key, "rb") as f:
        full = f.read()
    assert b"SecretCam" not in full and Image.open(io.BytesIO(full)).info["parameters"] == PARAMS
    sizes = {}
    for name in ("thumb_key", "large_key", "blur_key"):
        with storages["default"].open(getattr(done, name), "rb") as f:
            thumb = Image.open(io.BytesIO(f.read()))
            assert thumb.format == "WEBP" and not thumb.info.get("exif")
            sizes[name] = max(thumb.size)
    assert sizes == {"thumb_key": 480, "large_key": 1600, "blur_key": 24}
    # A redelivered task finds nothing to do.
    assert example_image_process(image_id=image.pk) is None


def test_a_comfyui_image_keeps_its_parameters_as_a1111_text_and_drops_the_workflow(version, alice):
    data = png(text={"prompt": json.dumps(COMFY_PROMPT), "workflow": json.dumps({"nodes": [{"secret": 1}]})})
    done = ready(version, alice, data)
    assert done.meta["prompt"] == "a red fox in snow" and done.meta["seed"] == 42
    with storages["default"].open(done.storage_key, "rb") as f:
        info = Image.open(io.BytesIO(f.read())).info
    assert "workflow" not in info and "prompt" not in info
    assert parse_a1111(info["parameters"])["negativePrompt"] == "watermark"


def test_a_file_the_decoder_refuses_is_marked_failed_and_its_staging_removed(version, alice):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # A sound header over pixel data that is not zlib at all: only a decode can tell.
    broken = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
              + chunk(b"IDAT", b"not zlib at all" * 20) + chunk(b"IEND", b""))
    image = stage(version, alice, broken)
    done = example_image_process(image_id=image.pk)
    assert done.status == "failed" and "could not be decoded" in done.error_message
    assert not storages["default"].exists(image.staging_key)


def test_bombs_and_other_types_are_refused_before_staging(version, alice):
    from tests.uploads.test_images import png_bomb

    for data, code in ((png_bomb(9000, 9000), "image_dimensions"), (b"GIF89a" + b"\0" * 50, "image_type")):
        with pytest.raises(Exception) as exc:
            stage(version, alice, data)
        assert exc.value.code == code
    assert not ExampleImage.objects.exists()


# --- API: manage ------------------------------------------------------------------------------------


def test_api_add_reorder_rate_cover_and_delete(uploader, version, alice, django_capture_on_commit_callbacks):
    url = f"/api/v1/model-versions/{version.pk}/images"
    ids = []
    for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        response = uploader.post(url, {"image": io.BytesIO(png(color=color)), "nsfwLevel": "2"}, format="multipart")
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "processing" and response.json()["nsfwLevel"] == 2
        ids.append(response.json()["id"])
    for image_id in ids:
        example_image_process(image_id=image_id)

    response = uploader.put(f"{url}/order", {"ids": [ids[2], ids[0], ids[1]]}, format="json")
    assert response.status_code == 200 and [i["id"] for i in response.json()] == [ids[2], ids[0], ids[1]]
    bad = uploader.put(f"{url}/order", {"ids": [ids[0]]}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_order"

    response = uploader.patch(f"{url}/{ids[1]}", {"nsfwLevel": 4, "cover": True}, format="json")
    assert response.status_code == 200 and response.json()["nsfwLevel"] == 4 and response.json()["cover"] is True
    uploader.patch(f"{url}/{ids[0]}", {"cover": True}, format="json")
    assert list(ExampleImage.objects.filter(is_cover=True).values_list("id", flat=True)) == [ids[0]]
    bad = uploader.patch(f"{url}/{ids[0]}", {"nsfwLevel": 3}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_nsfw_level"

    keys = ExampleImage.objects.get(pk=ids[2]).thumb_key
    with django_capture_on_commit_callbacks(execute=True):
        assert uploader.delete(f"{url}/{ids[2]}").status_code == 204
    assert not storages["default"].exists(keys)
    assert [i["id"] for i in uploader.get(url).json()] == [ids[0], ids[1]]
    assert uploader.get(url, {"browsingLevel": 4}).json()[0]["id"] == ids[1]


def test_api_scopes_and_ownership(api_client, alice, bob, version):
    url = f"/api/v1/model-versions/{version.pk}/images"
    read_only = api_key_create(user=alice, name="r", scopes=["read"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_only}")
    response = api_client.post(url, {"image": io.BytesIO(png())}, format="multipart")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    image = ready(version, alice)
    theirs = api_key_create(user=bob, name="b", scopes=["read", "upload"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {theirs}")
    assert api_client.delete(f"{url}/{image.pk}").status_code == 403
    assert api_client.patch(f"{url}/{image.pk}", {"cover": True}, format="json").status_code == 403
    assert ExampleImage.objects.filter(pk=image.pk).exists()


def test_the_schema_documents_the_image_operations(client):
    schema = client.get("/api/schema/?format=json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op}
    assert {"version_images_list", "version_image_create", "version_images_order", "version_image_update",
            "version_image_delete", "image_file"} <= operations
    model = schema["components"]["schemas"]["ModelOut"]["properties"]
    assert "nsfwLevel" in model and "cover" in model


# --- serving -----------------------------------------------------------------------------------------


def test_files_are_cacheable_forever_and_revalidate_by_etag(client, version, alice, local_media):
    image = ready(version, alice)
    response = client.get(f"/api/v1/images/{image.pk}/thumb")
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["ETag"] == f'"{image.thumb_key.rsplit("/", 1)[1].split(".")[0]}"'
    again = client.get(f"/api/v1/images/{image.pk}/thumb", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"]
    assert client.get(f"/api/v1/images/{image.pk}/huge").status_code == 404


def test_on_s3_the_answer_is_a_presigned_redirect(client, version, alice):
    image = ready(version, alice)
    response = client.get(f"/api/v1/images/{image.pk}/large")
    assert response.status_code == 302 and response["ETag"]
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["response-content-type"] == ["image/webp"]
    assert query["response-cache-control"] == ["public, max-age=31536000, immutable"]
    assert "X-Amz-Signature" in query
    import urllib.request

    with urllib.request.urlopen(response["Location"], timeout=10) as fetched:
        assert fetched.headers["Content-Type"] == "image/webp" and fetched.read(4) == b"RIFF"


def test_above_the_viewers_level_only_the_blur_is_served_unless_they_opted_in(client, version, alice, bob):
    image = ready(version, alice, nsfw_level=4)
    url = f"/api/v1/images/{image.pk}"
    response = client.get(f"{url}/thumb")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert client.get(f"{url}/blur").status_code == 302
    client.force_login(bob)
    assert client.get(f"{url}/thumb").status_code == 403
    account_browsing_level_set(user=bob, level=1, reveal_blurred=True)
    response = client.get(f"{url}/thumb")
    assert response.status_code == 302 and response["Cache-Control"].startswith("private")
    account_browsing_level_set(user=bob, level=8, reveal_blurred=False)
    assert client.get(f"{url}/full").status_code == 302


def test_an_api_key_with_read_sees_its_owners_private_images(api_client, alice):
    version = make_published_model(alice, "Secret", visibility="private").versions.get()
    image = ready(version, alice)
    assert api_client.get(f"/api/v1/images/{image.pk}").status_code == 404
    download_only = api_key_create(user=alice, name="d", scopes=["download"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {download_only}")
    assert api_client.get(f"/api/v1/images/{image.pk}").status_code == 403
    reader = api_key_create(user=alice, name="r", scopes=["read"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {reader}")
    response = api_client.get(f"/api/v1/images/{image.pk}")
    assert response.status_code == 302 and response["Cache-Control"].startswith("private")


# --- levels and covers ---------------------------------------------------------------------------------


def test_level_services_for_moderation_and_accounts(version, alice, bob):
    image = ready(version, alice)
    image_nsfw_level_set(image=image, level=8, actor=bob)
    assert ExampleImage.objects.get(pk=image.pk).nsfw_level == 8
    model = model_nsfw_level_set(model=version.model, level=4, actor=bob)
    model.refresh_from_db()
    assert (model.nsfw_level, model.nsfw) == (4, True)
    with pytest.raises(ValueError):
        account_browsing_level_set(user=bob, level=3)


def _cover_of(response, name: str):
    import re

    for card in response.content.decode().split('<article class="card model-card">')[1:]:
        if re.search(r"<h2><a [^>]*>" + re.escape(name) + "</a></h2>", card):
            found = re.search(r'<img src="([^"]+)"[^>]*data-testid="cover-image"', card)
            return found.group(1) if found else None
    raise AssertionError(f"no card for {name}")


def test_covers_follow_the_owners_choice_and_never_exceed_the_viewers_level(client, alice, bob, version):
    first = ready(version, alice, png(color=(1, 1, 1)), nsfw_level=4)
    second = ready(version, alice, png(color=(2, 2, 2)))
    home = client.get("/")
    assert _cover_of(home, "Pictured") == f"/api/v1/images/{second.pk}/thumb"
    client.force_login(bob)
    account_browsing_level_set(user=bob, level=4)
    assert _cover_of(client.get("/models/"), "Pictured") == f"/api/v1/images/{first.pk}/thumb"
    api = client.get("/api/v1/models").json()["items"][0]["cover"]
    assert api["kind"] == "image" and api["id"] == first.pk
    assert api["url"] == f"http://testserver/api/v1/images/{first.pk}/thumb"
    from hub.uploads.image_services import example_image_cover_set

    example_image_cover_set(image=second, user=alice)
    assert _cover_of(client.get("/models/"), "Pictured") == f"/api/v1/images/{second.pk}/thumb"
    client.logout()
    image_nsfw_level_set(image=second, level=2)
    assert _cover_of(client.get("/"), "Pictured") is None
    assert client.get("/api/v1/models").json()["items"][0]["cover"] is None


def test_a_model_without_images_takes_a_cell_of_its_latest_preview_grid(client, alice, version):
    from hub.previews.models import PreviewGrid, PreviewImage

    grid = PreviewGrid.objects.create(
        model_version=version, render_key="k", spec={}, image_key="g.png", thumb_key="g.webp", width=64, height=64,
        checkpoint_sha256="0" * 64,
    )
    cell = PreviewImage.objects.create(
        grid=grid, row=0, col=0, prompt="p", seed=1, parameters="p\nSteps: 1, Sampler: Euler, CFG scale: 7, Seed: 1",
        image_key="c.png", thumb_key="c.webp", width=64, height=64, sha256="1" * 64,
    )
    assert _cover_of(client.get("/"), "Pictured") == f"/previews/image/{cell.pk}.webp"
    page = client.get(f"/models/{version.model_id}/{version.model.slug}/").content.decode()
    assert f"/previews/image/{cell.pk}.webp" in page
    model_nsfw_level_set(model=version.model, level=8)
    assert _cover_of(client.get("/", {"nsfw": "on"}), "Pictured") is None


@pytest.mark.parametrize("page_size", [3, 12])
def test_listing_with_covers_costs_the_same_queries_whatever_the_page_size(
    client, alice, bob, page_size, django_assert_max_num_queries,
):
    from tests.support.builders import make_published_model as make

    for i in range(page_size):
        model = make(alice, f"Covered {i}")
        ready(model.versions.get(), alice, png(size=(16, 16)))
    client.force_login(bob)  # the session and user lookups count too
    with django_assert_max_num_queries(6):
        response = client.get("/models/")
    assert sum(1 for _ in response.content.decode().split('data-testid="cover-image"')[1:]) == page_size
    with django_assert_max_num_queries(6):
        body = client.get(f"/api/v1/models?limit={page_size}").json()
    assert all(m["cover"]["kind"] == "image" for m in body["items"])


# --- pages -------------------------------------------------------------------------------------------


def test_model_page_gallery_blurs_above_level_and_hides_its_prompt(client, alice, version):
    safe = ready(version, alice)
    risky = ready(version, alice, png(text={"parameters": "secret r prompt\nSteps: 1, Sampler: Euler, CFG scale: 7"}),
                  nsfw_level=4)
    html = client.get(f"/models/{version.model_id}/{version.model.slug}/").content.decode()
    assert f"/api/v1/images/{safe.pk}/thumb" in html and f"/api/v1/images/{risky.pk}/blur" in html
    assert f"/api/v1/images/{risky.pk}/thumb" not in html and "secret r prompt" not in html
    assert "a lighthouse at dusk" in html  # the shown image's parameters, for the lightbox


def test_image_page_shows_parameters_with_a_copy_button(client, alice, version):
    image = ready(version, alice)
    html = client.get(f"/images/{image.pk}/").content.decode()
    assert 'data-field="seed">1234567<' in html and 'data-field="sampler">DPM++ 2M Karras<' in html
    assert 'data-copy-from="image-parameters"' in html


def test_owner_manages_images_on_the_page(client, alice, bob, version):
    client.force_login(alice)
    url = reverse("frontend:version-images", kwargs={"version_id": version.pk})
    response = client.post(url, {"action": "add", "nsfw_level": 2, "image": _upload("a.png", png())})
    assert response.status_code == 302
    image = ExampleImage.objects.get()
    assert image.status == "processing" and image.nsfw_level == 2
    assert "Processing" in client.get(url).content.decode()
    example_image_process(image_id=image.pk)
    client.post(url, {"action": "add", "nsfw_level": 1, "image": _upload("b.png", png(color=(9, 9, 9)))})
    second = ExampleImage.objects.latest("id")
    client.post(url, {"action": "up", "image": second.pk})
    assert list(version.images.values_list("id", flat=True)) == [second.pk, image.pk]
    client.post(url, {"action": "cover", "image": image.pk})
    client.post(url, {"action": "level", "image": image.pk, "nsfw_level": 8})
    image.refresh_from_db()
    assert image.is_cover and image.nsfw_level == 8
    client.post(url, {"action": "delete", "image": second.pk})
    assert list(version.images.values_list("id", flat=True)) == [image.pk]
    client.force_login(bob)
    assert client.get(url).status_code == 404


def test_preferences_page_saves_the_browsing_level(client, bob):
    assert client.get("/account/preferences/").status_code == 302
    client.force_login(bob)
    response = client.post("/account/preferences/", {"browsing_level": 4, "reveal_blurred": "on"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert (bob.browsing_level, bob.reveal_blurred) == (4, True)
    assert client.post("/account/preferences/", {"browsing_level": 3}).status_code == 200


def _upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/png")


def test_a_lost_processing_message_is_resent_and_an_ancient_one_given_up(version, alice):
    from datetime import timedelta

    from django.utils import timezone

    from hub.uploads.image_services import example_images_sweep

    fresh = stage(version, alice, png())
    late = stage(version, alice, png(color=(5, 5, 5)))
    ancient = stage(version, alice, png(color=(6, 6, 6)))
    now = timezone.now()
    ExampleImage.objects.filter(pk=late.pk).update(created_at=now - timedelta(minutes=20))
    ExampleImage.objects.filter(pk=ancient.pk).update(created_at=now - timedelta(hours=2))
    assert example_images_sweep() == {"images_resent": 1, "images_given_up": 1}
    assert ExampleImage.objects.get(pk=ancient.pk).status == "failed"
    assert not storages["default"].exists(ancient.staging_key)
    assert ExampleImage.objects.get(pk=fresh.pk).status == "processing"
