"""Beat: one scheduler at a time (Redis lock, or a file lock in embedded mode), and periodic tasks safe twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from workers.beat import LOCK_KEY, FileBeatLock, RedisBeatLock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis():
    from hub.redis_conn import redis_client

    client = redis_client()
    client.delete(LOCK_KEY)
    yield client
    client.delete(LOCK_KEY)


def test_the_redis_lock_admits_one_holder_and_expires_when_it_dies(redis):
    first, second = RedisBeatLock(redis, ttl=0.5), RedisBeatLock(redis, ttl=0.5)
    assert first.acquire() and not second.acquire()
    assert first.renew() and not second.renew()
    assert first.holder() == first.token
    time.sleep(0.7)  # the holder stopped renewing (killed)
    assert second.acquire() and not first.renew()
    first.release()  # a late release by the old holder must not free the new holder's lock
    assert redis.get(LOCK_KEY).decode() == second.token
    second.release()
    assert redis.get(LOCK_KEY) is None


def test_the_file_lock_admits_one_holder(tmp_path):
    first, second = FileBeatLock(tmp_path / "beat.lock"), FileBeatLock(tmp_path / "beat.lock")
    assert first.acquire() and not second.acquire()
    assert str(os.getpid()) in second.holder()
    first.release()
    assert second.acquire()
    second.release()


def _start_beat(tmp_path: Path, name: str) -> tuple[subprocess.Popen, Path]:
    from tests.support.worker import _test_database_url

    log = tmp_path / f"{name}.log"
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "BEAT_LOCK_TTL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "beat", "-l", "info",
         "--schedule", str(tmp_path / f"{name}-schedule")],
        cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    return proc, log


def _wait_log(log: Path, text: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log.name} after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.skipif(not django_settings.REDIS_URL, reason="the Redis lock needs Redis")
def test_a_second_beat_stands_by_and_takes_over_when_the_first_is_killed(redis, tmp_path):
    first, first_log = _start_beat(tmp_path, "first")
    second = None
    try:
        _wait_log(first_log, "holding the single-instance lock", 60)
        second, second_log = _start_beat(tmp_path, "second")
        _wait_log(second_log, "standing by", 60)
        time.sleep(2)
        assert "holding the single-instance lock" not in second_log.read_text()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        took_over = _wait_log(second_log, "holding the single-instance lock", 30)
        assert took_over - killed < 3 + 3  # the lock's TTL plus a poll
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)


@pytest.mark.django_db(transaction=True)
def test_every_periodic_task_is_safe_to_run_twice(alice, monkeypatch, settings):
    """Two beats (or a beat and an operator) may send the same periodic task: the second run changes nothing."""
    from hub.catalog.models import Download, ModelVersion
    from merges.registry.models import MergeJob
    from tests.support.builders import make_published_model
    from workers.celery import app

    sent: list[int] = []
    monkeypatch.setattr("merges.registry.services._enqueue", sent.append)
    version = make_published_model(alice, "Twice").versions.get()
    Download.objects.create(version=version, user=alice)
    Download.objects.create(version=version, user=None)

    import importlib

    for module in app.conf.include:
        importlib.import_module(module)
    results: dict[str, list] = {}
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        task = app.tasks[entry["task"]]
        results[entry["task"]] = [task.apply().get(), task.apply().get()]

    rollup = results["workers.tasks.housekeeping.downloads_rollup"]
    assert rollup == [2, 0]
    assert ModelVersion.objects.get(pk=version.pk).download_count == 2
    expire = results["workers.tasks.housekeeping.uploads_expire"]
    assert expire[1]["expired"] == 0 and expire[1]["blobs_deleted"] == 0
    assert results["workers.tasks.housekeeping.staging_sweep"][1]["objects_deleted"] == 0

    # The merge sweeper, with a job whose worker died: requeued (and its message sent) once.
    settings.MERGE_JOB_STALE_SECONDS = 1
    job = MergeJob.objects.create(
        recipe_version=_any_recipe_version(alice), merge_key="k" * 64, requested_by=alice, status="running",
        attempts=1, heartbeat_at=timezone.now() - timedelta(seconds=30), engine_version="test",
    )
    sweep = app.tasks["workers.tasks.merge.merge_jobs_sweep"]
    assert sweep.apply().get()["requeued"] == 1
    assert sweep.apply().get()["requeued"] == 0
    assert sent.count(job.pk) == 1


def _any_recipe_version(owner):
    from merges.registry.services import recipe_create
    from tests.registry.conftest import sd1_document

    return recipe_create(owner=owner, title="Twice", source=sd1_document(1, 2)).versions.get()
