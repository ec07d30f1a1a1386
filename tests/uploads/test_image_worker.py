"""The ingest worker, as a real Celery process, turns a staged example image into a ready one."""
from __future__ import annotations

import io
import time

import pytest

from hub.accounts.services import api_key_create
from hub.uploads.models import ExampleImage
from tests.support.builders import make_published_model
from tests.uploads.test_example_images import PARAMS, png

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def test_an_added_image_is_processed_by_the_ingest_worker(live_worker, alice, api_client):
    live_worker("ingest")
    version = make_published_model(alice, "Worked").versions.get()
    token = api_key_create(user=alice, name="up", scopes=["read", "upload"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api_client.post(
        f"/api/v1/model-versions/{version.pk}/images", {"image": io.BytesIO(png(size=(800, 600)))}, format="multipart",
    )
    assert response.status_code == 201 and response.json()["status"] == "processing"
    image_id = response.json()["id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        image = ExampleImage.objects.get(pk=image_id)
        if image.status != "processing":
            break
        time.sleep(0.3)
    assert image.status == "ready", image.error_message
    assert image.parameters == PARAMS and image.thumb_key and image.large_key and image.blur_key
    state = api_client.get(f"/api/v1/model-versions/{version.pk}/images/{image_id}").json()
    assert state["status"] == "ready" and state["meta"]["sampler"] == "DPM++ 2M Karras"
