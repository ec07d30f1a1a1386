from django.apps import AppConfig


class HfConfig(AppConfig):
    name = "hub.hf"
    label = "hf"
    verbose_name = "Hugging Face-compatible read protocol"
