"""Render jobs and the preview grids they produce.

A RenderJob row is the truth about a render: the worker claims it with a
conditional update, so a redelivered message is harmless, and at most one
job per (model version, render key) is active at a time. The render key is a
digest of everything that decides the pixels (weights, base config, spec,
renderer version); grids are stored under it, so a rerun writes the same
keys and a grid that exists is never rendered again.

Grid and image rows are written in one transaction after every file is
stored: a failed render leaves no rows, and its files are removed.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from hub.catalog.models import ModelVersion
from hub.moderation.states import moderation_field


class RenderJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        API = "api"
        PAGE = "page"
        MERGE = "merge"
        DEMO = "demo"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="render_jobs")
    # A LoRA's previews are rendered on this checkpoint.
    base_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Alpha sweeps: the second checkpoint (alpha = its weight).
    secondary_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="render_jobs")
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.API)
    spec = models.JSONField(default=dict)
    # Files resolved when the job was requested: role -> {sha256, storage_key, name, autov2, model_version}.
    inputs = models.JSONField(default=dict)
    arch = models.CharField(max_length=8, blank=True, default="")
    base_config = models.CharField(max_length=32, blank=True, default="")
    render_key = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    images_done = models.PositiveIntegerField(default=0)
    images_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, default="")
    # `error` is the technical detail (logs, admin); `reason` is the plain sentence the owner sees.
    error = models.TextField(blank=True, default="")
    reason = models.TextField(blank=True, default="")
    # When the job succeeds and the version has no example images yet, its images become them.
    attach_examples = models.BooleanField(default=False)
    grid = models.ForeignKey("PreviewGrid", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    render_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "render_key"],
                condition=Q(status__in=["queued", "running"]),
                name="renderjob_one_active_per_key",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="renderjob_sweep")]

    def __str__(self) -> str:
        return f"render job {self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        return self.images_done / self.images_total if self.images_total else 0.0

    @property
    def is_finished(self) -> bool:
        return self.status not in self.ACTIVE


class PreviewGrid(models.Model):
    class Layout(models.TextChoices):
        SEEDS = "seeds"  # rows: prompts, columns: seeds
        ALPHA = "alpha"  # rows: prompt/seed pairs, columns: alphas

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="preview_grids")
    render_key = models.CharField(max_length=64)
    layout = models.CharField(max_length=8, choices=Layout.choices, default=Layout.SEEDS)
    spec = models.JSONField(default=dict)
    row_labels = models.JSONField(default=list)
    col_labels = models.JSONField(default=list)
    image_key = models.CharField(max_length=255)
    thumb_key = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    checkpoint_sha256 = models.CharField(max_length=64)
    lora_sha256 = models.CharField(max_length=64, blank=True, default="")
    secondary_sha256 = models.CharField(max_length=64, blank=True, default="")
    base_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    secondary_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # A reported preview image is moderated with its grid, which shows the same pixels.
    moderation = moderation_field()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "render_key"], name="previewgrid_version_key_unique")
        ]

    def __str__(self) -> str:
        return f"preview grid {self.pk} of version {self.model_version_id}"

    @property
    def prompts(self) -> list[str]:
        return list(self.spec.get("prompts", []))

    @property
    def seeds(self) -> list[int]:
        return list(self.spec.get("seeds", []))


class PreviewImage(models.Model):
    grid = models.ForeignKey(PreviewGrid, on_delete=models.CASCADE, related_name="images")
    row = models.PositiveSmallIntegerField()
    col = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    negative = models.TextField(blank=True, default="")
    seed = models.BigIntegerField()
    alpha = models.FloatField(null=True, blank=True)
    # The A1111 infotext also stored in the PNG's `parameters` chunk.
    parameters = models.TextField()
    image_key = models.CharField(max_length=255)
    thumb_key = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["grid_id", "row", "col"]
        constraints = [models.UniqueConstraint(fields=["grid", "row", "col"], name="previewimage_cell_unique")]


class LoraPreviewBase(models.Model):
    """The checkpoint a LoRA of a given base model is previewed on when the requester names none."""

    base_model = models.CharField(max_length=32, choices=ModelVersion.BaseModel.choices, unique=True)
    checkpoint = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"{self.base_model} -> version {self.checkpoint_id}"
