"""Download events: one cheap append per served download, folded into rows later.

With Redis, a download costs the request an append to an in-process outbox,
sent to a Redis list in batches, and `downloads_rollup` moves the pending
events into `Download` rows in bulk. Without Redis (embedded mode) the row is inserted directly.

Events are claimed by renaming the pending list to a unique key, so new
downloads go on being appended while a batch is written; a claimed key is
deleted as the last step of the transaction that writes its rows (under the
rollup's lock, so no other rollup can see it half done), and claims left
behind by a crash are picked up by the next rollup. A failed commit after
that delete loses one batch; a Redis restart loses the events since the last
rollup; a web process killed hard loses its last fraction of a second. All are
acceptable for popularity counters.
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
    BATCH = 1000  # events per RPUSH
    MAX_KEPT = 100_000  # while Redis is away; the oldest go first beyond this

    def __init__(self) -> None:
        self._reset()
        self._last_warning = 0.0
        self._dropped = 0
        atexit.register(self.send)
        if hasattr(os, "register_at_fork"):
            # A forked child starts empty: its parent sends what it had.
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._events: list[str] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one send at a time, so the exit-time send waits for one in flight
        self._thread: threading.Thread | None = None

    def add(self, event: str) -> None:
        with self._lock:
            self._events.append(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="download-events", daemon=True)
                self._thread.start()

    def send(self) -> None:
        with self._send_lock:
            with self._lock:
                events, self._events = self._events, []
            if not events:
                return
            sent = 0
            try:
                client = redis_client()
                for start in range(0, len(events), self.BATCH):
                    client.rpush(PENDING_KEY, *events[start : start + self.BATCH])
                    sent = start + self.BATCH
            except Exception:  # Redis away: keep the rest for the next try, within a bound
                self._keep(events[sent:])

    def _keep(self, unsent: list[str]) -> None:
        with self._lock:
            self._events[:0] = unsent
            excess = len(self._events) - self.MAX_KEPT
            if excess > 0:
                del self._events[:excess]
                self._dropped += excess
            kept = len(self._events)
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            logger.warning("could not send download events to Redis: %d waiting, %d dropped so far",
                           kept, self._dropped, exc_info=True)

    def _run(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
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
        """Forget the claimed events, as the last step of the transaction that wrote their rows.

        Still under the rollup's row lock, so a rollup waiting for that lock can
        never find these keys and write their rows again.
        """
        client = redis_client()
        if client is not None and self.keys:
            client.delete(*self.keys)


def download_events_flush() -> FlushedEvents:
    """Write pending events as Download rows in the caller's transaction.

    The caller calls `release()` on the result last thing before committing.
    """
    client = redis_client()
    if client is None:
        return FlushedEvents(0, [])
    import redis

    _outbox.send()  # this process's own, so a rollup right after a download sees it

    # SCAN may return a key twice: keep each once.
    claimed = list(dict.fromkeys(
        k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=_CLAIMED_PREFIX + "*")
    ))
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
