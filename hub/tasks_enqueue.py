"""Sending Celery tasks by name, from code that must not import `workers/`.

`hub/` and `merges/` hand work to the workers by task name (routes come from
CELERY_TASK_ROUTES), so the web process never imports the worker's modules.

1. The app: a producer-only Celery app built once from the same Django
   settings (namespace CELERY) as the workers' app, so nothing here needs
   `workers.celery`.
2. `task_send` publishes now, bounded in time: one quick retry, and the
   broker's socket timeouts from settings, so a refused or silent broker
   costs a request a few seconds, not minutes. Failure is `BrokerUnavailable`,
   which the API answers as 503 `broker_unavailable`.
3. `broker_started_at` tells when the broker's current process started
   (Redis: `INFO server`), so a sweeper can resend messages a broker
   restart may have lost.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from hub.faults import BROKER_DOWN, CACHE_DOWN, BrokerUnavailable, classify

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_apps: dict[str, Any] = {}


def celery_app():
    """A producer app configured from settings (one per broker URL, so a test can point elsewhere)."""
    url = str(settings.CELERY_BROKER_URL)
    app = _apps.get(url)
    if app is None:
        with _lock:
            app = _apps.get(url)
            if app is None:
                from celery import Celery

                app = Celery("mergeworks", set_as_current=False)
                app.config_from_object("django.conf:settings", namespace="CELERY")
                _apps[url] = app
    return app


def _retry_policy() -> dict[str, Any]:
    return {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def task_send(name: str, *, args: list | tuple = (), kwargs: dict | None = None) -> None:
    """Publish task `name` now; `BrokerUnavailable` when the broker cannot take it in a few seconds."""
    try:
        # ignore_result: nothing reads task results (the job rows are the truth),
        # and subscribing to the result channel retries a dead Redis for 20 s.
        celery_app().send_task(name, args=list(args), kwargs=kwargs or {}, ignore_result=True,
                               retry=True, retry_policy=_retry_policy())
    except Exception as exc:
        if classify(exc) in (BROKER_DOWN, CACHE_DOWN) or isinstance(exc, (OSError, TimeoutError)):
            logger.warning("could not send %s%s: %s: %s", name, tuple(args), type(exc).__name__, exc)
            raise BrokerUnavailable(f"the broker did not take {name}: {exc}") from exc
        raise


def broker_started_at() -> datetime | None:
    """When the broker last (re)started, if it can tell; None if unknown or unreachable."""
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        uptime = int(client.info("server")["uptime_in_seconds"])
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()
    return timezone.now() - timedelta(seconds=uptime)
