"""End to end: API request -> a real Celery worker renders from S3 (moto) -> grid served by the site."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from hub.previews.models import RenderJob
from tests.previews.test_api_and_pages import client_for
from hub.previews.renderer.infotext import parse_infotext, read_parameters

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def test_a_worker_renders_a_requested_grid_and_the_site_serves_it(
    live_worker, checkpoint, bob, base_configs_root, monkeypatch, client, unique_spec
):
    monkeypatch.setenv("BASE_CONFIGS_DIR", str(base_configs_root))
    monkeypatch.setenv("RENDER_DEVICE", "cpu")
    live_worker()
    api = client_for(bob, ["read", "run"])
    response = api.post(f"/api/v1/model-versions/{checkpoint.pk}/previews", unique_spec, format="json")
    assert response.status_code == 202, response.json()
    job_url = response.json()["url"]

    seen = set()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = api.get(job_url).json()
        seen.add((body["status"], body["images"]["done"]))
        if body["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert body["status"] == "succeeded", body
    assert body["images"] == {"done": 4, "total": 4} and body["progress"] == 1.0 and body["attempts"] == 1
    assert ("queued", 0) in seen or ("running", 0) in seen

    grid = api.get(f"/api/v1/preview-grids/{body['gridId']}").json()
    assert grid["columns"] == ["seed 1", "seed 2"]
    png = client.get(grid["images"][2]["url"])
    assert png["Content-Type"] == "image/png" and png["X-Content-Type-Options"] == "nosniff"
    data = b"".join(png.streaming_content)
    params = parse_infotext(read_parameters(data))
    assert params["Prompt"] == unique_spec["prompts"][1] and params["Seed"] == "1"
    assert params["Model hash"] == checkpoint.files.get().autov2
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (64, 64)
    assert RenderJob.objects.get(pk=body["id"]).worker.startswith("test-")
