"""Example images' writes: add (stage), process (worker), reorder, delete, cover, NSFW level.

1. `example_image_add` runs in the web process. It reads the header only
   (format and declared dimensions, the bomb and pixel limits), puts the
   bytes as sent under a staging key unique to the row, and creates the row
   as `processing`; after commit it asks the ingest queue, by task name, to
   process it.
2. `example_image_process` runs on the ingest worker. It takes the row with a
   conditional update (a redelivered task finds nothing to do), decodes,
   keeps only the generation parameters, re-encodes the image and its WebP
   thumbnails under content-addressed keys, and flips the row to `ready` in
   one update. A file the decoder refuses marks the row `failed` with the
   reason; the staged bytes are removed either way.
3. Stored files are shared by content: one is deleted only when no row
   refers to it any more.
"""
from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta
from typing import BinaryIO

from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Max, Q

from hub.accounts.models import User
from hub.catalog.models import ModelVersion
from hub.catalog.nsfw import NsfwLevel
from hub.files.images import MAX_IMAGE_BYTES, ImageRejected, image_probe, image_process
from hub.uploads.errors import UploadError
from hub.uploads.models import ExampleImage

log = logging.getLogger(__name__)

MAX_IMAGES_PER_VERSION = 20
PROCESS_TASK = "workers.tasks.ingest.example_image_process"
_KEY_FIELDS = ("staging_key", "storage_key", "thumb_key", "large_key", "blur_key")


def image_storage():
    return storages["default"]


def _content_key(sha256: str, extension: str) -> str:
    return f"images/{sha256[:2]}/{sha256}.{extension}"


def _send_process(image_id: int) -> None:
    from hub.tasks_enqueue import task_send

    # By name: the web process imports nothing of the worker's; the route comes from CELERY_TASK_ROUTES.
    task_send(PROCESS_TASK, args=[image_id])


def _level(value, *, default: int) -> int:
    if value is None:
        return default
    if value not in NsfwLevel.values:
        raise UploadError("bad_nsfw_level", "nsfwLevel must be 1 (PG), 2 (PG-13), 4 (R) or 8 (X)")
    return int(value)


def _check_owner(version: ModelVersion, user: User) -> None:
    if version.model.owner_id != user.pk:
        raise UploadError("forbidden", "you can only change images of your own models", status=403)


def example_image_add(
    *, version: ModelVersion, user: User, f: BinaryIO, size: int, nsfw_level: int | None = None,
) -> ExampleImage:
    """Stage an example image for a version of the user's own model; the ingest worker finishes it.

    `nsfw_level` defaults to the model's level. The row is returned as
    `processing` (see `example_image_process`).
    """
    if version.model.owner_id != user.pk:
        raise UploadError("forbidden", "you can only add images to your own models", status=403)
    level = _level(nsfw_level, default=version.model.nsfw_level)
    if version.images.count() >= MAX_IMAGES_PER_VERSION:
        raise UploadError("too_many_images", f"a version can have at most {MAX_IMAGES_PER_VERSION} images")
    try:
        header = image_probe(f, size=size)
    except ImageRejected as exc:
        raise UploadError(exc.code, str(exc), status=413 if exc.code == "image_too_large" else 400) from exc
    f.seek(0)
    staging_key = f"staging/images/{uuid.uuid4().hex}.{header.extension}"
    storage = image_storage()
    storage.put_stream(staging_key, f)
    try:
        with transaction.atomic():
            position = (version.images.aggregate(m=Max("position"))["m"] or 0) + 1
            image = ExampleImage.objects.create(
                version=version, model_id=version.model_id, uploaded_by=user,
                status=ExampleImage.Status.PROCESSING, staging_key=staging_key,
                content_type=header.content_type, width=header.width, height=header.height, size_bytes=size,
                nsfw_level=level, position=position,
            )
            transaction.on_commit(lambda: _send_process(image.pk))
    except BaseException:
        storage.delete(staging_key)
        raise
    return image


def _put(storage, data: bytes, sha256: str, extension: str) -> str:
    key = _content_key(sha256, extension)
    storage.put_stream(key, io.BytesIO(data))
    return key


def example_image_process(*, image_id: int) -> ExampleImage | None:
    """Decode, clean and publish a staged image (ingest worker). None if there is nothing to do."""
    image = ExampleImage.objects.filter(pk=image_id, status=ExampleImage.Status.PROCESSING).first()
    if image is None or not image.staging_key:
        return None
    storage = image_storage()
    try:
        with storage.open(image.staging_key, "rb") as staged:
            data = staged.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        # Another delivery of this task already finished and removed it.
        return ExampleImage.objects.filter(pk=image_id).first()
    try:
        processed = image_process(io.BytesIO(data), size=len(data))
    except ImageRejected as exc:
        updated = ExampleImage.objects.filter(pk=image_id, status=ExampleImage.Status.PROCESSING).update(
            status=ExampleImage.Status.FAILED, error_message=str(exc)[:1000], staging_key="",
        )
        if updated:
            storage.delete(image.staging_key)
        log.info("example image %s refused: %s", image_id, exc)
        return ExampleImage.objects.filter(pk=image_id).first()
    del data
    full = processed.full
    keys = {"storage_key": _put(storage, full.data, full.sha256, full.extension)}
    for name, thumb in (("thumb_key", processed.thumb), ("large_key", processed.large), ("blur_key", processed.blur)):
        keys[name] = _put(storage, thumb.data, thumb.sha256, "webp")
    with transaction.atomic():
        updated = ExampleImage.objects.filter(pk=image_id, status=ExampleImage.Status.PROCESSING).update(
            status=ExampleImage.Status.READY, staging_key="", content_type=full.content_type,
            width=full.width, height=full.height, size_bytes=len(full.data), sha256=full.sha256,
            parameters=full.parameters, meta=full.meta, error_message="", **keys,
        )
    if updated:
        storage.delete(image.staging_key)
    else:
        # Deleted while we worked: drop what only we wrote.
        _delete_unreferenced(storage, [keys[name] for name in keys])
    return ExampleImage.objects.filter(pk=image_id).first()


