"""Recipes, their immutable versions, merge jobs and the lineage of merge outputs.

A RecipeVersion is never edited: a new document makes version n+1 whose
`parent` is the version it was edited from (for a fork's first version, the
version it was forked from). A MergeJob row is the truth about a merge: tasks
claim it with conditional updates, and at most one job per merge key can be
active at a time (a partial unique index), so concurrent "run" requests for the
same merge share one job. A merge key that has produced an output is cached in
MergeOutput and never merged again.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from hub.catalog.models import ModelVersion
from hub.moderation.states import moderation_field


class Recipe(models.Model):
    class Visibility(models.TextChoices):
        PUBLIC = "public"
        UNLISTED = "unlisted"
        PRIVATE = "private"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recipes")
    slug = models.SlugField(max_length=120)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    forked_from = models.ForeignKey(
        "RecipeVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    # Copied from the latest version so lists can filter without a join.
    architecture = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    moderation = moderation_field()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="recipe_owner_slug_unique")]
        indexes = [models.Index(fields=["visibility", "-updated_at"], name="recipe_listing")]

    def __str__(self) -> str:
        return self.title


class ImmutableError(RuntimeError):
    pass


class RecipeVersion(models.Model):
    recipe = models.ForeignKey(Recipe, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # The validated document with defaults filled (the engine's normal form).
    document = models.JSONField()
    # The text as its author wrote it (YAML or JSON), shown in the editor.
    source = models.TextField(blank=True, default="")
    recipe_hash = models.CharField(max_length=64, db_index=True)
    message = models.CharField(max_length=500, blank=True, default="")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recipe_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["recipe", "number"], name="recipe_version_number_unique")]

    def __str__(self) -> str:
        return f"{self.recipe.title} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ImmutableError("a recipe version is immutable; create a new version instead")
        super().save(*args, **kwargs)

    @property
    def architecture(self) -> str:
        return str(self.document.get("architecture", ""))


class MergeJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Phase(models.TextChoices):
        """What a running job is doing; the tensor counters belong to MERGING."""

        FETCHING = "fetching"
        MERGING = "merging"
        STORING = "storing"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    recipe_version = models.ForeignKey(RecipeVersion, on_delete=models.PROTECT, related_name="jobs")
    merge_key = models.CharField(max_length=64, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="merge_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Inputs resolved when the run was requested: name -> {sha256, size, storage_key, model_version}.
    inputs = models.JSONField(default=dict)
    engine_version = models.CharField(max_length=32)
    progress = models.FloatField(default=0.0)
    # Written by the worker at each step of a run; read only while status is running.
    phase = models.CharField(max_length=16, choices=Phase.choices, blank=True, default="")
    tensors_done = models.PositiveIntegerField(default=0)
    tensors_total = models.PositiveIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    output = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # When its task message was last sent (the sweeper resends lost ones).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    engine_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merge_key"],
                condition=Q(status__in=["queued", "running"]),
                name="mergejob_one_active_per_key",
            )
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="mergejob_sweep")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


class MergeOutput(models.Model):
    """A model version produced by a merge: its recipe version and merge key.

    Several outputs may share a merge key (one per owner, when a cached result
    is re-published for a user who cannot see the first one); they share one
    content-addressed blob.
    """

    model_version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="merge_output")
    recipe_version = models.ForeignKey(RecipeVersion, on_delete=models.PROTECT, related_name="outputs")
    merge_key = models.CharField(max_length=64, db_index=True)
    job = models.ForeignKey(MergeJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="outputs")
    sha256 = models.CharField(max_length=64)
    engine_version = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class LineageEdge(models.Model):
    """One input of a merge output: `input` (a catalogue version, when the hub has it) fed `output`."""

    output = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="lineage_inputs")
    input = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="lineage_outputs"
    )
    input_name = models.CharField(max_length=64)
    input_sha256 = models.CharField(max_length=64)
    recipe_version = models.ForeignKey(RecipeVersion, on_delete=models.PROTECT, related_name="lineage_edges")

    class Meta:
        ordering = ["output_id", "input_name"]
        constraints = [models.UniqueConstraint(fields=["output", "input_name"], name="lineage_output_input_unique")]
