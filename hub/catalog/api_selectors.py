"""Read queries behind REST API v1, returning plain rows (dicts).

Rows come from `.values()`, never model instances: building ~700 instances
for a 100-model page costs several times the SQL itself. A page is fetched in
four queries whatever its size: models (with the owner joined), their visible
versions, those versions' files, and their tags.

Visibility is part of every queryset: lists use `models_visible_to` (published
public models plus the viewer's own); single lookups follow `model_get_for` /
`version_get_for`: unlisted objects are reachable, private ones and drafts only
by their owner.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion, Tag
from hub.catalog.selectors import models_visible_to
from hub.files.models import ModelFile

Row = dict[str, Any]

MODEL_FIELDS = (
    "id", "name", "description", "type", "checkpoint_type", "nsfw", "allow_no_credit", "allow_commercial_use",
    "allow_derivatives", "allow_different_license", "visibility", "status", "download_count", "created_at",
    "updated_at", "published_at", "owner_id", "owner__username",
)
VERSION_FIELDS = (
    "id", "model_id", "name", "description", "base_model", "trained_words", "status", "published_at",
    "download_count", "created_at", "updated_at",
)
FILE_FIELDS = (
    "id", "version_id", "name", "size_bytes", "format", "precision", "primary", "sha256", "autov1", "autov2",
    "autov3", "crc32", "blake3", "pickle_scan_status", "pickle_scan_message", "virus_scan_status", "created_at",
)

# Hash kinds by hex length. Priority decides which file a hash names when it
# matches several columns (an 8-hex value can be both an AutoV1 and a CRC32).
HASH_COLUMNS_BY_LENGTH: dict[int, tuple[str, ...]] = {
    64: ("sha256", "blake3", "autov3"),
    10: ("autov2",),
    8: ("autov1", "crc32"),
}
HASH_PRIORITY = ("sha256", "blake3", "autov3", "autov2", "autov1", "crc32")


class Sort:
    NEWEST = "Newest"
    MOST_DOWNLOADED = "Most Downloaded"
    # No ratings exist yet, so Highest Rated orders like Most Downloaded.
    HIGHEST_RATED = "Highest Rated"
    ALL = (NEWEST, MOST_DOWNLOADED, HIGHEST_RATED)


@dataclass(frozen=True)
class ModelFilters:
    types: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    tag: str | None = None
    username: str | None = None
    query: str | None = None
    nsfw: bool | None = None


@dataclass
class ModelPage:
    models: list[Row]
    versions_by_model: dict[int, list[Row]] = field(default_factory=dict)
    files_by_version: dict[int, list[Row]] = field(default_factory=dict)
    tags_by_model: dict[int, list[str]] = field(default_factory=dict)
    # Keyset position after the last row, or None on the last page.
    next_key: tuple[Any, int] | None = None


def _is_authenticated(user) -> bool:
    return user is not None and user.is_authenticated


def _version_visible_q(user, *, prefix: str = "") -> Q:
    """Versions a viewer may see: published ones of a reachable model, or anything they own."""
    reachable = (
        Q(**{f"{prefix}status": ModelVersion.Status.PUBLISHED})
        & Q(**{f"{prefix}model__status__in": [Model.Status.PUBLISHED, Model.Status.ARCHIVED]})
        & ~Q(**{f"{prefix}model__visibility": Model.Visibility.PRIVATE})
    )
    if _is_authenticated(user):
        reachable |= Q(**{f"{prefix}model__owner_id": user.pk})
    return reachable


def _filtered_models(user, filters: ModelFilters) -> QuerySet[Model]:
    qs = models_visible_to(user)
    if filters.types:
        qs = qs.filter(type__in=filters.types)
    if filters.nsfw is False:
        qs = qs.filter(nsfw=False)
    if filters.username:
        qs = qs.filter(owner__username__iexact=filters.username)
    if filters.query:
        qs = qs.filter(name__icontains=filters.query)
    if filters.tag:
        qs = qs.filter(
            Exists(Model.tags.through.objects.filter(model_id=OuterRef("pk"), tag__name=filters.tag.strip().lower()))
        )
    if filters.base_models:
        versions = ModelVersion.objects.filter(model_id=OuterRef("pk"), base_model__in=filters.base_models)
        visible = Q(status=ModelVersion.Status.PUBLISHED)
        if _is_authenticated(user):
            visible |= Q(model__owner_id=user.pk)
        qs = qs.filter(Exists(versions.filter(visible)))
    return qs


def _keyset(qs: QuerySet[Model], sort: str, after: tuple[Any, int] | None) -> QuerySet[Model]:
    """Order by (sort key, id) descending and start strictly after `after`.

    The leading `key <= k` lets PostgreSQL start its index scan at the cursor
    instead of filtering every earlier row, so deep pages cost what the first does.
    """
    if sort == Sort.NEWEST:
        # The viewer's own drafts have no published_at: they come first (DESC NULLS FIRST is
        # PostgreSQL's default, so the model_newest index serves this order).
        qs = qs.order_by(F("published_at").desc(nulls_first=True), "-id")
        if after is not None:
            key, last_id = after
            if key is None:
                qs = qs.filter(Q(published_at__isnull=True, id__lt=last_id) | Q(published_at__isnull=False))
            else:
                qs = qs.filter(Q(published_at__lte=key) & (Q(published_at__lt=key) | Q(id__lt=last_id)))
        return qs
    qs = qs.order_by("-download_count", "-id")
    if after is not None:
        key, last_id = after
        qs = qs.filter(Q(download_count__lte=key) & (Q(download_count__lt=key) | Q(id__lt=last_id)))
    return qs


def sort_key(sort: str, row: Row) -> tuple[Any, int]:
    if sort == Sort.NEWEST:
        return row["published_at"], row["id"]
    return row["download_count"], row["id"]


def models_page(user, *, filters: ModelFilters, sort: str, limit: int, after: tuple[Any, int] | None) -> ModelPage:
    qs = _keyset(_filtered_models(user, filters), sort, after)
    rows = list(qs.values(*MODEL_FIELDS)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    page = models_related(user, rows)
    page.next_key = sort_key(sort, rows[-1]) if has_more else None
    return page


def models_related(user, rows: list[Row]) -> ModelPage:
    """Versions (visible to `user`), files and tags for already-visible model rows: three queries."""
    page = ModelPage(models=rows)
    if not rows:
        return page
    ids = [r["id"] for r in rows]
    owned = [r["id"] for r in rows if _is_authenticated(user) and r["owner_id"] == user.pk]
    visible = Q(status=ModelVersion.Status.PUBLISHED)
    if owned:
        visible |= Q(model_id__in=owned)
    versions = list(
        ModelVersion.objects.filter(visible, model_id__in=ids)
        .order_by("model_id", "-created_at", "-id")
        .values(*VERSION_FIELDS)
    )
    page.versions_by_model = _group(versions, "model_id")
    page.files_by_version = files_for_versions([v["id"] for v in versions])
    tags: dict[int, list[str]] = defaultdict(list)
    for model_id, name in (
        Model.tags.through.objects.filter(model_id__in=ids).order_by("tag__name").values_list("model_id", "tag__name")
    ):
        tags[model_id].append(name)
    page.tags_by_model = tags
    return page


def files_for_versions(version_ids: list[int]) -> dict[int, list[Row]]:
    if not version_ids:
        return {}
    files = ModelFile.objects.filter(version_id__in=version_ids).order_by("-primary", "id").values(*FILE_FIELDS)
    return _group(files, "version_id")


def _group(rows: Iterable[Row], key: str) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def model_row(model: Model) -> Row:
    """The `.values()` row for an instance already loaded with its owner."""
    row = {name: getattr(model, name) for name in MODEL_FIELDS if "__" not in name}
    row["owner__username"] = model.owner.username
    return row


def version_row_with_model(version: ModelVersion) -> Row:
    """What `versions_with_models` returns, for a version loaded with its model and owner."""
    row = {name: getattr(version, name) for name in VERSION_FIELDS}
    model = version.model
    row.update({
        "model__name": model.name, "model__type": model.type, "model__nsfw": model.nsfw,
        "model__status": model.status, "model__visibility": model.visibility,
        "model__owner__username": model.owner.username,
    })
    return row


# --- by hash ----------------------------------------------------------------------------

def normalize_hash(value: str) -> str | None:
    """Lowercase hex of a known hash length (8, 10 or 64), or None."""
    value = value.strip().lower()
    if len(value) not in HASH_COLUMNS_BY_LENGTH:
        return None
    try:
        int(value, 16)
    except ValueError:
        return None
    return value


@dataclass
class HashMatch:
    hash: str
    kind: str
    file_id: int
    version_id: int


def files_by_hashes(user, hashes: list[str]) -> dict[str, HashMatch]:
    """The file each (normalised) hash names among versions visible to `user`: one query.

    A hash may name several files (identical uploads share a blob); the
    strongest hash kind wins, then the oldest file, which is the original upload.
    """
    if not hashes:
        return {}
    by_column: dict[str, list[str]] = defaultdict(list)
    for h in hashes:
        for column in HASH_COLUMNS_BY_LENGTH[len(h)]:
            by_column[column].append(h)
    match = Q()
    for column, values in by_column.items():
        match |= Q(**{f"{column}__in": values})
    wanted = set(hashes)
    rows = (
        ModelFile.objects.filter(match)
        .filter(_version_visible_q(user, prefix="version__"))
        .order_by("id")
        .values("id", "version_id", *HASH_PRIORITY)
    )
    found: dict[str, HashMatch] = {}
    rank: dict[str, int] = {}
    for row in rows:
        for priority, column in enumerate(HASH_PRIORITY):
            value = row[column]
            if value in wanted and priority < rank.get(value, len(HASH_PRIORITY)):
                rank[value] = priority
                found[value] = HashMatch(hash=value, kind=column, file_id=row["id"], version_id=row["version_id"])
    return found


def versions_with_models(version_ids: list[int]) -> dict[int, Row]:
    """Version rows plus the few model fields the version shape embeds: one query."""
    if not version_ids:
        return {}
    rows = ModelVersion.objects.filter(id__in=version_ids).values(
        *VERSION_FIELDS,
        "model__name", "model__type", "model__nsfw", "model__status", "model__visibility", "model__owner__username",
    )
    return {row["id"]: row for row in rows}


def latest_published_versions(model_ids: Iterable[int]) -> dict[int, Row]:
    """Each model's newest published version (by published_at, then id): one query."""
    latest: dict[int, Row] = {}
    rows = (
        ModelVersion.objects.filter(model_id__in=set(model_ids), status=ModelVersion.Status.PUBLISHED)
        .order_by("model_id", F("published_at").desc(nulls_last=True), "-id")
        .values("id", "model_id", "name", "published_at")
    )
    for row in rows:
        latest.setdefault(row["model_id"], row)
    return latest


