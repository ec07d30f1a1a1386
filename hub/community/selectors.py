"""Reads of the community layer. Visibility is part of every queryset.

Reviews and comments are only listed under an object the caller already
obtained through a visibility selector. Feeds and notifications cross many
objects, so they filter with the catalogue's and registry's own rules
(`version_visible_q_for`, recipe visibility): a notification about a version
that has since gone private or been deleted is not shown, nor counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from hub.catalog.api_prepared import PreparedValuesQuery
from hub.catalog.api_selectors import version_visible_q_for
from hub.catalog.models import ModelVersion
from hub.community.models import (
    Collection,
    Comment,
    Favorite,
    Follow,
    Notification,
    NotificationMute,
    Review,
)

UNREAD_CAP = 99

def _uid(user) -> int | None:
    return user.pk if user is not None and user.is_authenticated else None


def moderation_visible_q(viewer_id: int | None, prefix: str = "") -> Q:
    """Reviews and comments a moderator left alone, and the viewer's own hidden ones (taken down: nobody's)."""
    q = Q(**{f"{prefix}moderation": ""})
    if viewer_id is not None:
        q |= Q(**{f"{prefix}moderation": "hidden", f"{prefix}author_id": viewer_id})
    return q


# --- reviews ----------------------------------------------------------------------------


def reviews_for_model(*, model, version=None, viewer=None) -> QuerySet[Review]:
    qs = Review.objects.filter(moderation_visible_q(_uid(viewer)), model=model).select_related("author", "version")
    if version is not None:
        qs = qs.filter(version=version)
    return qs.order_by("-created_at", "-id")


def review_of(*, user, version) -> Review | None:
    if _uid(user) is None:
        return None
    return Review.objects.filter(author_id=user.pk, version=version).exclude(moderation="removed").first()


def review_get_for(*, user, review_id: int) -> Review | None:
    """A review whose version the user may see."""
    return (
        Review.objects.select_related("author", "version", "model", "model__owner")
        .filter(version_visible_q_for(_uid(user), prefix="version__"), moderation_visible_q(_uid(user)), pk=review_id)
        .first()
    )


# --- comments ---------------------------------------------------------------------------


def comments_for(*, model=None, recipe=None, viewer=None) -> list[Comment]:
    """Top-level comments, oldest first, each with `.replies_list`: two queries.

    Comments a moderator hid or took down are left out, except the viewer's own
    hidden ones. A top-level one that still has replies the viewer sees stays
    as a placeholder (`.moderated_placeholder`, its text blanked), as a
    deleted one does, so the thread still reads.
    """
    uid = _uid(viewer)
    target = {"model": model} if model is not None else {"recipe": recipe}
    replies = (
        Comment.objects.filter(moderation_visible_q(uid))
        .select_related("author", "version", "recipe_version").order_by("created_at", "id")
    )
    shown = []
    for comment in (
        Comment.objects.filter(parent__isnull=True, **target)
        .select_related("author", "version", "recipe_version")
        .prefetch_related(Prefetch("replies", queryset=replies, to_attr="replies_list"))
        .order_by("created_at", "id")
    ):
        visible = not comment.moderation or (comment.moderation == "hidden" and comment.author_id == uid)
        comment.moderated_placeholder = not visible
        if not visible:
            if not comment.replies_list:
                continue
            comment.text = ""
        shown.append(comment)
    return shown


def _recipe_visible_q(viewer_id: int | None, prefix: str) -> Q:
    q = ~Q(**{f"{prefix}visibility": "private"})
    if viewer_id is not None:
        q |= Q(**{f"{prefix}owner_id": viewer_id})
    return q


def comment_get_for(*, user, comment_id: int) -> Comment | None:
    uid = _uid(user)
    model_ok = Q(model__isnull=False) & (
        (Q(model__status__in=["published", "archived"]) & ~Q(model__visibility="private"))
        | (Q(model__owner_id=uid) if uid else Q(pk__in=[]))
    )
    recipe_ok = Q(recipe__isnull=False) & _recipe_visible_q(uid, "recipe__")
    return (
        Comment.objects.select_related("author", "model", "recipe", "version", "parent")
        .filter(model_ok | recipe_ok, moderation_visible_q(uid), pk=comment_id)
        .first()
    )


# --- follows and feed -------------------------------------------------------------------


def is_following(*, user, creator) -> bool:
    uid = _uid(user)
    return uid is not None and Follow.objects.filter(follower_id=uid, creator=creator).exists()


def follower_count(*, creator) -> int:
    return Follow.objects.filter(creator=creator).count()


def creator_figures(*, creator) -> dict:
    """Public figures of a creator: listed models, their downloads, followers and the recommend share.

    Only public, published models count, so a private model never shows
    through a profile's totals.
    """
    from django.db.models import Count, Sum

    from hub.catalog.models import Model

    listed = Model.objects.filter(owner=creator, status=Model.Status.PUBLISHED, visibility=Model.Visibility.PUBLIC)
    totals = listed.aggregate(models=Count("id"), downloads=Sum("download_count"),
                              up=Sum("community_stats__thumbs_up"), down=Sum("community_stats__thumbs_down"))
    up, down = totals["up"] or 0, totals["down"] or 0
    return {
        "models": totals["models"],
        "downloads": totals["downloads"] or 0,
        "followers": follower_count(creator=creator),
        "reviews": up + down,
        "recommend_share": round(100 * up / (up + down)) if up + down else None,
    }


def following_of(*, user) -> QuerySet:
    return Follow.objects.filter(follower=user).select_related("creator").order_by("-created_at")


@dataclass
class FeedItem:
    kind: str  # "version", "recipe" or "recipe_version"
    at: datetime
    creator: str
    title: str
    url: str
    id: int


def following_feed(*, user, limit: int = 50) -> list[FeedItem]:
    """New model versions, recipes and recipe versions from the creators `user` follows, newest first.

    Read at request time from indexed columns (three bounded queries), so
    following costs nothing at publish time. Only what `user` can see is shown.
    """
    from merges.registry.models import Recipe, RecipeVersion

    uid = _uid(user)
    if uid is None:
        return []
    followed = Follow.objects.filter(follower_id=uid).values("creator_id")
    items: list[FeedItem] = []
    versions = (
        ModelVersion.objects.filter(version_visible_q_for(uid), model__owner_id__in=followed,
                                    published_at__isnull=False)
        .select_related("model", "model__owner").order_by("-published_at", "-id")[:limit]
    )
    for v in versions:
        items.append(FeedItem("version", v.published_at, v.model.owner.username, f"{v.model.name} {v.name}",
                              f"/models/{v.model_id}/{v.model.slug}/?modelVersionId={v.pk}", v.pk))
    recipes = (
        Recipe.objects.filter(_recipe_visible_q(uid, ""), owner_id__in=followed).exclude(visibility="unlisted")
        .select_related("owner").order_by("-created_at", "-id")[:limit]
    )
    for r in recipes:
        items.append(FeedItem("recipe", r.created_at, r.owner.username, r.title, f"/recipes/{r.pk}/", r.pk))
    recipe_versions = (
        RecipeVersion.objects.filter(recipe__owner_id__in=followed, number__gt=1, recipe__visibility="public")
        .select_related("recipe", "recipe__owner").order_by("-created_at", "-id")[:limit]
    )
    for rv in recipe_versions:
        items.append(FeedItem("recipe_version", rv.created_at, rv.recipe.owner.username,
                              f"{rv.recipe.title} v{rv.number}", f"/recipes/{rv.recipe_id}/?version={rv.number}",
                              rv.pk))
    items.sort(key=lambda i: (i.at, i.id), reverse=True)
    return items[:limit]


# --- notifications ----------------------------------------------------------------------


def _notification_visible_q(uid: int) -> Q:
    version_ok = Q(version__isnull=True) | version_visible_q_for(uid, prefix="version__")
    model_ok = Q(model__isnull=True) | ~Q(model__visibility="private") | Q(model__owner_id=uid)
    recipe_ok = Q(recipe__isnull=True) | _recipe_visible_q(uid, "recipe__")
    # A notification about a comment or review a moderator hid or took down goes with it.
    quoted_ok = (Q(comment__isnull=True) | Q(comment__moderation="")) & (
        Q(review__isnull=True) | Q(review__moderation="")
    )
    return version_ok & model_ok & recipe_ok & quoted_ok


def notifications_for(*, user, unread_only: bool = False) -> QuerySet[Notification]:
    qs = Notification.objects.filter(_notification_visible_q(user.pk), user_id=user.pk)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    return qs.select_related("actor").order_by("-id")


def _unread_ids(uid: int) -> QuerySet:
    # The newest unread rows first, from the partial index alone (no ORDER BY,
    # no join: the scan stops at the cap whatever the inbox size), then the
    # visibility rules on those few. Exact up to the cap; above it, hidden
    # rows among the newest may show "97" where "99+" would be due.
    newest = Notification.objects.filter(user_id=uid, read_at__isnull=True).order_by().values("id")[: UNREAD_CAP + 1]
    return Notification.objects.filter(_notification_visible_q(uid), id__in=newest).order_by().values("id")


# Read on every page (the header badge) and polled by clients: one prepared
# statement, so neither the ORM nor PostgreSQL's planner runs per request.
_UNREAD = PreparedValuesQuery("mw_notifications_unread", _unread_ids, (int,))


def unread_count(*, user) -> int:
    """Unread and still visible, capped at UNREAD_CAP + 1 ("99+"): a partial-index scan that stops early."""
    uid = _uid(user)
    if uid is None:
        return 0
    return len(_UNREAD.rows(uid))


def unread_count_with_api_key(token: str):
    """Authenticate an API key and count its user's unread notifications in one round trip: (key, count).

    The key's user is guessed from earlier requests with the same key (as the
    registry's cached runs do); the guess is checked against the key found,
    and a wrong or missing guess costs one more query. Raises InvalidApiKey as
    `api_key_authenticate` does.
    """
    from hub.accounts.services import (
        api_key_authenticate,
        api_key_check,
        api_key_from_rows,
        api_key_lookup_call,
        api_key_split,
        api_key_user_guess,
    )
    from hub.catalog.api_prepared import rows_many

    prefix, secret = api_key_split(token)
    user_id = api_key_user_guess(prefix)
    if user_id is None:
        key = api_key_authenticate(token)
        return key, len(_UNREAD.rows(key.user_id))
    key_rows, unread_rows = rows_many([api_key_lookup_call(prefix), (_UNREAD, (user_id,))])
    key = api_key_check(api_key_from_rows(key_rows), secret)
    if key.user_id != user_id:
        return key, len(_UNREAD.rows(key.user_id))
    return key, len(unread_rows)


def muted_kinds(*, user) -> list[str]:
    return sorted(NotificationMute.objects.filter(user=user).values_list("kind", flat=True))


# --- favourites -------------------------------------------------------------------------


def _items_visible_q(uid: int | None) -> Q:
    return (Q(version__isnull=True) | version_visible_q_for(uid, prefix="version__")) & (
        Q(recipe__isnull=True) | _recipe_visible_q(uid, "recipe__")
    )


def favorites_of(*, user) -> QuerySet[Favorite]:
    """The user's Favourites whose object they can still see."""
    return Favorite.objects.filter(_items_visible_q(user.pk), user_id=user.pk, collection__isnull=True).select_related(
        "version", "version__model", "recipe", "recipe__owner"
    )


