"""Example images: size checked before decoding, re-encoded with only generation parameters, served safely."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from hub.files.images import ImageRejected, image_clean
from hub.uploads.image_services import example_image_process
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db

PARAMS = "a cat, masterpiece\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234"


def png_bytes(*, parameters: str = PARAMS, size=(64, 48), extra_text: dict | None = None) -> bytes:
    info = PngInfo()
    info.add_text("parameters", parameters)
    for k, v in (extra_text or {}).items():
        info.add_text(k, v)
    im = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    out = io.BytesIO()
    im.save(out, "PNG", pnginfo=info, exif=exif.tobytes())
    return out.getvalue() + b"<script>alert(1)</script>"  # bytes after IEND


def jpeg_bytes() -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + PARAMS.encode("utf-16-be")
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 90, 200)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG claiming 3.6 gigapixels: only its header is real."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_png_keeps_only_its_generation_parameters():
    data = png_bytes(extra_text={"workflow": '{"nodes": []}', "Comment": "private"})
    clean = image_clean(io.BytesIO(data), size=len(data))
    assert clean.content_type == "image/png" and (clean.width, clean.height) == (64, 48)
    assert clean.parameters == PARAMS
    out = Image.open(io.BytesIO(clean.data))
    assert out.info.get("parameters") == PARAMS
    assert "workflow" not in out.info and "Comment" not in out.info and "exif" not in out.info
    assert b"<script>" not in clean.data and b"SecretCam" not in clean.data


def test_jpeg_user_comment_survives_and_camera_data_does_not():
    data = jpeg_bytes()
    clean = image_clean(io.BytesIO(data), size=len(data))
    assert clean.content_type == "image/jpeg" and clean.parameters == PARAMS
    assert b"SecretCam" not in clean.data
    assert Image.open(io.BytesIO(clean.data)).getexif().get_ifd(0x8769)[0x9286].startswith(b"UNICODE")


def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch):
    data = png_bomb()

    def never(*a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", never)
    with pytest.raises(ImageRejected) as exc:
        image_clean(io.BytesIO(data), size=len(data))
    assert exc.value.code == "image_dimensions"


def test_size_and_type_are_checked_first():
    with pytest.raises(ImageRejected) as exc:
        image_clean(io.BytesIO(b""), size=30 * 1024 * 1024)
    assert exc.value.code == "image_too_large"
    for data in (b"GIF89a" + b"\0" * 100, b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"<html><script>"):
        with pytest.raises(ImageRejected) as exc:
            image_clean(io.BytesIO(data), size=len(data))
        assert exc.value.code == "image_type"
    broken = b"\x89PNG\r\n\x1a\n" + b"\0" * 50
    with pytest.raises(ImageRejected) as exc:
        image_clean(io.BytesIO(broken), size=len(broken))
    assert exc.value.code == "image_invalid"


def test_attach_and_serve_with_explicit_type_and_nosniff(alice_api, alice, bob, client, local_media):
    model = make_published_model(alice, "With images")
    version = model.versions.get()
    data = png_bytes()
    response = alice_api.post(
        f"/api/v1/model-versions/{version.pk}/images",
        {"image": io.BytesIO(data)}, format="multipart",
    )
    assert response.status_code == 201, response.content
    image = response.json()
    # The web process only read the header; the worker does the rest.
    assert image["status"] == "processing" and image["parameters"] == ""
    assert client.get(f"/api/v1/images/{image['id']}").status_code == 404
    example_image_process(image_id=image["id"])
    image = alice_api.get(f"/api/v1/model-versions/{version.pk}/images/{image['id']}").json()
    assert image["status"] == "ready"
    assert image["contentType"] == "image/png" and image["parameters"] == PARAMS

    served = client.get(f"/api/v1/images/{image['id']}")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    body = b"".join(served.streaming_content)
    assert body.startswith(b"\x89PNG") and b"<script>" not in body

    listed = client.get(f"/api/v1/model-versions/{version.pk}/images").json()
    assert [i["id"] for i in listed] == [image["id"]]

    from rest_framework.test import APIClient

    other = APIClient()
    other.force_authenticate(bob)
    response = other.post(f"/api/v1/model-versions/{version.pk}/images", {"image": io.BytesIO(data)}, format="multipart")
    assert response.status_code == 403


def test_images_of_a_private_version_are_not_served_to_others(alice_api, alice, client):
    model = make_published_model(alice, "Hidden", visibility="private")
    version = model.versions.get()
    data = jpeg_bytes()
    image = alice_api.post(
        f"/api/v1/model-versions/{version.pk}/images", {"image": io.BytesIO(data)}, format="multipart"
    ).json()
    example_image_process(image_id=image["id"])
    response = client.get(f"/api/v1/images/{image['id']}")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    # The owner's API key with `read` sees it.
    assert alice_api.get(f"/api/v1/images/{image['id']}").status_code in (200, 302)


def test_an_oversized_body_is_refused_before_parsing(alice_api, alice):
    version = make_published_model(alice, "Big").versions.get()
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (21 * 1024 * 1024)
    response = alice_api.post(f"/api/v1/model-versions/{version.pk}/images", {"image": io.BytesIO(big)}, format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "image_too_large"


def test_a_bomb_within_pillows_own_limit_is_refused_by_ours(monkeypatch):
    data = png_bomb(9000, 9000)  # 81 Mpx: under Pillow's error threshold, over our 50 Mpx

    def never(*a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", never)
    with pytest.raises(ImageRejected) as exc:
        image_clean(io.BytesIO(data), size=len(data))
    assert exc.value.code == "image_dimensions" and "9000" in str(exc.value)
