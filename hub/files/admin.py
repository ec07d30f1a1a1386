from django.contrib import admin

from hub.files.models import ModelFile


@admin.register(ModelFile)
class ModelFileAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "format", "precision", "size_bytes", "pickle_scan_status", "primary")
    list_filter = ("format", "pickle_scan_status")
    search_fields = ("name", "sha256", "autov2", "blake3")
    readonly_fields = ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3", "storage_key", "header_summary")
