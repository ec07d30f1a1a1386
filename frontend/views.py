"""Page views: read through selectors, write through services, render templates."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods
from django.views.generic.edit import FormView

from frontend import selectors
from frontend.forms import ApiKeyCreateForm, BrowsingPreferencesForm, EmailChangeForm, ModelFilterForm, SignUpForm
from frontend.gallery import gallery_for
from hub.accounts.services import (
    api_key_create,
    api_key_revoke,
    password_reset_claim,
    user_create,
    user_email_change,
    user_password_change,
)

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


# The new key's plaintext waits here between the POST and the page that shows
# it, and is popped by that page: a reload, or Back, finds nothing to show and
# creates nothing (post/redirect/get).
ISSUED_KEY_SESSION = "frontend.issued_api_key"


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        issued = api_key_create(user=request.user, name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"])
        request.session[ISSUED_KEY_SESSION] = {"id": issued.api_key.pk, "plaintext": issued.plaintext}
        return redirect("frontend:api-key-created")
    if request.method == "GET":
        # A secret whose page was never opened does not linger in the session.
        request.session.pop(ISSUED_KEY_SESSION, None)
    keys = selectors.api_keys_of(user=request.user)
    return render(request, "frontend/api_keys.html", {"form": form, "keys": keys})


@login_required
@require_GET
def api_key_created(request):
    issued = request.session.pop(ISSUED_KEY_SESSION, None)
    key = None
    if isinstance(issued, dict) and isinstance(issued.get("id"), int):
        key = selectors.api_key_of(user=request.user, key_id=issued["id"])
    if key is None:
        messages.info(
            request,
            "A new key is shown only once, right after it is created. If you did not copy it, revoke it and create another.",
        )
        return redirect("frontend:api-keys")
    response = render(request, "frontend/api_key_created.html", {"key": key, "plaintext": issued["plaintext"]})
    # The plaintext must not land in any cache that could replay it.
    add_never_cache_headers(response)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke_view(request, key_id: int):
    key = selectors.api_key_of(user=request.user, key_id=key_id)
    if key is None:
        raise Http404("No such key")
    if key.revoked_at is not None:
        messages.info(request, f"Key “{key.name}” (mw_{key.prefix}…) was already revoked.")
        return redirect("frontend:api-keys")
    if request.method == "GET":
        # The confirmation is a page of its own, so it works without JavaScript.
        return render(request, "frontend/api_key_revoke.html", {"key": key})
    api_key_revoke(api_key=key)
    messages.success(request, f"Key “{key.name}” (mw_{key.prefix}…) is revoked; requests using it now fail.")
    return redirect("frontend:api-keys")


# --- account settings and password reset ------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request):
    # Each section posts to this page with its own `form` value; only that form is bound.
    which = request.POST.get("form") if request.method == "POST" else None
    email_form = EmailChangeForm(
        request.POST if which == "email" else None, user=request.user, initial={"email": request.user.email},
        prefix="email",
    )
    password_form = PasswordChangeForm(request.user, request.POST if which == "password" else None, prefix="password")
    password_form.fields["old_password"].widget.attrs.pop("autofocus", None)  # not the first field of the page
    if which == "email" and email_form.is_valid():
        user = user_email_change(user=request.user, email=email_form.cleaned_data["email"])
        if user.email:
            messages.success(request, f"Your email is now {user.email}. Password resets go there.")
        else:
            messages.warning(request, "Your email is removed: a forgotten password can no longer be reset.")
        return redirect("frontend:account")
    preferences_form = BrowsingPreferencesForm.for_user(
        request.user, request.POST if which == "preferences" else None, prefix="preferences",
    )
    if which == "preferences" and preferences_form.is_valid():
        preferences_form.save(user=request.user)
        messages.success(request, "Your content preferences are saved.")
        return redirect("frontend:account")
    if which == "password" and password_form.is_valid():
        user = user_password_change(user=request.user, password=password_form.cleaned_data["new_password1"])
        # Keeps this browser signed in; every other session of the account ends.
        update_session_auth_hash(request, user)
        messages.success(request, "Your password is changed. Other browsers signed in as you are now signed out.")
        return redirect("frontend:account")
    active_keys = selectors.api_keys_of(user=request.user).filter(revoked_at__isnull=True).count()
    return render(
        request,
        "frontend/account_settings.html",
        {"email_form": email_form, "password_form": password_form, "preferences_form": preferences_form,
         "active_keys": active_keys},
    )


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "frontend/password_reset_form.html"
    email_template_name = "frontend/email/password_reset.txt"
    subject_template_name = "frontend/email/password_reset_subject.txt"
    success_url = reverse_lazy("frontend:password-reset-sent")

    def form_valid(self, form):
        opts = {
            "use_https": self.request.is_secure(),
            "domain_override": None,
            "token_generator": self.token_generator,
            "from_email": self.from_email,
            "email_template_name": self.email_template_name,
            "subject_template_name": self.subject_template_name,
            "request": self.request,
            "extra_email_context": {"site_name": "Mergeworks"},
        }
        if "*" in settings.ALLOWED_HOSTS:
            # The Host header is not checked, so a forged one could make the
            # emailed link point elsewhere: build it from SITE_URL instead.
            site = urlsplit(settings.SITE_URL)
            opts.update(use_https=site.scheme == "https", domain_override=site.netloc)
        # A throttled request gets the same answer as any other: nothing tells whether an email went out.
        if password_reset_claim(email=form.cleaned_data["email"]):
            form.save(**opts)
        return FormView.form_valid(self, form)


password_reset_sent = auth_views.PasswordResetDoneView.as_view(template_name="frontend/password_reset_sent.html")
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="frontend/password_reset_confirm.html", success_url=reverse_lazy("frontend:password-reset-complete")
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="frontend/password_reset_complete.html"
)
