"""One Redis client per URL for the web process's own fast paths (rate limits, counters)."""
from __future__ import annotations

from typing import Any

from django.conf import settings

_clients: dict[str, Any] = {}


def redis_client():
    """The client for settings.REDIS_URL, or None in embedded mode (no Redis)."""
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        import redis

        # Bounded waits: a Redis that accepts connections and never answers
        # must cost a request seconds, not the thread.
        client = _clients[url] = redis.Redis.from_url(
            url,
            socket_connect_timeout=getattr(settings, "REDIS_CONNECT_TIMEOUT", 2),
            socket_timeout=getattr(settings, "REDIS_SOCKET_TIMEOUT", 2),
            socket_keepalive=True,
        )
    return client