def collections_of(*, owner, viewer) -> QuerySet[Collection]:
    """The owner's collections: all of them for the owner, the public ones for anyone else."""
    qs = Collection.objects.filter(owner=owner)
    if _uid(viewer) != owner.pk:
        qs = qs.filter(visibility=Collection.Visibility.PUBLIC)
    return qs.order_by("name", "id")


def collection_get_for(*, viewer, collection_id: int) -> Collection | None:
    uid = _uid(viewer)
    visible = Q(visibility=Collection.Visibility.PUBLIC) | (Q(owner_id=uid) if uid else Q(pk__in=[]))
    return Collection.objects.select_related("owner").filter(visible, pk=collection_id).first()


def collection_items(*, collection, viewer) -> QuerySet[Favorite]:
    """Items of a collection the viewer can see (a private model in a public collection stays hidden)."""
    return Favorite.objects.filter(_items_visible_q(_uid(viewer)), collection=collection).select_related(
        "version", "version__model", "recipe", "recipe__owner"
    ).order_by("-created_at", "-id")


def is_favorite(*, user, version=None, recipe=None) -> bool:
    uid = _uid(user)
    if uid is None:
        return False
    key = {"version": version} if version is not None else {"recipe": recipe}
    return Favorite.objects.filter(user_id=uid, collection__isnull=True, **key).exists()
