"""Teach drf-spectacular about the hub's API key authentication.

Imported by hub/api/urls.py so it is registered before any schema is built.
"""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "hub.accounts.auth.ApiKeyAuthentication"
    name = ["apiKeyBearer", "apiKeyQuery"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer", "bearerFormat": "mw_<prefix>_<secret>",
             "description": "API key from /api/v1/api-keys or the website's API keys page"},
            {"type": "apiKey", "in": "query", "name": "token",
             "description": "The same API key, for clients that cannot set headers (Civitai style)"},
        ]


# Errors every operation can answer, whatever its own responses say: bad
# input, a key without the scope, an unknown id, a dependency that is down.
# They are all the same small JSON body (hub.api.errors), so the schema says so
# once here rather than in every view.
COMMON_ERRORS = {
    "400": "Invalid request (JSON error body)",
    "401": "Authentication failed (JSON error body)",
    "403": "Not allowed, or the API key lacks the scope (JSON error body)",
    "404": "No such object, or not visible to you (JSON error body)",
    "503": "A part the hub needs is down; retry after Retry-After (JSON error body naming it)",
}
# Every write counts against WRITE_RATE_LIMIT_PER_MINUTE (hub.api.throttles), and community
# writes against their own per-user limits.
WRITE_ERRORS = {"429": "Too many requests; retry after Retry-After (JSON error body)"}
WRITE_METHODS = {"post", "put", "patch", "delete"}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "Human-readable message"},
        "code": {"type": "string", "description": "Machine-readable code, e.g. not_found, rate_limited"},
        "status": {"type": "integer"},
        "details": {},
    },
    "required": ["error", "code", "status"],
}


def add_common_error_responses(result, generator, request, public):
    """drf-spectacular post-processing hook: document COMMON_ERRORS on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", _ERROR_SCHEMA)
    ref = {"$ref": "#/components/schemas/ErrorOut"}
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            errors = {**COMMON_ERRORS, **WRITE_ERRORS} if method in WRITE_METHODS else COMMON_ERRORS
            for status, description in errors.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result
