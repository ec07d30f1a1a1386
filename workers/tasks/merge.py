"""Merge jobs on the `gpu` queue (routing: CELERY_TASK_ROUTES in hub.settings).

Thin on purpose: the task takes a job id and calls the service, which claims
the job row with a conditional update, so a redelivered or duplicated message
is harmless. acks_late and reject_on_worker_lost come from settings: a worker
killed mid-merge leaves its message to be redelivered, and the sweeper
requeues the job once its heartbeat is stale.
"""
from __future__ import annotations

from celery import shared_task

from merges.registry.jobs import merge_job_execute
from merges.registry.services import merge_jobs_sweep as merge_jobs_sweep_service


@shared_task(bind=True, name="workers.tasks.merge.merge_job_run", max_retries=None)
def merge_job_run(self, job_id: int) -> dict:
    outcome = merge_job_execute(job_id=job_id, worker=self.request.hostname or "worker")
    if outcome.status == "retry":
        # The job row (attempts) caps retries, not Celery. Back off 10 s, 20 s, 40 s …
        from merges.registry.models import MergeJob

        attempts = MergeJob.objects.filter(pk=job_id).values_list("attempts", flat=True).first() or 1
        raise self.retry(countdown=min(10 * 2 ** (attempts - 1), 600))
    return {"job": job_id, "status": outcome.status, "detail": outcome.detail}


@shared_task(name="workers.tasks.merge.merge_jobs_sweep")
def merge_jobs_sweep() -> dict:
    """Periodic (beat): requeue merge jobs whose worker died, fail those out of attempts."""
    return merge_jobs_sweep_service()


__all__ = ["merge_job_run", "merge_jobs_sweep"]