def _delete_unreferenced(storage, keys: list[str]) -> None:
    for key in {k for k in keys if k}:
        referenced = Q()
        for name in _KEY_FIELDS:
            referenced |= Q(**{name: key})
        if not ExampleImage.objects.filter(referenced).exists():
            storage.delete(key)


def example_image_delete(*, image: ExampleImage, user: User) -> None:
    _check_owner(image.version, user)
    keys = [getattr(image, name) for name in _KEY_FIELDS]
    with transaction.atomic():
        ExampleImage.objects.filter(pk=image.pk).delete()
        transaction.on_commit(lambda: _delete_unreferenced(image_storage(), keys))


def example_images_reorder(*, version: ModelVersion, user: User, image_ids: list[int]) -> list[ExampleImage]:
    """Put a version's images in the given order; the list must name each of them once."""
    _check_owner(version, user)
    with transaction.atomic():
        current = {i.pk: i for i in version.images.select_for_update()}
        if len(image_ids) != len(set(image_ids)) or set(image_ids) != set(current):
            raise UploadError(
                "bad_order", "send every image id of this version exactly once",
                details={"ids": sorted(current)},
            )
        for position, image_id in enumerate(image_ids, start=1):
            if current[image_id].position != position:
                ExampleImage.objects.filter(pk=image_id).update(position=position)
    return list(version.images.all())


def example_image_move(*, image: ExampleImage, user: User, offset: int) -> None:
    """Move an image up (-1) or down (+1) among its version's images."""
    ids = list(image.version.images.values_list("id", flat=True))
    index = ids.index(image.pk)
    target = max(0, min(len(ids) - 1, index + offset))
    ids.insert(target, ids.pop(index))
    example_images_reorder(version=image.version, user=user, image_ids=ids)


def example_image_cover_set(*, image: ExampleImage, user: User, cover: bool = True) -> ExampleImage:
    """Make an image its model's cover (or stop it being the cover). Viewers never get one above their level."""
    _check_owner(image.version, user)
    with transaction.atomic():
        if cover:
            ExampleImage.objects.filter(model_id=image.model_id, is_cover=True).exclude(pk=image.pk).update(
                is_cover=False
            )
        ExampleImage.objects.filter(pk=image.pk).update(is_cover=cover)
    image.is_cover = cover
    return image


def image_nsfw_level_set(*, image: ExampleImage, level: int, actor: User | None = None) -> ExampleImage:
    """Set an image's NSFW level: its uploader's choice, or a moderator's correction.

    Callers decide who may (the owner's forms and API check ownership,
    moderation its own rights); the log records who did.
    """
    level = _level(level, default=NsfwLevel.PG)
    with transaction.atomic():
        ExampleImage.objects.filter(pk=image.pk).update(nsfw_level=level)
    log.info("example image %s NSFW level %s -> %s by %s", image.pk, image.nsfw_level, level, getattr(actor, "pk", None))
    image.nsfw_level = level
    return image


def example_image_update(
    *, image: ExampleImage, user: User, nsfw_level: int | None = None, cover: bool | None = None,
) -> ExampleImage:
    """The owner's edits of one image (API PATCH and the manage page)."""
    _check_owner(image.version, user)
    if nsfw_level is not None:
        image_nsfw_level_set(image=image, level=nsfw_level, actor=user)
    if cover is not None:
        example_image_cover_set(image=image, user=user, cover=cover)
    return image



RESEND_AFTER = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=1)


def example_images_sweep() -> dict:
    """Ask again for images still processing after a while (a lost message); give up on very old ones.

    Processing twice is harmless: outputs are content-addressed and only the
    first conditional update marks the row ready.
    """
    from django.utils import timezone

    now = timezone.now()
    given_up = 0
    storage = image_storage()
    for image in ExampleImage.objects.filter(status=ExampleImage.Status.PROCESSING, created_at__lt=now - GIVE_UP_AFTER):
        if ExampleImage.objects.filter(pk=image.pk, status=ExampleImage.Status.PROCESSING).update(
            status=ExampleImage.Status.FAILED, staging_key="",
            error_message="processing did not finish; upload the image again",
        ):
            if image.staging_key:
                storage.delete(image.staging_key)
            given_up += 1
    resent = 0
    for image_id in ExampleImage.objects.filter(
        status=ExampleImage.Status.PROCESSING, created_at__lt=now - RESEND_AFTER
    ).values_list("id", flat=True):
        _send_process(image_id)
        resent += 1
    return {"images_resent": resent, "images_given_up": given_up}
