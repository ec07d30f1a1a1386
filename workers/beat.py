"""A beat scheduler that runs only while it holds the single-instance lock.

`celery -A workers beat -S workers.beat:LockedScheduler` waits for the lock
before it opens its schedule, holds it while it runs and gives it up when it
stops, so a second beat (a restarted host, an operator's extra process, a
stack scaled by mistake) stands by instead of sending every periodic task
twice. With Redis the lock is a key with a short expiry that the holder
renews on each tick: a beat killed with SIGKILL frees it within
BEAT_LOCK_TTL seconds. In embedded mode (no Redis) it is an flock on a file
in the data dir, which the kernel releases when the process dies.

A beat that finds it has lost the lock (Redis expired it during a long
stall) stops instead of scheduling beside the new holder. The periodic tasks
are safe to run twice anyway (conditional updates, row locks); the lock keeps
the load and the logs sane.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path

from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "mergeworks:beat:lock"

# Renew the lock on every tick; beat never sleeps longer than this between ticks.
RENEW_SECONDS = 5.0

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def lock_ttl() -> float:
    from django.conf import settings

    return float(getattr(settings, "BEAT_LOCK_TTL", 30))


class RedisBeatLock:
    def __init__(self, client, ttl: float):
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        return bool(self.client.set(LOCK_KEY, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, LOCK_KEY, self.token, self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, LOCK_KEY, self.token)

    def holder(self) -> str:
        value = self.client.get(LOCK_KEY)
        return value.decode() if isinstance(value, bytes) else (value or "")


class FileBeatLock:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()}:{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def renew(self) -> bool:
        return self._fd is not None  # the kernel holds it until we close it or die

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""


def beat_lock():
    """The lock for this deployment: Redis when configured, else a file in the data dir."""
    from django.conf import settings

    if getattr(settings, "REDIS_URL", ""):
        from hub.redis_conn import redis_client

        return RedisBeatLock(redis_client(), lock_ttl())
    return FileBeatLock(Path(settings.DATA_DIR) / "celerybeat.lock")


class LockedScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs):
        self._lock = beat_lock()
        waited = False
        while not self._lock.acquire():
            if not waited:
                logger.warning("beat: another beat holds the lock (%s); standing by", self._lock.holder())
                waited = True
            time.sleep(1.0)
        logger.info("beat: holding the single-instance lock")
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        try:
            held = self._lock.renew()
        except Exception:  # a Redis blip: keep the lock's expiry as the judge
            logger.exception("beat: could not renew the lock")
            held = True
        if not held:
            logger.error("beat: lost the single-instance lock; stopping so only one beat schedules")
            raise SystemExit(1)
        return min(super().tick(*args, **kwargs), RENEW_SECONDS)

    def close(self):
        try:
            super().close()
        finally:
            try:
                self._lock.release()
            except Exception:
                logger.exception("beat: could not release the lock (it expires by itself)")
