"""Download events: one cheap append per served download, folded into rows later.

With Redis, a download costs the request an append to an in-process outbox,
sent to a Redis list in batches, and `downloads_rollup` moves the pending
events into `Download` rows in bulk. Without Redis (embedded mode) the row is inserted directly.

Events are claimed by renaming the pending list to a unique key, so new
downloads go on being appended while a batch is written; a claimed key is
deleted only after its rows are committed, and claims left behind by a crash
are picked up by the next rollup. A crash between that commit and the delete
would count one batch twice; a Redis restart loses at most the events since
the last rollup. Both are acceptable for popularity counters.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.db import connection
from django.utils import timezone

from hub.catalog.models import Download, ModelVersion
from hub.redis_conn import redis_client

logger = logging.getLogger(__name__)

PENDING_KEY = "mw:downloads:pending"
_CLAIMED_PREFIX = "mw:downloads:claimed:"


class _Outbox:
    """Events of this process, sent to Redis in batches by a background thread.

    The request only appends to a list; a send costs one round trip per batch
    instead of one per download. Events still here when the process dies
    hard are lost (at most ``FLUSH_SECONDS`` worth); a normal exit sends them.
    """

    FLUSH_SECONDS = 0.2

    def __init__(self) -> None:
        self._events: list[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, event: str) -> None:
        with self._lock:
            self._events.append(event)
            if self._thread is None or self._pid != os.getpid():  # a forked worker starts its own
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="download-events", daemon=True)
                self._thread.start()
                atexit.register(self.send)

    def send(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        if not events:
            return
        client = redis_client()
        try:
            client.rpush(PENDING_KEY, *events)
        except Exception:  # Redis away: keep them for the next try
            logger.warning("could not send %d download events; will retry", len(events), exc_info=True)
            with self._lock:
                self._events[:0] = events

    def _run(self) -> None:
        while True:
            self._wake.wait(self.FLUSH_SECONDS)
            self._wake.clear()
            self.send()


_outbox = _Outbox()


def download_event_record(*, version_id: int, file_id: int | None, user_id: int | None) -> None:
    if redis_client() is not None:
        _outbox.add(f"{version_id},{file_id or ''},{user_id or ''},{time.time():.3f}")
        return
    if connection.vendor != "postgresql":
        Download.objects.create(version_id=version_id, file_id=file_id, user_id=user_id)
        return
    # A count lost in a crash is harmless; waiting for the WAL flush is not.
    table = connection.ops.quote_name(Download._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (version_id, file_id, user_id, created_at) "
            "SELECT %s, %s, %s, %s FROM (SELECT set_config('synchronous_commit', 'off', true)) AS local_setting",
            [version_id, file_id, user_id, timezone.now()],
        )


@dataclass
class FlushedEvents:
    written: int
    keys: list[str]

    def release(self) -> None:
        """Forget the claimed events; call once the rows are committed."""
        client = redis_client()
        if client is not None and self.keys:
            client.delete(*self.keys)


def download_events_flush() -> FlushedEvents:
    """Write pending events as Download rows in the caller's transaction.

    The caller calls `release()` on the result after committing.
    """
    client = redis_client()
    if client is None:
        return FlushedEvents(0, [])
    import redis

    _outbox.send()  # this process's own, so a rollup right after a download sees it

    claimed = [k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=_CLAIMED_PREFIX + "*")]
    key = _CLAIMED_PREFIX + uuid.uuid4().hex
    try:
        client.rename(PENDING_KEY, key)
        claimed.append(key)
    except redis.ResponseError:  # no such key: nothing new
        pass
    written = 0
    for key in claimed:
        rows = [_parse(raw) for raw in client.lrange(key, 0, -1)]
        rows = [r for r in rows if r is not None]
        version_ids = {r[0] for r in rows}
        live = set(ModelVersion.objects.filter(pk__in=version_ids).values_list("pk", flat=True))
        user_ids = {r[2] for r in rows if r[2] is not None}
        users = set(Download.user.field.related_model.objects.filter(pk__in=user_ids).values_list("pk", flat=True))
        objs = [
            Download(version_id=v, file_id=f, user_id=u if u in users else None,
                     created_at=datetime.fromtimestamp(t, tz=dt_timezone.utc))
            for v, f, u, t in rows
            if v in live  # a version deleted since is not counted
        ]
        Download.objects.bulk_create(objs, batch_size=1000)
        written += len(objs)
    return FlushedEvents(written, claimed)


def _parse(raw: bytes) -> tuple[int, int | None, int | None, float] | None:
    try:
        version, file, user, at = raw.decode().split(",")
        return int(version), int(file) if file else None, int(user) if user else None, float(at)
    except ValueError:
        return None
