"""JSON error bodies for every API failure.

Download clients save whatever body comes back, so an error must never look
like a model file: it is always a small JSON object with a status >= 400.
"""
from __future__ import annotations

import logging
import re

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from hub.catalog.services import CatalogError
from hub.faults import classify


def error_body(message: str, *, code: str, status_code: int, details=None) -> dict:
    body = {"error": message, "code": code, "status": status_code}
    if details is not None:
        body["details"] = details
    return body


def json_error(message: str, *, code: str, status_code: int, details=None, headers=None) -> JsonResponse:
    response = JsonResponse(error_body(message, code=code, status_code=status_code, details=details), status=status_code)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


logger = logging.getLogger("django.request")
_UNSAFE_HEADER_CHARS = re.compile(r"[^\x20-\x7e]")


def safe_header_text(text: str, limit: int = 300) -> str:
    """Printable ASCII only: a header never carries a control character, a line break or user text the server rejects."""
    return _UNSAFE_HEADER_CHARS.sub("?", text)[:limit]


def exception_handler(exc, context):
    """DRF's handler, plus unavailable dependencies (503) and out-of-range input (400).

    Anything else that is not DRF's is left to `hub.api.middleware`, which
    logs it and answers a JSON 500.
    """
    if not isinstance(exc, exceptions.APIException) and (fault := classify(exc)) is not None:
        logger.warning("%s: %s: %s", fault.code, type(exc).__name__, exc)
        set_rollback()
        details = {"part": fault.part} if fault.part else None
        return Response(error_body(fault.message, code=fault.code, status_code=fault.status, details=details),
                        status=fault.status, headers=fault.headers())
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("the request body is too large", code="too_large", status_code=413), status=413)
    if isinstance(exc, SuspiciousOperation):
        # Too many form fields or files, a malformed multipart body: the client's fault, never a 500.
        return Response(error_body(str(exc) or "malformed request", code="bad_request", status_code=400), status=400)
    if isinstance(exc, CatalogError):
        details = {exc.field: [str(exc)]} if exc.field else None
        return Response(
            error_body(str(exc), code="invalid", status_code=400, details=details), status=status.HTTP_400_BAD_REQUEST
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message, code, details = "invalid request", "invalid", response.data
    else:
        detail = getattr(exc, "detail", None)
        message = str(detail) if detail is not None else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        details = None
    response.data = error_body(message, code=str(code), status_code=response.status_code, details=details)
    return response
