"""The demo content a newcomer lands on: models with real files and a recipe that runs."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from hub.catalog.models import Model
from hub.demo.content import DEMO_USERNAME, RECIPE_TITLE
from merges.registry.jobs import merge_job_execute
from merges.registry.models import Recipe
from merges.registry.services import merge_run

# transaction=True: the job's heartbeat thread uses its own connection and must see the rows.
pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_is_idempotent_and_its_recipe_merges(monkeypatch, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.SITE_URL = "http://hub.example:8123"
    call_command("hub_seed_demo", stdout=open("/dev/null", "w"))
    call_command("hub_seed_demo", stdout=open("/dev/null", "w"))
    demo_models = Model.objects.filter(owner__username=DEMO_USERNAME)
    # The curl example names this hub's URL and the real version id, and fails loudly (-f).
    base = demo_models.get(name="Tiny SD1 Base")
    assert (f"curl -fL -H \"Authorization: Bearer $KEY\" {settings.SITE_URL}/api/download/models/"
            f"{base.versions.get().pk} -o tiny.safetensors") in base.description
    assert sorted(demo_models.values_list("type", flat=True)) == ["Checkpoint", "Checkpoint", "LORA"]
    assert all(m.versions.get().files.count() == 1 for m in demo_models)
    recipe = Recipe.objects.get(owner__username=DEMO_USERNAME)
    assert recipe.title == RECIPE_TITLE and recipe.versions.count() == 1

    # The recipe is not only valid: it runs against the seeded files.
    sent: list[int] = []
    monkeypatch.setattr("merges.registry.services._enqueue", sent.append)
    settings.MERGE_CACHE_DIR = str(tmp_path / "cache")
    settings.MERGE_PREVIEWS = False
    with django_capture_on_commit_callbacks(execute=True):
        job = merge_run(version=recipe.versions.get(), user=recipe.owner).job
    assert sent == [job.pk]
    assert merge_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    job.refresh_from_db()
    assert job.output is not None and job.output.files.count() == 1
