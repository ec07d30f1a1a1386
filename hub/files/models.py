from __future__ import annotations

from django.db import models

from hub.catalog.models import ModelVersion


class ModelFile(models.Model):
    class Format(models.TextChoices):
        # Civitai's metadata.format values.
        SAFETENSOR = "SafeTensor"
        PICKLE_TENSOR = "PickleTensor"
        DIFFUSERS = "Diffusers"
        OTHER = "Other"

    class Precision(models.TextChoices):
        FP16 = "fp16"
        BF16 = "bf16"
        FP32 = "fp32"
        FP8 = "fp8"
        MIXED = "mixed"
        UNKNOWN = ""

    class ScanStatus(models.TextChoices):
        PENDING = "Pending"
        SUCCESS = "Success"
        DANGER = "Danger"
        ERROR = "Error"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    # Content-addressed: blobs/sha256/<2 hex>/<64 hex>. Several files may share it.
    storage_key = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField()
    format = models.CharField(max_length=16, choices=Format.choices)
    precision = models.CharField(max_length=8, choices=Precision.choices, blank=True, default="")
    primary = models.BooleanField(default=False)
    sha256 = models.CharField(max_length=64, db_index=True)
    autov1 = models.CharField(max_length=8, blank=True, default="", db_index=True)
    autov2 = models.CharField(max_length=10, db_index=True)
    autov3 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    crc32 = models.CharField(max_length=8, db_index=True)
    blake3 = models.CharField(max_length=64, db_index=True)
    pickle_scan_status = models.CharField(max_length=16, choices=ScanStatus.choices, default=ScanStatus.PENDING)
    pickle_scan_message = models.TextField(blank=True)
    # Blank: not scanned, because no virus scanner (clamd) is configured; then
    # nothing shows a status. With one, Pending until the scan task settles it.
    virus_scan_status = models.CharField(max_length=16, choices=ScanStatus.choices, blank=True, default="")
    virus_scan_message = models.CharField(max_length=255, blank=True, default="")
    # Summary of the safetensors header: tensor count, dtypes, detected
    # architecture and the (attacker-controlled, escaped on output) metadata.
    header_summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-primary", "id"]
        constraints = [models.UniqueConstraint(fields=["version", "name"], name="file_version_name_unique")]

    def __str__(self) -> str:
        return self.name
