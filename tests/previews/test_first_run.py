"""The first run: base configs written offline, the demo's grids queued by the seed, rendered, and shown."""
from __future__ import annotations

import io
import json
import socket

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from hub.catalog.models import Model
from hub.demo.content import DEMO_USERNAME
from hub.previews.jobs import render_job_execute
from hub.previews.models import RenderJob

pytestmark = pytest.mark.django_db(transaction=True)

TINY_DEMO_SPEC = {"prompts": ["a photo of a cat", "a lake at sunset"], "seeds": [1, 2], "steps": 2, "size": [64, 64]}


def test_hub_base_configs_writes_offline_and_keeps_what_is_up_to_date(tmp_path, monkeypatch, settings):
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    settings.BASE_CONFIGS_DIR = str(tmp_path / "base-configs")
    out = io.StringIO()
    call_command("hub_base_configs", "sd15", "tiny-sd1", stdout=out)
    assert "sd15: Stable Diffusion 1.5 -> " in out.getvalue()
    root = tmp_path / "base-configs"
    assert sorted(p.name for p in root.iterdir()) == ["sd15", "tiny-sd1"]
    assert json.loads((root / "sd15" / "text_encoder" / "config.json").read_text())["vocab_size"] == 49408
    out = io.StringIO()
    call_command("hub_base_configs", "sd15", stdout=out)
    assert out.getvalue().startswith("sd15: up to date")
    with pytest.raises(CommandError, match="unknown base config"):
        call_command("hub_base_configs", "sd9", stdout=io.StringIO())


def test_seeding_queues_the_demo_grids_once_and_their_images_become_examples(preview_settings, enqueued, monkeypatch):
    monkeypatch.setattr("hub.demo.content.DEMO_PREVIEW_SPEC", TINY_DEMO_SPEC)
    call_command("hub_seed_demo", stdout=io.StringIO())
    jobs = list(RenderJob.objects.order_by("id"))
    assert [j.model_version.model.name for j in jobs] == ["Tiny SD1 Base", "Tiny SD1 Anime", "Watercolor Style LoRA"]
    assert all(j.trigger == "demo" and j.attach_examples and j.status == "queued" for j in jobs)
    assert enqueued == [j.pk for j in jobs]
    assert jobs[2].base_version.model.name == "Tiny SD1 Base"
    call_command("hub_seed_demo", stdout=io.StringIO())
    assert RenderJob.objects.count() == 3  # active jobs are not asked for twice

    for job in jobs:  # what the worker does with each message
        assert render_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    call_command("hub_seed_demo", stdout=io.StringIO())
    assert RenderJob.objects.count() == 3  # versions with a grid are left alone

    from hub.uploads.services import example_image_process

    for model in Model.objects.filter(owner__username=DEMO_USERNAME):
        version = model.versions.get()
        assert version.preview_grids.count() == 1
        # The ingest worker decodes and thumbnails example images; here the same service runs in-process.
        for pending in version.images.all():
            example_image_process(image_id=pending.pk)
        images = list(version.images.order_by("position"))
        assert all(i.status == "ready" for i in images)
        assert len(images) == 4, model.name
        from django.core.files.storage import storages

        with storages["default"].open(images[0].storage_key, "rb") as f:
            picture = Image.open(io.BytesIO(f.read()))
            picture.load()
        assert picture.size == (64, 64)
        assert images[0].parameters.startswith("a photo of a cat")
        assert "Steps: 2, Sampler: Euler a" in images[0].parameters

    lora_image = Model.objects.get(name="Watercolor Style LoRA").versions.get().images.first()
    assert "<lora:mwstyle:1>" in lora_image.parameters