def is_newer(candidate: Row, version: Row) -> bool:
    if candidate["id"] == version["id"]:
        return False
    if version["published_at"] is None:
        return True
    return (candidate["published_at"], candidate["id"]) > (version["published_at"], version["id"])


# --- tags and creators ------------------------------------------------------------------

def tags_page(*, query: str | None, limit: int, after: str | None) -> tuple[list[Row], str | None]:
    """Tags used by at least one listed model, by name. Counts are public, not per viewer."""
    listed = Q(models__status=Model.Status.PUBLISHED, models__visibility=Model.Visibility.PUBLIC)
    qs = Tag.objects.annotate(model_count=Count("models", filter=listed)).filter(model_count__gt=0)
    if query:
        qs = qs.filter(name__icontains=query.strip().lower())
    if after is not None:
        qs = qs.filter(name__gt=after)
    rows = list(qs.order_by("name").values("name", "model_count")[: limit + 1])
    return rows[:limit], (rows[limit - 1]["name"] if len(rows) > limit else None)


def creators_page(*, query: str | None, limit: int, after: str | None) -> tuple[list[Row], str | None]:
    """Users with at least one listed model, by username."""
    listed = Q(models__status=Model.Status.PUBLISHED, models__visibility=Model.Visibility.PUBLIC)
    qs = User.objects.filter(is_active=True).annotate(model_count=Count("models", filter=listed)).filter(
        model_count__gt=0
    )
    if query:
        qs = qs.filter(username__icontains=query.strip())
    if after is not None:
        qs = qs.filter(username__gt=after)
    rows = list(qs.order_by("username").values("username", "model_count")[: limit + 1])
    return rows[:limit], (rows[limit - 1]["username"] if len(rows) > limit else None)
