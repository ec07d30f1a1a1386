from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from hub.accounts.services import InvalidApiKey, api_key_authenticate


def bearer_token(request) -> str | None:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    # Civitai clients pass ?token= on download links.
    return request.query_params.get("token") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer mw_…` or `?token=mw_…`; `request.auth` is the ApiKey."""

    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            return None
        try:
            key = api_key_authenticate(token)
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return key.user, key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def has_scope(request, scope: str) -> bool:
    """Session users (the website) act with every scope; API keys only with theirs."""
    if not request.user or not request.user.is_authenticated:
        return False
    key = getattr(request, "auth", None)
    if key is None or not hasattr(key, "has_scope"):
        return True
    return key.has_scope(scope)


class HasScope(permissions.BasePermission):
    scope = "read"
    message = "this API key lacks the required scope"

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", self.scope)
        if not request.user or not request.user.is_authenticated:
            return False
        if not has_scope(request, scope):
            self.message = f"this API key lacks the '{scope}' scope"
            return False
        return True
