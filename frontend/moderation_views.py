"""Moderation pages: report forms, the image page, the moderators' queue and audit log, copyright claims."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from frontend.moderation_forms import ActionForm, ClaimForm, ReportForm
from hub.limits import client_ip
from hub.moderation import selectors
from hub.moderation.models import TargetKind
from hub.moderation.services import ModerationError, claim_create, moderation_act, report_create
from hub.moderation.targets import REPORTABLE, target_get


def _form_error(form, exc: ModerationError, fields: dict[str, str] | None = None) -> None:
    field = (fields or {}).get(exc.field or "", exc.field)
    form.add_error(field if field in form.fields else None, str(exc))


@login_required
@require_http_methods(["GET", "POST"])
def report(request, kind: str, target_id: str):
    target = target_get(kind, target_id) if kind in REPORTABLE else None
    if target is None or not selectors.target_visible_to(request.user, target):
        raise Http404("Nothing to report here")
    form = ReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            _, created = report_create(reporter=request.user, target_kind=target.kind, target_id=target.id,
                                       reason=form.cleaned_data["reason"], details=form.cleaned_data["details"])
        except ModerationError as exc:
            if exc.status == 429:
                return render(request, "frontend/moderation/report.html", {"form": form, "target": target,
                                                                           "limited": str(exc)}, status=429)
            _form_error(form, exc)
        else:
            messages.success(request, "Thank you: a moderator will look at your report." if created
                             else "You have already reported this; a moderator will look at it.")
            return redirect(target.url)
    return render(request, "frontend/moderation/report.html", {"form": form, "target": target})


def _moderator_only(request) -> None:
    if not request.user.is_authenticated:
        raise Http404("No such page")
    if not selectors.is_moderator(request.user):
        raise PermissionDenied("Only moderators can see this page")


@login_required
def queue(request):
    _moderator_only(request)
    entries = selectors.report_queue()
    for entry in entries:
        entry.form = ActionForm(initial={"target_kind": entry.kind, "target_id": entry.id})
    return render(request, "frontend/moderation/queue.html", {
        "entries": entries, "quarantined": selectors.quarantined_uploads(),
    })


@login_required
@require_POST
def act(request):
    _moderator_only(request)
    form = ActionForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"Nothing done: {errors}")
        return redirect("frontend:moderation-queue")
    v = form.cleaned_data
    try:
        record = moderation_act(actor=request.user, target_kind=v["target_kind"], target_id=v["target_id"],
                                action=v["action"], reason=v["reason"], nsfw_level=v["nsfw_level"])
    except ModerationError as exc:
        messages.error(request, f"Nothing done: {exc}")
    else:
        messages.success(request, f"{record.get_action_display()}: {record.target_label}. The owner has been told.")
    return redirect("frontend:moderation-queue")


@login_required
def audit_log(request):
    _moderator_only(request)
    before = request.GET.get("before")
    before_id = int(before) if before and before.isdigit() and len(before) < 19 else None
    actions = selectors.audit_log(limit=100, before_id=before_id)
    return render(request, "frontend/moderation/audit_log.html", {
        "actions": actions, "next_before": actions[-1].pk if len(actions) == 100 else None,
    })


@require_http_methods(["GET", "POST"])
def claim(request):
    form = ClaimForm(request.POST or None, initial={"url": request.GET.get("url", "")[:2000]})
    if request.method == "POST" and form.is_valid():
        v = form.cleaned_data
        try:
            claim_create(claimant_name=v["claimant_name"], claimant_email=v["claimant_email"], url=v["url"],
                         original_work=v["original_work"], good_faith=v["good_faith"],
                         client_address=client_ip(request), reporter=request.user)
        except ModerationError as exc:
            if exc.status == 429:
                return render(request, "frontend/moderation/claim.html", {"form": form, "limited": str(exc)},
                              status=429)
            _form_error(form, exc)
        else:
            messages.success(request, "Your claim has been received. A moderator will review it and write to you.")
            return redirect(reverse("frontend:copyright-claim"))
    return render(request, "frontend/moderation/claim.html", {"form": form})
