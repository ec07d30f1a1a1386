"""Per-user rate limits for community writes, counted in the shared cache.

The cache is Redis when REDIS_URL is set, so every web process sees the same
counters. Fixed windows: `add` creates the counter with the window's expiry,
`incr` counts; the window's end is stored beside it for Retry-After.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

# action -> (allowed per window, window seconds); COMMUNITY_RATE_LIMITS in settings overrides.
DEFAULT_LIMITS = {
    "review": (10, 3600),
    "comment": (30, 600),
    "follow": (60, 3600),
    "favorite": (120, 3600),
}


class RateLimited(Exception):
    def __init__(self, action: str, retry_after: int):
        super().__init__(f"too many {action}s; try again in {retry_after} s")
        self.action = action
        self.retry_after = retry_after


def _limit(action: str) -> tuple[int, int]:
    return {**DEFAULT_LIMITS, **getattr(settings, "COMMUNITY_RATE_LIMITS", {})}[action]


def hit(user, action: str) -> None:
    """Count one `action` by `user`; raise RateLimited when over the limit."""
    allowed, window = _limit(action)
    now = int(time.time())
    start = now - now % window
    key = f"community:rl:{action}:{user.pk}:{start}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 5)
        count = 1
    if count > allowed:
        raise RateLimited(action, max(1, start + window - now))
