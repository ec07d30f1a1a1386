"""Reports in, moderator actions out.

1. `report_create`: a signed-in user reports an object. A second open report
   by the same user on the same object returns the first (a partial unique
   index makes that hold under races too); new reports are rate-limited per
   user in the shared cache (Redis when REDIS_URL is set).
2. `claim_create`: a copyright claim from the public form becomes a report of
   the "stolen upload" kind, rate-limited per client address.
3. `moderation_act`: a moderator dismisses, changes an NSFW level, hides,
   takes down, restores, suspends, or releases/deletes a quarantined file.
   The change, the audit-log row and the resolution of the open reports
   commit together; the owner's email goes out after the commit (the on-site
   notice is the audit row itself, read by the content's page).
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from hub.accounts.models import User
from hub.moderation import conf
from hub.moderation.models import ModerationAction, Report, TargetKind
from hub.moderation.selectors import is_moderator, nav_flag_set, target_visible_to
from hub.moderation.states import ModerationState
from hub.moderation.targets import COMMUNITY, HIDEABLE, REPORTABLE, Target, target_get

log = logging.getLogger(__name__)

MAX_DETAILS = 5000
MAX_REASON = 2000
NSFW_LEVELS = (1, 2, 4, 8)  # Civitai's flags: PG, PG-13, R, X
Action = ModerationAction.Action


class ModerationError(Exception):
    def __init__(self, code: str, message: str, *, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.field = field


# --- rate limits ----------------------------------------------------------------------------


def _rate_limit_hit(key: str, limit: int, window_s: int = 3600) -> bool:
    """Count one event under `key`; True when it goes past `limit` in the window.

    `add` then `incr` are atomic in Redis, so every web process shares the count.
    """
    key = f"moderation:rl:{key}"
    if cache.add(key, 1, timeout=window_s):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window_s)
            count = 1
    return count > limit


# --- reports --------------------------------------------------------------------------------


def _clean_text(value: str, limit: int, field: str) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise ModerationError("too_long", f"{field} is limited to {limit} characters", field=field)
    return value


def report_create(*, reporter: User, target_kind: str, target_id: str, reason: str, details: str = "") -> tuple[Report, bool]:
    """File a report; returns (report, created). An open report by the same user on the same object is returned as is."""
    if target_kind not in REPORTABLE:
        raise ModerationError("invalid_target", f"cannot report a {target_kind!r}; one of {', '.join(REPORTABLE)}",
                              field="targetKind")
    if reason not in Report.Reason.values:
        raise ModerationError("invalid_reason", f"unknown reason {reason!r}; one of {', '.join(Report.Reason.values)}",
                              field="reason")
    details = _clean_text(details, MAX_DETAILS, "details")
    if reason == Report.Reason.OTHER and not details:
        raise ModerationError("details_required", "say what is wrong when the reason is “other”", field="details")
    target = target_get(target_kind, str(target_id))
    if target is None or not target_visible_to(reporter, target):
        raise ModerationError("not_found", f"no such {target_kind}", status=404)
    existing = Report.objects.filter(reporter=reporter, target_kind=target.kind, target_id=target.id,
                                     status=Report.Status.OPEN).first()
    if existing is not None:
        return existing, False
    if _rate_limit_hit(f"report:{reporter.pk}", conf.reports_per_hour()):
        raise ModerationError("rate_limited", "too many reports in the last hour; try again later", status=429)
    try:
        with transaction.atomic():
            report = Report.objects.create(reporter=reporter, target_kind=target.kind, target_id=target.id,
                                           reason=reason, details=details)
    except IntegrityError:
        # The same user reported the same object in a concurrent request.
        return Report.objects.get(reporter=reporter, target_kind=target.kind, target_id=target.id,
                                  status=Report.Status.OPEN), False
    return report, True


_CLAIM_ROUTES = {
    "frontend:model": TargetKind.MODEL,
    "frontend:model-short": TargetKind.MODEL,
    "frontend:image": TargetKind.IMAGE,
    "frontend:recipe": TargetKind.RECIPE,
    "api:model": TargetKind.MODEL,
    "api:model-version": TargetKind.VERSION,
    "api:download": TargetKind.VERSION,
}
_ROUTE_ARGS = ("model_id", "version_id", "image_id", "recipe_id", "pk")


def claim_target(url: str) -> Target | None:
    """The model, version, image or recipe a page or API URL of this hub names."""
    try:
        parts = urlsplit(url.strip())
        match = resolve(parts.path or "/")
    except (Resolver404, ValueError):
        return None
    kind = _CLAIM_ROUTES.get(match.view_name)
    if kind is None:
        return None
    values = [match.kwargs[name] for name in _ROUTE_ARGS if name in match.kwargs] or list(match.args)
    if not values:
        return None
    wanted_version = parse_qs(parts.query).get("modelVersionId", [""])[0]
    if kind == TargetKind.MODEL and wanted_version:
        version = target_get(TargetKind.VERSION, wanted_version)
        if version is not None and str(version.obj.model_id) == str(values[0]):
            return version
    return target_get(kind, str(values[0]))


def claim_create(*, claimant_name: str, claimant_email: str, url: str, original_work: str, good_faith: bool,
                 client_address: str, reporter: User | None = None) -> Report:
    """A copyright claim from the public form: a "stolen upload" report on the object its URL names."""
    name = _clean_text(claimant_name, 200, "claimant_name")
    if not name:
        raise ModerationError("required", "give your name", field="claimant_name")
    if not claimant_email or "@" not in claimant_email:
        raise ModerationError("required", "give an email address we can reach you at", field="claimant_email")
    description = _clean_text(original_work, MAX_DETAILS, "original_work")
    if not description:
        raise ModerationError("required", "describe the original work and where it was published", field="original_work")
    if not good_faith:
        raise ModerationError("required", "the claim must be made in good faith", field="good_faith")
    url = _clean_text(url, 2000, "url")
    target = claim_target(url)
    if target is None or not target_visible_to(None, target):
        raise ModerationError("unknown_url", "the URL must name a public model, version, image or recipe page of "
                                             "this hub", field="url")
    if _rate_limit_hit(f"claim:{client_address}", conf.claims_per_hour()):
        raise ModerationError("rate_limited", "too many claims from your address in the last hour; try again later",
                              status=429)
    with transaction.atomic():
        return Report.objects.create(
            reporter=reporter if reporter is not None and reporter.is_authenticated else None,
            target_kind=target.kind, target_id=target.id, reason=Report.Reason.STOLEN, details=description,
            claimant_name=name, claimant_email=claimant_email.strip()[:254], claimed_url=url,
        )


# --- moderator actions ----------------------------------------------------------------------


ALLOWED = {
    Action.DISMISS: REPORTABLE,
    Action.NSFW_LEVEL: (TargetKind.MODEL, TargetKind.IMAGE),
    Action.HIDE: HIDEABLE,
    Action.TAKEDOWN: HIDEABLE,
    Action.RESTORE: HIDEABLE + (TargetKind.USER,),
    Action.SUSPEND: (TargetKind.USER,),
    Action.RELEASE: (TargetKind.UPLOAD,),
    Action.DELETE: (TargetKind.UPLOAD,),
}
_STATE_FOR = {Action.HIDE: ModerationState.HIDDEN, Action.TAKEDOWN: ModerationState.REMOVED,
              Action.RESTORE: ModerationState.VISIBLE}


def _set_state(target: Target, state: str) -> dict:
    if target.kind in COMMUNITY:
        # Reviews and comments are counted in the community stats; that app keeps them true.
        from hub.community.services import moderation_state_set

        return moderation_state_set(obj=target.holder, state=state)
    holder = type(target.holder).objects.select_for_update().get(pk=target.holder.pk)
    before = holder.moderation
    type(holder).objects.filter(pk=holder.pk).update(moderation=state)
    target.holder.moderation = state
    return {"from": before, "to": state}


def _set_nsfw_level(target: Target, level, actor: User) -> dict:
    try:
        level = int(level)
    except (TypeError, ValueError):
        level = None
    if level not in NSFW_LEVELS:
        raise ModerationError("invalid_nsfw_level", "the NSFW level is one of 1 (PG), 2 (PG-13), 4 (R), 8 (X)",
                              field="nsfwLevel")
    before = getattr(target.obj, "nsfw_level", None)
    # The NSFW levels and the rules that follow from them belong to the catalogue and images code.
    if target.kind == TargetKind.MODEL:
        from hub.catalog.services import model_nsfw_level_set

        model_nsfw_level_set(model=target.obj, level=level, actor=actor)
    else:
        from hub.uploads.image_services import image_nsfw_level_set

        image_nsfw_level_set(image=target.obj, level=level, actor=actor)
    return {"from": before, "to": level}


def _suspend(target: Target, actor: User) -> dict:
    user = target.obj
    if user.pk == actor.pk:
        raise ModerationError("forbidden", "you cannot suspend yourself", status=403)
    if user.is_superuser:
        raise ModerationError("forbidden", "a superuser cannot be suspended from here", status=403)
    # Inactive accounts cannot sign in, their sessions stop resolving, their API keys are refused
    # (`api_key_check`) and the visibility rules hide their content; restoring brings all of it back.
    User.objects.filter(pk=user.pk).update(is_active=False)
    user.is_active = False
    return {"from": "active", "to": "suspended"}


def _unsuspend(target: Target) -> dict:
    User.objects.filter(pk=target.obj.pk).update(is_active=True)
    target.obj.is_active = True
    return {"from": "suspended", "to": "active"}


def moderation_act(*, actor: User, target_kind: str, target_id: str, action: str, reason: str,
                   nsfw_level=None) -> ModerationAction:
    """Do `action` on the target, log it, resolve its open reports, and tell the owner."""
    if not is_moderator(actor):
        raise ModerationError("forbidden", "only moderators can do this", status=403)
    if action not in ALLOWED:
        raise ModerationError("invalid_action", f"unknown action {action!r}; one of {', '.join(ALLOWED)}",
                              field="action")
    if action == Action.NSFW_LEVEL and target_kind in COMMUNITY:
        raise ModerationError("invalid_action", f"a {target_kind} has no NSFW level; hide or take it down instead",
                              field="action")
    if target_kind not in ALLOWED[action]:
        raise ModerationError("invalid_action", f"cannot {action} a {target_kind}", field="action")
    reason = _clean_text(reason, MAX_REASON, "reason")
    if not reason:
        raise ModerationError("reason_required", "say why: the owner is told and the audit log keeps it",
                              field="reason")
    target = target_get(target_kind, str(target_id))
    if target is None:
        raise ModerationError("not_found", f"no such {target_kind}", status=404)
    with transaction.atomic():
        if action in _STATE_FOR and target.kind != TargetKind.USER:
            details = _set_state(target, _STATE_FOR[action])
        elif action == Action.RESTORE:
            details = _unsuspend(target)
        elif action == Action.SUSPEND:
            details = _suspend(target, actor)
        elif action == Action.NSFW_LEVEL:
            details = _set_nsfw_level(target, nsfw_level, actor)
        elif action in (Action.RELEASE, Action.DELETE):
            details = _quarantine_decide(target, action, actor, reason)
        else:
            details = {}
        record = ModerationAction.objects.create(
            actor=actor, action=action, target_kind=target.kind, target_id=target.id, target_label=target.label[:300],
            target_owner=target.owner, reason=reason, details=details,
        )
        resolved = Report.Status.DISMISSED if action == Action.DISMISS else Report.Status.RESOLVED
        Report.objects.filter(target_kind=target.kind, target_id=target.id, status=Report.Status.OPEN).update(
            status=resolved, resolved_at=timezone.now(), resolved_by=actor, resolution=record,
        )
        if action != Action.DISMISS:
            # Dismissing changes nothing for the owner, and telling them would reveal the report.
            transaction.on_commit(lambda: _notify_owner(record.pk, target.url))
    return record


def _quarantine_decide(target: Target, action: str, actor: User, reason: str) -> dict:
    from hub.uploads import services as uploads
    from hub.uploads.errors import UploadError

    finding = target.obj.error_message
    try:
        if action == Action.RELEASE:
            uploads.upload_quarantine_release(upload=target.obj, moderator=actor, reason=reason)
        else:
            uploads.upload_quarantine_delete(upload=target.obj, reason=reason)
    except UploadError as exc:
        raise ModerationError(exc.code, str(exc), status=409) from exc
    return {"finding": finding}


_SUBJECTS = {
    Action.NSFW_LEVEL: "The NSFW level of your {label} was changed",
    Action.HIDE: "Your {label} was hidden by a moderator",
    Action.TAKEDOWN: "Your {label} was taken down",
    Action.RESTORE: "Your {label} was restored",
    Action.SUSPEND: "Your Mergeworks account was suspended",
    Action.RELEASE: "Your {label} was released from quarantine",
    Action.DELETE: "Your quarantined {label} was deleted",
}


def _notify_owner(action_id: int, url: str) -> None:
    """Email the owner through Django's email backend; a mail outage must not undo the action."""
    record = ModerationAction.objects.select_related("target_owner").get(pk=action_id)
    owner = record.target_owner
    if owner is None or not owner.email:
        return
    subject = _SUBJECTS[record.action].format(label=record.target_label)
    site = getattr(settings, "SITE_URL", "") or ""
    body = (
        f"Hello {owner.username},\n\n{subject}.\n\nReason given by the moderator:\n{record.reason}\n\n"
        f"{site.rstrip('/')}{url}\n\nThis message was sent because a moderator acted on your content on Mergeworks.\n"
    )
    try:
        send_mail(subject[:200], body, None, [owner.email])
    except Exception:  # noqa: BLE001 - any backend failure; the on-site notice still says it
        log.exception("could not email %s about moderation action %s", owner.pk, record.pk)


# --- the moderator role ---------------------------------------------------------------------


def moderator_grant(*, user: User) -> None:
    """Put `user` in the Moderators group (created with the `moderate` permission if missing)."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=conf.MODERATORS_GROUP)
        permission = Permission.objects.get(content_type__app_label="moderation", codename="moderate")
        group.permissions.add(permission)
        user.groups.add(group)
        transaction.on_commit(lambda: nav_flag_set(user_id=user.pk, value=None))


def moderator_revoke(*, user: User) -> None:
    with transaction.atomic():
        group = Group.objects.filter(name=conf.MODERATORS_GROUP).first()
        if group is not None:
            user.groups.remove(group)
        transaction.on_commit(lambda: nav_flag_set(user_id=user.pk, value=None))
