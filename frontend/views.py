"""Page views: read through selectors, write through services, render templates."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from frontend import selectors
from frontend.gallery import gallery_for
from frontend.forms import ApiKeyCreateForm, ModelFilterForm, SignUpForm
from hub.accounts.services import api_key_create, api_key_revoke, user_create

MODELS_PER_PAGE = 24


def _paginate(request, queryset):
    return Paginator(queryset, MODELS_PER_PAGE).get_page(request.GET.get("page"))


def model_list(request):
    form = ModelFilterForm(request.GET or None)
    filters = form.filters() if request.GET else selectors.ModelFilters()
    page = _paginate(request, selectors.model_listing(user=request.user, filters=filters))
    return render(request, "frontend/model_list.html", {"form": form, "filters": filters, "page": page})


def model_detail(request, model_id: int, slug: str | None = None):
    model = selectors.model_detail(user=request.user, model_id=model_id)
    if model is None:
        raise Http404("No such model")
    canonical = reverse("frontend:model", kwargs={"model_id": model.pk, "slug": model.slug})
    if slug != model.slug:
        query = request.META.get("QUERY_STRING")
        return redirect(f"{canonical}?{query}" if query else canonical, permanent=slug is not None)
    versions = selectors.model_versions_for(user=request.user, model=model)
    # ?modelVersionId= as on Civitai, so links copied from there map one-to-one.
    wanted = request.GET.get("modelVersionId")
    current = next((v for v in versions if str(v.pk) == wanted), versions[0] if versions else None)
    gallery = gallery_for(request.user, current)
    return render(
        request,
        "frontend/model_detail.html",
        {
            "model": model,
            "versions": versions,
            "current": current,
            "is_owner": request.user.is_authenticated and model.owner_id == request.user.pk,
            "tags": list(model.tags.all()),
            "gallery": gallery,
            "gallery_data": [item.lightbox() for item in gallery],
        },
    )


def creator_detail(request, username: str):
    creator = selectors.creator_get(username=username)
    if creator is None:
        raise Http404("No such creator")
    filters = selectors.ModelFilters(nsfw=request.GET.get("nsfw") == "on")
    page = _paginate(request, selectors.model_listing(user=request.user, filters=filters, owner=creator))
    return render(request, "frontend/creator_detail.html", {"creator": creator, "page": page, "filters": filters})


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("frontend:home")
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_create(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data.get("email") or "",
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Your account is ready.")
        return redirect(next_url or "frontend:home")
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        issued = api_key_create(user=request.user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"])
        # Rendered, not redirected: the plaintext exists only in this response
        # and must not land in any cache or history entry that can be replayed.
        response = render(request, "frontend/api_key_created.html", {"issued": issued})
        add_never_cache_headers(response)
        return response
    keys = selectors.api_keys_of(user=request.user)
    return render(request, "frontend/api_keys.html", {"form": form, "keys": keys})


@login_required
@require_POST
def api_key_revoke_view(request, key_id: int):
    key = selectors.api_key_of(user=request.user, key_id=key_id)
    if key is None:
        raise Http404("No such key")
    api_key_revoke(api_key=key)
    messages.success(request, f"Key “{key.name}” (mw_{key.prefix}…) is revoked; requests using it now fail.")
    return redirect("frontend:api-keys")
