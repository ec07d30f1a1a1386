"""Writes of the community layer: reviews, comments, follows, favourites, notifications.

1. Every write checks the abuse limits first (per-user counters in the shared
   cache, see `limits`), then the text (length, links from new accounts).
2. The caller passes objects it obtained through a visibility selector
   (`version_get_for`, `recipe_get_for`, …); the services add the rules of
   their own (no review of your own model, one review per version, …).
3. Counters shown on lists (`ModelStats`, `VersionStats`) change in the same
   transaction as the row they count, under a row lock, so they never drift.
4. A notification to one person is one row written with the change. A
   notification to many (a new version for every follower) is never written
   in the request: a Celery task, enqueued by name after commit, inserts them
   in batches (`notifications_fan_out_new_version`).
"""
from __future__ import annotations

import logging

import math
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from hub.community import limits
from hub.community.models import (
    Collection,
    Comment,
    Favorite,
    Follow,
    ModelStats,
    Notification,
    NotificationMute,
    Review,
    VersionStats,
)
from hub.moderation.states import ModerationState

REVIEW_MAX_CHARS = 5000
COMMENT_MAX_CHARS = 5000
REPLY_MAX_CHARS = 2000
FAN_OUT_BATCH = 5000
NEW_VERSION_TASK = "workers.tasks.community.notifications_fan_out_new_version"

_LINK = re.compile(r"(https?://|www\.|\]\(|<a\s|mailto:)", re.IGNORECASE)


