"""What an exception says about the request: a dependency that is down, or bad input.

A request that fails because PostgreSQL, Redis (cache and broker) or the S3
store cannot be reached is not the client's fault and not a bug: it answers
503 with `Retry-After` and names the part, so clients retry and operators see
what is down. Integers too large for a 64-bit column are the client's input,
not an outage: 400 (or 404 for an id in the path, see `hub.api.middleware`).

The classification walks the exception's cause and context, because Django,
kombu and django-storages wrap the driver's exception in their own.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    message: str
    part: str | None = None  # "database", "cache", "broker", "storage"
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def _unavailable(part: str, what: str) -> Fault:
    return Fault(503, f"{part}_unavailable", f"the {what} is unavailable; try again shortly", part=part, retry_after=5)


DATABASE_DOWN = _unavailable("database", "database")
CACHE_DOWN = _unavailable("cache", "cache (Redis)")
BROKER_DOWN = _unavailable("broker", "task queue (broker)")
STORAGE_DOWN = _unavailable("storage", "file store")
OUT_OF_RANGE = Fault(400, "invalid", "a number in the request is out of range, or a value is too long")


class BrokerUnavailable(Exception):
    """A task message could not be handed to the broker in time."""


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _is_database(exc: BaseException) -> bool:
    from django.db import utils as db

    if isinstance(exc, (db.OperationalError, db.InterfaceError)):
        return True
    try:
        import psycopg
    except ImportError:  # embedded mode without the driver
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def _is_data_error(exc: BaseException) -> bool:
    from django.db import utils as db

    return isinstance(exc, (db.DataError, OverflowError))


def _is_redis(exc: BaseException) -> bool:
    try:
        import redis.exceptions as rx
    except ImportError:
        return False
    return isinstance(exc, (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError))


def _is_broker(exc: BaseException) -> bool:
    if isinstance(exc, BrokerUnavailable):
        return True
    try:
        from kombu.exceptions import OperationalError
    except ImportError:
        return False
    return isinstance(exc, OperationalError)


def _is_storage(exc: BaseException) -> bool:
    try:
        from botocore import exceptions as bx
    except ImportError:
        return False
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError, bx.ConnectionError)):
        return True
    if isinstance(exc, bx.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500
    return False


def classify(exc: BaseException) -> Fault | None:
    """The fault an exception stands for, or None for a bug (a plain 500)."""
    for link in _chain(exc):
        if _is_broker(link):
            return BROKER_DOWN
        if _is_redis(link):
            return CACHE_DOWN
        if _is_storage(link):
            return STORAGE_DOWN
        if _is_database(link):
            return DATABASE_DOWN
        if _is_data_error(link):
            return OUT_OF_RANGE
    for link in _chain(exc):
        # A raw socket timeout or refusal from a client without its own exception type.
        if isinstance(link, (socket.timeout, ConnectionRefusedError, ConnectionResetError)):
            return Fault(503, "dependency_unavailable", "a service the hub depends on is unavailable", retry_after=5)
    return None
