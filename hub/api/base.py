from __future__ import annotations

from django.urls import reverse
from rest_framework.views import APIView

from hub.api.negotiation import JsonOnlyNegotiation
from hub.api.permissions import ReadScopeIfKey


class V1View(APIView):
    """Base of the v1 endpoints: JSON only, reads open to anyone (keys need `read`)."""

    content_negotiation_class = JsonOnlyNegotiation
    permission_classes = [ReadScopeIfKey]


def download_base(request) -> str:
    """Absolute `…/api/download/models/` to which a version id is appended."""
    path = reverse("api:download", kwargs={"version_id": 0})
    return request.build_absolute_uri(path[: -len("0")])
