from __future__ import annotations

from django.db import connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.response import Response


@extend_schema(
    operation_id="health",
    summary="Liveness and database check",
    responses={200: inline_serializer("HealthOut", {"status": serializers.CharField(), "database": serializers.CharField()})},
    tags=["health"],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return Response({"status": "ok", "database": connection.vendor})
