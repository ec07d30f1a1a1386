"""Reports, and the audit log of what moderators did.

A report names its target generically (a kind and an id as text), so a new
kind of content (as comments and reviews were) becomes reportable by adding a
kind and a resolver in `targets.py`; the migration here only changes choices. The audit log is
append-only: a ModerationAction row is written by every moderator action in
the same transaction as the change it records, and never edited.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class TargetKind(models.TextChoices):
    MODEL = "model", "Model"
    VERSION = "version", "Model version"
    IMAGE = "image", "Example image"
    PREVIEW = "preview", "Preview image"
    RECIPE = "recipe", "Recipe"
    USER = "user", "User"
    COMMENT = "comment", "Comment"
    REVIEW = "review", "Review"
    # Not reportable: files the upload scanner quarantined, acted on from the queue.
    UPLOAD = "upload", "Quarantined upload"


class Report(models.Model):
    class Reason(models.TextChoices):
        ILLEGAL = "illegal", "Illegal content"
        NO_CONSENT = "no_consent", "A real person without their consent"
        STOLEN = "stolen", "A stolen upload (copyright)"
        IMPERSONATION = "impersonation", "Impersonation"
        WRONG_NSFW = "wrong_nsfw", "Wrong NSFW level"
        MALWARE = "malware", "Malware"
        SPAM = "spam", "Spam"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"  # a moderator acted on the target
        DISMISSED = "dismissed"

    # Null for a copyright claim sent through the public form by someone without an account.
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports_made"
    )
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    target_id = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    details = models.TextField(blank=True, default="")
    # Copyright claims from outside: who claims, and how to reach them.
    claimant_name = models.CharField(max_length=200, blank=True, default="")
    claimant_email = models.EmailField(blank=True, default="")
    claimed_url = models.CharField(max_length=2000, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.ForeignKey(
        "ModerationAction", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("moderate", "Can act on reports and moderate content")]
        constraints = [
            # One open report per user and object: reporting again changes nothing.
            models.UniqueConstraint(
                fields=["reporter", "target_kind", "target_id"],
                condition=Q(status="open"),
                name="report_open_once_per_reporter",
            )
        ]
        indexes = [models.Index(fields=["status", "target_kind", "target_id"], name="report_queue")]

    def __str__(self) -> str:
        return f"report {self.pk}: {self.reason} on {self.target_kind} {self.target_id}"


class ModerationAction(models.Model):
    class Action(models.TextChoices):
        DISMISS = "dismiss", "Dismissed the reports"
        NSFW_LEVEL = "nsfw_level", "Changed the NSFW level"
        HIDE = "hide", "Hid"
        TAKEDOWN = "takedown", "Took down"
        RESTORE = "restore", "Restored"
        SUSPEND = "suspend", "Suspended the user"
        RELEASE = "release", "Released from quarantine"
        DELETE = "delete", "Deleted from quarantine"

    # Null only when the acting account was deleted later; the row stays.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    target_id = models.CharField(max_length=64)
    # Kept as text too, so the log still reads when the object is gone.
    target_label = models.CharField(max_length=300, blank=True, default="")
    target_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="moderation_actions"
    )
    reason = models.TextField()
    # What changed: {"from": …, "to": …} for states and NSFW levels.
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_kind", "target_id", "-created_at"], name="modaction_target")]

    def __str__(self) -> str:
        return f"{self.action} {self.target_kind} {self.target_id} by {self.actor_id}"
