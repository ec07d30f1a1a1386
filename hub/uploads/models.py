from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from hub.catalog.models import Model, ModelVersion
from hub.files.models import ModelFile
from hub.moderation.states import moderation_field


class Upload(models.Model):
    """One file on its way into the catalogue.

    The row is the truth about an upload: which parts exist is asked of the
    store, but what may happen next (complete, ingest, attach) is decided by
    `status`, changed only by conditional updates so that two requests or a
    redelivered task can never both act on it.
    """

    class Status(models.TextChoices):
        RECEIVING = "receiving"  # parts are being sent
        QUEUED = "queued"  # all parts stored, waiting for the ingest worker
        PROCESSING = "processing"  # the ingest worker is re-reading it
        READY = "ready"  # verified and stored as a blob; waiting for its model/version form
        ATTACHED = "attached"  # a ModelFile points at its blob
        FAILED = "failed"  # rejected; error_code/error_message say why
        QUARANTINED = "quarantined"  # a pickle that would run code; kept aside, never served
        ABORTED = "aborted"  # cancelled by its owner
        EXPIRED = "expired"  # abandoned; cleaned up by housekeeping

    class Backend(models.TextChoices):
        S3 = "s3"
        LOCAL = "local"

    ACTIVE = (Status.RECEIVING, Status.QUEUED, Status.PROCESSING)
    TERMINAL = (Status.ATTACHED, Status.FAILED, Status.QUARANTINED, Status.ABORTED, Status.EXPIRED)
    # An upload in these states needs the blob at blob_key to stay.
    HOLDS_BLOB = (Status.PROCESSING, Status.READY, Status.ATTACHED)

    # A UUID, not a sequence: upload ids appear in URLs and must not be guessable.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    # Set when the upload is a new version of an existing model.
    model = models.ForeignKey(Model, null=True, blank=True, on_delete=models.SET_NULL, related_name="uploads")
    filename = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    declared_sha256 = models.CharField(max_length=64, blank=True, default="")
    part_size = models.BigIntegerField()
    part_count = models.IntegerField()
    backend = models.CharField(max_length=8, choices=Backend.choices)
    # Unique to this upload; never a content-addressed key.
    staging_key = models.CharField(max_length=255, unique=True)
    multipart_id = models.CharField(max_length=1024, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVING)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    # Filled by the ingest worker.
    format = models.CharField(max_length=16, choices=ModelFile.Format.choices, blank=True, default="")
    precision = models.CharField(max_length=8, blank=True, default="")
    hashes = models.JSONField(default=dict, blank=True)
    blob_key = models.CharField(max_length=255, blank=True, default="")
    deduplicated = models.BooleanField(default=False)
    header_summary = models.JSONField(default=dict, blank=True)
    pickle_scan = models.JSONField(default=dict, blank=True)
    suggestions = models.JSONField(default=dict, blank=True)
    ingest_task_id = models.CharField(max_length=64, blank=True, default="")
    ingest_attempts = models.IntegerField(default=0)

    model_file = models.ForeignKey(ModelFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    ingested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="upload_status_updated"),
            models.Index(fields=["owner", "-created_at"], name="upload_owner_newest"),
            models.Index(fields=["blob_key"], name="upload_blob_key"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    def part_length(self, number: int) -> int:
        """Bytes part `number` (1-based) must have: part_size, except the last."""
        if not 1 <= number <= self.part_count:
            raise ValueError(f"part {number} is outside 1..{self.part_count}")
        if number < self.part_count:
            return self.part_size
        return self.size_bytes - self.part_size * (self.part_count - 1)


class ExampleImage(models.Model):
    """An example image of a model version.

    The web process only checks the header and stages the bytes
    (`status=processing`); the ingest worker decodes them, keeps only the
    generation parameters, re-encodes the image and two WebP thumbnails under
    content-addressed keys, and marks the row `ready`. Until then pages show
    the image as processing and nothing is served.
    """

    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="images")
    # The version's model, copied so that covers are found per model with one index.
    model = models.ForeignKey(Model, null=True, on_delete=models.CASCADE, related_name="example_images")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    error_message = models.TextField(blank=True, default="")
    # The bytes as sent, until the worker has processed them; unique to this row.
    staging_key = models.CharField(max_length=255, blank=True, default="")
    storage_key = models.CharField(max_length=255, blank=True, default="")
    # WebP thumbnails: a card-sized one and a large one for the lightbox, plus a
    # tiny one that is all a viewer gets of an image above their level.
    thumb_key = models.CharField(max_length=255, blank=True, default="")
    large_key = models.CharField(max_length=255, blank=True, default="")
    blur_key = models.CharField(max_length=255, blank=True, default="")
    content_type = models.CharField(max_length=32)
    width = models.IntegerField()
    height = models.IntegerField()
    size_bytes = models.IntegerField()
    sha256 = models.CharField(max_length=64, blank=True, default="")
    # A1111's `parameters` text (prompt, negative prompt, sampler, seed…), as the creator's file had it,
    # or written from a ComfyUI prompt graph.
    parameters = models.TextField(blank=True, default="")
    # The same, parsed: prompt, negativePrompt, seed, steps, sampler, cfgScale, size, modelHash, model.
    meta = models.JSONField(default=dict, blank=True)
    nsfw_level = models.PositiveSmallIntegerField(default=1)
    is_cover = models.BooleanField(default=False)
    position = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    moderation = moderation_field()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model"], condition=models.Q(is_cover=True), name="exampleimage_one_cover"),
        ]
        indexes = [models.Index(fields=["model", "status", "nsfw_level"], name="exampleimage_model_cover")]

    def __str__(self) -> str:
        return f"image {self.pk} of {self.version_id}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY
