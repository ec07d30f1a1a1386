"""Picture pages: one image with its parameters, the owner's image manager, and browsing preferences."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from frontend.forms import NSFW_LEVEL_CHOICES, BrowsingPreferencesForm, ExampleImageAddForm
from frontend.gallery import _image_item
from hub.catalog.selectors import version_get_for
from hub.uploads import image_services as services
from hub.uploads.errors import UploadError
from hub.moderation.models import TargetKind
from hub.moderation.selectors import notice_for
from hub.uploads.image_selectors import image_get_for
from hub.uploads.selectors import example_image_is_owner, example_image_page_get
from hub.uploads.models import ExampleImage


def image_detail(request, image_id: int):
    image = image_get_for(request.user, image_id)
    removed = False
    if image is None:
        # A taken-down image keeps a page for its owner alone, to carry the moderator's notice.
        image = example_image_page_get(request.user, image_id)
        if image is None or not example_image_is_owner(request.user, image):
            raise Http404("No such image")
        removed = True
    item = _image_item(request.user, image)
    return render(request, "frontend/image_detail.html", {
        "image": image, "item": item, "version": image.version, "model": image.version.model,
        "is_owner": example_image_is_owner(request.user, image), "removed": removed,
        "notice": notice_for(TargetKind.IMAGE, image.pk, image.moderation),
    })


def _own_version(request, version_id: int):
    version = version_get_for(request.user, version_id)
    if version is None or version.model.owner_id != request.user.pk:
        raise Http404("No such version")
    return version


@login_required
@require_http_methods(["GET", "POST"])
def version_images(request, version_id: int):
    """Add, reorder, rate, delete and choose the cover among a version's images (the owner only)."""
    version = _own_version(request, version_id)
    form = ExampleImageAddForm(initial={"nsfw_level": version.model.nsfw_level})
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action == "add":
                form = ExampleImageAddForm(request.POST, request.FILES)
                if form.is_valid():
                    f = form.cleaned_data["image"]
                    services.example_image_add(
                        version=version, user=request.user, f=f, size=f.size, nsfw_level=form.cleaned_data["nsfw_level"],
                    )
                    messages.success(request, f"{f.name} is being processed; it appears in a moment.")
                    return redirect("frontend:version-images", version_id=version.pk)
            else:
                image = version.images.filter(pk=request.POST.get("image") or 0).first()
                if image is None:
                    raise Http404("No such image")
                _image_action(request, image, action)
                return redirect("frontend:version-images", version_id=version.pk)
        except UploadError as exc:
            messages.error(request, exc.message)
            return redirect("frontend:version-images", version_id=version.pk)
    images = list(version.images.all())
    return render(request, "frontend/version_images.html", {
        "version": version, "model": version.model, "images": images, "form": form, "levels": NSFW_LEVEL_CHOICES,
        "max_images": services.MAX_IMAGES_PER_VERSION,
    })


def _image_action(request, image: ExampleImage, action: str) -> None:
    if action in ("up", "down"):
        services.example_image_move(image=image, user=request.user, offset=-1 if action == "up" else 1)
    elif action == "delete":
        services.example_image_delete(image=image, user=request.user)
        messages.success(request, "Image deleted.")
    elif action in ("cover", "uncover"):
        services.example_image_cover_set(image=image, user=request.user, cover=action == "cover")
        if action == "cover":
            messages.success(request, "This image is now the model's cover (for viewers whose level allows it).")
    elif action == "level":
        try:
            level = int(request.POST.get("nsfw_level", ""))
        except ValueError:
            level = 0
        services.example_image_update(image=image, user=request.user, nsfw_level=level)
    else:
        raise UploadError("bad_action", "unknown action")


@login_required
@require_http_methods(["GET", "POST"])
def preferences(request):
    form = BrowsingPreferencesForm.for_user(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save(user=request.user)
        messages.success(request, "Your content preferences are saved.")
        return redirect("frontend:preferences")
    return render(request, "frontend/preferences.html", {"form": form})
