"""Upload protocol endpoints (`/api/v1/uploads…`); example images are in `image_api`.

The protocol, shared by the website, the CLI and any script:

1. `POST /api/v1/uploads` with `{"filename", "size", "sha256"?, "modelId"?}`
   → 201 with the upload `id`, `partSize`, `partCount` and `parts`: for each
   part its `number`, exact `size` and a `url`. Limits are checked here: file
   extension, size (`MAX_UPLOAD_BYTES`, 413), unfinished uploads per user (429),
   and `modelId` must be one of your models (403).
2. `PUT` each part's bytes to its `url`, in any order and in parallel, with
   exactly `size` bytes. On S3 the URL is a presigned multipart `UploadPart`
   and the bytes go straight to the store; on local disk it is
   `PUT /api/v1/uploads/{id}/parts/{n}?expires=…&signature=…` on the hub.
   Either way the URL is its own credential and expires.
3. `GET /api/v1/uploads/{id}` says which parts are `stored` and gives fresh
   URLs for the others: resume after a dropped connection or a reload.
4. `POST /api/v1/uploads/{id}/complete` (with `{"sha256"}` if not declared at
   step 1) → 202; the ingest worker re-reads the bytes, checks the declared
   SHA-256 and size, validates and scans the file. Poll step 3 until
   `status` is `ready` (then `suggestions` pre-fill the model form) or
   `failed`/`quarantined` (then `error.code`/`error.message` say why).
5. `POST /api/v1/uploads/{id}/version` creates the model version (and a new
   model unless `modelId` is given), optionally publishing it.

`DELETE /api/v1/uploads/{id}` cancels an upload at any point before step 5.
API keys need the `upload` scope; the website uses its session (with CSRF).
"""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts.auth import HasScope
from hub.api.errors import error_body
from hub.api.schemas import ErrorOut
from hub.catalog.licences import LicenceConflict
from hub.catalog.models import Model, ModelVersion
from hub.catalog.selectors import model_get_for
from hub.faults import BIGINT_MAX
from hub.files.services import FileRejected
from hub.uploads import selectors, services
from hub.uploads.backends import part_signature_valid
from hub.uploads.errors import UploadError
from hub.uploads.models import Upload
from hub.uploads.wsgi_body import body_reader


def _base_url(request) -> str:
    return request.build_absolute_uri("/")


class UploadApiView(APIView):
    permission_classes = [HasScope]
    required_scope = "upload"

    def handle_exception(self, exc):
        if isinstance(exc, UploadError):
            body = error_body(exc.message, code=exc.code, status_code=exc.status, details=exc.details)
            return Response(body, status=exc.status)
        if isinstance(exc, FileRejected):
            return Response(error_body(str(exc), code=exc.code, status_code=400), status=400)
        if isinstance(exc, LicenceConflict):
            body = error_body(str(exc), code=exc.code, status_code=exc.status, details=exc.details)
            return Response(body, status=exc.status)
        return super().handle_exception(exc)

    def get_upload(self, request, upload_id) -> Upload:
        upload = selectors.upload_get_for(request.user, upload_id)
        if upload is None:
            raise UploadError("not_found", "no such upload", status=404)
        return upload


# --- Serializers (requests, and response shapes for the schema) -----------------------


class UploadCreateSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=1024)
    size = serializers.IntegerField(min_value=1)
    sha256 = serializers.CharField(required=False, allow_blank=True, max_length=64)
    modelId = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX, help_text="upload a new version of this model")


class UploadCompleteSerializer(serializers.Serializer):
    sha256 = serializers.CharField(required=False, allow_blank=True, max_length=64)


class UploadPartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    size = serializers.IntegerField()
    stored = serializers.BooleanField()
    url = serializers.CharField(allow_null=True, help_text="PUT exactly `size` bytes here; null once stored")


class UploadErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class UploadStateSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    # A plain string in the schema: its values are listed here rather than as a
    # shared enum component whose name would collide with the catalogue's `status`.
    status = serializers.CharField(help_text="one of: " + ", ".join(Upload.Status.values))
    filename = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField(allow_null=True)
    partSize = serializers.IntegerField()
    partCount = serializers.IntegerField()
    backend = serializers.CharField(help_text="s3 (parts go to presigned URLs) or local (parts go to the hub)")
    modelId = serializers.IntegerField(allow_null=True)
    createdAt = serializers.DateTimeField()
    expiresAt = serializers.DateTimeField(allow_null=True)
    error = UploadErrorSerializer(allow_null=True)
    parts = UploadPartSerializer(many=True, required=False)
    storedBytes = serializers.IntegerField(required=False)
    result = serializers.DictField(required=False, help_text="hashes, format, precision, detection, pickle scan")
    suggestions = serializers.DictField(required=False, help_text="initial values for the model/version form")
    modelVersionId = serializers.IntegerField(required=False)
    fileId = serializers.IntegerField(required=False)


class UploadListSerializer(serializers.Serializer):
    items = UploadStateSerializer(many=True)


class UploadVersionSerializer(serializers.Serializer):
    modelId = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=BIGINT_MAX, help_text="add to this model instead of creating one")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    type = serializers.ChoiceField(choices=Model.Type.choices, required=False, default=Model.Type.CHECKPOINT)
    checkpointType = serializers.ChoiceField(
        choices=[("", "")] + list(Model.CheckpointType.choices), required=False, default=""
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", help_text="Markdown")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list, max_length=30)
    nsfw = serializers.BooleanField(required=False, default=False)
    visibility = serializers.ChoiceField(choices=Model.Visibility.values, required=False, default=Model.Visibility.PUBLIC)
    allowNoCredit = serializers.BooleanField(required=False, default=True)
    allowCommercialUse = serializers.ListField(
        child=serializers.ChoiceField(choices=Model.CommercialUse.choices), required=False, default=list
    )
    allowDerivatives = serializers.BooleanField(required=False, default=True)
    allowDifferentLicense = serializers.BooleanField(required=False, default=True)
    versionName = serializers.CharField(required=False, default="v1.0", max_length=100)
    baseModel = serializers.ChoiceField(choices=ModelVersion.BaseModel.choices, required=False)
    trainedWords = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=100
    )
    versionDescription = serializers.CharField(required=False, allow_blank=True, default="")
    publish = serializers.BooleanField(required=False, default=False)
    reuploadOf = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**63 - 1,
        help_text="publishing another creator's file: the id of their published version it re-uploads "
        "(credited and linked; the licence must be theirs or stricter). Without it such a publish answers 409 "
        "`reupload_of_published_file` naming the originals.",
    )


class UploadVersionResultSerializer(serializers.Serializer):
    modelId = serializers.IntegerField()
    modelVersionId = serializers.IntegerField()
    fileId = serializers.IntegerField()
    status = serializers.CharField()


# --- Upload views -------------------------------------------------------------------


class UploadListView(UploadApiView):
    @extend_schema(
        operation_id="uploads_list",
        summary="List your uploads",
        parameters=[OpenApiParameter("status", str, description="comma-separated statuses, e.g. `receiving`")],
        responses={200: UploadListSerializer},
        tags=["uploads"],
    )
    def get(self, request: Request):
        uploads = selectors.uploads_for(request.user, status=request.query_params.get("status"))[:100]
        base = _base_url(request)
        return Response({"items": [selectors.upload_state(u, base_url=base, with_parts=False) for u in uploads]})

    @extend_schema(
        operation_id="upload_create",
        summary="Start an upload",
        description="Returns the part size, part count and a URL per part. See the module docs for the protocol.",
        request=UploadCreateSerializer,
        responses={201: UploadStateSerializer},
        tags=["uploads"],
    )
    def post(self, request: Request):
        data = UploadCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = None
        if (model_id := data.validated_data.get("modelId")) is not None:
            model = model_get_for(request.user, model_id)
            if model is None:
                raise UploadError("not_found", "no such model", status=404)
        upload = services.upload_create(
            owner=request.user,
            filename=data.validated_data["filename"],
            size=data.validated_data["size"],
            sha256=data.validated_data.get("sha256", ""),
            model=model,
        )
        return Response(selectors.upload_state(upload, base_url=_base_url(request)), status=status.HTTP_201_CREATED)


