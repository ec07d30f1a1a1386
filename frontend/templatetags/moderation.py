"""Moderation pieces other pages include: the owner's notices, report links, the moderators' nav entry."""
from __future__ import annotations

from django import template

from hub.moderation import selectors
from hub.moderation.models import TargetKind

register = template.Library()


@register.filter
def is_moderator(user) -> bool:
    return selectors.is_moderator_for_nav(user)


@register.inclusion_tag("frontend/moderation/_model_panel.html", takes_context=True)
def moderation_panel(context, model, version=None):
    """On a model page: why the owner's content is hidden or taken down, and report links for everyone else."""
    user = context.get("user")
    is_owner = bool(user is not None and user.is_authenticated and model.owner_id == user.pk)
    notices = []
    if is_owner or selectors.is_moderator(user):
        if model.moderation:
            notices.append(selectors.notice_for(TargetKind.MODEL, model.pk, model.moderation))
        if version is not None:
            notices.extend(selectors.notices_for_version(version))
    images = []
    if version is not None:
        # Owners keep a link to their hidden images, where the notice says why.
        images = list(version.images.exclude(moderation="removed") if is_owner else version.images.filter(moderation=""))
    return {"model": model, "version": version, "notices": [n for n in notices if n], "is_owner": is_owner,
            "user": user, "images": images}


@register.inclusion_tag("frontend/moderation/_notice.html")
def moderation_notice(kind: str, target_id, state: str):
    return {"notice": selectors.notice_for(kind, target_id, state)}


@register.inclusion_tag("frontend/moderation/_report_link.html", takes_context=True)
def report_link(context, kind: str, target_id, label: str = ""):
    return {"kind": kind, "target_id": target_id, "label": label or f"Report this {kind}", "user": context.get("user")}
