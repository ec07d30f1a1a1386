"""Preview pages: image files, the owner's render button, and side-by-side comparison.

Preview files are served through the web process with an explicit content
type, ``X-Content-Type-Options: nosniff`` and ``Content-Disposition: inline``,
whatever the storage backend: they are small, and the headers cannot be
guaranteed on a presigned S3 URL. The bytes were encoded by the renderer
(PNG/WebP from decoded pixels), never taken from an upload.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from hub.catalog.selectors import version_get_for
from hub.previews import selectors
from hub.previews.api import preview_request
from hub.previews.jobs import media_storage
from hub.previews.models import RenderJob
from hub.previews.services import PreviewError

CONTENT_TYPES = {"png": "image/png", "webp": "image/webp"}


def _model_page(version) -> str:
    url = reverse("frontend:model", kwargs={"model_id": version.model_id, "slug": version.model.slug})
    return f"{url}?modelVersionId={version.pk}#previews"


@require_GET
def preview_file(request, kind: str, pk: int, ext: str):
    if ext not in CONTENT_TYPES:
        raise Http404("No such file")
    if kind == "grid":
        item = selectors.grid_get_for(request.user, pk)
        version = item.model_version if item else None
    elif kind == "image":
        item = selectors.image_get_for(request.user, pk)
        version = item.grid.model_version if item else None
    else:
        raise Http404("No such file")
    if item is None:
        raise Http404("No such preview")
    key = item.image_key if ext == "png" else item.thumb_key
    storage = media_storage()
    try:
        handle = storage.open(key, "rb")
    except (FileNotFoundError, OSError) as exc:
        raise Http404("Preview file is missing") from exc

    def chunks():
        with handle:
            while chunk := handle.read(256 * 1024):
                yield chunk

    response = StreamingHttpResponse(chunks(), content_type=CONTENT_TYPES[ext])
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="preview-{kind}-{pk}.{ext}"'
    public = version is not None and version_get_for(None, version.pk) is not None
    # Keys are derived from the render key, so a row's bytes never change.
    response["Cache-Control"] = f"{'public' if public else 'private'}, max-age=86400, immutable"
    return response


@login_required
@require_POST
def preview_request_view(request, version_id: int):
    """The owner's "Render previews" button on the model page (default prompt set, or the form's prompts)."""
    version = version_get_for(request.user, version_id)
    if version is None or version.model.owner_id != request.user.pk:
        raise Http404("No such version")
    data: dict = {}
    prompts = [p.strip() for p in request.POST.get("prompts", "").splitlines() if p.strip()]
    if prompts:
        data["prompts"] = prompts
    seeds = request.POST.get("seeds", "").replace(",", " ").split()
    try:
        if seeds:
            data["seeds"] = [int(s) for s in seeds]
        if request.POST.get("base_version"):
            data["baseVersionId"] = int(request.POST["base_version"])
    except ValueError:
        messages.error(request, "Seeds and the base version must be whole numbers.")
        return redirect(_model_page(version))
    if request.POST.get("negative", "").strip():
        data["negative"] = request.POST["negative"].strip()
    try:
        job = preview_request(request, version, data, RenderJob.Trigger.PAGE)
    except PreviewError as exc:
        messages.error(request, f"Previews could not be requested: {exc.message}")
        return redirect(_model_page(version))
    if job.status == RenderJob.Status.SUCCEEDED:
        messages.info(request, "These previews exist already.")
    else:
        messages.success(request, f"Rendering {job.images_total} preview images; this page shows the progress.")
    return redirect(_model_page(version))


@require_GET
def preview_compare(request):
    """Two versions' grids for the same prompts and seeds, side by side (?a=<version id>&b=<version id>).

    `b` may also be a model name to search for: one match goes straight to the
    comparison, several are listed to choose from.
    """
    try:
        first_id = int(request.GET.get("a", ""))
    except ValueError as exc:
        raise Http404("Give two version ids as ?a= and ?b=") from exc
    wanted = request.GET.get("b", "").strip()
    if not wanted.isdigit():
        # A model name to search for: offer the versions with previews that match it.
        first = version_get_for(request.user, first_id)
        if first is None:
            raise Http404("No such version")
        candidates = selectors.compare_candidates(request.user, first, wanted) if wanted else []
        if len(candidates) == 1:
            return redirect(f"{reverse('frontend:preview-compare')}?a={first.pk}&b={candidates[0].pk}")
        return render(request, "frontend/previews/compare_choose.html",
                      {"first": first, "query": wanted, "candidates": candidates})
    first, second = version_get_for(request.user, first_id), version_get_for(request.user, int(wanted))
    if first is None or second is None:
        raise Http404("No such version")
    pairs = []
    for left, right in selectors.grid_pairs(first, second):
        right_images = {(i.row, i.col): i for i in right.images.all()}
        rows = [(image, right_images.get((image.row, image.col))) for image in left.images.all()]
        pairs.append({"left": left, "right": right, "rows": rows})
    return render(
        request,
        "frontend/previews/compare.html",
        {"first": first, "second": second, "pairs": pairs},
    )
