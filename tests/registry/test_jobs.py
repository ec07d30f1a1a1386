"""Job state rules, run in-process: claims, retries, the attempt cap and the sweeper."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from merges.registry.jobs import _claim, merge_job_execute
from merges.registry.models import MergeJob, MergeOutput
from merges.registry.services import merge_jobs_sweep, merge_run, recipe_create
from tests.registry.conftest import sd1_document
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr("merges.registry.services._enqueue", sent.append)
    return sent


@pytest.fixture
def job(public_recipe, alice, enqueued, django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MERGE_CACHE_DIR = str(tmp_path / "cache")
    with django_capture_on_commit_callbacks(execute=True):
        return merge_run(version=public_recipe.versions.get(), user=alice).job


def test_a_job_running_elsewhere_is_left_alone(job, monkeypatch, settings):
    settings.MERGE_JOB_STALE_SECONDS = 5
    now = timezone.now()
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=now, worker="w1")
    # While the claim watches the heartbeat, the live worker w1 beats.
    beat = lambda _s: MergeJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # noqa: E731
    monkeypatch.setattr("merges.registry.jobs.time.sleep", beat)
    outcome = merge_job_execute(job_id=job.pk, worker="w2")
    assert outcome.status == "skipped"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker) == ("running", 1, "w1")


def test_a_finished_job_is_never_run_again(job):
    MergeJob.objects.filter(pk=job.pk).update(status="failed", attempts=1, error="boom")
    assert merge_job_execute(job_id=job.pk, worker="w").status == "skipped"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("failed", 1, "boom")


def test_storage_trouble_is_retried_until_the_attempt_cap_then_fails_with_the_reason(job, settings):
    settings.MERGE_JOB_MAX_ATTEMPTS = 2
    inputs = dict(job.inputs)
    inputs["base"] = {**inputs["base"], "storage_key": "blobs/sha256/00/missing"}
    MergeJob.objects.filter(pk=job.pk).update(inputs=inputs)

    first = merge_job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert first.status == "retry" and job.status == "queued" and job.attempts == 1
    assert "could not fetch" in job.error

    second = merge_job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert second.status == "failed" and job.status == "failed" and job.attempts == 2
    assert job.error.startswith("gave up after 2 attempts: input 'base': could not fetch")


def test_a_recipe_the_engine_refuses_fails_at_once(alice, carol, enqueued, django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MERGE_CACHE_DIR = str(tmp_path / "cache")
    from tests.registry.conftest import tiny_checkpoint_bytes

    checkpoint = make_published_model(carol, "Real", data=tiny_checkpoint_bytes(1)).versions.get()
    lora = make_published_model(carol, "A LoRA", data=tiny_safetensors_bytes(3, kind="lora"), type="LORA").versions.get()
    recipe = recipe_create(owner=alice, title="Mismatch", source=sd1_document(checkpoint.pk, lora.pk))
    with django_capture_on_commit_callbacks(execute=True):
        job = merge_run(version=recipe.versions.get(), user=alice).job
    outcome = merge_job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert outcome.status == "failed" and job.status == "failed" and job.attempts == 1
    assert "lora" in job.error.lower() and job.finished_at is not None


def test_sweeper_requeues_a_job_whose_worker_died(job, enqueued, settings):
    settings.MERGE_JOB_STALE_SECONDS = 60
    enqueued.clear()
    stale = timezone.now() - timedelta(seconds=120)
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=stale, worker="gone")
    assert merge_jobs_sweep()["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 1 and job.worker == ""
    assert "lost its worker" in job.error
    # A fresh heartbeat is not touched.
    MergeJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=timezone.now())
    assert merge_jobs_sweep() == {"requeued": 0, "failed": 0, "resent": 0}


def test_sweeper_fails_a_job_out_of_attempts_with_a_reason(job, settings):
    settings.MERGE_JOB_MAX_ATTEMPTS = 3
    settings.MERGE_JOB_STALE_SECONDS = 60
    stale = timezone.now() - timedelta(seconds=120)
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=3, heartbeat_at=stale)
    assert merge_jobs_sweep()["failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed" and "giving up after 3 attempts" in job.error


def test_sweeper_resends_a_queued_job_whose_message_was_lost(job, enqueued, settings):
    settings.MERGE_JOB_REQUEUE_SECONDS = 60
    enqueued.clear()
    MergeJob.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(seconds=120))
    assert merge_jobs_sweep()["resent"] == 1 and enqueued == [job.pk]
    assert merge_jobs_sweep()["resent"] == 0  # not again until it is overdue again


def test_a_redelivered_message_takes_over_a_job_whose_heartbeat_stopped_and_says_so(job, settings):
    from merges.registry.api import job_out

    settings.MERGE_JOB_STALE_SECONDS = 1
    settings.MERGE_JOB_HEARTBEAT_SECONDS = 0.2
    # The worker was killed a moment ago: its heartbeat is fresh but will never move again.
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=timezone.now(), worker="w1")
    started = time.monotonic()
    claimed = _claim(job.pk, "w2")
    waited = time.monotonic() - started
    assert claimed is not None and 0.8 <= waited < 5
    assert (claimed.status, claimed.attempts, claimed.worker) == ("running", 2, "w2")
    assert claimed.error.startswith("attempt 1 stopped: no heartbeat from w1 for 1 s; retrying as attempt 2")
    shown = job_out(claimed)
    assert shown["retrying"] is True and shown["attempts"] == 2 and "attempt 1 stopped" in shown["error"]


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_the_retried_attempt_publishes_once_and_clears_the_reason(job, settings):
    settings.MERGE_JOB_STALE_SECONDS = 1
    stale = timezone.now() - timedelta(seconds=5)
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=1, heartbeat_at=stale, worker="w1")
    outcome = merge_job_execute(job_id=job.pk, worker="w2")
    job.refresh_from_db()
    assert outcome.status == "succeeded" and (job.status, job.attempts, job.error) == ("succeeded", 2, "")
    # The dead attempt's message delivered once more: a no-op.
    assert merge_job_execute(job_id=job.pk, worker="w3").status == "skipped"
    assert MergeOutput.objects.filter(merge_key=job.merge_key).count() == 1


def test_a_dead_attempt_of_a_cancelled_job_ends_cancelled(job, settings):
    settings.MERGE_JOB_STALE_SECONDS = 1
    stale = timezone.now() - timedelta(seconds=5)
    MergeJob.objects.filter(pk=job.pk).update(
        status="running", attempts=1, heartbeat_at=stale, worker="w1", cancel_requested=True
    )
    assert merge_job_execute(job_id=job.pk, worker="w2").status == "skipped"
    job.refresh_from_db()
    assert job.status == "cancelled" and job.attempts == 1 and job.finished_at is not None


def test_a_dead_last_attempt_fails_with_the_reason(job, settings):
    settings.MERGE_JOB_STALE_SECONDS = 1
    settings.MERGE_JOB_MAX_ATTEMPTS = 2
    stale = timezone.now() - timedelta(seconds=5)
    MergeJob.objects.filter(pk=job.pk).update(status="running", attempts=2, heartbeat_at=stale, worker="w1")
    assert merge_job_execute(job_id=job.pk, worker="w2").status == "skipped"
    job.refresh_from_db()
    assert job.status == "failed" and "no heartbeat from w1" in job.error and "gave up after 2 attempts" in job.error
