"""Community pieces that pages include with one tag, so their views need no change.

Each tag reads through hub.community.selectors for the page's object, which
the page already obtained through a visibility selector.
"""
from __future__ import annotations

from django import template

from hub.community import selectors
from hub.community.services import COMMENT_MAX_CHARS, REVIEW_MAX_CHARS

register = template.Library()


def _user(context):
    request = context.get("request")
    return getattr(request, "user", None)


@register.inclusion_tag("frontend/community/_model_social.html", takes_context=True)
def model_social(context, model, version):
    user = _user(context)
    signed_in = user is not None and user.is_authenticated
    is_owner = signed_in and model.owner_id == user.pk
    reviews = list(selectors.reviews_for_model(model=model, viewer=user)[:100])
    return {
        "request": context.get("request"),
        "user": user,
        "model": model,
        "version": version,
        "is_owner": is_owner,
        "signed_in": signed_in,
        "reviews": reviews,
        "my_review": selectors.review_of(user=user, version=version) if signed_in and version else None,
        "comments": selectors.comments_for(model=model, viewer=user),
        "favorite": bool(version) and selectors.is_favorite(user=user, version=version),
        "collections": list(selectors.collections_of(owner=user, viewer=user)) if signed_in else [],
        "review_max": REVIEW_MAX_CHARS,
        "comment_max": COMMENT_MAX_CHARS,
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("frontend/community/_recipe_comments.html", takes_context=True)
def recipe_social(context, recipe, versions=None):
    user = _user(context)
    return {
        "request": context.get("request"),
        "user": user,
        "recipe": recipe,
        "versions": versions or [],
        "signed_in": user is not None and user.is_authenticated,
        "comments": selectors.comments_for(recipe=recipe, viewer=user),
        "favorite": selectors.is_favorite(user=user, recipe=recipe),
        "comment_max": COMMENT_MAX_CHARS,
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("frontend/community/_follow.html", takes_context=True)
def follow_button(context, creator):
    user = _user(context)
    return {
        "request": context.get("request"),
        "creator": creator,
        "signed_in": user is not None and user.is_authenticated,
        "is_self": user is not None and user.is_authenticated and user.pk == creator.pk,
        "following": selectors.is_following(user=user, creator=creator),
        "figures": selectors.creator_figures(creator=creator),
        "csrf_token": context.get("csrf_token"),
    }
