"""`GET /api/download/models/{versionId}`: thin view over hub.files.downloads."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.views import APIView

from hub.api.negotiation import JsonOnlyNegotiation
from hub.api.schemas import ErrorOut
from hub.faults import BIGINT_MAX
from hub.files.downloads import DownloadError, download_serve


def _int_param(request, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise DownloadError(400, "invalid", f"{name} must be an integer") from None
    if not 0 <= value <= BIGINT_MAX:
        raise DownloadError(404, "not_found", f"no file with {name}={raw}")
    return value


class DownloadView(APIView):
    # Anonymous downloads of public models are allowed, as on Civitai; scope
    # and visibility are checked by the service.
    permission_classes: list = []
    content_negotiation_class = JsonOnlyNegotiation

    @extend_schema(
        operation_id="download_model_version",
        summary="Download a model version's file",
        description=(
            "API key as `Authorization: Bearer mw_…` or `?token=mw_…`, or the website session; anonymous "
            "downloads of public models are allowed. On S3 storage the answer is a 302 to a short-lived presigned "
            "URL; on local disk the file is streamed with single-range `Range` support (206, `Content-Range`), "
            "`ETag` (the quoted SHA-256), `If-None-Match` and `If-Range`. Errors are JSON."
        ),
        parameters=[
            OpenApiParameter("fileId", OpenApiTypes.INT, description="A file of this version (default: the primary file)"),
            OpenApiParameter("format", OpenApiTypes.STR, description="SafeTensor or PickleTensor"),
            OpenApiParameter("fp", OpenApiTypes.STR, description="fp16, bf16, fp32 or fp8"),
            OpenApiParameter("token", OpenApiTypes.STR, description="API key, for clients that cannot set headers"),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The whole file"),
            (206, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="One byte range"),
            302: OpenApiResponse(description="Redirect to a presigned storage URL"),
            304: OpenApiResponse(description="If-None-Match matched the ETag"),
            400: ErrorOut,
            401: ErrorOut,
            403: ErrorOut,
            404: ErrorOut,
            410: ErrorOut,
            416: ErrorOut,
            429: ErrorOut,
            503: OpenApiResponse(ErrorOut, description="A part the hub needs is down (Retry-After)"),
        },
        tags=["downloads"],
    )
    def get(self, request, version_id: int):
        try:
            return download_serve(
                request,
                version_id=version_id,
                file_id=_int_param(request, "fileId"),
                format=request.GET.get("format") or None,
                fp=request.GET.get("fp") or None,
            )
        except DownloadError as exc:
            return exc.response()
