"""Every failure under `/api/` and on the HF routes is a small JSON error, never an HTML page.

Download clients (web UI extensions, `huggingface_hub`, curl -O) save whatever
body comes back, so an HTML 404 or 500 page can end up on disk as a model.
DRF views already answer JSON for their own errors (`hub.api.errors`); this
middleware covers the rest, outermost so that it sees everything:

1. An exception raised by a view (`process_exception`): an unavailable
   dependency answers 503 with `Retry-After` and names the part, a number out
   of range 400, anything else is logged and answers a JSON 500.
2. An exception raised by another middleware (a session read when the
   database is down) has been turned into Django's HTML 500 page by the time
   it gets here; `got_request_exception` noted the exception on the request,
   so the same classification applies.
3. Django's own HTML answers (404 for an unknown path, 405 from
   `require_http_methods`, 400 for a bad Host, 403 from CSRF) are rewritten
   as JSON with the same status and `Allow` header.
4. A path id too large for a 64-bit column (`/api/download/models/9223372036854775808`)
   is a 404 before the view runs, on every route, pages included.
"""
from __future__ import annotations

import logging
import re
import sys

from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse

from hub.api.errors import error_body, safe_header_text
from hub.faults import BIGINT_MAX, Fault, classify

logger = logging.getLogger("django.request")

_HF_FILE_ROUTE = re.compile(r"^/[^/]+/[^/]+/resolve/")
_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}
_MESSAGES = {
    400: "bad request",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    500: "internal server error",
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "X-Repo-Commit")


def is_api_request(request: HttpRequest) -> bool:
    path = request.path_info
    if path.startswith("/api/"):
        return True
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.namespace == "hf"
    return bool(_HF_FILE_ROUTE.match(path))


def _json(request: HttpRequest, status: int, code: str, message: str, *, details=None,
          headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(error_body(message, code=code, status_code=status, details=details), status=status)
    response["Cache-Control"] = "no-store"
    if not request.path_info.startswith("/api/v1/"):
        # huggingface_hub reports X-Error-Message, and the download route is read by the same kind of client.
        response["X-Error-Message"] = safe_header_text(message)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def fault_json(request: HttpRequest, fault: Fault) -> JsonResponse:
    return _json(request, fault.status, fault.code, fault.message,
                 details={"part": fault.part} if fault.part else None, headers=fault.headers())


def _remember_exception(sender, request=None, **kwargs) -> None:
    if request is not None:
        request._hub_exception = sys.exc_info()[1]


got_request_exception.connect(_remember_exception, dispatch_uid="hub.api.middleware.remember_exception")


class ApiErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.status_code < 400 or response.streaming or not is_api_request(request):
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json"):
            return response
        exc = getattr(request, "_hub_exception", None)
        if exc is not None and response.status_code >= 500:
            fault = classify(exc)
            if fault is not None:
                return fault_json(request, fault)
        status = response.status_code
        headers = {k: response[k] for k in _KEPT_HEADERS if response.has_header(k)}
        return _json(request, status, _CODES.get(status, "error"), _MESSAGES.get(status, response.reason_phrase.lower()),
                     headers=headers)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        for value in view_kwargs.values():
            # `<int:…>` accepts any number of digits; no row has an id past a bigint.
            if isinstance(value, int) and not isinstance(value, bool) and value > BIGINT_MAX:
                raise Http404("no such object")
        return None

    def process_exception(self, request: HttpRequest, exc: Exception):
        if not is_api_request(request) or isinstance(exc, Http404):
            return None
        fault = classify(exc)
        if fault is not None:
            logger.warning("%s %s: %s (%s: %s)", request.method, request.path, fault.code, type(exc).__name__, exc)
            return fault_json(request, fault)
        logger.error("Internal Server Error: %s", request.path, exc_info=exc,
                     extra={"status_code": 500, "request": request})
        return _json(request, 500, "server_error", "internal server error")
