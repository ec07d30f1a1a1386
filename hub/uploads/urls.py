"""Included from hub/api/urls.py under `api/` (namespace `api`)."""
from django.urls import path

from hub.uploads import api

urlpatterns = [
    path("v1/uploads", api.UploadListView.as_view(), name="uploads"),
    path("v1/uploads/<uuid:upload_id>", api.UploadDetailView.as_view(), name="upload"),
    path("v1/uploads/<uuid:upload_id>/complete", api.UploadCompleteView.as_view(), name="upload-complete"),
    path("v1/uploads/<uuid:upload_id>/version", api.UploadVersionView.as_view(), name="upload-version"),
    path("v1/uploads/<uuid:upload_id>/parts/<int:number>", api.UploadPartView.as_view(), name="upload-part"),
    path("v1/model-versions/<int:version_id>/images", api.VersionImagesView.as_view(), name="version-images"),
    path("v1/images/<int:image_id>", api.image_serve, name="image"),
]
