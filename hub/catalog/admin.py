from django.contrib import admin

from hub.catalog.models import Download, Model, ModelVersion, Tag


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ("name", "base_model", "status", "published_at", "download_count")


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "type", "status", "visibility", "nsfw", "download_count", "published_at")
    list_filter = ("type", "status", "visibility", "nsfw")
    search_fields = ("name", "slug", "owner__username")
    filter_horizontal = ("tags",)
    inlines = [VersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "base_model", "status", "published_at", "download_count")
    list_filter = ("base_model", "status")
    search_fields = ("name", "model__name")


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ("version", "file_id", "user", "created_at")
