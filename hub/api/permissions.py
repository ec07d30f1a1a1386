from __future__ import annotations

from rest_framework import permissions


class ReadScopeIfKey(permissions.BasePermission):
    """Public reads: anyone may read, but an API key must carry the `read` scope.

    A key is only good for what its scopes say; anonymous and session requests
    see what their visibility allows.
    """

    message = "this API key lacks the 'read' scope"

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if key is not None and hasattr(key, "has_scope"):
            return key.has_scope("read")
        return True
