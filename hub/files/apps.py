from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "hub.files"
    label = "files"
