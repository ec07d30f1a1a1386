"""The write limit of the REST API, counted where every worker process sees it (hub.limits)."""
from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from hub.limits import RateLimited, client_ident, rate_limit_hit


class WriteLimited(Throttled):
    default_code = "rate_limited"

    def __init__(self, limited: RateLimited):
        super().__init__(detail=str(limited), code=self.default_code)
        self.wait = limited.retry_after  # DRF sends it as Retry-After


class WriteRateThrottle(BaseThrottle):
    """WRITE_RATE_LIMIT_PER_MINUTE writes per user (or client address) across all API write endpoints.

    Reads are free here. A view that only reads through POST, or whose
    requests carry their own credential, sets `write_limit_exempt = True`.
    """

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS or getattr(view, "write_limit_exempt", False):
            return True
        try:
            rate_limit_hit(scope="write", ident=client_ident(request), limit=settings.WRITE_RATE_LIMIT_PER_MINUTE,
                           what="writes")
        except RateLimited as exc:
            raise WriteLimited(exc) from None
        return True
