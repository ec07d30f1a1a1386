from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    bio = models.TextField(blank=True)
    # The highest NSFW level (hub.catalog.nsfw.NsfwLevel) this viewer wants to see; PG by default.
    browsing_level = models.PositiveSmallIntegerField(default=1)
    # Images above browsing_level are blurred; with this set, a click reveals one.
    reveal_blurred = models.BooleanField(default=False)

    class Meta:
        db_table = "accounts_user"


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        READ = "read"
        DOWNLOAD = "download"
        UPLOAD = "upload"
        RUN = "run"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The prefix is public (shown in lists, used for lookup); only a hash of the
    # secret part is stored, so a database leak does not leak usable keys.
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (mw_{self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