class CommunityError(ValueError):
    """A refused community write; the message is shown to the user."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid", field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field


def _edit_window() -> timedelta:
    return timedelta(seconds=getattr(settings, "COMMENT_EDIT_WINDOW", 3600))


def _clean_text(text: str | None, *, user, max_chars: int, field: str, required: bool) -> str:
    text = (text or "").strip()
    if not text:
        if required:
            raise CommunityError(f"{field} must not be empty", field=field)
        return ""
    if len(text) > max_chars:
        raise CommunityError(f"{field} is {len(text)} characters long; at most {max_chars} are allowed", field=field)
    joined = getattr(user, "date_joined", None)
    if _LINK.search(text) and joined is not None and timezone.now() - joined < timedelta(days=1):
        # Link spam comes from fresh accounts: links wait until the account is a day old.
        raise CommunityError("accounts younger than a day cannot post links yet; remove the link or try tomorrow",
                             field=field, code="links_not_allowed_yet")
    return text


def wilson_lower_bound(up: int, down: int, z: float = 1.96) -> float:
    """Lower bound of the 95% Wilson interval of up/(up+down): one vote never outranks many."""
    n = up + down
    if n == 0:
        return 0.0
    p = up / n
    return (p + z * z / (2 * n) - z * math.sqrt((p * (1 - p) + z * z / (4 * n)) / n)) / (1 + z * z / n)


def _stats_change(*, model_id: int, version_id: int | None, up: int = 0, down: int = 0, comments: int = 0,
                  favorites: int = 0) -> None:
    """Apply deltas to the model's (and version's) counters under a row lock; recompute the Wilson score."""
    targets: list[tuple[type, dict]] = [(ModelStats, {"model_id": model_id})]
    if version_id is not None:
        targets.append((VersionStats, {"version_id": version_id}))
    for cls, key in targets:
        cls.objects.get_or_create(**key)
        stats = cls.objects.select_for_update().get(**key)
        stats.thumbs_up += up
        stats.thumbs_down += down
        stats.comment_count += comments
        stats.favorite_count += favorites
        stats.rating_score = wilson_lower_bound(stats.thumbs_up, stats.thumbs_down)
        stats.save()


# --- notifications ----------------------------------------------------------------------


def _muted(user_id: int, kind: str) -> bool:
    return NotificationMute.objects.filter(user_id=user_id, kind=kind).exists()


def notification_send(*, user_id: int, kind: str, text: str, url: str = "", actor=None, model_id=None,
                      version_id=None, recipe_id=None, comment_id=None, review_id=None) -> Notification | None:
    """One notification to one user, unless they muted the kind or caused it themselves."""
    if actor is not None and actor.pk == user_id:
        return None
    if _muted(user_id, kind):
        return None
    return Notification.objects.create(
        user_id=user_id, kind=kind, text=text[:300], url=url[:300], actor=actor, model_id=model_id,
        version_id=version_id, recipe_id=recipe_id, comment_id=comment_id, review_id=review_id,
    )


def version_published_announce(*, version_id: int) -> None:
    """Enqueue the follower fan-out for a newly published version, after the transaction commits.

    Enqueued by name: hub/ never imports workers/. The request pays for one
    message whatever the number of followers.
    """
    from hub.faults import BrokerUnavailable
    from hub.tasks_enqueue import task_send

    def send() -> None:
        # The version is published either way; only its followers' notifications wait on the broker.
        try:
            task_send(NEW_VERSION_TASK, args=[version_id])
        except BrokerUnavailable:
            logging.getLogger(__name__).warning("version %s: follower notifications not sent (broker down)",
                                                version_id)

    transaction.on_commit(send)


def notifications_fan_out_new_version(*, version_id: int, batch_size: int = FAN_OUT_BATCH) -> int:
    """Tell every follower of a version's creator about it; returns how many followers it covered.

    Followers are read in id order in batches, each batch inserted with one
    bulk INSERT in its own transaction. A partial unique index makes the
    insert idempotent, so a redelivered task (or a second publish) adds nothing.
    Nothing is sent for a version that is not public, published and on a
    published model: followers learn only of what they can see.
    """
    from hub.catalog.models import Model, ModelVersion

    version = (
        ModelVersion.objects.select_related("model", "model__owner")
        .filter(pk=version_id, status=ModelVersion.Status.PUBLISHED, model__status=Model.Status.PUBLISHED,
                model__visibility=Model.Visibility.PUBLIC)
        .first()
    )
    if version is None:
        return 0
    model, creator = version.model, version.model.owner
    text = f"{creator.username} published {model.name} {version.name}"
    url = f"/models/{model.pk}/{model.slug}/?modelVersionId={version.pk}"
    kind = Notification.Kind.NEW_VERSION
    muted = NotificationMute.objects.filter(user_id=OuterRef("follower_id"), kind=kind)
    followers = (
        Follow.objects.filter(creator_id=creator.pk).filter(~Exists(muted)).order_by("follower_id")
        .values_list("follower_id", flat=True)
    )
    created, after = 0, 0
    while True:
        ids = list(followers.filter(follower_id__gt=after)[:batch_size])
        if not ids:
            return created
        rows = [
            Notification(user_id=uid, kind=kind, actor_id=creator.pk, text=text, url=url, model_id=model.pk,
                         version_id=version.pk)
            for uid in ids
        ]
        with transaction.atomic():
            Notification.objects.bulk_create(rows, batch_size=batch_size, ignore_conflicts=True)
        created += len(rows)
        after = ids[-1]


def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark some (or, with ids=None, all) of a user's unread notifications read; returns how many changed."""
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


def notification_preferences_set(*, user, muted_kinds: list[str]) -> list[str]:
    unknown = [k for k in muted_kinds if k not in Notification.Kind.values]
    if unknown:
        raise CommunityError(f"unknown notification kind {unknown[0]!r}; known: {', '.join(Notification.Kind.values)}",
                             field="mutedKinds")
    wanted = sorted(set(muted_kinds))
    with transaction.atomic():
        NotificationMute.objects.filter(user=user).exclude(kind__in=wanted).delete()
        NotificationMute.objects.bulk_create([NotificationMute(user=user, kind=k) for k in wanted],
                                             ignore_conflicts=True)
    return wanted


def merge_job_notify(*, job_id: int) -> None:
    """Hook for the merge job code: once its final state is committed, tell the requester."""
    transaction.on_commit(lambda: _job_notify("merge", job_id))


def render_job_notify(*, job_id: int) -> None:
    """Hook for the preview render code: once its final state is committed, tell the requester."""
    transaction.on_commit(lambda: _job_notify("render", job_id))


