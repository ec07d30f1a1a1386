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
from hub.catalog.api_prepared import PreparedValuesQuery
from hub.catalog.models import Model, ModelVersion, Tag
from hub.catalog.nsfw import levels_in
from hub.catalog.selectors import models_visible_to
from hub.community.stats import RATING_KEY, STATS_VALUES, stats_values
from hub.files.models import ModelFile

Row = dict[str, Any]

MODEL_FIELDS = (
    "id", "name", "description", "type", "checkpoint_type", "nsfw", "nsfw_level", "allow_no_credit", "allow_commercial_use",
    "allow_derivatives", "allow_different_license", "visibility", "status", "download_count", "created_at",
    "updated_at", "published_at", "owner_id", "owner__username", "slug",
) + STATS_VALUES
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
    # Wilson lower bound of the recommend share (hub.community), so one vote does not lead.
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
    # Civitai's browsingLevel: a bitmask of NSFW levels (1 PG, 2 PG-13, 4 R, 8 X).
    browsing_mask: int | None = None


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


def version_visible_q(user, *, prefix: str = "") -> Q:
    """Versions a viewer may see: published ones of a reachable model, or anything they own."""
    return version_visible_q_for(user.pk if _is_authenticated(user) else None, prefix=prefix)


def version_visible_q_for(viewer_id: int | None, *, prefix: str = "") -> Q:
    """`version_visible_q` for a viewer given by id (None: anonymous). Same rule as `version_get_for`."""
    reachable = (
        Q(**{f"{prefix}status": ModelVersion.Status.PUBLISHED})
        & Q(**{f"{prefix}model__status__in": [Model.Status.PUBLISHED, Model.Status.ARCHIVED]})
        & ~Q(**{f"{prefix}model__visibility": Model.Visibility.PRIVATE})
        & Q(**{f"{prefix}moderation": "", f"{prefix}model__moderation": "", f"{prefix}model__owner__is_active": True})
    )
    if viewer_id is not None:
        # A version a moderator took down is never served, to its owner neither (the page still says why).
        reachable |= Q(**{f"{prefix}model__owner_id": viewer_id}) & ~Q(**{f"{prefix}moderation": "removed"}) & ~Q(
            **{f"{prefix}model__moderation": "removed"}
        )
    return reachable


def _filtered_models(user, filters: ModelFilters) -> QuerySet[Model]:
    qs = models_visible_to(user)
    if filters.types:
        qs = qs.filter(type__in=filters.types)
    if filters.nsfw is False:
        qs = qs.filter(nsfw=False)
    if filters.browsing_mask is not None:
        qs = qs.filter(nsfw_level__in=levels_in(filters.browsing_mask))
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
    if sort == Sort.HIGHEST_RATED:
        # Models nobody reviewed have no stats row (NULL): they come last.
        qs = qs.order_by(F(RATING_KEY).desc(nulls_last=True), "-id")
        if after is not None:
            key, last_id = after
            if key is None:
                qs = qs.filter(**{f"{RATING_KEY}__isnull": True, "id__lt": last_id})
            else:
                qs = qs.filter(Q(**{f"{RATING_KEY}__lt": key}) | Q(**{RATING_KEY: key, "id__lt": last_id})
                               | Q(**{f"{RATING_KEY}__isnull": True}))
        return qs
    qs = qs.order_by("-download_count", "-id")
    if after is not None:
        key, last_id = after
        qs = qs.filter(Q(download_count__lte=key) & (Q(download_count__lt=key) | Q(id__lt=last_id)))
    return qs


def sort_key(sort: str, row: Row) -> tuple[Any, int]:
    if sort == Sort.NEWEST:
        return row["published_at"], row["id"]
    if sort == Sort.HIGHEST_RATED:
        return row[RATING_KEY], row["id"]
    return row["download_count"], row["id"]


def cover_expression(user, *, mask: int | None = None):
    from hub.uploads.image_selectors import cover_expression as expression

    return expression(user, mask=mask)


def model_cover(user, model_id: int):
    """One model's cover for `user` (the detail endpoint): one query."""
    return Model.objects.filter(pk=model_id).annotate(cover=cover_expression(user)).values_list("cover", flat=True).first()


