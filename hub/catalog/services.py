from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, F, Max
from django.utils import timezone
from django.utils.text import slugify

from hub.accounts.models import User
from hub.catalog.models import Download, DownloadRollup, Model, ModelVersion, Tag
from hub.catalog.nsfw import NsfwLevel

log = logging.getLogger(__name__)


class CatalogError(ValueError):
    """A request that breaks a catalogue rule; the message is shown to the user."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def _unique_slug(owner: User, name: str) -> str:
    base = slugify(name)[:180] or "model"
    slug, n = base, 2
    while Model.objects.filter(owner=owner, slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def tags_set(*, model: Model, names: Iterable[str]) -> None:
    clean = sorted({n.strip().lower()[:64] for n in names if n and n.strip()})
    tags = []
    for name in clean:
        tag, _ = Tag.objects.get_or_create(name=name)
        tags.append(tag)
    model.tags.set(tags)


def model_create(
    *,
    owner: User,
    name: str,
    type: str = Model.Type.CHECKPOINT,
    checkpoint_type: str = "",
    description: str = "",
    tags: Iterable[str] = (),
    nsfw: bool = False,
    nsfw_level: int | None = None,
    visibility: str = Model.Visibility.PUBLIC,
    allow_no_credit: bool = True,
    allow_commercial_use: Iterable[str] = (),
    allow_derivatives: bool = True,
    allow_different_license: bool = True,
) -> Model:
    name = name.strip()
    if not name:
        raise CatalogError("name must not be empty", field="name")
    if type not in Model.Type.values:
        raise CatalogError(f"unknown model type {type!r}; allowed: {', '.join(Model.Type.values)}", field="type")
    if checkpoint_type and checkpoint_type not in Model.CheckpointType.values:
        raise CatalogError(f"unknown checkpoint type {checkpoint_type!r}", field="checkpoint_type")
    if visibility not in Model.Visibility.values:
        raise CatalogError(f"unknown visibility {visibility!r}", field="visibility")
    if nsfw_level is None:
        nsfw_level = NsfwLevel.R if nsfw else NsfwLevel.PG
    if nsfw_level not in NsfwLevel.values:
        raise CatalogError(f"unknown NSFW level {nsfw_level!r}; allowed: 1 (PG), 2 (PG-13), 4 (R), 8 (X)", field="nsfw_level")
    uses = list(dict.fromkeys(allow_commercial_use))
    bad = [u for u in uses if u not in Model.CommercialUse.values]
    if bad:
        raise CatalogError(f"unknown commercial use {bad[0]!r}", field="allow_commercial_use")
    with transaction.atomic():
        model = Model.objects.create(
            owner=owner,
            name=name[:200],
            slug=_unique_slug(owner, name),
            type=type,
            checkpoint_type=checkpoint_type,
            description=description,
            nsfw=nsfw_level > NsfwLevel.PG,
            nsfw_level=nsfw_level,
            visibility=visibility,
            allow_no_credit=allow_no_credit,
            allow_commercial_use=uses,
            allow_derivatives=allow_derivatives,
            allow_different_license=allow_different_license,
        )
        tags_set(model=model, names=tags)
    return model


def model_nsfw_level_set(*, model: Model, level: int, actor: User | None = None) -> Model:
    """Set a model's NSFW level (its owner when uploading, a moderator later); `nsfw` follows it."""
    if level not in NsfwLevel.values:
        raise CatalogError(f"unknown NSFW level {level!r}; allowed: 1 (PG), 2 (PG-13), 4 (R), 8 (X)", field="nsfw_level")
    with transaction.atomic():
        Model.objects.filter(pk=model.pk).update(nsfw_level=level, nsfw=level > NsfwLevel.PG, updated_at=timezone.now())
    # Callers check who may do this (the owner's forms, moderation); the log says who did.
    log.info("model %s NSFW level %s -> %s by %s", model.pk, model.nsfw_level, level, getattr(actor, "pk", None))
    model.nsfw_level, model.nsfw = level, level > NsfwLevel.PG
    return model


