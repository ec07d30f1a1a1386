"""Reads for moderation: who moderates, the queue, the audit log, and the notice an owner sees."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Min

from hub.moderation.models import ModerationAction, Report, TargetKind
from hub.moderation.targets import Target, target_get

QUEUE_PAGE = 50
# The actions that leave a notice on the content while its state lasts.
NOTICE_ACTIONS = (ModerationAction.Action.HIDE, ModerationAction.Action.TAKEDOWN)


def is_moderator(user) -> bool:
    """Staff, superusers and members of a group with `moderation.moderate`."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_staff or user.is_superuser or user.has_perm("moderation.moderate")


NAV_FLAG_TTL = 300


def _nav_flag_key(user_id: int) -> str:
    return f"moderation:nav:{user_id}"


def is_moderator_for_nav(user) -> bool:
    """`is_moderator`, remembered in the cache for the header's link, which is on every page.

    The permission lookup costs two queries, and the listing pages are held to a fixed
    number; the flag is written at sign-in and dropped when the role is granted or
    revoked. A stale flag only shows or hides a link: the pages check `is_moderator`.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    from django.core.cache import cache

    try:
        known = cache.get(_nav_flag_key(user.pk))
    except Exception:  # the cache is down: the link is not worth an error page
        return False
    if known is None:
        known = is_moderator(user)
        nav_flag_set(user_id=user.pk, value=known)
    return bool(known)


def nav_flag_set(*, user_id: int, value: bool | None) -> None:
    from django.core.cache import cache

    try:
        if value is None:
            cache.delete(_nav_flag_key(user_id))
        else:
            cache.set(_nav_flag_key(user_id), bool(value), NAV_FLAG_TTL)
    except Exception:
        pass


def _live_comment(comment):
    # The selector already requires its model or recipe visible and no moderator's removal; a deleted one is blank.
    return comment if comment is not None and comment.deleted_at is None else None


def target_visible_to(user, target: Target) -> bool:
    """Whether `user` may see the target at all (one can only report what one can see)."""
    from hub.catalog.selectors import model_get_for, version_get_for
    from hub.previews.selectors import image_get_for
    from hub.uploads.selectors import example_image_page_get
    from hub.community.selectors import comment_get_for, review_get_for
    from merges.registry.selectors import recipe_get_for

    checks = {
        TargetKind.MODEL: lambda: model_get_for(user, target.obj.pk),
        TargetKind.VERSION: lambda: version_get_for(user, target.obj.pk),
        TargetKind.IMAGE: lambda: example_image_page_get(user, target.obj.pk),
        TargetKind.PREVIEW: lambda: image_get_for(user, target.obj.pk),
        TargetKind.RECIPE: lambda: recipe_get_for(user, target.obj.pk),
        TargetKind.USER: lambda: target.obj if target.obj.is_active else None,
        TargetKind.COMMENT: lambda: _live_comment(comment_get_for(user=user, comment_id=target.obj.pk)),
        TargetKind.REVIEW: lambda: review_get_for(user=user, review_id=target.obj.pk),
    }
    check = checks.get(target.kind)
    return check is not None and check() is not None


@dataclass
class QueueEntry:
    kind: str
    id: str
    target: Target | None  # None when the object was deleted since it was reported
    reports: list[Report]
    actions: list[ModerationAction] = field(default_factory=list)

    @property
    def first_reported(self):
        return self.reports[0].created_at

    @property
    def reasons(self) -> list[str]:
        seen: list[str] = []
        for report in self.reports:
            if report.get_reason_display() not in seen:
                seen.append(report.get_reason_display())
        return seen


def report_queue(*, limit: int = QUEUE_PAGE) -> list[QueueEntry]:
    """Open reports grouped by object, the object reported longest ago first, with earlier actions on it."""
    groups = list(
        Report.objects.filter(status=Report.Status.OPEN)
        .values("target_kind", "target_id")
        .annotate(first=Min("created_at"), count=Count("id"))
        .order_by("first", "target_kind", "target_id")[:limit]
    )
    if not groups:
        return []
    keys = {(g["target_kind"], g["target_id"]) for g in groups}
    reports: dict[tuple[str, str], list[Report]] = {k: [] for k in keys}
    open_reports = Report.objects.filter(
        status=Report.Status.OPEN, target_id__in={k[1] for k in keys}
    ).select_related("reporter").order_by("created_at", "id")
    for report in open_reports:
        if (report.target_kind, report.target_id) in reports:
            reports[(report.target_kind, report.target_id)].append(report)
    actions: dict[tuple[str, str], list[ModerationAction]] = {k: [] for k in keys}
    for action in ModerationAction.objects.filter(target_id__in={k[1] for k in keys}).select_related("actor"):
        if (action.target_kind, action.target_id) in actions:
            actions[(action.target_kind, action.target_id)].append(action)
    return [
        QueueEntry(kind=g["target_kind"], id=g["target_id"], target=target_get(g["target_kind"], g["target_id"]),
                   reports=reports[(g["target_kind"], g["target_id"])],
                   actions=actions[(g["target_kind"], g["target_id"])])
        for g in groups
    ]


def quarantined_uploads(*, limit: int = QUEUE_PAGE):
    """Files the upload scanner quarantined, oldest first, with the scanner's reason in `error_message`."""
    from hub.uploads.models import Upload

    return list(
        Upload.objects.filter(status=Upload.Status.QUARANTINED).select_related("owner").order_by("updated_at")[:limit]
    )


