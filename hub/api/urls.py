from django.urls import path

from hub.api.health import health

app_name = "api"
urlpatterns = [
    path("v1/health", health, name="health"),
]
