"""Community layer: reviews, comments, follows, notifications and favourites.

Counts shown on lists (thumbs up/down, Wilson score, comments, favourites) are
denormalised into `ModelStats` / `VersionStats`, one row per model or version,
kept up to date by the services in the same transaction as the write. A list
page reads them with a LEFT JOIN, so adding them costs no extra query.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from hub.moderation.states import moderation_field


class ModelStats(models.Model):
    model = models.OneToOneField("catalog.Model", primary_key=True, on_delete=models.CASCADE,
                                 related_name="community_stats")
    thumbs_up = models.IntegerField(default=0)
    thumbs_down = models.IntegerField(default=0)
    # Wilson lower bound (95%) of the recommend share: what "Highest Rated" orders by.
    rating_score = models.FloatField(default=0.0)
    comment_count = models.IntegerField(default=0)
    favorite_count = models.IntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-rating_score", "-model"], name="modelstats_rated")]


class VersionStats(models.Model):
    version = models.OneToOneField("catalog.ModelVersion", primary_key=True, on_delete=models.CASCADE,
                                   related_name="community_stats")
    thumbs_up = models.IntegerField(default=0)
    thumbs_down = models.IntegerField(default=0)
    rating_score = models.FloatField(default=0.0)
    comment_count = models.IntegerField(default=0)
    favorite_count = models.IntegerField(default=0)


class Review(models.Model):
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews")
    version = models.ForeignKey("catalog.ModelVersion", on_delete=models.CASCADE, related_name="reviews")
    model = models.ForeignKey("catalog.Model", on_delete=models.CASCADE, related_name="reviews")
    recommended = models.BooleanField()
    text = models.TextField(blank=True, default="", help_text="Markdown")
    owner_reply = models.TextField(blank=True, default="")
    owner_replied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set by moderators only (hub.moderation); a moderated review is left out of the counters.
    moderation = moderation_field()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["author", "version"], name="review_one_per_version")]
        indexes = [models.Index(fields=["model", "-created_at"], name="review_by_model")]


class Comment(models.Model):
    """A comment on a model (optionally naming one of its versions) or on a recipe (optionally a version).

    Exactly one of `model` / `recipe` is set. Replies point at a top-level
    comment (`parent`); a reply to a reply is attached to the same parent.
    """

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    model = models.ForeignKey("catalog.Model", null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    version = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="comments")
    recipe = models.ForeignKey("registry.Recipe", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="comments")
    recipe_version = models.ForeignKey("registry.RecipeVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="comments")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set by moderators only (hub.moderation); a moderated comment is left out of the counters.
    moderation = moderation_field()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(model__isnull=False) & Q(recipe__isnull=True)) | (Q(model__isnull=True) & Q(recipe__isnull=False)),
                name="comment_one_target",
            )
        ]
        indexes = [
            models.Index(fields=["model", "created_at"], name="comment_by_model"),
            models.Index(fields=["recipe", "created_at"], name="comment_by_recipe"),
        ]


class Follow(models.Model):
    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    creator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["creator", "follower"], name="follow_unique"),
            models.CheckConstraint(condition=~Q(follower=models.F("creator")), name="follow_not_self"),
        ]
        indexes = [models.Index(fields=["follower", "creator"], name="follow_by_follower")]


class Notification(models.Model):
    class Kind(models.TextChoices):
        NEW_VERSION = "new_version", "New version from a creator you follow"
        REVIEW = "review", "Review of your model"
        COMMENT = "comment", "Comment on your model or recipe"
        REPLY = "reply", "Reply to you"
        FORK = "fork", "Fork of your recipe"
        RUN = "run", "Run of your recipe by someone else"
        JOB_SUCCEEDED = "job_succeeded", "Your job finished"
        JOB_FAILED = "job_failed", "Your job failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    text = models.CharField(max_length=300)
    url = models.CharField(max_length=300, blank=True, default="")
    # What the notification is about; a notification whose object the user can
    # no longer see is hidden (see selectors.notifications_for).
    version = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    model = models.ForeignKey("catalog.Model", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    recipe = models.ForeignKey("registry.Recipe", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # The comment or review it quotes: hidden while a moderator has hidden or taken that down.
    comment = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-id"], name="notification_inbox"),
            models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="notification_unread"),
        ]
        constraints = [
            # Makes the follower fan-out idempotent: a redelivered task inserts nothing twice.
            models.UniqueConstraint(fields=["user", "version"], condition=Q(kind="new_version"),
                                    name="notification_new_version_once"),
        ]


class NotificationMute(models.Model):
    """A kind of notification the user turned off (every kind is on by default)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_mutes")
    kind = models.CharField(max_length=32, choices=Notification.Kind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_mute_unique")]


class Collection(models.Model):
    """A named, public or private list of model versions and recipes (the default list is "Favourites")."""

    class Visibility(models.TextChoices):
        PUBLIC = "public"
        PRIVATE = "private"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(max_length=100)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="collection_owner_name_unique")]


class Favorite(models.Model):
    """An item in the user's Favourites (collection NULL) or in one of their named collections."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites")
    collection = models.ForeignKey(Collection, null=True, blank=True, on_delete=models.CASCADE, related_name="items")
    version = models.ForeignKey("catalog.ModelVersion", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="favorites")
    recipe = models.ForeignKey("registry.Recipe", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="favorites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(version__isnull=False) & Q(recipe__isnull=True)) | (Q(version__isnull=True) & Q(recipe__isnull=False)),
                name="favorite_one_target",
            ),
            models.UniqueConstraint(fields=["user", "version"], name="favorite_version_unique",
                                    condition=Q(version__isnull=False, collection__isnull=True)),
            models.UniqueConstraint(fields=["user", "recipe"], name="favorite_recipe_unique",
                                    condition=Q(recipe__isnull=False, collection__isnull=True)),
            models.UniqueConstraint(fields=["collection", "version"], name="collection_version_unique",
                                    condition=Q(version__isnull=False)),
            models.UniqueConstraint(fields=["collection", "recipe"], name="collection_recipe_unique",
                                    condition=Q(recipe__isnull=False)),
        ]
