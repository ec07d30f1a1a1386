from __future__ import annotations

from django.db.models import Q, QuerySet

from hub.catalog.models import Model, ModelVersion
from hub.moderation.states import ModerationState

# What others may see of a model: nothing a moderator hid or took down, nothing of a suspended user.
UNMODERATED = Q(moderation=ModerationState.VISIBLE, owner__is_active=True)


def models_visible_to(user) -> QuerySet[Model]:
    """Models a user may see in lists: published public ones, plus all of their own."""
    listed = Q(status=Model.Status.PUBLISHED, visibility=Model.Visibility.PUBLIC) & UNMODERATED
    if user is not None and user.is_authenticated:
        listed |= Q(owner_id=user.pk)
    return Model.objects.filter(listed)


def model_get_for(user, model_id: int) -> Model | None:
    """Detail access: unlisted models are reachable by link; private ones only by their owner."""
    reachable = (
        Q(status__in=[Model.Status.PUBLISHED, Model.Status.ARCHIVED]) & ~Q(visibility=Model.Visibility.PRIVATE) & UNMODERATED
    )
    if user is not None and user.is_authenticated:
        reachable |= Q(owner_id=user.pk)
    return Model.objects.filter(reachable, pk=model_id).select_related("owner").first()


def version_get_for(user, version_id: int) -> ModelVersion | None:
    version = ModelVersion.objects.select_related("model", "model__owner").filter(pk=version_id).first()
    if version is None:
        return None
    if model_get_for(user, version.model_id) is None:
        return None
    is_owner = user is not None and user.is_authenticated and version.model.owner_id == user.pk
    if version.status != ModelVersion.Status.PUBLISHED and not is_owner:
        return None
    if version.moderation and not is_owner:
        return None
    if "removed" in (version.moderation, version.model.moderation):
        # Taken down: the owner's model page still lists it with the notice, but nothing serves it.
        return None
    return version
