"""Example image endpoints: list, add, edit (NSFW level, cover), reorder, delete, and the image files.

| endpoint | |
| --- | --- |
| `GET /api/v1/model-versions/{id}/images` | the version's images (`browsingLevel` filters by level) |
| `POST /api/v1/model-versions/{id}/images` | multipart `image` (+ `nsfwLevel`): 201, `status: processing` |
| `PUT /api/v1/model-versions/{id}/images/order` | `{"ids": [...]}`, every image once |
| `GET`/`PATCH`/`DELETE /api/v1/model-versions/{id}/images/{imageId}` | `PATCH {"nsfwLevel"?, "cover"?}` |
| `GET /api/v1/images/{id}[/full|thumb|large|blur]` | the bytes |

Writes need the `upload` scope (or the website session) and the model's
ownership. The files are immutable once an image is ready (its keys are
content hashes), so they carry `ETag` and a year-long `immutable`
`Cache-Control`; public PG images are `public`, everything else `private`.
On S3 the answer is a redirect to a presigned URL.
"""
from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api.base import V1View
from hub.api.schemas import ErrorOut
from hub.catalog.nsfw import ALL_LEVELS_MASK, ANONYMOUS_LEVEL, NsfwLevel, parse_level
from hub.catalog.selectors import version_get_for
from hub.files.images import MAX_IMAGE_BYTES
from hub.uploads import image_services as services
from hub.uploads.api import UploadApiView
from hub.uploads.errors import UploadError
from hub.uploads.image_selectors import (
    VARIANTS,
    image_get_for,
    image_revealable_by,
    images_of_version_for,
)
from hub.uploads.models import ExampleImage

IMMUTABLE = "max-age=31536000, immutable"


class ImageMetaSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False)
    negativePrompt = serializers.CharField(required=False)
    seed = serializers.IntegerField(required=False)
    steps = serializers.IntegerField(required=False)
    sampler = serializers.CharField(required=False)
    scheduler = serializers.CharField(required=False)
    cfgScale = serializers.FloatField(required=False)
    size = serializers.CharField(required=False, help_text="WIDTHxHEIGHT")
    modelHash = serializers.CharField(required=False)
    model = serializers.CharField(required=False)


class ExampleImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    modelVersionId = serializers.IntegerField()
    # A plain string: a ChoiceField would add another enum component named after `status`.
    status = serializers.CharField(help_text="processing (until the worker is done), ready or failed")
    url = serializers.CharField(help_text="the re-encoded image (PNG, JPEG or WebP as uploaded)")
    thumbnailUrl = serializers.CharField(help_text="WebP, 480 px on the long side")
    largeUrl = serializers.CharField(help_text="WebP, 1600 px on the long side")
    blurUrl = serializers.CharField(help_text="WebP, 24 px: the placeholder shown above a viewer's level")
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    contentType = serializers.CharField()
    hash = serializers.CharField(allow_null=True, help_text="SHA-256 of the re-encoded image")
    nsfwLevel = serializers.ChoiceField(NsfwLevel.values, help_text="1 PG, 2 PG-13, 4 R, 8 X")
    nsfw = serializers.BooleanField(help_text="nsfwLevel above PG")
    cover = serializers.BooleanField(help_text="chosen by the owner as the model's cover")
    position = serializers.IntegerField()
    parameters = serializers.CharField(help_text="generation parameters as A1111 writes them")
    meta = ImageMetaSerializer(help_text="the parameters, parsed")
    error = serializers.CharField(allow_null=True, help_text="why processing failed")


def image_state(request, image: ExampleImage) -> dict:
    base = request.build_absolute_uri(f"/api/v1/images/{image.pk}")
    return {
        "id": image.pk,
        "modelVersionId": image.version_id,
        "status": image.status,
        "url": base,
        "thumbnailUrl": f"{base}/thumb",
        "largeUrl": f"{base}/large",
        "blurUrl": f"{base}/blur",
        "width": image.width,
        "height": image.height,
        "contentType": image.content_type,
        "hash": image.sha256 or None,
        "nsfwLevel": image.nsfw_level,
        "nsfw": image.nsfw_level > NsfwLevel.PG,
        "cover": image.is_cover,
        "position": image.position,
        "parameters": image.parameters,
        "meta": image.meta or {},
        "error": image.error_message or None,
    }


def _level_field(data, name: str = "nsfwLevel") -> int | None:
    raw = data.get(name) if hasattr(data, "get") else None
    if raw in (None, ""):
        return None
    level = parse_level(raw)
    if level is None:
        raise UploadError("bad_nsfw_level", f"{name} must be 1 (PG), 2 (PG-13), 4 (R) or 8 (X)")
    return level


