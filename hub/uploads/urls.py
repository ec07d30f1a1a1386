"""Included from hub/api/urls.py under `api/` (namespace `api`)."""
from django.urls import path

from hub.uploads import api, image_api

urlpatterns = [
    path("v1/uploads", api.UploadListView.as_view(), name="uploads"),
    path("v1/uploads/<uuid:upload_id>", api.UploadDetailView.as_view(), name="upload"),
    path("v1/uploads/<uuid:upload_id>/complete", api.UploadCompleteView.as_view(), name="upload-complete"),
    path("v1/uploads/<uuid:upload_id>/version", api.UploadVersionView.as_view(), name="upload-version"),
    path("v1/uploads/<uuid:upload_id>/parts/<int:number>", api.UploadPartView.as_view(), name="upload-part"),
    path("v1/model-versions/<int:version_id>/images", image_api.VersionImagesView.as_view(), name="version-images"),
    path("v1/model-versions/<int:version_id>/images/order", image_api.VersionImagesOrderView.as_view(),
         name="version-images-order"),
    path("v1/model-versions/<int:version_id>/images/<int:image_id>", image_api.VersionImageDetailView.as_view(),
         name="version-image"),
    path("v1/images/<int:image_id>", image_api.ImageFileView.as_view(), name="image"),
    path("v1/images/<int:image_id>/<str:variant>", image_api.ImageVariantFileView.as_view(), name="image-variant"),
]
