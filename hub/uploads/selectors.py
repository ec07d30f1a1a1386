from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet

from hub.catalog.models import Model, ModelVersion
from hub.catalog.selectors import version_get_for
from hub.files.models import ModelFile
from hub.uploads.backends import backend_for
from hub.uploads.models import ExampleImage, Upload

# Part URLs are signed per request; a client needing more asks again.
MAX_URLS_PER_RESPONSE = 1000


def upload_get_for(user, upload_id) -> Upload | None:
    """An upload is visible to its owner only; everyone else gets None (404)."""
    if user is None or not user.is_authenticated:
        return None
    return Upload.objects.filter(pk=upload_id, owner_id=user.pk).select_related("model").first()


def uploads_for(user, *, status: str | None = None) -> QuerySet[Upload]:
    qs = Upload.objects.filter(owner_id=user.pk)
    if status:
        qs = qs.filter(status__in=[s for s in status.split(",") if s in Upload.Status.values])
    return qs.order_by("-created_at")


def upload_expires_at(upload: Upload):
    if upload.status != Upload.Status.RECEIVING:
        return None
    return upload.created_at + timedelta(seconds=settings.UPLOAD_TTL)


def upload_state(upload: Upload, *, base_url: str, with_parts: bool = True) -> dict:
    """The API's view of an upload: what is stored, what to send next, and the outcome."""
    state: dict = {
        "id": str(upload.pk),
        "status": upload.status,
        "filename": upload.filename,
        "size": upload.size_bytes,
        "sha256": upload.declared_sha256 or None,
        "partSize": upload.part_size,
        "partCount": upload.part_count,
        "backend": upload.backend,
        "modelId": upload.model_id,
        "createdAt": upload.created_at.isoformat() if upload.created_at else None,
        "expiresAt": (e.isoformat() if (e := upload_expires_at(upload)) else None),
        "error": {"code": upload.error_code, "message": upload.error_message} if upload.error_code else None,
    }
    if with_parts and upload.status == Upload.Status.RECEIVING:
        backend = backend_for(upload)
        stored = backend.stored_parts(upload)
        missing = [n for n in range(1, upload.part_count + 1) if stored.get(n) != upload.part_length(n)]
        urls = backend.part_urls(upload, missing[:MAX_URLS_PER_RESPONSE], base_url=base_url)
        state["parts"] = [
            {"number": n, "size": upload.part_length(n), "stored": n not in missing, "url": urls.get(n)}
            for n in range(1, upload.part_count + 1)
        ]
        state["storedBytes"] = sum(upload.part_length(n) for n in range(1, upload.part_count + 1) if n not in missing)
    elif with_parts:
        state["parts"] = []
        state["storedBytes"] = upload.size_bytes if upload.status != Upload.Status.ABORTED else 0
    if upload.status in (Upload.Status.READY, Upload.Status.ATTACHED):
        summary = upload.header_summary or {}
        state["result"] = {
            "format": upload.format,
            "precision": upload.precision,
            "hashes": upload.hashes,
            "deduplicated": upload.deduplicated,
            "inspect": summary.get("inspect"),
            "tensorCount": summary.get("tensor_count"),
            "pickleScan": upload.pickle_scan or None,
        }
        state["suggestions"] = upload.suggestions
    if upload.model_file_id:
        state["modelVersionId"] = upload.model_file.version_id if upload.model_file else None
        state["fileId"] = upload.model_file_id
    return state


def merge_parents(upload: Upload, user) -> list[dict]:
    """Catalogue versions matching the hashes a merged file names as its inputs."""
    merge = (upload.suggestions or {}).get("merge") or {}
    wanted: set[str] = set()
    for key in ("primary_model_hash", "secondary_model_hash", "tertiary_model_hash"):
        value = (merge.get("recipe") or {}).get(key)
        if isinstance(value, str) and value:
            wanted.add(value.lower())
    for entry in merge.get("models") or []:
        wanted.update(str(h).lower() for h in (entry.get("sha256"), entry.get("legacy_hash")) if h)
    if not wanted:
        return []
    by_len = {64: "sha256__in", 10: "autov2__in", 8: "autov1__in"}
    match = Q()
    for length, lookup in by_len.items():
        values = [h for h in wanted if len(h) == length]
        if values:
            match |= Q(**{lookup: values})
    if not match:
        return []
    visible = Q(version__model__status=Model.Status.PUBLISHED, version__model__visibility=Model.Visibility.PUBLIC,
                version__status="published", version__moderation="", version__model__moderation="",
                version__model__owner__is_active=True)
    if user is not None and user.is_authenticated:
        visible |= Q(version__model__owner_id=user.pk)
    files = ModelFile.objects.filter(match).filter(visible).select_related("version", "version__model")[:20]
    seen: set[int] = set()
    out = []
    for f in files:
        if f.version_id in seen:
            continue
        seen.add(f.version_id)
        out.append({
            "sha256": f.sha256,
            "modelId": f.version.model_id,
            "modelName": f.version.model.name,
            "modelSlug": f.version.model.slug,
            "versionId": f.version_id,
            "versionName": f.version.name,
        })
    return out


# --- Example images -----------------------------------------------------------------------


def example_image_is_owner(user, image: ExampleImage) -> bool:
    """Its uploader and the model's owner both count as an example image's owner."""
    return bool(user is not None and user.is_authenticated
                and user.pk in (image.uploaded_by_id, image.version.model.owner_id))


def example_image_page_get(user, image_id: int) -> ExampleImage | None:
    """The image for its page: its owner sees it whatever a moderator did (with the notice), others only if untouched."""
    image = ExampleImage.objects.select_related("version", "version__model", "version__model__owner").filter(
        pk=image_id
    ).first()
    if image is None or version_get_for(user, image.version_id) is None:
        return None
    if image.moderation and not example_image_is_owner(user, image):
        return None
    return image


def example_image_get_for(user, image_id: int) -> ExampleImage | None:
    """The image if its bytes may be served to `user`: never once taken down, with its version or alone."""
    image = example_image_page_get(user, image_id)
    if image is None or "removed" in (image.moderation, image.version.moderation, image.version.model.moderation):
        return None
    return image


def example_images_visible(user, version: ModelVersion) -> list[ExampleImage]:
    images = list(version.images.select_related("version", "version__model"))
    return [i for i in images if not i.moderation or (i.moderation == "hidden" and example_image_is_owner(user, i))]