class _ImagesBase(UploadApiView):
    def get_permissions(self):
        if self.request.method == "GET":
            return [permission() for permission in V1View.permission_classes]
        return super().get_permissions()

    def get_version(self, request, version_id: int):
        version = version_get_for(request.user, version_id)
        if version is None:
            raise UploadError("not_found", "no such model version", status=404)
        return version

    def get_image(self, request, version_id: int, image_id: int) -> ExampleImage:
        image = image_get_for(request.user, image_id)
        if image is None or image.version_id != version_id:
            raise UploadError("not_found", "no such image", status=404)
        return image


LEVEL_PARAM = OpenApiParameter(
    "browsingLevel", OpenApiTypes.INT, description="bitmask of levels to list: 1 PG, 2 PG-13, 4 R, 8 X"
)


class VersionImagesView(_ImagesBase):
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="version_images_list", summary="Example images of a version", parameters=[LEVEL_PARAM],
        responses={200: ExampleImageSerializer(many=True), 404: ErrorOut}, tags=["images"],
    )
    def get(self, request: Request, version_id: int):
        version = self.get_version(request, version_id)
        images = images_of_version_for(request.user, version)
        raw = request.query_params.get("browsingLevel")
        if raw not in (None, ""):
            try:
                mask = int(raw)
            except ValueError:
                mask = 0
            if not 1 <= mask <= ALL_LEVELS_MASK:
                raise ValidationError({"browsingLevel": ["a bitmask from 1 to 15: 1 PG, 2 PG-13, 4 R, 8 X"]})
            images = [i for i in images if i.nsfw_level & mask]
        return Response([image_state(request, i) for i in images])

    @extend_schema(
        operation_id="version_image_create",
        summary="Add an example image (PNG, JPEG or WebP)",
        description=(
            "Multipart field `image`, optional `nsfwLevel` (1, 2, 4, 8; default the model's level). The hub checks "
            "the header (format, at most 50 Mpx and 16384 px a side) and answers 201 with `status: processing`; "
            "the ingest worker re-encodes it, keeps only its generation parameters (A1111 `parameters`, EXIF "
            "UserComment, or a ComfyUI `prompt` graph written as A1111 text) and makes the WebP thumbnails. "
            "Poll the image until `status` is `ready` or `failed`."
        ),
        request={"multipart/form-data": {"type": "object", "properties": {
            "image": {"type": "string", "format": "binary"}, "nsfwLevel": {"type": "integer", "enum": NsfwLevel.values},
        }, "required": ["image"]}},
        responses={201: ExampleImageSerializer, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut},
        tags=["images"],
    )
    def post(self, request: Request, version_id: int):
        # Refuse an oversized body before the multipart parser spools it.
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_IMAGE_BYTES + 64 * 1024:
            raise UploadError("image_too_large", f"images are limited to {MAX_IMAGE_BYTES} bytes", status=413)
        version = self.get_version(request, version_id)
        f = request.FILES.get("image")
        if f is None:
            raise UploadError("image_missing", "send the image in the multipart field `image`")
        image = services.example_image_add(
            version=version, user=request.user, f=f, size=f.size, nsfw_level=_level_field(request.data),
        )
        return Response(image_state(request, image), status=status.HTTP_201_CREATED)


