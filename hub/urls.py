from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from hub.api.docs import RedocDocsView, SwaggerDocsView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerDocsView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", RedocDocsView.as_view(url_name="schema"), name="api-redoc"),
    # Hugging Face-compatible routes (/api/models/{user}/{slug}..., /{user}/{slug}/resolve/...)
    # come before the REST API and the website so no catch-all there can shadow them.
    path("", include("hub.hf.urls")),
    path("api/", include("hub.api.urls")),
    path("", include("frontend.urls")),
]
