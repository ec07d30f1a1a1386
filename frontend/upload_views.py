"""Upload pages: pick or drop a file, watch it go up, then describe and publish it.

The transfer itself is `static/frontend/upload.js` speaking the upload API
(`hub.uploads.api`) with the session and CSRF token. These views render the
pages and handle the model/version form; writes go through
`hub.uploads.services`.
"""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_http_methods, require_POST

from frontend.markdown import render_markdown
from frontend.templatetags.mergeworks import LICENCE_LABELS, type_label
from hub.catalog.licences import LicenceConflict
from hub.catalog.models import Model, ModelVersion
from hub.catalog.selectors import model_get_for
from hub.catalog.services import CatalogError, model_version_publish
from hub.catalog.nsfw import NsfwLevel, parse_level
from hub.catalog.services import model_nsfw_level_set
from hub.files.images import MAX_IMAGE_BYTES
from hub.uploads.image_services import example_image_cover_set
from hub.uploads import selectors, services
from hub.uploads.errors import UploadError
from hub.uploads.models import Upload

NEW_MODEL = "new"
COMMERCIAL_USE_LABELS = {use: LICENCE_LABELS[use] for use in Model.CommercialUse.values}
MAX_FORM_IMAGES = 10


def _split(text: str) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        if len(files) > MAX_FORM_IMAGES:
            raise forms.ValidationError(f"Attach at most {MAX_FORM_IMAGES} images at once.")
        return [super(MultipleImageField, self).clean(f, initial) for f in files]


class UploadDetailsForm(forms.Form):
    """The model and version a verified upload becomes. Prefilled from the file."""

    target = forms.ChoiceField(label="Add this file to")
    name = forms.CharField(label="Model name", max_length=200, required=False)
    type = forms.ChoiceField(label="Type", choices=[(v, type_label(v)) for v in Model.Type.values])
    checkpoint_type = forms.ChoiceField(
        label="Checkpoint type", required=False,
        choices=[("", "—")] + [(v, v) for v in Model.CheckpointType.values],
    )
    version_name = forms.CharField(label="Version name", max_length=100, initial="v1.0")
    base_model = forms.ChoiceField(label="Base model", choices=[(v, v) for v in ModelVersion.BaseModel.values])
    trained_words = forms.CharField(
        label="Trigger words", required=False, max_length=2000,
        help_text="Comma-separated. Suggested from the tags the file was trained on.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        label="Description", required=False, max_length=50_000,
        help_text="Markdown. Links are kept, HTML and images are removed.",
        widget=forms.Textarea(attrs={"rows": 8}),
    )
    tags = forms.CharField(label="Tags", required=False, max_length=1000, help_text="Comma-separated, e.g. character, anime.")
    nsfw = forms.BooleanField(label="This model is mostly used for NSFW content", required=False)
    nsfw_level = forms.TypedChoiceField(
        label="Content rating", coerce=int, initial=1, required=False, empty_value=1,
        choices=[(1, "PG: safe for work"), (2, "PG-13: suggestive"), (4, "R: mature"), (8, "X: explicit")],
        help_text="Viewers who have not chosen this level see your model without its pictures. "
        "NSFW models are rated R at least.",
    )
    visibility = forms.ChoiceField(
        label="Visibility", choices=[
            (Model.Visibility.PUBLIC, "Public: listed and searchable"),
            (Model.Visibility.UNLISTED, "Unlisted: anyone with the link"),
            (Model.Visibility.PRIVATE, "Private: only you"),
        ],
    )
    allow_no_credit = forms.BooleanField(label=LICENCE_LABELS["allow_no_credit"], required=False, initial=True)
    allow_derivatives = forms.BooleanField(
        label=LICENCE_LABELS["allow_derivatives"], required=False, initial=True,
        help_text="Merging, on Mergeworks or elsewhere, is governed by this permission.",
    )
    allow_different_license = forms.BooleanField(
        label=LICENCE_LABELS["allow_different_license"], required=False, initial=True
    )
    allow_commercial_use = forms.MultipleChoiceField(
        label="People may also", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(v, COMMERCIAL_USE_LABELS[v]) for v in Model.CommercialUse.values],
    )
    images = MultipleImageField(
        label="Example images", required=False,
        help_text=f"PNG, JPEG or WebP, up to {MAX_IMAGE_BYTES // (1024 * 1024)} MB each. "
        "They are re-encoded; only the generation parameters are kept.",
        widget=MultipleImageInput(attrs={"accept": "image/png,image/jpeg,image/webp", "data-image-picker": ""}),
    )
    # Filled by image-picker.js: each image's rating, in order, and which one is the cover.
    image_levels = forms.CharField(required=False, widget=forms.HiddenInput, max_length=200)
    image_cover = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=0)

    MODEL_FIELDS = ("name", "type", "checkpoint_type", "description", "tags", "nsfw", "nsfw_level", "visibility",
                    "allow_no_credit", "allow_derivatives", "allow_different_license", "allow_commercial_use")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        own = Model.objects.filter(owner=user).order_by("name").values_list("pk", "name")[:500]
        self.fields["target"].choices = [(NEW_MODEL, "A new model")] + [
            (str(pk), f"A new version of “{name}”") for pk, name in own
        ]
        # Trained or merged only means something for checkpoints; upload.js shows
        # the field again when the type is switched to Checkpoint.
        chosen = self.data.get("type") if self.is_bound else self.initial.get("type")
        self.fields["checkpoint_type"].start_hidden = (chosen or Model.Type.CHECKPOINT) != Model.Type.CHECKPOINT

    def clean(self):
        data = super().clean()
        if data.get("target") == NEW_MODEL and not (data.get("name") or "").strip():
            self.add_error("name", "Give the new model a name.")
        if data.get("type") != Model.Type.CHECKPOINT:
            data["checkpoint_type"] = ""
        return data


