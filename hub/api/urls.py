from django.urls import include, path

from hub.api import schema_extensions  # noqa: F401  (registers the API key auth scheme)
from hub.api.health import health, health_live
from hub.api.views_accounts import ApiKeyDetailView, ApiKeyListView, MeView
from hub.api.views_catalog import (
    CreatorListView,
    ModelDetailView,
    ModelListView,
    ModelVersionByHashBulkView,
    ModelVersionByHashView,
    ModelVersionDetailView,
    TagListView,
)
from hub.api.views_downloads import DownloadView

app_name = "api"
urlpatterns = [
    path("v1/health", health, name="health"),
    path("v1/health/live", health_live, name="health-live"),
    path("download/models/<int:version_id>", DownloadView.as_view(), name="download"),
    path("v1/models", ModelListView.as_view(), name="models"),
    path("v1/models/<int:model_id>", ModelDetailView.as_view(), name="model"),
    path("v1/model-versions/by-hash", ModelVersionByHashBulkView.as_view(), name="model-versions-by-hash-bulk"),
    path("v1/model-versions/by-hash/<str:hash>", ModelVersionByHashView.as_view(), name="model-version-by-hash"),
    path("v1/model-versions/<int:version_id>", ModelVersionDetailView.as_view(), name="model-version"),
    path("v1/tags", TagListView.as_view(), name="tags"),
    path("v1/creators", CreatorListView.as_view(), name="creators"),
    path("v1/me", MeView.as_view(), name="me"),
    path("v1/api-keys", ApiKeyListView.as_view(), name="api-keys"),
    path("v1/api-keys/<int:key_id>", ApiKeyDetailView.as_view(), name="api-key"),
    path("", include("merges.registry.urls")),
    path("", include("hub.uploads.urls")),
    path("", include("hub.previews.urls")),
    path("", include("hub.moderation.urls")),
    path("", include("hub.community.urls")),
]
