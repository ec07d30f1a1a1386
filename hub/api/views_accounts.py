"""`/api/v1/me` and API key management (for the website session and for keys).

A key may manage keys too, but never beyond its own scopes: it cannot mint a
key with more power than itself, nor revoke one that has more.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from hub.accounts.auth import HasScope
from hub.accounts.models import ApiKey
from hub.accounts.services import ALL_SCOPES, KEY_PREFIX, api_key_create, api_key_revoke
from hub.api import schemas
from hub.api.base import V1View
from hub.catalog.api_serialize import iso

AUTH_ERRORS = {401: schemas.ErrorOut, 403: schemas.ErrorOut}


def _request_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def api_key_out(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": f"{KEY_PREFIX}{key.prefix}",
        "scopes": key.scopes,
        "createdAt": iso(key.created_at),
        "lastUsedAt": iso(key.last_used_at),
        "revokedAt": iso(key.revoked_at),
        "active": key.is_active,
    }


def _within_caller_scopes(request, scopes: list[str]) -> bool:
    key = _request_key(request)
    return key is None or set(scopes) <= set(key.scopes)


class MeView(V1View):
    permission_classes = [permissions.IsAuthenticated, HasScope]
    required_scope = "read"

    @extend_schema(operation_id="me", summary="The caller's account", responses={200: schemas.MeOut, **AUTH_ERRORS},
                   tags=["account"])
    def get(self, request):
        user = request.user
        key = _request_key(request)
        return Response({
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "authentication": "apiKey" if key else "session",
            "scopes": key.scopes if key else ALL_SCOPES,
            "apiKey": api_key_out(key) if key else None,
        })


class ApiKeyListView(V1View):
    permission_classes = [permissions.IsAuthenticated, HasScope]
    required_scope = "read"

    @extend_schema(operation_id="api_keys_list", summary="The caller's API keys (never their secrets)",
                   responses={200: schemas.ApiKeyListOut, **AUTH_ERRORS}, tags=["account"])
    def get(self, request):
        keys = ApiKey.objects.filter(user=request.user).order_by("-created_at", "-id")
        return Response({"items": [api_key_out(k) for k in keys]})

    @extend_schema(
        operation_id="api_keys_create",
        summary="Create an API key",
        description="The plaintext key is in this response only; the hub stores a hash of it.",
        request=schemas.ApiKeyCreateIn,
        responses={201: schemas.ApiKeyCreatedOut, 400: schemas.ErrorOut, **AUTH_ERRORS},
        tags=["account"],
    )
    def post(self, request):
        body = schemas.ApiKeyCreateIn(data=request.data)
        body.is_valid(raise_exception=True)
        scopes = body.validated_data.get("scopes") or ["read", "download"]
        if not _within_caller_scopes(request, scopes):
            raise PermissionDenied("an API key can only create keys within its own scopes")
        try:
            issued = api_key_create(user=request.user, name=body.validated_data["name"], scopes=scopes)
        except ValueError as exc:
            raise ValidationError({"name": [str(exc)]}) from exc
        return Response({**api_key_out(issued.api_key), "key": issued.plaintext}, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(V1View):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(operation_id="api_keys_revoke", summary="Revoke an API key (idempotent)",
                   responses={204: OpenApiResponse(description="Revoked"), 404: schemas.ErrorOut, **AUTH_ERRORS},
                   tags=["account"])
    def delete(self, request, key_id: int):
        key = ApiKey.objects.filter(user=request.user, pk=key_id).first()
        if key is None:
            raise NotFound(f"API key {key_id} not found")
        if not _within_caller_scopes(request, key.scopes):
            raise PermissionDenied("an API key can only revoke keys within its own scopes")
        api_key_revoke(api_key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)
