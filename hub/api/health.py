"""Liveness and readiness.

- `GET /api/v1/health/live`: the process answers; touches nothing else. For
  a supervisor deciding whether to restart the web process (a database
  outage is no reason to), and the cheapest route for load baselines.
- `GET /api/v1/health`: readiness. Each part the hub needs is checked with a
  short timeout and reported with its status and latency; 503 when any is
  down, naming it. The database is checked on the request's own connection
  (`SELECT 1`, bounded by `connect_timeout`, and by a watchdog that cuts an
  established connection gone silent); Redis (broker and cache) and
  the store are checked at the same time in a small thread pool, each with
  its own client whose timeouts fit HEALTH_PROBE_TIMEOUT, so the answer
  comes within about that long whatever hangs. The store's answer is
  reused for a few seconds, so a load balancer polling health does not
  turn into a stream of requests to S3.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response

STORAGE_RESULT_TTL = 5.0

_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")
_lock = threading.Lock()
_storage_result: tuple[float, dict[str, Any]] | None = None
_redis_clients: dict[str, Any] = {}
_s3_client = None


def _timeout() -> float:
    return float(getattr(settings, "HEALTH_PROBE_TIMEOUT", 2.0))


def _timed(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = {"status": "ok", **check()}
    except Exception as exc:  # any failure of a probe is that part being down
        result = {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latencyMs"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _cut_if_silent(seconds: float) -> threading.Timer | None:
    """Shut the open connection's socket down if the probe is still waiting after `seconds`.

    libpq has no read timeout, and a server that is stopped but whose kernel
    still acknowledges (SIGSTOP, a wedged host) leaves an established
    connection waiting for ever; statement_timeout cannot fire in a server
    that does not run. Shutting the socket wakes the wait with an error.
    """
    raw = connection.connection
    fileno = getattr(raw, "fileno", None)
    if raw is None or fileno is None:
        return None  # not connected yet: connect_timeout bounds the connect

    def cut():
        try:
            with socket.socket(fileno=os.dup(fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    return timer


def _check_database() -> dict[str, Any]:
    timer = _cut_if_silent(_timeout()) if connection.vendor == "postgresql" else None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        # Do not hand a broken connection to the next request on this thread.
        connection.close_if_unusable_or_obsolete()
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return {"vendor": connection.vendor}


def _check_broker() -> dict[str, Any]:
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        if not os.access(folder, os.W_OK):
            raise OSError(f"the queue folder {folder} is not writable")
        return {"kind": "filesystem"}
    client = _redis_clients.get(url)
    if client is None:
        import redis

        timeout = _timeout()
        client = _redis_clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
    client.ping()
    return {"kind": "redis"}


def _storage_probe() -> dict[str, Any]:
    global _s3_client
    from hub.files.storage import blob_storage

    storage = blob_storage()
    bucket = getattr(storage, "bucket_name", None)
    if bucket is None:
        location = getattr(storage, "location", "")
        os.makedirs(location, exist_ok=True)  # made on first write anyway
        if not os.access(location, os.W_OK):
            raise OSError(f"the store folder {location} is not writable")
        return {"kind": "local"}
    if _s3_client is None:
        import boto3
        from botocore.config import Config

        timeout = _timeout()
        _s3_client = boto3.session.Session().client(
            "s3",
            endpoint_url=storage.endpoint_url,
            aws_access_key_id=storage.access_key,
            aws_secret_access_key=storage.secret_key,
            region_name=storage.region_name,
            config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"},
                          s3={"addressing_style": storage.addressing_style or "path"}),
        )
    _s3_client.head_bucket(Bucket=bucket)
    return {"kind": "s3"}


def _check_storage() -> dict[str, Any]:
    global _storage_result
    now = time.monotonic()
    cached = _storage_result
    if cached is not None and now - cached[0] < STORAGE_RESULT_TTL:
        return {**cached[1], "cachedForMs": round((now - cached[0]) * 1000)}
    result = _timed(_storage_probe)
    with _lock:
        _storage_result = (now, result)
    return result


def readiness() -> tuple[bool, dict[str, Any]]:
    """(all parts up, per-part report), within about HEALTH_PROBE_TIMEOUT."""
    timeout = _timeout()
    broker = _pool.submit(_timed, _check_broker)
    storage = _pool.submit(_check_storage)
    checks: dict[str, Any] = {"database": _timed(_check_database)}
    for name, future in (("broker", broker), ("storage", storage)):
        try:
            # Each probe's own socket timeouts bound it; the margin covers
            # building its client on the first call (boto3 takes a while).
            checks[name] = future.result(timeout=timeout + 2.5)
        except FutureTimeout:
            checks[name] = {"status": "down", "error": f"no answer within {timeout:g}s", "latencyMs": None}
    return all(c["status"] == "ok" for c in checks.values()), checks


_CheckOut = inline_serializer(
    "HealthCheckOut",
    {
        "status": serializers.ChoiceField(["ok", "down"]),
        "latencyMs": serializers.FloatField(allow_null=True),
        "error": serializers.CharField(required=False),
    },
)
_ReadyOut = inline_serializer(
    "HealthOut",
    {
        "status": serializers.ChoiceField(["ok", "unavailable"]),
        "down": serializers.ListField(child=serializers.CharField(), help_text="The parts that are down"),
        "checks": serializers.DictField(child=_CheckOut, help_text="database, broker (Redis: broker and cache), storage"),
    },
)


@extend_schema(
    operation_id="health",
    summary="Readiness: database, broker/cache and storage, each with status and latency",
    description="503 when a part the hub needs is down; the body names it. Answers within a few seconds whatever hangs.",
    responses={200: _ReadyOut, 503: _ReadyOut},
    tags=["health"],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request):
    ok, checks = readiness()
    down = [name for name, check in checks.items() if check["status"] != "ok"]
    body = {"status": "ok" if ok else "unavailable", "down": down, "checks": checks}
    return Response(body, status=200 if ok else 503, headers={} if ok else {"Retry-After": "5"})


@extend_schema(
    operation_id="health_live",
    summary="Liveness: the web process answers (no dependency is touched)",
    responses={200: inline_serializer("HealthLiveOut", {"status": serializers.CharField()})},
    tags=["health"],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health_live(request):
    return Response({"status": "ok"})
