"""Routes of the Hugging Face-compatible read protocol, mounted at the site root.

Repo ids are `{username}/{model-slug}`, limited to the characters
huggingface_hub accepts in a repo id. The `resolve` route needs the literal
third segment `resolve` and a file path after the revision, so it cannot
shadow a website page, and names reserved by the site never count as users.
"""
from django.urls import re_path

from hub.hf import views

app_name = "hf"

_NS = r"(?P<namespace>[A-Za-z0-9][A-Za-z0-9_.\-]*)"
_NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)"
_REPO = f"{_NS}/{_NAME}"
# First path segments the website and API own; a user with such a name has no HF route.
_RESERVED = r"(?!(?:admin|api|static|media|models|users|account|login|logout|signup|recipes|jobs)/)"

urlpatterns = [
    re_path(rf"^api/models/{_REPO}/?$", views.model_info, name="model-info"),
    re_path(rf"^api/models/{_REPO}/revision/(?P<revision>.+)$", views.model_info, name="model-info-revision"),
    re_path(rf"^api/models/{_REPO}/tree/(?P<revision>[^/]+)/?$", views.tree, name="tree"),
    re_path(rf"^api/models/{_REPO}/tree/(?P<revision>[^/]+)/(?P<path>.+)$", views.tree, name="tree-path"),
    re_path(rf"^api/models/{_REPO}/paths-info/(?P<revision>[^/]+)$", views.paths_info, name="paths-info"),
    re_path(rf"^{_RESERVED}{_REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$", views.resolve, name="resolve"),
]
