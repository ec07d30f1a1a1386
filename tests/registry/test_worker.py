"""Merge jobs on real Celery worker processes (Redis broker, the test database, S3 on moto)."""
from __future__ import annotations

import json
import time

import pytest

from hub.catalog.models import Model, ModelVersion
from hub.files.storage import blob_key
from merges.registry.models import LineageEdge, MergeJob, MergeOutput
from merges.registry.services import merge_jobs_sweep, merge_run
from tests.registry.conftest import blob_objects
from tests.registry.test_api import client_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _no_previews(monkeypatch):
    """Preview renders would queue behind merges on the one test worker (see `with_previews`)."""
    monkeypatch.setenv("MERGE_PREVIEWS", "false")


@pytest.fixture
def with_previews(monkeypatch):
    monkeypatch.delenv("MERGE_PREVIEWS")


def wait_for(predicate, *, timeout: float = 180, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def job_state(job_id: int) -> MergeJob:
    return MergeJob.objects.select_related("output").get(pk=job_id)


def finished(job_id: int) -> MergeJob | None:
    job = job_state(job_id)
    return job if job.is_finished else None


def test_fork_edit_run_publishes_an_output_with_lineage_and_the_same_run_is_a_cache_hit(
    live_worker, public_recipe, bob, sd1_inputs, with_previews
):
    base, anime = sd1_inputs
    live_worker()
    api = client_for(bob, ["read", "upload", "run"])

    fork = api.post(f"/api/v1/recipes/{public_recipe.pk}/fork", {"title": "Bob's Anime Mix"}, format="json").json()
    document = fork["latestVersion"]["document"]
    document["steps"][1]["alpha"]["blocks"][5] = 0.9  # IN04
    edited = api.post(
        f"/api/v1/recipes/{fork['id']}/versions", {"document": document, "message": "more IN04"}, format="json"
    )
    assert edited.status_code == 201
    version_2 = edited.json()

    run = api.post(f"/api/v1/recipes/{fork['id']}/run", {}, format="json")
    assert run.status_code == 202, run.json()
    job_id = run.json()["job"]["id"]
    job = wait_for(lambda: finished(job_id), what="the merge job")
    assert job.status == "succeeded", job.error
    assert job.attempts == 1 and job.progress == 1.0 and job.tensors_done == job.tensors_total > 900
    assert job.engine_seconds and job.engine_seconds > 0

    # The output: a published Merge checkpoint of bob's, licence as strict as the strictest input.
    output = ModelVersion.objects.select_related("model").get(pk=job.output_id)
    model = output.model
    assert model.owner == bob and model.type == Model.Type.CHECKPOINT
    assert model.checkpoint_type == Model.CheckpointType.MERGE and output.base_model == "SD 1.5"
    assert output.status == "published" and model.status == "published"
    assert model.allow_commercial_use == ["Image"] and model.allow_no_credit is False
    out_file = output.files.get()
    assert out_file.storage_key == blob_key(out_file.sha256)
    provenance = out_file.header_summary["metadata"]
    assert json.loads(provenance["sd_merge_models"])  # A1111-readable provenance
    assert blob_objects("blobs/")[blob_key(out_file.sha256)] == out_file.size_bytes

    # Lineage: the output points at the fork's version 2 and at both inputs.
    merge_output = MergeOutput.objects.get(model_version=output)
    assert merge_output.recipe_version_id == version_2["id"]
    assert merge_output.recipe_version.parent.number == 1
    assert merge_output.recipe_version.recipe.forked_from_id == public_recipe.versions.get().pk
    assert {(e.input_name, e.input_id) for e in LineageEdge.objects.filter(output=output)} == {
        ("base", base.pk),
        ("anime", anime.pk),
    }
    graph = api.get(f"/api/v1/model-versions/{output.pk}/lineage").json()
    assert {n["id"] for n in graph["nodes"]} == {output.pk, base.pk, anime.pk}
    assert {(e["source"], e["target"], e["recipeVersion"]["number"], e["recipeVersion"]["recipeId"]) for e in graph["edges"]} == {
        (str(base.pk), str(output.pk), 2, fork["id"]),
        (str(anime.pk), str(output.pk), 2, fork["id"]),
    }
    # The inputs show the output as a descendant.
    down = api.get(f"/api/v1/model-versions/{base.pk}/lineage").json()
    assert str(output.pk) in {e["target"] for e in down["edges"]}

    # Publishing asked for the output's preview grid (rendered by the previews worker task).
    from django.apps import apps

    if apps.is_installed("hub.previews"):
        from hub.previews.models import RenderJob

        assert RenderJob.objects.filter(model_version=output, trigger="merge").count() == 1

    # The same run again: a cache hit, answered at once, with no new job.
    again = api.post(f"/api/v1/recipes/{fork['id']}/run", {"version": 2}, format="json")
    assert again.status_code == 200
    assert again.json() == {"cached": True, "job": None, "output": again.json()["output"]}
    assert again.json()["output"]["modelVersionId"] == output.pk
    assert MergeJob.objects.count() == 1


def test_worker_killed_mid_merge_is_retried_and_finishes_exactly_once(
    live_worker, public_recipe, alice, monkeypatch, settings
):
    # Slow the first worker down so the kill lands mid-merge (968 tensors × 20 ms).
    monkeypatch.setenv("MERGE_DEBUG_TENSOR_DELAY", "0.02")
    first = live_worker()
    started = time.time()
    job = merge_run(version=public_recipe.versions.get(), user=alice).job
    wait_for(lambda: job_state(job.pk).tensors_done >= 100, timeout=120, what="the merge to get going")
    assert job_state(job.pk).status == "running"
    first.kill()  # SIGKILL to the worker and its pool child: no cleanup, no ack

    killed = job_state(job.pk)
    assert killed.status == "running" and killed.attempts == 1 and killed.tensors_done < killed.tensors_total

    monkeypatch.delenv("MERGE_DEBUG_TENSOR_DELAY")
    live_worker()
    settings.MERGE_JOB_STALE_SECONDS = 2
    # The periodic sweeper notices the stale heartbeat and requeues the job.
    counts = wait_for(lambda: merge_jobs_sweep()["requeued"], timeout=30, what="the sweeper to requeue")
    assert counts == 1
    done = wait_for(lambda: finished(job.pk), what="the retried job")
    assert done.status == "succeeded", done.error
    assert done.attempts == 2

    outputs = MergeOutput.objects.filter(merge_key=job.merge_key)
    assert outputs.count() == 1
    output_file = outputs.get().model_version.files.get()
    # One output object: nothing written since the job started has the output's size except its
    # content-addressed key (a staging leftover or a second copy would show up here).
    # (Merges are deterministic, so the key itself may predate this test.)
    same_size = {key for key, size in blob_objects(since=started).items() if size == output_file.size_bytes}
    assert same_size <= {blob_key(output_file.sha256)}
    assert blob_objects("blobs/")[blob_key(output_file.sha256)] == output_file.size_bytes
    assert ModelVersion.objects.filter(model__owner=alice, model__checkpoint_type="Merge").count() == 1


def test_a_killed_merge_process_is_retried_from_its_redelivered_message_within_seconds(
    live_worker, public_recipe, alice, monkeypatch
):
    import os
    import signal

    import psutil

    monkeypatch.setenv("MERGE_DEBUG_TENSOR_DELAY", "0.02")
    monkeypatch.setenv("MERGE_JOB_STALE_SECONDS", "3")
    worker = live_worker()
    job = merge_run(version=public_recipe.versions.get(), user=alice).job
    wait_for(lambda: job_state(job.pk).tensors_done >= 100, timeout=120, what="the merge to get going")
    (child,) = psutil.Process(worker.proc.pid).children()
    os.kill(child.pid, signal.SIGKILL)  # the merge process only: the worker redelivers its message
    killed_at = time.time()

    # No sweeper runs here: the redelivered message takes the job over once its heartbeat is 3 s silent.
    retried = wait_for(lambda: MergeJob.objects.filter(pk=job.pk, attempts=2, status="running").first(),
                       timeout=30, what="the next attempt")
    assert retried.started_at.timestamp() - killed_at < 30
    assert retried.error.startswith("attempt 1 stopped: no heartbeat") and "retrying as attempt 2" in retried.error
    done = wait_for(lambda: finished(job.pk), what="the retried job")
    assert done.status == "succeeded" and done.attempts == 2 and done.error == ""
    assert MergeOutput.objects.filter(merge_key=job.merge_key).count() == 1


def test_duplicate_delivery_after_success_changes_nothing(live_worker, public_recipe, alice):
    from workers.tasks.merge import merge_job_run

    live_worker()
    job = merge_run(version=public_recipe.versions.get(), user=alice).job
    done = wait_for(lambda: finished(job.pk), what="the merge job")
    assert done.status == "succeeded", done.error
    snapshot = MergeJob.objects.filter(pk=job.pk).values().get()
    versions = ModelVersion.objects.count()
    size = done.output.files.get().size_bytes
    time.sleep(1.1)  # S3 times have whole seconds
    delivered_at = time.time()

    result = merge_job_run.delay(job.pk).get(timeout=60)
    assert result["status"] == "skipped"
    assert MergeJob.objects.filter(pk=job.pk).values().get() == snapshot
    assert ModelVersion.objects.count() == versions and MergeOutput.objects.count() == 1
    assert [k for k, v in blob_objects(since=delivered_at).items() if v == size] == []  # nothing written again


def test_cancelling_a_running_job_stops_it_at_the_next_tensor(live_worker, public_recipe, alice, monkeypatch):
    monkeypatch.setenv("MERGE_DEBUG_TENSOR_DELAY", "0.02")
    live_worker()
    job = merge_run(version=public_recipe.versions.get(), user=alice).job
    wait_for(lambda: job_state(job.pk).tensors_done >= 20, timeout=120, what="the merge to get going")
    api = client_for(alice, ["run"])
    assert api.post(f"/api/v1/merge-jobs/{job.pk}/cancel").json()["cancelRequested"] is True
    done = wait_for(lambda: finished(job.pk), timeout=60, what="the cancel")
    assert done.status == "cancelled" and done.tensors_done < done.tensors_total
    assert done.output_id is None and not MergeOutput.objects.exists()
