"""Rate limits and "counted already" marks that every process of the hub shares.

1. Who is asking: the user when signed in (session or API key), else the client
   address. The address is REMOTE_ADDR unless the request came through one of
   the configured proxies (`TRUSTED_PROXIES` CIDRs, or `TRUSTED_PROXY_HOPS`
   proxies in front of every request); only then is X-Forwarded-For read, from
   the right, so a client's own claim at its left end is never believed.
2. Where the counts live: Redis when REDIS_URL is set, so N gunicorn workers
   on M hosts share one limit. In embedded mode, an SQLite file under
   DATA_DIR (`limits.sqlite3`) that every local process opens; SQLite's lock
   makes each increment atomic across processes.
3. How a limit counts: fixed windows. The window number is part of the key,
   so one increment (and an expiry set only if the key has none) is the whole
   cost of a request. `mark_once` is a key set only if absent, for "count this
   download once per client and file within a window".

Keys start with `LIMITS_KEY_PREFIX`, so separate hubs (or tests) on one Redis
never share counts.
"""
from __future__ import annotations

import ipaddress
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest

from hub.redis_conn import redis_client

# --- who is asking ------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress._BaseNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in spec if cidr.strip())


def _parse_ip(text: str) -> ipaddress._BaseAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """The address of the client, as far as the hub's own proxies vouch for it."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    trusted = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    hops = int(getattr(settings, "TRUSTED_PROXY_HOPS", 0) or 0)
    if not trusted and hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    chain = forwarded + [remote]  # nearest last
    if hops > 0:
        # Exactly `hops` proxies stand in front of the hub: the address the
        # outermost one saw is `hops` places left of the peer.
        candidate = chain[-(hops + 1)] if len(chain) > hops else chain[0]
        ip = _parse_ip(candidate)
        return str(ip) if ip is not None else remote
    # Walk left from the peer while the address is one of our proxies.
    for position in range(len(chain) - 1, -1, -1):
        ip = _parse_ip(chain[position])
        if ip is None:
            # Garbage in the header: the last proxy that vouched is the client.
            return chain[position + 1] if position + 1 < len(chain) else remote
        if not any(ip in net for net in trusted):
            return str(ip)
        if position == 0:
            return str(ip)
    return remote


def client_ident(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"u{user.pk}"
    return f"ip{client_ip(request)}"


# --- shared counters -------------------------------------------------------------------


def _prefix() -> str:
    return getattr(settings, "LIMITS_KEY_PREFIX", "mw:") or "mw:"


class _SqliteCounters:
    """Counters in one SQLite file shared by the processes of an embedded hub."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._pid = os.getpid()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL)"
            )
            self._local.db = db
        return db

    def incr(self, key: str, ttl: int) -> int:
        now = time.time()
        db = self._db()
        (value,) = db.execute(
            "INSERT INTO counters (key, value, expires) VALUES (?, 1, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN expires < ? THEN 1 ELSE value + 1 END, "
            "expires = CASE WHEN expires < ? THEN excluded.expires ELSE expires END "
            "RETURNING value",
            (key, now + ttl, now, now),
        ).fetchone()
        if value == 1 and int(now) % 64 == 0:
            db.execute("DELETE FROM counters WHERE expires < ?", (now,))
        return int(value)

    def add(self, key: str, ttl: int) -> bool:
        now = time.time()
        row = self._db().execute(
            "INSERT INTO counters (key, value, expires) VALUES (?, 1, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = 1, expires = excluded.expires WHERE expires < ? "
            "RETURNING value",
            (key, now + ttl, now),
        ).fetchone()
        return row is not None


_sqlite: dict[str, _SqliteCounters] = {}


def _embedded() -> _SqliteCounters:
    path = Path(getattr(settings, "LIMITS_DB_PATH", "") or Path(settings.DATA_DIR) / "limits.sqlite3")
    store = _sqlite.get(str(path))
    if store is None:
        store = _sqlite[str(path)] = _SqliteCounters(path)
    return store


def counter_incr(key: str, *, ttl: int) -> int:
    """Add one to `key` (created with a `ttl`-second life) and return the new value."""
    key = _prefix() + key
    client = redis_client()
    if client is None:
        return _embedded().incr(key, ttl)
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, ttl, nx=True)
    return int(pipe.execute()[0])


def mark_once(key: str, *, ttl: int) -> bool:
    """Set `key` for `ttl` seconds if it is not set; True if this call set it."""
    key = _prefix() + key
    client = redis_client()
    if client is None:
        return _embedded().add(key, ttl)
    return bool(client.set(key, 1, ex=ttl, nx=True))


# --- fixed-window limits -------------------------------------------------------------------


@dataclass
class RateLimited(Exception):
    what: str
    limit: int
    retry_after: int
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {"Retry-After": str(self.retry_after)}

    def __str__(self) -> str:
        return f"too many {self.what}: at most {self.limit} a minute; retry in {self.retry_after}s"


WINDOW_SECONDS = 60


def rate_limit_hit(*, scope: str, ident: str, limit: int, what: str) -> None:
    """Count one request of `ident` against `limit` per minute; raise RateLimited past it (0: no limit)."""
    if limit <= 0:
        return
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    count = counter_incr(f"rl:{scope}:{ident}:{window}", ttl=WINDOW_SECONDS + 5)
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now) + 1)
        raise RateLimited(what=what, limit=limit, retry_after=retry_after)
