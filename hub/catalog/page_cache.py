"""Rendered catalogue pages, cached in Redis and invalidated by a catalogue version.

The models list is what download managers and UI extensions poll; building a
page costs four queries and a few hundred rows, while serving it from Redis
costs what a health check does. The cache holds the response *bytes*, so it
does not care which fields the serializer writes.

Invalidation: every INSERT, UPDATE, DELETE or TRUNCATE that Django sends to a
table outside `_UNWATCHED` bumps a counter in Redis, once when the statement
runs and once more after its transaction commits (a page built between the
two from rows not yet committed is keyed under the first bump and dropped by
the second). A page is stored under the counter's value read *before* its
rows were, so no page outlives a write. The hook sits below the ORM
(`connection.execute_wrappers`), so `QuerySet.update()`, bulk writes and raw
SQL through Django bump it too; tables are watched unless listed as noise,
so a table added later is watched by default (a new high-churn table that no
page shows belongs in `_UNWATCHED`; writes run as PREPAREd statements are not
seen, and the hub prepares only lookups). Entries also expire after
PAGE_CACHE_TTL, which bounds the damage of a bump lost to a Redis outage.

A transaction that has written watched tables neither reads nor fills the
cache: its rows are its own until commit and may yet be rolled back.

Who may share a page: anonymous requests, and signed-in users whose list is
exactly the anonymous one (they own nothing unpublished or non-public: the
list shows a user's own drafts and private models). That fact is itself
cached per user under the same counter. Any other signed-in user gets pages
keyed by their own id, never seen by anyone else. Authentication and scope
checks run on every request before the cache is consulted.
In embedded mode (no Redis) nothing is cached.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)

VERSION_KEY = "mergeworks:catalog:version"
_PAGE_PREFIX = "mergeworks:catalog:page:"
_PLAIN_PREFIX = "mergeworks:catalog:plain:"

# Tables whose writes never change a catalogue page: per-request and per-job
# bookkeeping that would otherwise empty the cache many times a second.
# (Download rows reach the counts shown only through downloads_rollup, whose
# UPDATEs of catalog_model / catalog_modelversion bump the version.)
_UNWATCHED = frozenset({
    "catalog_download", "catalog_downloadrollup", "uploads_upload", "registry_mergejob", "previews_renderjob",
    "accounts_apikey", "django_session", "django_admin_log", "django_migrations",
    # Community rows no list shows (counts reach the lists through community_modelstats, which is watched).
    "community_notification", "community_notificationmute", "community_follow", "community_collection",
})
_WRITE = re.compile(
    r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+"?([A-Za-z0-9_]+)"?', re.IGNORECASE
)
# If the counter is gone (a Redis restart without persistence, an eviction),
# it restarts from the clock, above any value pages may still be stored under.
_BUMP = """
if redis.call('exists', KEYS[1]) == 1 then
  return redis.call('incr', KEYS[1])
