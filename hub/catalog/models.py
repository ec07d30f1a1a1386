from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from hub.moderation.states import moderation_field


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Model(models.Model):
    class Type(models.TextChoices):
        CHECKPOINT = "Checkpoint"
        LORA = "LORA"
        LOCON = "LoCon"
        LOHA = "LoHa"
        TEXTUAL_INVERSION = "TextualInversion"
        VAE = "VAE"
        CONTROLNET = "Controlnet"
        OTHER = "Other"

    class CheckpointType(models.TextChoices):
        TRAINED = "Trained"
        MERGE = "Merge"

    class Visibility(models.TextChoices):
        PUBLIC = "public"
        UNLISTED = "unlisted"
        PRIVATE = "private"

    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"
        ARCHIVED = "archived"

    class CommercialUse(models.TextChoices):
        # Civitai's allowCommercialUse values.
        IMAGE = "Image"
        RENT_CIVIT = "RentCivit"
        RENT = "Rent"
        SELL = "Sell"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    type = models.CharField(max_length=32, choices=Type.choices, default=Type.CHECKPOINT)
    checkpoint_type = models.CharField(max_length=16, choices=CheckpointType.choices, blank=True, default="")
    description = models.TextField(blank=True, help_text="Markdown")
    tags = models.ManyToManyField(Tag, blank=True, related_name="models")
    nsfw = models.BooleanField(default=False)
    # hub.catalog.nsfw.NsfwLevel; `nsfw` is kept equal to `nsfw_level > PG` for older clients.
    nsfw_level = models.PositiveSmallIntegerField(default=1)
    allow_no_credit = models.BooleanField(default=True)
    allow_commercial_use = models.JSONField(default=list, blank=True)
    allow_derivatives = models.BooleanField(default=True)
    allow_different_license = models.BooleanField(default=True)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    download_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # Set only by hub.moderation's services (hidden: owner only; removed: taken down).
    moderation = moderation_field()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="model_owner_slug_unique")]
        indexes = [
            models.Index(fields=["-published_at", "-id"], name="model_newest"),
            models.Index(fields=["-download_count", "-id"], name="model_most_downloaded"),
            models.Index(fields=["status", "visibility"], name="model_listing"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    class BaseModel(models.TextChoices):
        # Labels spelled out: Django would derive "Sd 1 5" from the member names.
        # Pages show the names the API uses.
        SD_1_5 = "SD 1.5", "SD 1.5"
        SD_2_1 = "SD 2.1", "SD 2.1"
        SDXL_1_0 = "SDXL 1.0", "SDXL 1.0"
        PONY = "Pony", "Pony"
        ILLUSTRIOUS = "Illustrious", "Illustrious"
        FLUX_1_D = "Flux.1 D", "Flux.1 D"
        FLUX_1_S = "Flux.1 S", "Flux.1 S"
        SD_3_5 = "SD 3.5", "SD 3.5"
        OTHER = "Other", "Other"

    class Status(models.TextChoices):
        DRAFT = "draft"
        PUBLISHED = "published"

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    base_model = models.CharField(max_length=32, choices=BaseModel.choices, default=BaseModel.SD_1_5)
    trained_words = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    download_count = models.BigIntegerField(default=0)
    # Another creator's published version whose file this one re-uploads
    # (hub.catalog.licences): credited and linked on the page.
    reupload_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reuploads"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    moderation = moderation_field()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="version_model_name_unique")]

    def __str__(self) -> str:
        return f"{self.model.name} {self.name}"


class Download(models.Model):
    """One row per served download.

    Appending rows never contends on a hot counter row; `downloads_rollup`
    folds them into the denormalised counts on a schedule.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="downloads")
    file_id = models.BigIntegerField(null=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Set explicitly when events are written in bulk after the fact.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)


class DownloadRollup(models.Model):
    """Single row holding the highest Download id already folded into counts."""

    last_download_id = models.BigIntegerField(default=0)
