from django.contrib import admin

from hub.previews.models import LoraPreviewBase, PreviewGrid, RenderJob


@admin.register(LoraPreviewBase)
class LoraPreviewBaseAdmin(admin.ModelAdmin):
    list_display = ("base_model", "checkpoint")
    raw_id_fields = ("checkpoint",)


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "status", "images_done", "images_total", "attempts", "created_at")
    list_filter = ("status", "trigger")
    raw_id_fields = ("model_version", "base_version", "secondary_version", "requested_by", "grid")


@admin.register(PreviewGrid)
class PreviewGridAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "layout", "width", "height", "created_at")
    raw_id_fields = ("model_version", "base_version", "secondary_version", "created_by")
