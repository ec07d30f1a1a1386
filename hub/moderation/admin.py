from django.contrib import admin

from hub.moderation.models import ModerationAction, Report


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "target_kind", "target_id", "reason", "reporter", "status", "created_at")
    list_filter = ("status", "reason", "target_kind")
    raw_id_fields = ("reporter", "resolved_by", "resolution")


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The audit log is append-only: readable here, changed by nobody."""

    list_display = ("created_at", "actor", "action", "target_kind", "target_id", "target_label", "reason")
    list_filter = ("action", "target_kind")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