def _initial(upload: Upload) -> dict:
    s = upload.suggestions or {}
    return {
        "target": str(upload.model_id) if upload.model_id else NEW_MODEL,
        "name": s.get("name") or "",
        "type": s.get("type") or Model.Type.CHECKPOINT,
        "checkpoint_type": s.get("checkpoint_type") or "",
        "base_model": s.get("base_model") or ModelVersion.BaseModel.OTHER,
        "trained_words": ", ".join(s.get("trained_words") or []),
        "version_name": "v1.0" if not upload.model_id else "",
    }


def _upload_or_404(request, upload_id) -> Upload:
    upload = selectors.upload_get_for(request.user, upload_id)
    if upload is None:
        raise Http404("No such upload")
    return upload


@login_required
def upload_start(request):
    """The drop zone. `?model=<id>` uploads a new version of one of your models."""
    model = None
    if request.GET.get("model"):
        try:
            model = model_get_for(request.user, int(request.GET["model"]))
        except ValueError:
            model = None
        if model is None:
            raise Http404("No such model")
        if model.owner_id != request.user.pk:
            raise PermissionDenied("You can only upload new versions of your own models.")
    unfinished = selectors.uploads_for(request.user, status=Upload.Status.RECEIVING)[:20]
    return render(request, "frontend/upload.html", {
        "model": model,
        "unfinished": unfinished,
        "max_size_label": filesizeformat(settings.MAX_UPLOAD_BYTES),
    })


@login_required
@require_http_methods(["GET", "POST"])
def upload_detail(request, upload_id):
    """Where an upload stands; once verified, the form that turns it into a model version."""
    upload = _upload_or_404(request, upload_id)
    form = None
    if upload.status == Upload.Status.READY:
        form = UploadDetailsForm(request.POST or None, request.FILES or None, user=request.user,
                                 initial=_initial(upload))
        if request.method == "POST" and form.is_valid():
            response = _save(request, upload, form)
            if response is not None:
                return response
    elif request.method == "POST":
        messages.error(request, f"This upload is {upload.get_status_display().lower()} and cannot be saved.")
        return redirect("frontend:upload-detail", upload_id=upload.pk)
    version = upload.model_file.version if upload.model_file_id else None
    return render(request, "frontend/upload_detail.html", {
        "reupload_originals": (getattr(form, "reupload_originals", None)
                               or request.session.pop(f"reupload-originals-{upload.pk}", None)),
        "upload": upload,
        "form": form,
        "version": version,
        "parents": selectors.merge_parents(upload, request.user),
        "polling": upload.status in Upload.ACTIVE,
    })