def _job_notify(kind: str, job_id: int) -> None:
    if kind == "merge":
        from merges.registry.models import MergeJob as Job

        row = Job.objects.filter(pk=job_id).values(
            "status", "requested_by_id", "recipe_version__recipe_id", "recipe_version__recipe__title",
            "recipe_version__number", "output_id").first()
        if row is None:
            return
        what = f"Merge of {row['recipe_version__recipe__title']} v{row['recipe_version__number']}"
        url, recipe_id, version_id = f"/recipes/{row['recipe_version__recipe_id']}/", row[
            "recipe_version__recipe_id"], row["output_id"]
    else:
        from hub.previews.models import RenderJob as Job

        row = Job.objects.filter(pk=job_id).values(
            "status", "requested_by_id", "model_version_id", "model_version__name", "model_version__model__name",
            "model_version__model_id").first()
        if row is None:
            return
        what = f"Preview grid of {row['model_version__model__name']} {row['model_version__name']}"
        url = f"/models/{row['model_version__model_id']}/?modelVersionId={row['model_version_id']}"
        recipe_id, version_id = None, row["model_version_id"]
    if row["status"] not in ("succeeded", "failed"):
        return
    succeeded = row["status"] == "succeeded"
    notification_send(
        user_id=row["requested_by_id"], kind=Notification.Kind.JOB_SUCCEEDED if succeeded else Notification.Kind.JOB_FAILED,
        text=f"{what} {'finished' if succeeded else 'failed'}", url=url, recipe_id=recipe_id, version_id=version_id,
    )


def recipe_forked_notify(*, fork, source_recipe, user) -> None:
    notification_send(user_id=source_recipe.owner_id, kind=Notification.Kind.FORK, actor=user,
                      text=f"{user.username} forked your recipe {source_recipe.title}",
                      url=f"/recipes/{fork.pk}/", recipe_id=fork.pk)


def recipe_run_notify(*, recipe_id: int, user) -> None:
    """Someone other than the owner started a merge of the recipe."""
    from merges.registry.models import Recipe

    recipe = Recipe.objects.filter(pk=recipe_id).exclude(owner_id=user.pk).values("owner_id", "title").first()
    if recipe is not None:
        notification_send(user_id=recipe["owner_id"], kind=Notification.Kind.RUN, actor=user,
                          text=f"{user.username} ran your recipe {recipe['title']}", url=f"/recipes/{recipe_id}/",
                          recipe_id=recipe_id)


# --- reviews ----------------------------------------------------------------------------


def _model_url(model, version_id: int | None = None) -> str:
    url = f"/models/{model.pk}/{model.slug}/"
    return f"{url}?modelVersionId={version_id}" if version_id else url


def review_create(*, author, version, recommended: bool, text: str = "") -> Review:
    """`version` must come from `version_get_for(author, …)`: a version the author can see."""
    model = version.model
    if model.owner_id == author.pk:
        raise CommunityError("you cannot review your own model", status=403, code="own_model")
    if version.status != "published":
        raise CommunityError("only published versions can be reviewed", status=409, code="not_published")
    text = _clean_text(text, user=author, max_chars=REVIEW_MAX_CHARS, field="text", required=False)
    if Review.objects.filter(author=author, version=version).exists():
        raise CommunityError("you have already reviewed this version; edit your review instead", status=409,
                             code="already_reviewed")
    limits.hit(author, "review")
    try:
        with transaction.atomic():
            review = Review.objects.create(author=author, version=version, model=model, recommended=bool(recommended),
                                           text=text)
            _stats_change(model_id=model.pk, version_id=version.pk, up=int(bool(recommended)),
                          down=int(not recommended))
            notification_send(
                user_id=model.owner_id, kind=Notification.Kind.REVIEW, actor=author, model_id=model.pk,
                version_id=version.pk, review_id=review.pk, url=_model_url(model, version.pk),
                text=f"{author.username} {'recommends' if recommended else 'does not recommend'} "
                     f"{model.name} {version.name}",
            )
    except IntegrityError as exc:
        raise CommunityError("you have already reviewed this version; edit your review instead", status=409,
                             code="already_reviewed") from exc
    return review


