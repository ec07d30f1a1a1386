"""Notifications from other parts of the hub: forks, runs by others, merge jobs finishing or failing."""
from __future__ import annotations

import pytest

from hub.community.models import Notification
from merges.registry.models import MergeJob
from merges.registry.services import merge_run, recipe_create, recipe_fork
from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def test_fork_run_and_job_outcome_notify(alice, bob, local_storage, django_capture_on_commit_callbacks, monkeypatch):
    # Jobs are run in-process below; their messages need not reach the broker.
    monkeypatch.setattr("hub.tasks_enqueue.task_send", lambda *a, **k: None)
    base = make_published_model(alice, "Base", data=tiny_checkpoint_bytes(1)).versions.get()
    other = make_published_model(alice, "Other", data=tiny_checkpoint_bytes(2)).versions.get()
    recipe = recipe_create(owner=alice, title="Mix", source=sd1_document(base.pk, other.pk))
    version = recipe.versions.get()

    fork = recipe_fork(version=version, owner=bob)
    fork_note = Notification.objects.get(user=alice, kind="fork")
    assert fork_note.recipe_id == fork.pk and "bob forked your recipe Mix" == fork_note.text

    with django_capture_on_commit_callbacks(execute=True):
        outcome = merge_run(version=version, user=bob)
    assert outcome.job is not None
    assert Notification.objects.filter(user=alice, kind="run", recipe=recipe).count() == 1
    merge_run(version=version, user=alice)  # the owner's own run tells nobody
    assert Notification.objects.filter(kind="run").count() == 1

    from hub.community.services import merge_job_notify

    MergeJob.objects.filter(pk=outcome.job.pk).update(status=MergeJob.Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        merge_job_notify(job_id=outcome.job.pk)
    failed = Notification.objects.get(user=bob, kind="job_failed")
    assert failed.text == "Merge of Mix v1 failed" and failed.url == f"/recipes/{recipe.pk}/"
    # Muted kinds are not sent.
    from hub.community.services import notification_preferences_set

    notification_preferences_set(user=bob, muted_kinds=["job_failed"])
    with django_capture_on_commit_callbacks(execute=True):
        merge_job_notify(job_id=outcome.job.pk)
    assert Notification.objects.filter(user=bob, kind="job_failed").count() == 1


def test_render_job_outcome_notifies_the_requester(alice, bob, local_storage, django_capture_on_commit_callbacks):
    from hub.community.services import render_job_notify
    from hub.previews.models import RenderJob

    model = make_published_model(alice, "Dream", data=tiny_checkpoint_bytes(1))
    version = model.versions.get()
    job = RenderJob.objects.create(model_version=version, requested_by=bob, render_key="k" * 64)
    with django_capture_on_commit_callbacks(execute=True):
        render_job_notify(job_id=job.pk)  # still queued: nothing to say
    assert not Notification.objects.filter(user=bob).exists()
    RenderJob.objects.filter(pk=job.pk).update(status=RenderJob.Status.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        render_job_notify(job_id=job.pk)
    note = Notification.objects.get(user=bob, kind="job_succeeded")
    assert note.text == "Preview grid of Dream v1.0 finished" and note.version_id == version.pk
