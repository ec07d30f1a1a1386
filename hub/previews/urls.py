"""Preview routes, included under /api/ by hub.api.urls (namespace "api")."""
from django.urls import path

from hub.previews import api

urlpatterns = [
    path("v1/model-versions/<int:version_id>/previews", api.VersionPreviewsView.as_view(), name="model-version-previews"),
    path(
        "v1/model-versions/<int:version_id>/preview-bases", api.PreviewBasesView.as_view(), name="model-version-preview-bases"
    ),
    path("v1/render-jobs/<int:job_id>", api.RenderJobView.as_view(), name="render-job"),
    path("v1/preview-grids/<int:grid_id>", api.PreviewGridView.as_view(), name="preview-grid"),
]