def review_update(*, review: Review, user, recommended: bool | None = None, text: str | None = None) -> Review:
    if review.author_id != user.pk:
        raise CommunityError("only the author can edit a review", status=403, code="forbidden")
    with transaction.atomic():
        locked = Review.objects.select_for_update().get(pk=review.pk)
        if locked.moderation == ModerationState.REMOVED:
            raise CommunityError("this review was taken down by a moderator", status=409, code="taken_down")
        if text is not None:
            locked.text = _clean_text(text, user=user, max_chars=REVIEW_MAX_CHARS, field="text", required=False)
        if recommended is not None and bool(recommended) != locked.recommended:
            delta = 1 if recommended else -1
            if not locked.moderation:  # a moderated review is already out of the counters
                _stats_change(model_id=locked.model_id, version_id=locked.version_id, up=delta, down=-delta)
            locked.recommended = bool(recommended)
        locked.save()
    return locked


def review_delete(*, review: Review, user) -> None:
    if review.author_id != user.pk:
        raise CommunityError("only the author can delete a review", status=403, code="forbidden")
    with transaction.atomic():
        locked = Review.objects.select_for_update().filter(pk=review.pk).first()
        if locked is None:
            return
        if not locked.moderation:
            _stats_change(model_id=locked.model_id, version_id=locked.version_id, up=-int(locked.recommended),
                          down=-int(not locked.recommended))
        locked.delete()


def review_reply(*, review: Review, user, text: str) -> Review:
    """The model's owner answers a review, once."""
    if review.model.owner_id != user.pk:
        raise CommunityError("only the model's owner can reply to a review", status=403, code="forbidden")
    text = _clean_text(text, user=user, max_chars=REPLY_MAX_CHARS, field="text", required=True)
    with transaction.atomic():
        updated = Review.objects.filter(pk=review.pk, owner_replied_at__isnull=True).update(
            owner_reply=text, owner_replied_at=timezone.now()
        )
        if not updated:
            raise CommunityError("you have already replied to this review", status=409, code="already_replied")
        model = review.model
        notification_send(user_id=review.author_id, kind=Notification.Kind.REPLY, actor=user, model_id=model.pk,
                          version_id=review.version_id, url=_model_url(model, review.version_id),
                          text=f"{user.username} replied to your review of {model.name}")
    review.refresh_from_db()
    return review


# --- comments ---------------------------------------------------------------------------


def comment_create(*, author, text: str, model=None, version=None, recipe=None, recipe_version=None,
                   parent: Comment | None = None) -> Comment:
    """A comment on a model (or one of its versions) or a recipe, or a reply to a top-level comment.

    The targets must come from visibility selectors for `author`. A reply
    takes its target from its parent; a reply to a reply joins the same thread.
    """
    replied_to = parent
    if parent is not None:
        if parent.parent_id is not None:
            parent = parent.parent
        if parent.deleted_at is not None:
            raise CommunityError("this comment was deleted; it takes no new replies", status=409, code="deleted")
        if parent.moderation:
            raise CommunityError("this comment was hidden by a moderator; it takes no new replies", status=409,
                                 code="moderated")
        model, recipe = parent.model, parent.recipe
        version = version if version is not None else parent.version
    if (model is None) == (recipe is None):
        raise CommunityError("a comment needs exactly one of a model or a recipe", field="target")
    if version is not None and (model is None or version.model_id != model.pk):
        raise CommunityError("that version belongs to another model", field="version")
    if recipe_version is not None and (recipe is None or recipe_version.recipe_id != recipe.pk):
        raise CommunityError("that version belongs to another recipe", field="recipeVersion")
    text = _clean_text(text, user=author, max_chars=COMMENT_MAX_CHARS, field="text", required=True)
    limits.hit(author, "comment")
    with transaction.atomic():
        comment = Comment.objects.create(author=author, model=model, version=version, recipe=recipe,
                                         recipe_version=recipe_version, parent=parent, text=text)
        if model is not None:
            _stats_change(model_id=model.pk, version_id=version.pk if version else None, comments=1)
            owner_id, title, url = model.owner_id, model.name, _model_url(model, version.pk if version else None)
        else:
            owner_id, title, url = recipe.owner_id, recipe.title, f"/recipes/{recipe.pk}/"
        url = f"{url}#comment-{comment.pk}"
        ids = {"model_id": model.pk if model else None, "recipe_id": recipe.pk if recipe else None,
               "version_id": version.pk if version else None}
        ids["comment_id"] = comment.pk
        notification_send(user_id=owner_id, kind=Notification.Kind.COMMENT, actor=author, url=url,
                          text=f"{author.username} commented on {title}", **ids)
        # A reply to the owner is covered by the comment notification above: no duplicate.
        if replied_to is not None and replied_to.author_id != owner_id:
            notification_send(user_id=replied_to.author_id, kind=Notification.Kind.REPLY, actor=author, url=url,
                              text=f"{author.username} replied to your comment on {title}", **ids)
    return comment


