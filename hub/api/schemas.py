"""OpenAPI descriptions of the v1 response bodies.

These serializers only document shapes for drf-spectacular: the views build
their bodies with plain functions (hub/catalog/api_serialize.py) because DRF
serializers cost several times the SQL itself on a 100-model page.
"""
from __future__ import annotations

from rest_framework import serializers


class ErrorOut(serializers.Serializer):
    error = serializers.CharField(help_text="Human-readable message")
    code = serializers.CharField(help_text="Machine-readable code, e.g. not_found, rate_limited")
    status = serializers.IntegerField()
    details = serializers.JSONField(required=False)


class PageMetadataOut(serializers.Serializer):
    nextCursor = serializers.CharField(allow_null=True, help_text="Opaque; pass as ?cursor= for the next page")
    nextPage = serializers.URLField(allow_null=True, help_text="Absolute URL of the next page, or null on the last")


class HashesOut(serializers.Serializer):
    AutoV1 = serializers.CharField(required=False, help_text="Absent for files under 2 MiB")
    AutoV2 = serializers.CharField()
    SHA256 = serializers.CharField()
    CRC32 = serializers.CharField()
    BLAKE3 = serializers.CharField()
    AutoV3 = serializers.CharField(required=False)


class FileMetadataOut(serializers.Serializer):
    fp = serializers.ChoiceField(["fp16", "bf16", "fp32", "fp8", "mixed"], allow_null=True)
    format = serializers.ChoiceField(["SafeTensor", "PickleTensor", "Diffusers", "Other"])


class FileOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    sizeKB = serializers.FloatField()
    type = serializers.CharField(help_text="Always Model")
    metadata = FileMetadataOut()
    pickleScanResult = serializers.CharField(help_text="Pending, Success, Danger or Error")
    pickleScanMessage = serializers.CharField(allow_null=True)
    virusScanResult = serializers.CharField(
        allow_null=True, help_text="Pending, Success, Danger or Error; null when the hub has no virus scanner")
    hashes = HashesOut(help_text="Uppercase hex, as Civitai sends it")
    primary = serializers.BooleanField()
    downloadUrl = serializers.URLField()


class StatsOut(serializers.Serializer):
    downloadCount = serializers.IntegerField()
    thumbsUpCount = serializers.IntegerField(help_text="Reviews that recommend")
    thumbsDownCount = serializers.IntegerField(help_text="Reviews that do not recommend")
    rating = serializers.FloatField(help_text="0–5, from the recommend share (0 with no reviews)")
    ratingCount = serializers.IntegerField(help_text="Number of reviews")
    commentCount = serializers.IntegerField()
    favoriteCount = serializers.IntegerField()


class VersionOut(serializers.Serializer):
    id = serializers.IntegerField()
    modelId = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    baseModel = serializers.CharField()
    trainedWords = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(["Published", "Draft"], help_text="Drafts are shown to their owner only")
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    publishedAt = serializers.DateTimeField(allow_null=True)
    stats = StatsOut()
    files = FileOut(many=True)
    downloadUrl = serializers.URLField()


class CreatorRefOut(serializers.Serializer):
    username = serializers.CharField()


class HfRefOut(serializers.Serializer):
    repoId = serializers.CharField(
        help_text="`{username}/{slug}`: the repo id `huggingface_hub` takes with HF_ENDPOINT set to this hub")


class VersionModelOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    nsfw = serializers.BooleanField()
    mode = serializers.CharField(allow_null=True, help_text="Archived, or null")
    visibility = serializers.ChoiceField(["public", "unlisted", "private"])
    creator = CreatorRefOut()
    hf = HfRefOut()


class VersionDetailOut(VersionOut):
    model = VersionModelOut()


class CoverOut(serializers.Serializer):
    kind = serializers.ChoiceField(["image", "preview"], help_text="an example image or a preview grid cell")
    id = serializers.IntegerField()
    url = serializers.CharField(help_text="thumbnail URL (WebP)")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)


class ModelOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(help_text="Markdown")
    type = serializers.CharField()
    checkpointType = serializers.CharField(allow_null=True, help_text="Trained or Merge")
    nsfw = serializers.BooleanField()
    nsfwLevel = serializers.ChoiceField([1, 2, 4, 8], help_text="1 PG, 2 PG-13, 4 R, 8 X")
    cover = CoverOut(allow_null=True, help_text="never above the caller's NSFW level; null if none may be shown")
    allowNoCredit = serializers.BooleanField()
    allowCommercialUse = serializers.ListField(child=serializers.CharField())
    allowDerivatives = serializers.BooleanField()
    allowDifferentLicense = serializers.BooleanField()
    visibility = serializers.ChoiceField(["public", "unlisted", "private"])
    mode = serializers.CharField(allow_null=True, help_text="Archived, or null")
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    publishedAt = serializers.DateTimeField(allow_null=True)
    stats = StatsOut()
    creator = CreatorRefOut()
    hf = HfRefOut()
    tags = serializers.ListField(child=serializers.CharField())
    modelVersions = VersionOut(many=True)


class ModelListOut(serializers.Serializer):
    items = ModelOut(many=True)
    metadata = PageMetadataOut()


class LatestVersionOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    publishedAt = serializers.DateTimeField(allow_null=True)
    downloadUrl = serializers.URLField()


class ByHashItemOut(serializers.Serializer):
    hash = serializers.CharField(help_text="The requested hash, uppercase")
    hashType = serializers.CharField(allow_null=True, help_text="Which hash kind matched (SHA256, AutoV2, …)")
    modelVersion = VersionDetailOut(allow_null=True, help_text="null when no visible file has this hash")
    latestVersion = LatestVersionOut(allow_null=True, help_text="The model's newest published version")
    newerVersionAvailable = serializers.BooleanField()


class ByHashBulkOut(serializers.Serializer):
    items = ByHashItemOut(many=True)


class TagOut(serializers.Serializer):
    name = serializers.CharField()
    modelCount = serializers.IntegerField(help_text="Public published models with this tag")
    link = serializers.URLField()


class TagListOut(serializers.Serializer):
    items = TagOut(many=True)
    metadata = PageMetadataOut()


class CreatorOut(serializers.Serializer):
    username = serializers.CharField()
    modelCount = serializers.IntegerField(help_text="Public published models")
    link = serializers.URLField()


class CreatorListOut(serializers.Serializer):
    items = CreatorOut(many=True)
    metadata = PageMetadataOut()


class ApiKeyOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="Public start of the key, e.g. mw_1a2b3c4d5e6f")
    scopes = serializers.ListField(child=serializers.ChoiceField(["read", "download", "upload", "run"]))
    createdAt = serializers.DateTimeField()
    lastUsedAt = serializers.DateTimeField(allow_null=True)
    revokedAt = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField()


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.CharField(help_text="The plaintext key. Shown in this response only; store it now.")


class ApiKeyListOut(serializers.Serializer):
    items = ApiKeyOut(many=True)


class ApiKeyCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(["read", "download", "upload", "run"]), required=False,
        help_text="Default: read and download. A key may only create keys within its own scopes.",
    )


class MeOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    authentication = serializers.ChoiceField(["session", "apiKey"])
    scopes = serializers.ListField(child=serializers.CharField())
    apiKey = ApiKeyOut(allow_null=True)
