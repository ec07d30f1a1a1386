"""Website routes. Other features add their pages here (one `path` line each)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

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
]