def _reupload_of(request) -> int | None:
    """The original the uploader chose to credit (a checkbox shown after a re-upload was refused)."""
    try:
        value = int(request.POST.get("reupload_of") or 0)
    except ValueError:
        return None
    return value if 0 < value < 2**63 else None


def _save(request, upload: Upload, form: UploadDetailsForm):
    data = form.cleaned_data
    publish = request.POST.get("action") == "publish"
    model = None
    if data["target"] != NEW_MODEL:
        model = model_get_for(request.user, int(data["target"]))
    try:
        version = services.upload_version_create(
            upload=upload, user=request.user, model=model,
            name=data["name"], type=data["type"], checkpoint_type=data["checkpoint_type"],
            description=data["description"], tags=_split(data["tags"]), nsfw=data["nsfw"],
            visibility=data["visibility"], allow_no_credit=data["allow_no_credit"],
            allow_commercial_use=data["allow_commercial_use"], allow_derivatives=data["allow_derivatives"],
            allow_different_license=data["allow_different_license"], version_name=data["version_name"],
            base_model=data["base_model"], trained_words=_split(data["trained_words"]),
            version_description="" if model is None else data["description"], publish=publish,
            reupload_of=_reupload_of(request),
        )
    except LicenceConflict as exc:
        # Shown above the form with a link to each original and the choice to credit one.
        form.add_error(None, str(exc))
        form.reupload_originals = exc.details.get("originals", [])
        return None
    except CatalogError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return None
    except UploadError as exc:
        form.add_error(None, exc.message)
        return None
    if model is None:
        level = data.get("nsfw_level") or NsfwLevel.PG
        if data["nsfw"] and level < NsfwLevel.R:
            level = NsfwLevel.R
        model_nsfw_level_set(model=version.model, level=level, actor=request.user)
    levels = [parse_level(part) for part in (data.get("image_levels") or "").split(",")]
    for index, image in enumerate(data["images"]):
        level = levels[index] if index < len(levels) else None
        try:
            added = services.example_image_add(
                version=version, user=request.user, f=image, size=image.size, nsfw_level=level,
            )
            if data.get("image_cover") == index:
                example_image_cover_set(image=added, user=request.user)
        except UploadError as exc:
            messages.warning(request, f"{image.name}: {exc.message}")
    if publish:
        messages.success(request, f"Published {version.model.name} {version.name}.")
        return redirect("frontend:model", model_id=version.model_id, slug=version.model.slug)
    messages.success(request, "Saved as a draft. Only you can see it until you publish it.")
    return redirect("frontend:upload-detail", upload_id=upload.pk)


@login_required
@require_POST
def upload_publish(request, upload_id):
    """Publish the draft version an upload became."""
    upload = _upload_or_404(request, upload_id)
    if not upload.model_file_id:
        raise Http404("This upload is not part of a version yet")
    version = upload.model_file.version
    if version.status != ModelVersion.Status.PUBLISHED:
        try:
            # A draft's licence cannot be edited here: crediting an original
            # publishes under its licence (or the draft's, where stricter).
            reupload_of = _reupload_of(request)
            model_version_publish(version=version, reupload_of=reupload_of, adopt_licence=reupload_of is not None)
        except LicenceConflict as exc:
            messages.error(request, str(exc))
            request.session[f"reupload-originals-{upload.pk}"] = exc.details.get("originals", [])
            return redirect("frontend:upload-detail", upload_id=upload.pk)
        except CatalogError as exc:
            messages.error(request, str(exc))
            return redirect("frontend:upload-detail", upload_id=upload.pk)
        messages.success(request, f"Published {version.model.name} {version.name}.")
    return redirect("frontend:model", model_id=version.model_id, slug=version.model.slug)


@login_required
@require_POST
def markdown_preview(request):
    """The description as the model page will show it (sanitised server-side)."""
    text = request.POST.get("text", "")[:50_000]
    response = HttpResponse(render_markdown(text), content_type="text/html; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    return response
