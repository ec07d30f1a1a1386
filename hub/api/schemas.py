"""OpenAPI descriptions of the v1 response bodies.

These serializers only document shapes for drf-spectacular: the views build
their bodies with plain functions (hub/catalog/api_serialize.py) because DRF
serializers cost several times the SQL itself on a 100-model page.
"""
from __future__ import annotations

from rest_framework import serializers


class ErrorOut(serializers.Serializer):
    error = serializers.CharField(help_text="Human-readable message")
    code = serializers.CharField(help_text="Machine-readable code, e.g. not_found, rate_limited")
    status = serializers.IntegerField()
    details = serializers.JSONField(required=False)