class VersionImagesOrderView(_ImagesBase):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="version_images_order", summary="Reorder a version's example images",
        request=inline_serializer("ImageOrderIn", {"ids": serializers.ListField(child=serializers.IntegerField())}),
        responses={200: ExampleImageSerializer(many=True), 400: ErrorOut, 403: ErrorOut, 404: ErrorOut},
        tags=["images"],
    )
    def put(self, request: Request, version_id: int):
        version = self.get_version(request, version_id)
        ids = request.data.get("ids") if isinstance(request.data, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise UploadError("bad_order", "send {\"ids\": [...]}: every image id of this version, in the new order")
        images = services.example_images_reorder(version=version, user=request.user, image_ids=ids)
        return Response([image_state(request, i) for i in images])


class VersionImageDetailView(_ImagesBase):
    parser_classes = [JSONParser]

    @extend_schema(operation_id="version_image_retrieve", summary="One example image",
                   responses={200: ExampleImageSerializer, 404: ErrorOut}, tags=["images"])
    def get(self, request: Request, version_id: int, image_id: int):
        return Response(image_state(request, self.get_image(request, version_id, image_id)))

    @extend_schema(
        operation_id="version_image_update", summary="Set an image's NSFW level, or make it the model's cover",
        request=inline_serializer("ImageUpdateIn", {
            "nsfwLevel": serializers.ChoiceField(NsfwLevel.values, required=False),
            "cover": serializers.BooleanField(required=False, help_text="true: the model's cover; false: not"),
        }),
        responses={200: ExampleImageSerializer, 400: ErrorOut, 403: ErrorOut, 404: ErrorOut}, tags=["images"],
    )
    def patch(self, request: Request, version_id: int, image_id: int):
        image = self.get_image(request, version_id, image_id)
        data = request.data if isinstance(request.data, dict) else {}
        cover = data.get("cover")
        if cover is not None and not isinstance(cover, bool):
            raise UploadError("bad_cover", "cover must be true or false")
        image = services.example_image_update(
            image=image, user=request.user, nsfw_level=_level_field(data), cover=cover,
        )
        image.refresh_from_db()
        return Response(image_state(request, image))

    @extend_schema(operation_id="version_image_delete", summary="Delete an example image",
                   responses={204: None, 403: ErrorOut, 404: ErrorOut}, tags=["images"])
    def delete(self, request: Request, version_id: int, image_id: int):
        image = self.get_image(request, version_id, image_id)
        services.example_image_delete(image=image, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _etag(key: str) -> str:
    # Keys end in the content's SHA-256 (images/ab/<sha>.ext).
    return '"' + key.rsplit("/", 1)[-1].split(".", 1)[0] + '"'


FILE_DESCRIPTION = (
    "`full` is the re-encoded upload; `thumb` (480 px), `large` (1600 px) and `blur` (24 px) are WebP. Above the "
    "caller's NSFW level only `blur` is served, unless the caller has opted in to revealing blurred images. API "
    "keys need `read`; a key sees its owner's private images. `ETag` and a year-long immutable `Cache-Control`; "
    "on S3: 302 to a presigned URL."
)
FILE_RESPONSES = {(200, "image/*"): OpenApiTypes.BINARY, 302: None, 304: None, 403: ErrorOut, 404: ErrorOut}


class ImageFileView(V1View):
    """The bytes of an example image (the re-encoded upload)."""

    @extend_schema(operation_id="image_file", summary="An example image's bytes", description=FILE_DESCRIPTION,
                   responses=FILE_RESPONSES, tags=["images"])
    def get(self, request: Request, image_id: int):
        return image_file_response(request, image_id, "full")


class ImageVariantFileView(V1View):
    """The bytes of one size of an example image."""

    @extend_schema(
        operation_id="image_file_variant", summary="One size of an example image", description=FILE_DESCRIPTION,
        parameters=[OpenApiParameter("variant", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(VARIANTS))],
        responses=FILE_RESPONSES, tags=["images"],
    )
    def get(self, request: Request, image_id: int, variant: str):
        return image_file_response(request, image_id, variant)


def image_file_response(request, image_id: int, variant: str):
    if variant not in VARIANTS:
        raise NotFound(f"no image variant {variant!r}; use one of {', '.join(VARIANTS)}")
    image = image_get_for(request.user, image_id)
    if image is None:
        raise NotFound("no such image")
    if not image.is_ready:
        raise NotFound("this image is still being processed" if image.status == "processing"
                       else "this image could not be processed")
    if variant != "blur" and not image_revealable_by(request.user, image):
        raise PermissionDenied("this image is above your NSFW level; only its blurred placeholder is served")
    key = getattr(image, VARIANTS[variant]) or image.storage_key
    content_type = image.content_type if key == image.storage_key else "image/webp"
    etag = _etag(key)
    public = (variant == "blur" or image.nsfw_level == ANONYMOUS_LEVEL) and version_get_for(
        None, image.version_id
    ) is not None
    cache = f"{'public' if public else 'private'}, {IMMUTABLE}"
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = _file_response(image, key, variant, content_type, cache)
    response["ETag"] = etag
    if response.status_code != 302:
        response["Cache-Control"] = cache
    if not public:
        response["Vary"] = "Cookie, Authorization"
    return response


def _file_response(image: ExampleImage, key: str, variant: str, content_type: str, cache: str):
    storage = services.image_storage()
    extension = key.rsplit(".", 1)[-1]
    filename = f"image-{image.pk}{'' if variant == 'full' else '-' + variant}.{extension}"
    if getattr(storage, "supports_presigned_urls", False):
        url = storage.inline_url(key, filename=filename, content_type=content_type, cache_control=cache)
        response = HttpResponseRedirect(url)
        # The presigned URL expires; a client may reuse the redirect for part of its life.
        response["Cache-Control"] = f"private, max-age={max(0, settings.PRESIGNED_URL_TTL // 2)}"
        return response
    try:
        handle = storage.open(key, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise NotFound("the image file is missing") from exc
    response = FileResponse(handle, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    # Even opened on its own, the response can run nothing.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
