from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "hub.uploads"
    label = "uploads"
    verbose_name = "Uploads"
