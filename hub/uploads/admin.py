from django.contrib import admin

from hub.uploads.models import ExampleImage, Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("id", "filename", "owner", "status", "error_code", "size_bytes", "backend", "created_at")
    list_filter = ("status", "backend", "format")
    search_fields = ("id", "filename", "declared_sha256", "owner__username")
    readonly_fields = [f.name for f in Upload._meta.fields]


@admin.register(ExampleImage)
class ExampleImageAdmin(admin.ModelAdmin):
    list_display = ("id", "version", "content_type", "width", "height", "size_bytes", "created_at")
    readonly_fields = ("sha256", "storage_key", "parameters")