end
redis.call('set', KEYS[1], ARGV[1])
return tonumber(ARGV[1])
"""


def _client():
    if not getattr(settings, "PAGE_CACHE", True):
        return None
    from hub.redis_conn import redis_client

    return redis_client()


def catalogue_version_bump() -> None:
    client = _client()
    if client is None:
        return
    try:
        client.eval(_BUMP, 1, VERSION_KEY, time.time_ns())
    except Exception:  # the write itself stands; PAGE_CACHE_TTL bounds what a lost bump leaves stale
        logger.exception("could not bump the catalogue version; cached pages may stay stale for up to %ss",
                         settings.PAGE_CACHE_TTL)


def _watch_writes(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    match = _WRITE.match(sql) if isinstance(sql, str) else None
    if match and match.group(1).lower() not in _UNWATCHED:
        catalogue_version_bump()
        connection = context["connection"]
        if connection.in_atomic_block and not any(
            entry[1] is catalogue_version_bump for entry in connection.run_on_commit
        ):
            transaction.on_commit(catalogue_version_bump, using=connection.alias)
    return result


def _install(sender, connection, **kwargs) -> None:
    if _watch_writes not in connection.execute_wrappers:
        connection.execute_wrappers.append(_watch_writes)


def install_write_watch() -> None:
    """Watch every database connection's writes (called from the catalog app's ready())."""
    from django.db import connections

    connection_created.connect(_install, dispatch_uid="catalog-page-cache")
    for connection in connections.all(initialized_only=True):
        _install(None, connection)


def _writing_catalogue() -> bool:
    """Whether this thread's open transaction has written watched tables (its reads are not everyone's)."""
    from django.db import connection

    return connection.in_atomic_block and any(
        entry[1] is catalogue_version_bump for entry in connection.run_on_commit
    )


def _current_version(client) -> bytes | None:
    version = client.get(VERSION_KEY)
    if version is None:
        client.set(VERSION_KEY, time.time_ns(), nx=True)
        version = client.get(VERSION_KEY)
    return version


def _user_is_plain(client, version: bytes, user) -> bool:
    """Whether `user`'s list equals the anonymous one: PG only, and they own nothing that only they can see."""
    key = f"{_PLAIN_PREFIX}{version.decode()}:{user.pk}"
    known = client.get(key)
    if known is not None:
        return known == b"1"
    from django.db.models import Exists, OuterRef, Q

    from hub.catalog.models import Model, ModelVersion

    unpublished_version = ModelVersion.objects.filter(model_id=OuterRef("pk")).filter(
        ~Q(status=ModelVersion.Status.PUBLISHED) | ~Q(moderation="")
    )
    # A viewer who chose a level above PG sees other covers and models than anonymous visitors;
    # an owner sees their own drafts, private models and what a moderator hid.
    hidden = getattr(user, "browsing_level", 1) != 1 or Model.objects.filter(
        ~Q(status=Model.Status.PUBLISHED, visibility=Model.Visibility.PUBLIC, moderation="")
        | Exists(unpublished_version),
        owner_id=user.pk,
    ).exists()
    client.set(key, b"0" if hidden else b"1", ex=settings.PAGE_CACHE_TTL)
    return not hidden


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Lookup:
    """`[version, plain flag, page]` in one Redis round trip (a server-side script, loaded once)."""

    SCRIPT = """
local v = redis.call('get', KEYS[1])
if not v then return {false, false, false} end
local plain = false
if ARGV[3] ~= '' then plain = redis.call('get', ARGV[1] .. v .. ':' .. ARGV[3]) end
local page = false
if ARGV[3] == '' or plain == '1' then
  page = redis.call('get', ARGV[2] .. v .. ':' .. ARGV[4])
elseif plain == '0' then
  page = redis.call('get', ARGV[2] .. v .. ':' .. ARGV[5])
end
return {v, plain, page}
"""

    def __init__(self) -> None:
        self._scripts: dict[int, Any] = {}

    def __call__(self, client, keys: list[str], args: list[str]) -> tuple[bytes | None, bytes | None, bytes | None]:
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(self.SCRIPT)
        version, plain, page = script(keys=keys, args=args)
        return version or None, plain or None, page or None


_LOOKUP = _Lookup()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def cached_page(request, build: Callable[[], bytes]) -> tuple[bytes, str, bool]:
    """(body, etag, from_cache) for this request's page; `build()` renders it when absent or uncacheable.

    The key is the scheme, host (links in the page are absolute) and the full
    query string; only 200 pages are ever built here (a bad parameter raises
    out of `build`).
    """
    client = _client()
    user = getattr(request, "user", None)
    # A transaction that wrote the catalogue sees rows nobody else does yet, and
    # they may be rolled back: it neither reads nor fills the shared cache.
    if client is None or _writing_catalogue():
        body = build()
        return body, etag_of(body), False
    try:
        authenticated = user is not None and user.is_authenticated
        raw = f"{request.scheme}://{request.get_host()}{request.get_full_path()}"
        shared_id = _digest(f"* {raw}")
        own_id = _digest(f"u{user.pk} {raw}") if authenticated else ""
        # One round trip: the version, whether this user shares the anonymous pages, and the page.
        version, plain, hit = _LOOKUP(client, [VERSION_KEY],
                                      [_PLAIN_PREFIX, _PAGE_PREFIX, str(user.pk) if authenticated else "",
                                       shared_id, own_id])
        if version is None:
            version = _current_version(client)
        if authenticated and plain is None:
            plain = b"1" if _user_is_plain(client, version, user) else b"0"
            hit = None
        # Signed-in users whose list is the anonymous one share its page; the others
        # (their own drafts or private models show) get pages of their own.
        key = f"{_PAGE_PREFIX}{version.decode()}:{shared_id if not authenticated or plain == b'1' else own_id}"
        if hit is None:
            hit = client.get(key)
    except Exception:  # Redis trouble: serve the page uncached
        logger.exception("page cache unavailable")
        body = build()
        return body, etag_of(body), False
    if hit is not None:
        etag, _, body = hit.partition(b"\n")
        return body, etag.decode(), True
    body = build()
    etag = etag_of(body)
    try:
        client.set(key, etag.encode() + b"\n" + body, ex=settings.PAGE_CACHE_TTL)
    except Exception:
        logger.exception("could not store a page in the cache")
    return body, etag, False


def if_none_match(request, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags
