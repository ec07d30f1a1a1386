"""Reports and moderation over the REST API (included under /api/ by hub.api.urls).

`POST /api/v1/reports` is open to any signed-in user (an API key needs the
`read` scope). The queue and the actions are for moderators only; others get
403, as JSON like every API error.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from hub.accounts.auth import HasScope
from hub.api.base import V1View
from hub.api.errors import error_body
from hub.moderation import selectors, services
from hub.moderation.models import ModerationAction, Report, TargetKind
from hub.moderation.targets import REPORTABLE


class ReportIn(serializers.Serializer):
    targetKind = serializers.ChoiceField(choices=list(REPORTABLE))
    targetId = serializers.CharField(max_length=64)
    reason = serializers.ChoiceField(choices=Report.Reason.values)
    details = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_DETAILS, default="")


class ReportOut(serializers.Serializer):
    id = serializers.IntegerField()
    targetKind = serializers.CharField()
    targetId = serializers.CharField()
    reason = serializers.CharField()
    details = serializers.CharField()
    status = serializers.CharField()
    createdAt = serializers.DateTimeField()
    duplicate = serializers.BooleanField(help_text="true when this user had already reported the object")


class ActionIn(serializers.Serializer):
    targetKind = serializers.ChoiceField(choices=TargetKind.values)
    targetId = serializers.CharField(max_length=64)
    action = serializers.ChoiceField(choices=ModerationAction.Action.values)
    reason = serializers.CharField(max_length=services.MAX_REASON)
    nsfwLevel = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=8)


class ActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    actor = serializers.CharField(allow_null=True)
    action = serializers.CharField()
    targetKind = serializers.CharField()
    targetId = serializers.CharField()
    targetLabel = serializers.CharField()
    reason = serializers.CharField()
    details = serializers.DictField()
    createdAt = serializers.DateTimeField()


class QueueEntryOut(serializers.Serializer):
    targetKind = serializers.CharField()
    targetId = serializers.CharField()
    targetLabel = serializers.CharField(allow_null=True)
    targetUrl = serializers.CharField(allow_null=True)
    owner = serializers.CharField(allow_null=True)
    state = serializers.CharField()
    firstReportedAt = serializers.DateTimeField()
    reports = ReportOut(many=True)
    actions = ActionOut(many=True)


def report_out(report: Report, *, duplicate: bool = False) -> dict:
    return {"id": report.pk, "targetKind": report.target_kind, "targetId": report.target_id,
            "reason": report.reason, "details": report.details, "status": report.status,
            "createdAt": report.created_at, "duplicate": duplicate}


def action_out(action: ModerationAction) -> dict:
    return {"id": action.pk, "actor": action.actor.username if action.actor else None, "action": action.action,
            "targetKind": action.target_kind, "targetId": action.target_id, "targetLabel": action.target_label,
            "reason": action.reason, "details": action.details, "createdAt": action.created_at}


class ModerationView(V1View):
    permission_classes = [HasScope]
    required_scope = "read"

    def handle_exception(self, exc):
        if isinstance(exc, services.ModerationError):
            details = {exc.field: [str(exc)]} if exc.field else None
            return Response(error_body(str(exc), code=exc.code, status_code=exc.status, details=details),
                            status=exc.status)
        return super().handle_exception(exc)

    def require_moderator(self, request: Request) -> None:
        if not selectors.is_moderator(request.user):
            raise services.ModerationError("forbidden", "only moderators can do this", status=403)


class ReportListView(ModerationView):
    @extend_schema(operation_id="report_create", summary="Report a model, version, image, preview, recipe or user",
                   request=ReportIn, responses={201: ReportOut, 200: ReportOut}, tags=["moderation"])
    def post(self, request: Request):
        data = ReportIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        report, created = services.report_create(
            reporter=request.user, target_kind=v["targetKind"], target_id=v["targetId"], reason=v["reason"],
            details=v["details"],
        )
        return Response(report_out(report, duplicate=not created),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class QueueView(ModerationView):
    @extend_schema(operation_id="moderation_queue", summary="Open reports grouped by object, oldest first",
                   responses={200: QueueEntryOut(many=True)}, tags=["moderation"])
    def get(self, request: Request):
        self.require_moderator(request)
        items = []
        for entry in selectors.report_queue():
            target = entry.target
            items.append({
                "targetKind": entry.kind, "targetId": entry.id,
                "targetLabel": target.label if target else None, "targetUrl": target.url if target else None,
                "owner": target.owner.username if target and target.owner else None,
                "state": target.state if target else "", "firstReportedAt": entry.first_reported,
                "reports": [report_out(r) for r in entry.reports], "actions": [action_out(a) for a in entry.actions],
            })
        return Response({"items": items})


class ActionListView(ModerationView):
    @extend_schema(operation_id="moderation_actions", summary="The audit log, newest first (moderators)",
                   responses={200: ActionOut(many=True)}, tags=["moderation"])
    def get(self, request: Request):
        self.require_moderator(request)
        kind, target_id = request.query_params.get("targetKind"), request.query_params.get("targetId")
        if kind and target_id:
            actions = selectors.actions_for(kind, target_id)
        else:
            actions = selectors.audit_log()
        return Response({"items": [action_out(a) for a in actions]})

    @extend_schema(operation_id="moderation_act", summary="Act on an object: dismiss, nsfw_level, hide, takedown, "
                   "restore, suspend, release, delete", request=ActionIn, responses={201: ActionOut},
                   tags=["moderation"])
    def post(self, request: Request):
        self.require_moderator(request)
        data = ActionIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        action = services.moderation_act(
            actor=request.user, target_kind=v["targetKind"], target_id=v["targetId"], action=v["action"],
            reason=v["reason"], nsfw_level=v.get("nsfwLevel"),
        )
        return Response(action_out(action), status=status.HTTP_201_CREATED)