class UploadDetailView(UploadApiView):
    @extend_schema(
        operation_id="upload_retrieve",
        summary="Upload status, stored parts and fresh part URLs",
        responses={200: UploadStateSerializer},
        tags=["uploads"],
    )
    def get(self, request: Request, upload_id):
        upload = self.get_upload(request, upload_id)
        return Response(selectors.upload_state(upload, base_url=_base_url(request)))

    @extend_schema(operation_id="upload_abort", summary="Cancel an upload", responses={200: UploadStateSerializer}, tags=["uploads"])
    def delete(self, request: Request, upload_id):
        upload = services.upload_abort(upload=self.get_upload(request, upload_id))
        return Response(selectors.upload_state(upload, base_url=_base_url(request), with_parts=False))


class UploadCompleteView(UploadApiView):
    @extend_schema(
        operation_id="upload_complete",
        summary="Finish sending parts; queue verification",
        request=UploadCompleteSerializer,
        responses={202: UploadStateSerializer},
        tags=["uploads"],
    )
    def post(self, request: Request, upload_id):
        upload = self.get_upload(request, upload_id)
        data = UploadCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = services.upload_complete(upload=upload, sha256=data.validated_data.get("sha256", ""))
        return Response(selectors.upload_state(upload, base_url=_base_url(request)), status=status.HTTP_202_ACCEPTED)


class UploadVersionView(UploadApiView):
    @extend_schema(
        operation_id="upload_version_create",
        summary="Create the model version from a verified upload",
        request=UploadVersionSerializer,
        responses={201: UploadVersionResultSerializer, 409: ErrorOut},
        tags=["uploads"],
    )
    def post(self, request: Request, upload_id):
        upload = self.get_upload(request, upload_id)
        data = UploadVersionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        model = None
        if (model_id := v.get("modelId")) is not None:
            model = model_get_for(request.user, model_id)
            if model is None:
                raise UploadError("not_found", "no such model", status=404)
        suggestions = upload.suggestions or {}
        version = services.upload_version_create(
            upload=upload,
            user=request.user,
            model=model,
            name=v.get("name") or suggestions.get("name") or upload.filename,
            type=v["type"],
            checkpoint_type=v["checkpointType"],
            description=v["description"],
            tags=v["tags"],
            nsfw=v["nsfw"],
            visibility=v["visibility"],
            allow_no_credit=v["allowNoCredit"],
            allow_commercial_use=v["allowCommercialUse"],
            allow_derivatives=v["allowDerivatives"],
            allow_different_license=v["allowDifferentLicense"],
            version_name=v["versionName"],
            base_model=v.get("baseModel") or suggestions.get("base_model") or ModelVersion.BaseModel.OTHER,
            trained_words=v["trainedWords"],
            version_description=v["versionDescription"],
            publish=v["publish"],
            reupload_of=v.get("reuploadOf"),
        )
        upload.refresh_from_db()
        return Response(
            {"modelId": version.model_id, "modelVersionId": version.pk, "fileId": upload.model_file_id, "status": version.status},
            status=status.HTTP_201_CREATED,
        )


class UploadPartView(APIView):
    """`PUT` one part's bytes (local-disk backend). The signed URL is the credential.

    The body is streamed to disk a megabyte at a time; `Content-Length` must be
    exactly the part's size.
    """

    authentication_classes: list = []
    permission_classes: list = []
    parser_classes: list = []
    write_limit_exempt = True  # one upload is hundreds of parts; creating it was the counted write

    @extend_schema(
        operation_id="upload_part_put",
        summary="Send one part (local-disk backend)",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("expires", int, required=True), OpenApiParameter("signature", str, required=True)],
        responses={200: OpenApiTypes.OBJECT},
        tags=["uploads"],
    )
    def put(self, request: Request, upload_id, number: int):
        try:
            expires = int(request.query_params.get("expires", "0"))
        except ValueError:
            expires = 0
        if not part_signature_valid(upload_id, number, expires, request.query_params.get("signature", "")):
            return Response(
                error_body("this part URL is invalid or has expired; GET the upload for fresh URLs", code="bad_signature", status_code=403),
                status=403,
            )
        upload = Upload.objects.filter(pk=upload_id).first()
        if upload is None:
            return Response(error_body("no such upload", code="not_found", status_code=404), status=404)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or "")
        except ValueError:
            return Response(error_body("Content-Length is required", code="length_required", status_code=411), status=411)
        try:
            written = services.upload_part_write(
                upload=upload, number=number, reader=body_reader(request._request, length), length=length
            )
        except UploadError as exc:
            return Response(error_body(exc.message, code=exc.code, status_code=exc.status), status=exc.status)
        return Response({"number": number, "size": written})
