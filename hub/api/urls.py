from django.urls import path

from hub.api.health import health
from hub.api.views_downloads import DownloadView

app_name = "api"
urlpatterns = [
    path("v1/health", health, name="health"),
    path("download/models/<int:version_id>", DownloadView.as_view(), name="download"),
]