def actions_for(kind: str, target_id) -> list[ModerationAction]:
    return list(ModerationAction.objects.filter(target_kind=kind, target_id=str(target_id)).select_related("actor"))


def audit_log(*, limit: int = 200, before_id: int | None = None) -> list[ModerationAction]:
    qs = ModerationAction.objects.select_related("actor", "target_owner").order_by("-created_at", "-id")
    if before_id is not None:
        qs = qs.filter(pk__lt=before_id)
    return list(qs[:limit])


@dataclass
class Notice:
    kind: str
    id: str
    state: str
    reason: str
    at: object
    label: str


def notice_for(kind: str, target_id, state: str) -> Notice | None:
    """Why content is hidden or taken down, from the action that did it; None while it is untouched."""
    if not state:
        return None
    action = ModerationAction.objects.filter(
        target_kind=kind, target_id=str(target_id), action__in=NOTICE_ACTIONS
    ).order_by("-created_at", "-id").first()
    return Notice(kind=kind, id=str(target_id), state=state, reason=action.reason if action else "",
                  at=action.created_at if action else None, label=action.target_label if action else "")


def notices_for_version(version) -> list[Notice]:
    """Notices on a model version's moderated parts (the version, its example images, its preview grids)."""
    from hub.previews.models import PreviewImage

    notices = []
    if version.moderation:
        notices.append(notice_for(TargetKind.VERSION, version.pk, version.moderation))
    for image in version.images.exclude(moderation=""):
        notices.append(notice_for(TargetKind.IMAGE, image.pk, image.moderation))
    grid_images = PreviewImage.objects.filter(grid__model_version=version).exclude(grid__moderation="") \
        .select_related("grid").order_by("grid_id", "row", "col")
    seen_grids: set[int] = set()
    for image in grid_images:
        # Preview reports are acted on through the grid; one notice per grid.
        if image.grid_id not in seen_grids:
            seen_grids.add(image.grid_id)
            actioned = ModerationAction.objects.filter(
                target_kind=TargetKind.PREVIEW, target_id__in=[str(i.pk) for i in image.grid.images.all()],
                action__in=NOTICE_ACTIONS,
            ).order_by("-created_at", "-id").first()
            if actioned is not None:
                notices.append(notice_for(TargetKind.PREVIEW, actioned.target_id, image.grid.moderation))
    return [n for n in notices if n is not None]
