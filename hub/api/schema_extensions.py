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