def comment_edit(*, comment: Comment, user, text: str) -> Comment:
    if comment.author_id != user.pk:
        raise CommunityError("only the author can edit a comment", status=403, code="forbidden")
    if comment.deleted_at is not None:
        raise CommunityError("a deleted comment cannot be edited", status=409, code="deleted")
    if comment.moderation == ModerationState.REMOVED:
        raise CommunityError("this comment was taken down by a moderator", status=409, code="taken_down")
    if timezone.now() - comment.created_at > _edit_window():
        minutes = int(_edit_window().total_seconds() // 60)
        raise CommunityError(f"comments can be edited for {minutes} minutes after posting", status=409,
                             code="edit_window_closed")
    comment.text = _clean_text(text, user=user, max_chars=COMMENT_MAX_CHARS, field="text", required=True)
    comment.edited_at = timezone.now()
    comment.save(update_fields=["text", "edited_at"])
    return comment


def comment_delete(*, comment: Comment, user) -> None:
    """Authors delete at any time. A comment with replies stays, blanked, as "deleted" so the thread reads."""
    if comment.author_id != user.pk:
        raise CommunityError("only the author can delete a comment", status=403, code="forbidden")
    with transaction.atomic():
        locked = Comment.objects.select_for_update().filter(pk=comment.pk, deleted_at__isnull=True).first()
        if locked is None:
            return
        if locked.model_id is not None and not locked.moderation:
            _stats_change(model_id=locked.model_id, version_id=locked.version_id, comments=-1)
        if locked.parent_id is None and locked.replies.exists():
            locked.text = ""
            locked.deleted_at = timezone.now()
            locked.save(update_fields=["text", "deleted_at"])
        else:
            parent = locked.parent
            locked.delete()
            if parent is not None and parent.deleted_at is not None and not parent.replies.exists():
                parent.delete()  # the last reply of a deleted comment is gone: so is the placeholder


def moderation_state_set(*, obj: Review | Comment, state: str) -> dict:
    """A moderator's hide / take-down / restore of a review or comment, with the counters kept true.

    Called by hub.moderation inside its transaction. A moderated review or
    comment is out of the thumbs and comment counters; restoring puts it back
    (a comment its author deleted meanwhile stays out).
    """
    cls = type(obj)
    with transaction.atomic():
        locked = cls.objects.select_for_update().get(pk=obj.pk)
        before = locked.moderation
        counted_before, counted_after = not before, not state
        if counted_before != counted_after:
            sign = 1 if counted_after else -1
            if isinstance(locked, Review):
                _stats_change(model_id=locked.model_id, version_id=locked.version_id,
                              up=sign * int(locked.recommended), down=sign * int(not locked.recommended))
            elif locked.model_id is not None and locked.deleted_at is None:
                _stats_change(model_id=locked.model_id, version_id=locked.version_id, comments=sign)
        cls.objects.filter(pk=locked.pk).update(moderation=state)
    obj.moderation = state
    return {"from": before, "to": state}


# --- follows ----------------------------------------------------------------------------


def follow_create(*, follower, creator) -> Follow:
    if follower.pk == creator.pk:
        raise CommunityError("you cannot follow yourself", code="self_follow")
    existing = Follow.objects.filter(follower=follower, creator=creator).first()
    if existing is not None:
        return existing
    limits.hit(follower, "follow")
    try:
        with transaction.atomic():
            return Follow.objects.create(follower=follower, creator=creator)
    except IntegrityError:
        return Follow.objects.get(follower=follower, creator=creator)


def follow_delete(*, follower, creator) -> bool:
    return Follow.objects.filter(follower=follower, creator=creator).delete()[0] > 0


# --- favourites -------------------------------------------------------------------------


def favorite_add(*, user, version=None, recipe=None) -> Favorite:
    """`version` / `recipe` must come from visibility selectors for `user` (private ones of others are 404)."""
    if (version is None) == (recipe is None):
        raise CommunityError("favourite exactly one of a model version or a recipe", field="target")
    key = {"version": version} if version is not None else {"recipe": recipe}
    existing = Favorite.objects.filter(user=user, collection__isnull=True, **key).first()
    if existing is not None:
        return existing
    limits.hit(user, "favorite")
    try:
        with transaction.atomic():
            favorite = Favorite.objects.create(user=user, **key)
            if version is not None:
                _stats_change(model_id=version.model_id, version_id=version.pk, favorites=1)
            return favorite
    except IntegrityError:
        return Favorite.objects.get(user=user, collection__isnull=True, **key)


def favorite_remove(*, user, version=None, recipe=None) -> bool:
    key = {"version": version} if version is not None else {"recipe": recipe}
    with transaction.atomic():
        deleted = Favorite.objects.filter(user=user, collection__isnull=True, **key).delete()[0] > 0
        if deleted and version is not None:
            _stats_change(model_id=version.model_id, version_id=version.pk, favorites=-1)
    return deleted


# --- collections ------------------------------------------------------------------------


def collection_create(*, owner, name: str, visibility: str = Collection.Visibility.PRIVATE) -> Collection:
    name = (name or "").strip()
    if not name:
        raise CommunityError("a collection needs a name", field="name")
    if len(name) > 100:
        raise CommunityError("a collection name has at most 100 characters", field="name")
    if name.lower() == "favourites" or name.lower() == "favorites":
        raise CommunityError("“Favourites” is your default list already; choose another name", field="name")
    if visibility not in Collection.Visibility.values:
        raise CommunityError(f"visibility must be one of {', '.join(Collection.Visibility.values)}", field="visibility")
    if Collection.objects.filter(owner=owner, name=name).exists():
        raise CommunityError(f"you already have a collection named {name!r}", status=409, code="exists", field="name")
    limits.hit(owner, "favorite")
    try:
        with transaction.atomic():
            return Collection.objects.create(owner=owner, name=name, visibility=visibility)
    except IntegrityError as exc:
        raise CommunityError(f"you already have a collection named {name!r}", status=409, code="exists") from exc


def collection_delete(*, collection: Collection, user) -> None:
    if collection.owner_id != user.pk:
        raise CommunityError("only the owner can delete a collection", status=403, code="forbidden")
    collection.delete()


def collection_item_add(*, collection: Collection, user, version=None, recipe=None) -> Favorite:
    """`version` / `recipe` must come from visibility selectors for `user`."""
    if collection.owner_id != user.pk:
        raise CommunityError("only the owner can change a collection", status=403, code="forbidden")
    if (version is None) == (recipe is None):
        raise CommunityError("add exactly one of a model version or a recipe", field="target")
    key = {"version": version} if version is not None else {"recipe": recipe}
    limits.hit(user, "favorite")
    with transaction.atomic():
        item, _ = Favorite.objects.get_or_create(user=user, collection=collection, **key)
    return item


def collection_item_remove(*, collection: Collection, user, version=None, recipe=None) -> bool:
    if collection.owner_id != user.pk:
        raise CommunityError("only the owner can change a collection", status=403, code="forbidden")
    key = {"version": version} if version is not None else {"recipe": recipe}
    return Favorite.objects.filter(collection=collection, **key).delete()[0] > 0
