"""Community pages and forms: reviews, comments, follows, the Following feed, notifications, favourites.

Forms post here and come back to the page they were sent from; a refused
write (empty text, rate limit, …) comes back as an error message on that page
with nothing saved. Objects are looked up through the same visibility
selectors as the API, so a hidden object is a 404 here too.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from hub.catalog.selectors import model_get_for, version_get_for
from hub.community import selectors, services
from hub.community.limits import RateLimited
from hub.community.models import Notification
from merges.registry.selectors import recipe_get_for


def _back(request, fallback: str, anchor: str = ""):
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = fallback
    return redirect(f"{target}{anchor}")


class _Refused:
    """Turns a refused write into an error message on the page the form came from."""

    def __init__(self, request):
        self.request = request
        self.failed = False

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, services.CommunityError):
            messages.error(self.request, exc.message[:1].upper() + exc.message[1:])
        elif isinstance(exc, RateLimited):
            messages.error(self.request, f"Slow down: {exc}.")
        else:
            return False
        self.failed = True
        return True


def _version(request, version_id: int):
    version = version_get_for(request.user, version_id)
    if version is None:
        raise Http404("No such model version")
    return version


def _model_page(version) -> str:
    model = version.model
    return f"/models/{model.pk}/{model.slug}/?modelVersionId={version.pk}"


# --- reviews -----------------------------------------------------------------------------------


@login_required
@require_POST
def review_save(request, version_id: int):
    version = _version(request, version_id)
    recommended = request.POST.get("recommended")
    with _Refused(request) as refused:
        if recommended not in ("yes", "no"):
            raise services.CommunityError("choose whether you recommend this version")
        existing = selectors.review_of(user=request.user, version=version)
        if existing is None:
            services.review_create(author=request.user, version=version, recommended=recommended == "yes",
                                   text=request.POST.get("text", ""))
        else:
            services.review_update(review=existing, user=request.user, recommended=recommended == "yes",
                                   text=request.POST.get("text", ""))
    if not refused.failed:
        messages.success(request, "Your review is saved.")
    return _back(request, _model_page(version), "#reviews")


@login_required
@require_POST
def review_delete(request, review_id: int):
    review = selectors.review_get_for(user=request.user, review_id=review_id)
    if review is None:
        raise Http404("No such review")
    with _Refused(request) as refused:
        services.review_delete(review=review, user=request.user)
    if not refused.failed:
        messages.success(request, "Your review is deleted.")
    return _back(request, _model_page(review.version), "#reviews")


@login_required
@require_POST
def review_reply(request, review_id: int):
    review = selectors.review_get_for(user=request.user, review_id=review_id)
    if review is None:
        raise Http404("No such review")
    with _Refused(request):
        services.review_reply(review=review, user=request.user, text=request.POST.get("text", ""))
    return _back(request, _model_page(review.version), f"#review-{review.pk}")


# --- comments ----------------------------------------------------------------------------------


@login_required
@require_POST
def comment_create(request):
    model = recipe = version = recipe_version = parent = None
    if request.POST.get("model"):
        model = model_get_for(request.user, _int(request.POST["model"]))
        if model is None:
            raise Http404("No such model")
        fallback = f"/models/{model.pk}/{model.slug}/"
        if request.POST.get("version"):
            version = _version(request, _int(request.POST["version"]))
    elif request.POST.get("recipe"):
        recipe = recipe_get_for(request.user, _int(request.POST["recipe"]))
        if recipe is None:
            raise Http404("No such recipe")
        fallback = f"/recipes/{recipe.pk}/"
        if request.POST.get("recipe_version"):
            recipe_version = recipe.versions.filter(number=_int(request.POST["recipe_version"])).first()
    else:
        raise Http404("Nothing to comment on")
    if request.POST.get("parent"):
        parent = selectors.comment_get_for(user=request.user, comment_id=_int(request.POST["parent"]))
        if parent is None or parent.model_id != (model.pk if model else None) or parent.recipe_id != (
            recipe.pk if recipe else None
        ):
            raise Http404("No such comment")
    with _Refused(request) as refused:
        comment = services.comment_create(author=request.user, text=request.POST.get("text", ""), model=model,
                                          version=version, recipe=recipe, recipe_version=recipe_version,
                                          parent=parent)
    return _back(request, fallback, "#comments" if refused.failed else f"#comment-{comment.pk}")


def _int(raw: str) -> int:
    if not str(raw).isdigit():
        raise Http404("Bad id")
    return int(raw)


def _comment(request, comment_id: int):
    comment = selectors.comment_get_for(user=request.user, comment_id=comment_id)
    if comment is None:
        raise Http404("No such comment")
    return comment


def _comment_page(comment) -> str:
    if comment.model_id:
        return f"/models/{comment.model_id}/{comment.model.slug}/"
    return f"/recipes/{comment.recipe_id}/"


@login_required
@require_POST
def comment_edit(request, comment_id: int):
    comment = _comment(request, comment_id)
    with _Refused(request):
        services.comment_edit(comment=comment, user=request.user, text=request.POST.get("text", ""))
    return _back(request, _comment_page(comment), f"#comment-{comment.pk}")


@login_required
@require_POST
def comment_delete(request, comment_id: int):
    comment = _comment(request, comment_id)
    with _Refused(request):
        services.comment_delete(comment=comment, user=request.user)
    return _back(request, _comment_page(comment), "#comments")


# --- follows and feed ---------------------------------------------------------------------------


@login_required
@require_POST
def follow_toggle(request, username: str):
    creator = get_user_model().objects.filter(username=username, is_active=True).first()
    if creator is None:
        raise Http404("No such creator")
    with _Refused(request) as refused:
        if request.POST.get("action") == "unfollow":
            services.follow_delete(follower=request.user, creator=creator)
        else:
            services.follow_create(follower=request.user, creator=creator)
    if not refused.failed:
        following = request.POST.get("action") != "unfollow"
        messages.success(request, f"You {'now follow' if following else 'no longer follow'} {creator.username}.")
    return _back(request, f"/users/{creator.username}/")


@login_required
def following_feed(request):
    return render(request, "frontend/community/following.html",
                  {"items": selectors.following_feed(user=request.user, limit=60),
                   "following": selectors.following_of(user=request.user)[:100]})


# --- notifications ------------------------------------------------------------------------------


@login_required
def notifications(request):
    items = list(selectors.notifications_for(user=request.user)[:100])
    muted = set(selectors.muted_kinds(user=request.user))
    kinds = [(value, label, value not in muted) for value, label in Notification.Kind.choices]
    return render(request, "frontend/community/notifications.html", {"items": items, "kinds": kinds})


@login_required
@require_POST
def notifications_read(request):
    ids = [int(i) for i in request.POST.getlist("id") if i.isdigit()] or None
    services.notifications_mark_read(user=request.user, ids=ids)
    return _back(request, "/notifications/")


@login_required
@require_POST
def notification_preferences(request):
    wanted = set(request.POST.getlist("kind"))
    with _Refused(request) as refused:
        services.notification_preferences_set(
            user=request.user, muted_kinds=[k for k in Notification.Kind.values if k not in wanted]
        )
    if not refused.failed:
        messages.success(request, "Your notification settings are saved.")
    return redirect("/notifications/#preferences")


# --- favourites ---------------------------------------------------------------------------------


@login_required
@require_POST
def favorite_toggle(request, kind: str, pk: int):
    if kind == "version":
        version = _version(request, pk)
        target, fallback = {"version": version}, _model_page(version)
    else:
        recipe = recipe_get_for(request.user, pk)
        if recipe is None:
            raise Http404("No such recipe")
        target, fallback = {"recipe": recipe}, f"/recipes/{recipe.pk}/"
    with _Refused(request):
        if request.POST.get("action") == "remove":
            services.favorite_remove(user=request.user, **target)
        else:
            services.favorite_add(user=request.user, **target)
    return _back(request, fallback)


@login_required
def favorites(request):
    return render(request, "frontend/community/favorites.html",
                  {"items": list(selectors.favorites_of(user=request.user)[:200]),
                   "collections": selectors.collections_of(owner=request.user, viewer=request.user)})


# --- collections --------------------------------------------------------------------------------


@login_required
@require_POST
def collection_create(request):
    with _Refused(request) as refused:
        collection = services.collection_create(owner=request.user, name=request.POST.get("name", ""),
                                                visibility=request.POST.get("visibility", "private"))
    if refused.failed:
        return redirect("/favourites/")
    return redirect(f"/collections/{collection.pk}/")


def collection_detail(request, collection_id: int):
    collection = selectors.collection_get_for(viewer=request.user, collection_id=collection_id)
    if collection is None:
        raise Http404("No such collection")
    items = list(selectors.collection_items(collection=collection, viewer=request.user)[:200])
    return render(request, "frontend/community/collection.html", {"collection": collection, "items": items})


@login_required
@require_POST
def collection_item(request, collection_id: int | None = None):
    if collection_id is None:  # the model page's "Add to collection" form names it in a field
        collection_id = _int(request.POST.get("collection", ""))
    collection = selectors.collection_get_for(viewer=request.user, collection_id=collection_id)
    if collection is None:
        raise Http404("No such collection")
    if request.POST.get("version"):
        version = _version(request, _int(request.POST["version"]))
        target, fallback = {"version": version}, _model_page(version)
    else:
        recipe = recipe_get_for(request.user, _int(request.POST.get("recipe", "")))
        if recipe is None:
            raise Http404("No such recipe")
        target, fallback = {"recipe": recipe}, f"/recipes/{recipe.pk}/"
    with _Refused(request) as refused:
        if request.POST.get("action") == "remove":
            services.collection_item_remove(collection=collection, user=request.user, **target)
        else:
            services.collection_item_add(collection=collection, user=request.user, **target)
    if not refused.failed and request.POST.get("action") != "remove":
        messages.success(request, f"Added to {collection.name}.")
    return _back(request, fallback)