def model_version_create(
    *,
    model: Model,
    name: str,
    base_model: str = ModelVersion.BaseModel.SD_1_5,
    trained_words: Iterable[str] = (),
    description: str = "",
) -> ModelVersion:
    name = name.strip()
    if not name:
        raise CatalogError("version name must not be empty", field="name")
    if base_model not in ModelVersion.BaseModel.values:
        raise CatalogError(
            f"unknown base model {base_model!r}; allowed: {', '.join(ModelVersion.BaseModel.values)}",
            field="base_model",
        )
    if ModelVersion.objects.filter(model=model, name=name).exists():
        raise CatalogError(f"version {name!r} already exists for this model", field="name")
    words = [w.strip()[:200] for w in trained_words if w and w.strip()]
    with transaction.atomic():
        return ModelVersion.objects.create(
            model=model, name=name[:100], base_model=base_model, trained_words=words, description=description
        )


def model_version_publish(
    *, version: ModelVersion, reupload_of: int | None = None, adopt_licence: bool = False, reupload_check: bool = True
) -> ModelVersion:
    """Publish a version (and its model). A version without files cannot be published.

    A file that another creator has published already is published only as a
    re-upload crediting one of the originals (`reupload_of`, a version id),
    under a licence at least as strict as theirs: see hub.catalog.licences,
    whose errors (LicenceConflict) name the originals. `reupload_check=False`
    is for merge outputs, whose licence and lineage come from their inputs;
    `adopt_licence` tightens the model's licence to the originals' instead of
    refusing a looser one.
    """
    from hub.catalog.licences import reupload_check as check

    if not version.files.exists():
        raise CatalogError("a version needs at least one file before it can be published")
    now = timezone.now()
    with transaction.atomic():
        if reupload_check:
            credited = check(version=version, reupload_of=reupload_of, adopt_licence=adopt_licence)
            if credited is not None and credited != version.reupload_of_id:
                ModelVersion.objects.filter(pk=version.pk).update(reupload_of_id=credited)
        first_publish = ModelVersion.objects.filter(pk=version.pk, published_at__isnull=True).update(published_at=now)
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.PUBLISHED)
        Model.objects.filter(pk=version.model_id, published_at__isnull=True).update(published_at=now)
        Model.objects.filter(pk=version.model_id).update(status=Model.Status.PUBLISHED, updated_at=now)
        if first_publish:
            from hub.community.services import version_published_announce  # followers hear of it after commit

            version_published_announce(version_id=version.pk)
    version.refresh_from_db()
    return version


def downloads_rollup() -> int:
    """Fold new Download rows into the version and model counters; returns rows folded.

    Pending download events (Redis) become rows first, under the same lock,
    so two rollups never write the same batch.
    """
    from hub.catalog.download_events import download_events_flush

    with transaction.atomic():
        state, _ = DownloadRollup.objects.select_for_update().get_or_create(pk=1)
        flushed = download_events_flush()
        folded = _downloads_fold(state)
        flushed.release()
    return folded


def _downloads_fold(state: DownloadRollup) -> int:
    upto = Download.objects.filter(id__gt=state.last_download_id).aggregate(m=Max("id"))["m"]
    if upto is None:
        return 0
    pending = Download.objects.filter(id__gt=state.last_download_id, id__lte=upto)
    per_version = pending.values("version_id", "version__model_id").annotate(n=Count("id"))
    folded = 0
    per_model: dict[int, int] = {}
    for row in per_version:
        ModelVersion.objects.filter(pk=row["version_id"]).update(download_count=F("download_count") + row["n"])
        per_model[row["version__model_id"]] = per_model.get(row["version__model_id"], 0) + row["n"]
        folded += row["n"]
    for model_id, n in per_model.items():
        Model.objects.filter(pk=model_id).update(download_count=F("download_count") + n)
    state.last_download_id = upto
    state.save(update_fields=["last_download_id"])
    return folded
