"""Running render jobs in process: files and rows on success; failures leave nothing behind."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from hub.previews.jobs import grid_prefix, media_storage, render_job_execute
from hub.previews.models import PreviewGrid, PreviewImage, RenderJob
from hub.previews.services import render_request_create
from tests.previews.conftest import stored
from tests.support.builders import make_published_model, tiny_safetensors_bytes
from hub.previews.renderer.infotext import parse_infotext, read_parameters


def read(key: str) -> bytes:
    with media_storage().open(key, "rb") as f:
        return f.read()


def test_a_job_renders_stores_and_publishes_its_grid(checkpoint, alice, enqueued, unique_spec):
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    outcome = render_job_execute(job_id=job.pk, worker="test")
    assert outcome.status == "succeeded", outcome
    job.refresh_from_db()
    assert (job.status, job.images_done, job.images_total, job.progress, job.attempts) == ("succeeded", 4, 4, 1.0, 1)
    grid = job.grid
    assert grid.model_version == checkpoint and grid.layout == "seeds"
    assert grid.row_labels == unique_spec["prompts"] and grid.col_labels == ["seed 1", "seed 2"]
    prefix = grid_prefix(checkpoint.pk, job.render_key)
    cells = [f"{prefix}/r{r}c{c}.{ext}" for r in range(2) for c in range(2) for ext in ("png", "webp")]
    assert stored(prefix) == sorted([f"{prefix}/grid.png", f"{prefix}/grid.webp", *cells])

    with Image.open(io.BytesIO(read(grid.image_key))) as img:
        assert img.format == "PNG" and img.size == (grid.width, grid.height)
    images = list(grid.images.order_by("row", "col"))
    assert [(i.row, i.col, i.seed) for i in images] == [(0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 1, 2)]
    file = checkpoint.files.get()
    for image in images:
        png = read(image.image_key)
        assert read_parameters(png) == image.parameters
        params = parse_infotext(image.parameters)
        assert params["Prompt"] == image.prompt and params["Negative prompt"] == unique_spec["negative"]
        assert params["Seed"] == str(image.seed) and params["Model hash"] == file.autov2
        assert params["Size"] == "64x64" and params["Steps"] == "2" and params["Sampler"] == "Euler a"
        with Image.open(io.BytesIO(read(image.thumb_key))) as thumb:
            assert thumb.format == "WEBP"
        with Image.open(io.BytesIO(png)) as cell, Image.open(io.BytesIO(read(grid.image_key))) as whole:
            x0 = whole.width - 2 * 64 + image.col * 64
            y0 = whole.height - 2 * 64 + image.row * 64
            assert np.array_equal(np.asarray(whole.convert("RGB").crop((x0, y0, x0 + 64, y0 + 64))), np.asarray(cell.convert("RGB")))

    # A redelivered message for the finished job does nothing; a new identical request reuses the grid.
    assert render_job_execute(job_id=job.pk, worker="test").status == "skipped"
    again = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    assert again.status == "succeeded" and again.grid_id == grid.pk
    assert PreviewGrid.objects.filter(model_version=checkpoint).count() == 1


def test_a_rerun_writes_identical_files(checkpoint, alice, enqueued, unique_spec):
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    assert render_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    job.refresh_from_db()
    first = {i.image_key: read(i.image_key) for i in job.grid.images.all()}
    first_grid = read(job.grid.image_key)
    PreviewGrid.objects.all().delete()
    rerun = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    assert render_job_execute(job_id=rerun.pk, worker="test").status == "succeeded"
    rerun.refresh_from_db()
    assert {i.image_key: read(i.image_key) for i in rerun.grid.images.all()} == first
    assert read(rerun.grid.image_key) == first_grid


def test_a_lora_job_renders_on_its_base(lora, checkpoint, alice, enqueued, unique_spec):
    job = render_request_create(model_version=lora, requested_by=alice, spec=unique_spec, base_version=checkpoint)
    assert render_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    job.refresh_from_db()
    grid = job.grid
    assert grid.model_version == lora and grid.base_version == checkpoint and grid.lora_sha256 == lora.files.get().sha256
    params = parse_infotext(grid.images.first().parameters)
    assert params["Prompt"].endswith("<lora:tiny-style:1>")
    assert params["Lora hashes"].startswith("tiny-style: ")
    base_job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    assert render_job_execute(job_id=base_job.pk, worker="test").status == "succeeded"
    base_job.refresh_from_db()
    for with_lora, plain in zip(grid.images.all(), base_job.grid.images.all()):
        assert read(with_lora.image_key) != read(plain.image_key)


def test_a_corrupt_checkpoint_fails_the_job_with_a_reason_and_writes_nothing(alice, preview_settings, enqueued, unique_spec):
    # A valid safetensors file with real SD1 key names, but far from a whole checkpoint.
    broken = make_published_model(alice, "Broken", data=tiny_safetensors_bytes(3)).versions.get()
    job = render_request_create(model_version=broken, requested_by=alice, spec=unique_spec)
    outcome = render_job_execute(job_id=job.pk, worker="test")
    job.refresh_from_db()
    assert outcome.status == "failed" and job.status == "failed" and job.attempts == 1
    # Its tensors fit no base config: the detail says which tensor, the owner gets a plain reason.
    assert "fits this sd1 checkpoint" in job.error and "is missing" in job.error
    assert job.reason.startswith("This checkpoint's layers do not match any base model") and "/" not in job.reason
    assert job.grid is None and not PreviewGrid.objects.exists() and not PreviewImage.objects.exists()
    assert stored(f"previews/v{broken.pk}") == []


def test_a_bad_stored_prompt_config_fails_the_job(checkpoint, alice, enqueued, unique_spec):
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    RenderJob.objects.filter(pk=job.pk).update(spec={**job.spec, "steps": 0})
    assert render_job_execute(job_id=job.pk, worker="test").status == "failed"
    job.refresh_from_db()
    assert job.error == "steps: expected an integer from 1 to 150, got 0"
    assert stored(grid_prefix(checkpoint.pk, job.render_key)) == []


def test_a_storage_fault_midway_removes_what_was_written_and_retries(checkpoint, alice, enqueued, unique_spec, monkeypatch, settings):
    from hub.previews import jobs

    settings.RENDER_JOB_MAX_ATTEMPTS = 2
    real_put = jobs._Writer.put
    calls = {"n": 0}

    def flaky(self, key, data):
        calls["n"] += 1
        if calls["n"] == 4:
            raise ConnectionError("store went away")
        real_put(self, key, data)

    monkeypatch.setattr(jobs._Writer, "put", flaky)
    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    prefix = grid_prefix(checkpoint.pk, job.render_key)

    assert render_job_execute(job_id=job.pk, worker="test").status == "retry"
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1 and "store went away" in job.error
    assert stored(prefix) == [] and not PreviewGrid.objects.exists()

    calls["n"] = 0
    assert render_job_execute(job_id=job.pk, worker="test").status == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("gave up after 2 attempts: ConnectionError")
    assert stored(prefix) == [] and not PreviewGrid.objects.exists()
    assert render_job_execute(job_id=job.pk, worker="test").status == "skipped"


def test_a_job_whose_worker_died_is_claimed_again_once_stale(checkpoint, alice, enqueued, unique_spec, settings):
    from datetime import timedelta

    from django.utils import timezone

    from hub.previews.jobs import render_jobs_sweep

    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    RenderJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=timezone.now())
    assert render_job_execute(job_id=job.pk, worker="dup").status == "skipped"  # alive elsewhere
    RenderJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert render_jobs_sweep() == {"requeued": 1, "failed": 0}
    job.refresh_from_db()
    assert job.status == "queued" and "lost its worker" in job.error
    assert render_job_execute(job_id=job.pk, worker="second").status == "succeeded"
    job.refresh_from_db()
    assert job.attempts == 2 and job.status == "succeeded"
