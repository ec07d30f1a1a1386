from django.apps import AppConfig


class PreviewsConfig(AppConfig):
    name = "hub.previews"
    label = "previews"
    verbose_name = "Preview grids"
