from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "merges.registry"
    label = "registry"
    verbose_name = "Recipe registry"
