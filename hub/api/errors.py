"""JSON error bodies for every API failure.

Download clients save whatever body comes back, so an error must never look
like a model file: it is always a small JSON object with a status >= 400.
"""
from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from hub.catalog.services import CatalogError


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


def exception_handler(exc, context):
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
