"""Runs during a broker outage (issue 19 §1): 503 and nothing queued, then the run goes through.

The broker is the real Redis behind a `FaultProxy`, switched to refusing
connections or to holding them silent. Jobs are committed for real
(transactional_db), so the send happens after commit as in production.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from hub.accounts.services import api_key_create
from merges.registry.models import MergeJob
from tests.support.faults import FaultProxy

pytestmark = pytest.mark.django_db(transaction=True)

BOUND = 5.0


@pytest.fixture
def broker(settings):
    """The Redis broker behind a switchable proxy; yields (proxy, redis client of that DB, queue name)."""
    import redis
    from urllib.parse import urlparse

    url = urlparse(settings.CELERY_BROKER_URL)
    if url.scheme != "redis":
        pytest.skip("needs the Redis broker")
    proxy = FaultProxy(url.hostname or "127.0.0.1", url.port or 6379)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}"
    direct = redis.Redis.from_url(f"redis://{url.hostname}:{url.port or 6379}{url.path or '/0'}")
    direct.delete("gpu")
    yield proxy, direct
    proxy.close()
    direct.delete("gpu")


def _run(alice, recipe):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=alice, name='t', scopes=['run', 'read']).plaintext}")
    started = time.monotonic()
    response = api.post(f"/api/v1/recipes/{recipe.pk}/run", {}, format="json")
    return response, time.monotonic() - started


def _queued_job_ids(direct) -> list[int]:
    """Job ids of the merge messages waiting in the broker's gpu queue."""
    ids = []
    for raw in direct.lrange("gpu", 0, -1):
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.append(args[0])
    return ids


@pytest.mark.parametrize("fault", ["refuse", "hang"])
def test_a_run_the_broker_cannot_take_answers_503_and_leaves_no_job(alice, public_recipe, broker, fault):
    proxy, direct = broker
    getattr(proxy, fault)()
    response, elapsed = _run(alice, public_recipe)
    assert elapsed <= BOUND, f"took {elapsed:.1f}s"
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response.json()["code"] == "broker_unavailable" and int(response["Retry-After"]) > 0
    assert not MergeJob.objects.exists()  # nothing that looks queued

    # A second try while it is still down is refused the same way, not told "queued".
    again, _ = _run(alice, public_recipe)
    assert again.status_code == 503 and not MergeJob.objects.exists()

    proxy.forward()
    response, elapsed = _run(alice, public_recipe)
    assert response.status_code == 202, response.json()
    job = MergeJob.objects.get()
    assert response.json()["job"]["id"] == job.pk and job.status == "queued" and job.enqueued_at is not None
    assert _queued_job_ids(direct) == [job.pk]


def test_a_job_left_without_its_message_is_resent_once_the_broker_is_back(alice, public_recipe, broker, settings):
    """The request that made the job died between commit and send: the sweeper sends it."""
    from merges.registry.services import merge_jobs_sweep

    proxy, direct = broker
    job = MergeJob.objects.create(
        recipe_version=public_recipe.versions.get(), merge_key="k" * 64, requested_by=alice, inputs={},
        engine_version="test",
    )
    MergeJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    proxy.refuse()
    assert merge_jobs_sweep()["resent"] == 0
    job.refresh_from_db()
    assert job.enqueued_at is None and _queued_job_ids(direct) == []

    proxy.forward()
    assert merge_jobs_sweep()["resent"] == 1
    job.refresh_from_db()
    assert job.enqueued_at is not None and _queued_job_ids(direct) == [job.pk]
    assert merge_jobs_sweep()["resent"] == 0  # sent once, not on every sweep


def test_a_message_sent_before_the_broker_restarted_is_sent_again(alice, public_recipe, broker, settings):
    from hub.tasks_enqueue import broker_started_at
    from merges.registry.services import merge_jobs_sweep

    proxy, direct = broker
    started = broker_started_at()
    assert started is not None
    job = MergeJob.objects.create(
        recipe_version=public_recipe.versions.get(), merge_key="r" * 64, requested_by=alice, inputs={},
        engine_version="test", enqueued_at=started - timedelta(minutes=1),
    )
    settings.MERGE_JOB_REQUEUE_SECONDS = 10**9  # only the restart makes it lost
    assert merge_jobs_sweep()["resent"] == 1 and _queued_job_ids(direct) == [job.pk]
