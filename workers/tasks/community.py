"""Community notifications on the `default` queue.

The follower fan-out of a new version runs here, never in the request that
published it: a creator with 100,000 followers publishes as fast as one with
none. The service inserts in batches and is idempotent (a partial unique
index), so a redelivered message adds nothing.
"""
from __future__ import annotations

from celery import shared_task

from hub.community.services import notifications_fan_out_new_version as fan_out


@shared_task(name="workers.tasks.community.notifications_fan_out_new_version")
def notifications_fan_out_new_version(version_id: int) -> dict:
    return {"version": version_id, "created": fan_out(version_id=version_id)}
