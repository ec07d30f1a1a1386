"""What a recipe page says about its merge jobs, before the page's script takes over."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from frontend.templatetags.mergeworks import job_progress_known, job_summary
from merges.registry.models import MergeJob
from merges.registry.services import merge_run, recipe_latest_version

pytestmark = pytest.mark.django_db


def job_item(html: str, job_id: int) -> str:
    return re.search(rf'<li class="job[^"]*" id="job-{job_id}".*?</li>', html, re.S).group(0)


@pytest.mark.parametrize(
    ("fields", "summary", "known"),
    [
        ({"status": "queued"}, "Waiting for a worker", False),
        ({"status": "running", "phase": "fetching"}, "Fetching the input models", False),
        ({"status": "running", "phase": "merging"}, "Merging: reading the inputs", False),
        (
            {"status": "running", "phase": "merging", "tensors_done": 1200, "tensors_total": 2400,
             "bytes_done": 3 * 1024**2, "bytes_total": 2 * 1024**3, "progress": 0.0015},
            "Merging: 1,200 / 2,400 tensors · 3.0 MB of 2.0 GB · 0%",
            True,
        ),
        ({"status": "running", "phase": "storing", "tensors_done": 9, "tensors_total": 9}, "Storing the output", False),
        ({"status": "succeeded", "tensors_total": 968, "engine_seconds": 2.25, "progress": 1.0},
         "Done: 968 tensors in 2.2 s", True),
        ({"status": "succeeded", "progress": 1.0}, "Done: this exact merge had already been published", True),
        ({"status": "failed", "error": "boom"}, "Failed", True),
        ({"status": "cancelled"}, "Cancelled", True),
    ],
)
def test_job_summary(fields, summary, known):
    job = MergeJob(**fields)
    assert job_summary(job) == summary
    assert job_progress_known(job) is known


def test_recipe_page_shows_a_queued_job_without_a_fraction(client, alice, public_recipe):
    job = merge_run(version=recipe_latest_version(public_recipe), user=alice).job
    client.force_login(alice)
    html = client.get(reverse("frontend:recipe", args=[public_recipe.pk])).content.decode()
    item = job_item(html, job.pk)
    assert "Waiting for a worker" in item and "0 / 0" not in item
    assert re.search(r'<progress class="job-progress" max="1" aria-label', item)  # indeterminate: no value
    assert f'data-job-url="/api/v1/merge-jobs/{job.pk}"' in item

    MergeJob.objects.filter(pk=job.pk).update(
        status="running", phase="merging", tensors_done=484, tensors_total=968, progress=0.5
    )
    item = job_item(client.get(reverse("frontend:recipe", args=[public_recipe.pk])).content.decode(), job.pk)
    assert "Merging: 484 / 968 tensors · 50%" in item and 'value="0.5000"' in item


def test_job_api_says_the_phase_only_while_running(client, alice, public_recipe):
    job = merge_run(version=recipe_latest_version(public_recipe), user=alice).job
    client.force_login(alice)
    url = f"/api/v1/merge-jobs/{job.pk}"
    assert client.get(url).json()["phase"] is None
    MergeJob.objects.filter(pk=job.pk).update(status="running", phase="storing")
    assert client.get(url).json()["phase"] == "storing"
    MergeJob.objects.filter(pk=job.pk).update(status="failed")
    assert client.get(url).json()["phase"] is None


def test_outputs_fragment(client, alice, bob, public_recipe):
    url = reverse("frontend:recipe-outputs", args=[public_recipe.pk])
    response = client.get(url)
    assert response.status_code == 200 and "No outputs yet." in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert "<html" not in response.content.decode()
    public_recipe.visibility = "private"
    public_recipe.save(update_fields=["visibility"])
    client.force_login(bob)
    assert client.get(url).status_code == 404