def models_page(user, *, filters: ModelFilters, sort: str, limit: int, after: tuple[Any, int] | None) -> ModelPage:
    qs = _keyset(_filtered_models(user, filters), sort, after)
    # The cover is a column of this same query (see hub.uploads.image_selectors).
    qs = qs.annotate(cover=cover_expression(user, mask=filters.browsing_mask))
    rows = list(qs.values(*MODEL_FIELDS, "cover")[: limit + 1])
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
    visible = Q(status=ModelVersion.Status.PUBLISHED, moderation="")
    if owned:
        visible |= Q(model_id__in=owned) & ~Q(moderation="removed")
    versions = list(
        ModelVersion.objects.filter(visible, model_id__in=ids)
        .order_by("model_id", "-created_at", "-id")
        .values(*VERSION_FIELDS, *STATS_VALUES)
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
    row.update(stats_values(model_id=model.pk))
    return row


def version_row_with_model(version: ModelVersion) -> Row:
    """A version row with the model__* fields `version_out(with_model=True)` reads, from loaded instances."""
    row = {name: getattr(version, name) for name in VERSION_FIELDS}
    model = version.model
    row.update({
        "model__name": model.name, "model__type": model.type, "model__nsfw": model.nsfw,
        "model__status": model.status, "model__visibility": model.visibility,
        "model__owner__username": model.owner.username, "model__slug": model.slug,
    })
    row.update(stats_values(version_id=version.pk))
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


@dataclass
class HashLookup:
    matches: dict[str, HashMatch]
    versions: dict[int, Row]  # version rows with the model__* fields `version_out(with_model=True)` reads
    files_by_version: dict[int, list[Row]]


_MODEL_CONTEXT = ("model__name", "model__type", "model__nsfw", "model__status", "model__visibility",
                  "model__owner__username", "model__slug")
_FILE_CONTEXT = tuple(f"version__{name}" for name in VERSION_FIELDS if name != "id") + tuple(
    f"version__{name}" for name in _MODEL_CONTEXT
) + tuple(f"version__{name}" for name in STATS_VALUES)


def _hash_match_q(columns_and_values: dict[str, list[str]]) -> Q:
    match = Q()
    for column, values in columns_and_values.items():
        match |= Q(**{f"{column}__in": values})
    return match


def _files_of_matching_versions(match: Q, viewer_id: int | None) -> QuerySet[ModelFile]:
    """Every file of every version visible to the viewer that holds a file matching `match`."""
    return (
        ModelFile.objects.filter(version_id__in=ModelFile.objects.filter(match).values("version_id"))
        .filter(version_visible_q_for(viewer_id, prefix="version__"))
        .order_by("version_id", "-primary", "id")
        .values(*FILE_FIELDS, *_FILE_CONTEXT)
    )


def _single_hash_query(length: int, authenticated: bool) -> PreparedValuesQuery:
    columns = HASH_COLUMNS_BY_LENGTH[length]
    if authenticated:
        return PreparedValuesQuery(
            f"mw_by_hash_{length}_viewer",
            lambda h, viewer_id: _files_of_matching_versions(_hash_match_q({c: [h] for c in columns}), viewer_id),
            (str, int), json_fields=("version__trained_words",),
        )
    return PreparedValuesQuery(
        f"mw_by_hash_{length}_anonymous",
        lambda h: _files_of_matching_versions(_hash_match_q({c: [h] for c in columns}), None),
        (str,), json_fields=("version__trained_words",),
    )


# The single-hash GET is the hot path (web UI extensions look up every local
# file): one prepared statement per hash length and viewer kind.
_SINGLE_HASH_QUERIES = {
    (length, authenticated): _single_hash_query(length, authenticated)
    for length in HASH_COLUMNS_BY_LENGTH
    for authenticated in (False, True)
}


def versions_by_hashes(user, hashes: list[str]) -> HashLookup:
    """The version each (normalised) hash names among those visible to `user`, with all their files.

    One query: every file of every visible version holding a matching file,
    joined with its version and model. A hash may name several files
    (identical uploads share a blob); the strongest hash kind wins, then the
    oldest file, which is the original upload.
    """
    lookup = HashLookup(matches={}, versions={}, files_by_version=defaultdict(list))
    if not hashes:
        return lookup
    if len(hashes) == 1:
        h = hashes[0]
        if _is_authenticated(user):
            rows: Iterable[Row] = _SINGLE_HASH_QUERIES[(len(h), True)].rows(h, user.pk)
        else:
            rows = _SINGLE_HASH_QUERIES[(len(h), False)].rows(h)
    else:
        by_column: dict[str, list[str]] = defaultdict(list)
        for h in hashes:
            for column in HASH_COLUMNS_BY_LENGTH[len(h)]:
                by_column[column].append(h)
        rows = _files_of_matching_versions(
            _hash_match_q(by_column), user.pk if _is_authenticated(user) else None
        )
    wanted = set(hashes)
    rank: dict[str, tuple[int, int]] = {}
    for row in rows:
        version_id = row["version_id"]
        if version_id not in lookup.versions:
            version = {"id": version_id}
            for name in _FILE_CONTEXT:
                version[name[len("version__"):]] = row[name]
            lookup.versions[version_id] = version
        lookup.files_by_version[version_id].append(row)
        for priority, column in enumerate(HASH_PRIORITY):
            value = row[column]
            if value in wanted and (priority, row["id"]) < rank.get(value, (len(HASH_PRIORITY), 0)):
                rank[value] = (priority, row["id"])
                lookup.matches[value] = HashMatch(hash=value, kind=column, file_id=row["id"], version_id=version_id)
    return lookup


def latest_published_versions(model_ids: Iterable[int]) -> dict[int, Row]:
    """Each model's newest published version (by published_at, then id): one query."""
    latest: dict[int, Row] = {}
    rows = (
        ModelVersion.objects.filter(model_id__in=set(model_ids), status=ModelVersion.Status.PUBLISHED, moderation="")
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
    listed = Q(models__status=Model.Status.PUBLISHED, models__visibility=Model.Visibility.PUBLIC, models__moderation="",
               models__owner__is_active=True)
    qs = Tag.objects.annotate(model_count=Count("models", filter=listed)).filter(model_count__gt=0)
    if query:
        qs = qs.filter(name__icontains=query.strip().lower())
    if after is not None:
        qs = qs.filter(name__gt=after)
    rows = list(qs.order_by("name").values("name", "model_count")[: limit + 1])
    return rows[:limit], (rows[limit - 1]["name"] if len(rows) > limit else None)


def creators_page(*, query: str | None, limit: int, after: str | None) -> tuple[list[Row], str | None]:
    """Users with at least one listed model, by username."""
    listed = Q(models__status=Model.Status.PUBLISHED, models__visibility=Model.Visibility.PUBLIC, models__moderation="")
    qs = User.objects.filter(is_active=True).annotate(model_count=Count("models", filter=listed)).filter(
        model_count__gt=0
    )
    if query:
        qs = qs.filter(username__icontains=query.strip())
    if after is not None:
        qs = qs.filter(username__gt=after)
    rows = list(qs.order_by("username").values("username", "model_count")[: limit + 1])
    return rows[:limit], (rows[limit - 1]["username"] if len(rows) > limit else None)
