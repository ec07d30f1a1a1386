from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import UserCreationForm

from hub.accounts.models import ApiKey
from hub.catalog.models import Model, ModelVersion
from frontend.templatetags.mergeworks import type_label
from frontend.selectors import DEFAULT_SORT, SORTS, ModelFilters


# Django's recommended set. Used when settings configure none, so that a public
# sign-up form never accepts "password" whatever the deployment forgot.
DEFAULT_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


def signup_password_validators():
    return password_validation.get_password_validators(
        settings.AUTH_PASSWORD_VALIDATORS or DEFAULT_PASSWORD_VALIDATORS
    )


class SignUpForm(UserCreationForm):
    """Validates a sign-up; the account itself is created by `user_create`."""

    email = forms.EmailField(required=False, help_text="Optional. Only used to reset your password.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["password1"].help_text = password_validation.password_validators_help_text_html(
            signup_password_validators()
        )

    def validate_password_for_user(self, user, password_field_name="password2"):
        password = self.cleaned_data.get(password_field_name)
        if password:
            try:
                password_validation.validate_password(password, user, signup_password_validators())
            except forms.ValidationError as error:
                self.add_error(password_field_name, error)


class EmailChangeForm(forms.Form):
    """The account's email, changed only with the current password (a borrowed
    signed-in browser must not be able to redirect password resets)."""

    email = forms.EmailField(
        required=False,
        help_text="Only used to reset your password. Leave it empty and a forgotten password cannot be reset.",
    )
    current_password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_current_password(self) -> str:
        password = self.cleaned_data["current_password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.")
        return password


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. “ComfyUI on my desktop”.")
    scopes = forms.MultipleChoiceField(
        choices=[
            (ApiKey.Scope.READ, "read: list and search models"),
            (ApiKey.Scope.DOWNLOAD, "download: download model files"),
            (ApiKey.Scope.UPLOAD, "upload: upload models and versions"),
            (ApiKey.Scope.RUN, "run: run merge recipes"),
        ],
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ, ApiKey.Scope.DOWNLOAD],
        help_text="Give a key only what it needs.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name


class ModelFilterForm(forms.Form):
    """The listing's search box and filters, read from the query string (GET)."""

    query = forms.CharField(required=False, max_length=200, label="Search")
    type = forms.ChoiceField(required=False, choices=[("", "Any"), *((t, type_label(t)) for t in Model.Type.values)])
    base_model = forms.ChoiceField(
        required=False, label="Base model", choices=[("", "Any"), *ModelVersion.BaseModel.choices]
    )
    tag = forms.CharField(required=False, max_length=64)
    nsfw = forms.BooleanField(required=False, label="Show NSFW")
    sort = forms.ChoiceField(required=False, choices=[(s, s) for s in SORTS], initial=DEFAULT_SORT)

    def filters(self) -> ModelFilters:
        if not self.is_valid():
            # A hand-edited URL with an unknown type or sort shows the plain listing.
            return ModelFilters(query=(self.data.get("query") or "")[:200])
        data = self.cleaned_data
        return ModelFilters(
            query=data["query"],
            type=data["type"],
            base_model=data["base_model"],
            tag=data["tag"].strip(),
            nsfw=data["nsfw"],
            sort=data["sort"] or DEFAULT_SORT,
        )


class BrowsingPreferencesForm(forms.Form):
    """What a viewer wants to see: the highest NSFW level, and whether blurred images open on a click.

    Small on purpose: the account settings page embeds it (prefix it there).
    """

    browsing_level = forms.TypedChoiceField(
        label="Show images up to", coerce=int,
        choices=[(1, "PG: safe for work"), (2, "PG-13: suggestive"), (4, "R: mature"), (8, "X: explicit")],
        help_text="Images above this level are blurred and never used as covers.",
    )
    reveal_blurred = forms.BooleanField(
        label="Let me click a blurred image to see it", required=False,
    )

    @classmethod
    def for_user(cls, user, data=None, **kwargs):
        return cls(data, initial={"browsing_level": user.browsing_level, "reveal_blurred": user.reveal_blurred}, **kwargs)

    def save(self, *, user):
        from hub.accounts.services import account_browsing_level_set

        return account_browsing_level_set(
            user=user, level=self.cleaned_data["browsing_level"], reveal_blurred=self.cleaned_data["reveal_blurred"],
        )


NSFW_LEVEL_CHOICES = [(1, "PG"), (2, "PG-13"), (4, "R"), (8, "X")]


class ExampleImageAddForm(forms.Form):
    image = forms.FileField(label="Add an image", widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}))
    nsfw_level = forms.TypedChoiceField(label="Rating", coerce=int, choices=NSFW_LEVEL_CHOICES)
