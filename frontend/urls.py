"""Website routes. Other features add their pages here (one `path` line each)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import image_views, preview_views, recipe_views, upload_views, views

app_name = "frontend"
urlpatterns = [
    path("", views.model_list, name="home"),
    path("models/", views.model_list, name="models"),
    path("models/<int:model_id>/", views.model_detail, name="model-short"),
    path("models/<int:model_id>/<str:slug>/", views.model_detail, name="model"),
    path("users/<str:username>/", views.creator_detail, name="creator"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/api-keys/", views.api_keys, name="api-keys"),
    path("account/api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
    path("recipes/", recipe_views.recipe_list, name="recipes"),
    path("recipes/new/", recipe_views.recipe_new, name="recipe-new"),
    path("recipes/import/", recipe_views.recipe_import, name="recipe-import"),
    path("recipes/<int:recipe_id>/", recipe_views.recipe_detail, name="recipe"),
    path("recipes/<int:recipe_id>/edit/", recipe_views.recipe_edit, name="recipe-edit"),
    path("recipes/<int:recipe_id>/diff/", recipe_views.recipe_diff, name="recipe-diff"),
    path("recipes/<int:recipe_id>/fork/", recipe_views.recipe_fork, name="recipe-fork"),
    path("recipes/<int:recipe_id>/run/", recipe_views.recipe_run, name="recipe-run"),
    path("model-versions/<int:version_id>/lineage/", recipe_views.lineage, name="lineage"),
    path("previews/<str:kind>/<int:pk>.<str:ext>", preview_views.preview_file, name="preview-file"),
    path("model-versions/<int:version_id>/previews/", preview_views.preview_request_view, name="preview-request"),
    path("previews/compare/", preview_views.preview_compare, name="preview-compare"),
    path("images/<int:image_id>/", image_views.image_detail, name="image"),
    path("model-versions/<int:version_id>/images/", image_views.version_images, name="version-images"),
    path("account/preferences/", image_views.preferences, name="preferences"),
    path("upload/", upload_views.upload_start, name="upload"),
    path("upload/preview/", upload_views.markdown_preview, name="upload-markdown-preview"),
    path("upload/<uuid:upload_id>/", upload_views.upload_detail, name="upload-detail"),
    path("upload/<uuid:upload_id>/publish/", upload_views.upload_publish, name="upload-publish"),
]
