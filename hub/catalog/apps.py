from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "hub.catalog"
    label = "catalog"

    def ready(self) -> None:
        from hub.catalog.page_cache import install_write_watch

        install_write_watch()
