"""What a report or a moderator action points at, resolved from its kind and id.

Each kind names the row that carries the moderation state (a preview image
is moderated through its grid, which shows the same pixels), the content's
owner, a label for the queue and the audit log, and the page where the owner
sees the notice (for comments and reviews: the page they sit on, at their
anchor). A new kind of content is one more entry in RESOLVERS and, if it can
be hidden, a `moderation` field on its model.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from django.contrib.auth import get_user_model
from django.urls import reverse

from hub.moderation.models import TargetKind

MAX_ID = 2**63 - 1


@dataclass
class Target:
    kind: str
    id: str
    obj: Any
    owner: Any  # the User whose content it is (the user themself for kind "user")
    label: str
    url: str
    # The row whose `moderation` field a hide/takedown/restore sets; None when the kind has none.
    holder: Any = None

    @property
    def state(self) -> str:
        return getattr(self.holder, "moderation", "") if self.holder is not None else ""


def _int_id(value: str) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


def _model_url(model, version_id: int | None = None) -> str:
    url = reverse("frontend:model", kwargs={"model_id": model.pk, "slug": model.slug})
    return f"{url}?modelVersionId={version_id}" if version_id else url


def _model(pk: int) -> Target | None:
    from hub.catalog.models import Model

    model = Model.objects.select_related("owner").filter(pk=pk).first()
    if model is None:
        return None
    return Target(TargetKind.MODEL, str(pk), model, model.owner, f"model “{model.name}”", _model_url(model), model)


def _version(pk: int) -> Target | None:
    from hub.catalog.models import ModelVersion

    version = ModelVersion.objects.select_related("model", "model__owner").filter(pk=pk).first()
    if version is None:
        return None
    label = f"version “{version.name}” of “{version.model.name}”"
    return Target(TargetKind.VERSION, str(pk), version, version.model.owner, label,
                  _model_url(version.model, version.pk), version)


def _image(pk: int) -> Target | None:
    from hub.uploads.models import ExampleImage

    image = ExampleImage.objects.select_related("version", "version__model", "version__model__owner", "uploaded_by") \
        .filter(pk=pk).first()
    if image is None:
        return None
    owner = image.uploaded_by or image.version.model.owner
    label = f"example image {pk} of “{image.version.model.name}” {image.version.name}"
    return Target(TargetKind.IMAGE, str(pk), image, owner, label, reverse("frontend:image", args=[pk]), image)


def _preview(pk: int) -> Target | None:
    from hub.previews.models import PreviewImage

    image = PreviewImage.objects.select_related(
        "grid", "grid__model_version", "grid__model_version__model", "grid__model_version__model__owner"
    ).filter(pk=pk).first()
    if image is None:
        return None
    version = image.grid.model_version
    label = f"preview image {pk} (grid {image.grid_id}) of “{version.model.name}” {version.name}"
    return Target(TargetKind.PREVIEW, str(pk), image, version.model.owner, label,
                  _model_url(version.model, version.pk) + "#previews", image.grid)


def _recipe(pk: int) -> Target | None:
    from merges.registry.models import Recipe

    recipe = Recipe.objects.select_related("owner").filter(pk=pk).first()
    if recipe is None:
        return None
    return Target(TargetKind.RECIPE, str(pk), recipe, recipe.owner, f"recipe “{recipe.title}”",
                  reverse("frontend:recipe", args=[pk]), recipe)


def _comment(pk: int) -> Target | None:
    from hub.community.models import Comment

    comment = Comment.objects.select_related("author", "model", "recipe").filter(pk=pk).first()
    if comment is None:
        return None
    if comment.model_id is not None:
        on, url = f"“{comment.model.name}”", _model_url(comment.model, comment.version_id)
    else:
        on, url = f"recipe “{comment.recipe.title}”", reverse("frontend:recipe", args=[comment.recipe_id])
    return Target(TargetKind.COMMENT, str(pk), comment, comment.author, f"comment {pk} on {on}",
                  f"{url}#comment-{pk}", comment)


def _review(pk: int) -> Target | None:
    from hub.community.models import Review

    review = Review.objects.select_related("author", "model", "version").filter(pk=pk).first()
    if review is None:
        return None
    label = f"review {pk} of “{review.model.name}” {review.version.name}"
    return Target(TargetKind.REVIEW, str(pk), review, review.author, label,
                  f"{_model_url(review.model, review.version_id)}#review-{pk}", review)


def _user(pk: int) -> Target | None:
    user = get_user_model().objects.filter(pk=pk).first()
    if user is None:
        return None
    return Target(TargetKind.USER, str(pk), user, user, f"user {user.username}",
                  reverse("frontend:creator", args=[user.username]))


def _upload(value: str) -> Target | None:
    from hub.uploads.models import Upload

    try:
        upload_id = uuid.UUID(str(value))
    except ValueError:
        return None
    upload = Upload.objects.select_related("owner").filter(pk=upload_id).first()
    if upload is None:
        return None
    return Target(TargetKind.UPLOAD, str(upload.pk), upload, upload.owner, f"uploaded file “{upload.filename}”",
                  reverse("frontend:upload-detail", args=[upload.pk]))


RESOLVERS: dict[str, Callable[[int], Target | None]] = {
    TargetKind.MODEL: _model,
    TargetKind.VERSION: _version,
    TargetKind.IMAGE: _image,
    TargetKind.PREVIEW: _preview,
    TargetKind.RECIPE: _recipe,
    TargetKind.USER: _user,
    TargetKind.COMMENT: _comment,
    TargetKind.REVIEW: _review,
}
REPORTABLE = tuple(RESOLVERS)
# Kinds whose rows carry a moderation state (hide, take down, restore).
HIDEABLE = (TargetKind.MODEL, TargetKind.VERSION, TargetKind.IMAGE, TargetKind.PREVIEW, TargetKind.RECIPE,
            TargetKind.COMMENT, TargetKind.REVIEW)
# Kinds whose state is set through hub.community, which keeps its counters true.
COMMUNITY = (TargetKind.COMMENT, TargetKind.REVIEW)


def target_get(kind: str, target_id: str) -> Target | None:
    """The target, or None when the kind is unknown, the id malformed or the row gone."""
    if kind == TargetKind.UPLOAD:
        return _upload(target_id)
    resolver = RESOLVERS.get(kind)
    number = _int_id(target_id)
    if resolver is None or number is None:
        return None
    return resolver(number)
