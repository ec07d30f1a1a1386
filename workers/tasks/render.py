"""Preview rendering on the `gpu` queue (routing: CELERY_TASK_ROUTES in hub.settings).

Thin: the task takes a job id and calls the service, which claims the job row
with a conditional update, so a redelivered or duplicated message is harmless.
The job row (its attempts) caps retries, not Celery; the service says how
long to back off.
"""
from __future__ import annotations

from celery import shared_task

from hub.previews.jobs import render_job_execute
from hub.previews.jobs import render_jobs_sweep as render_jobs_sweep_service
from hub.previews.services import render_request_for_merge


@shared_task(bind=True, name="workers.tasks.render.render_job_run", max_retries=None)
def render_job_run(self, job_id: int) -> dict:
    outcome = render_job_execute(job_id=job_id, worker=self.request.hostname or "worker")
    if outcome.status == "retry":
        raise self.retry(countdown=outcome.retry_in)
    return {"job": job_id, "status": outcome.status, "detail": outcome.detail}


@shared_task(name="workers.tasks.render.render_jobs_sweep")
def render_jobs_sweep() -> dict:
    """Periodic (beat): requeue render jobs whose worker died, fail those out of attempts."""
    return render_jobs_sweep_service()


def preview_request_for_merge(*, model_version_id: int) -> None:
    """Called by the registry after a merge is published (on commit): request its preview grid."""
    render_request_for_merge(model_version_id=model_version_id)


__all__ = ["preview_request_for_merge", "render_job_run", "render_jobs_sweep"]
