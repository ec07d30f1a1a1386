"""The lookups a cached run makes, compiled once and run as prepared statements.

`POST …/run` for a merge that already has an output must cost about what a
health check does, and ORM compilation plus PostgreSQL planning is most of
the cost of its three small queries (see hub.catalog.api_prepared). The
queries are still written with the ORM, and visibility uses the catalogue's
own rule (`version_visible_q_for`), so nothing here restates a permission.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q, Value

from hub.catalog.api_prepared import PreparedValuesQuery, Row, rows_many
from hub.catalog.api_selectors import version_visible_q_for
from hub.catalog.models import ModelVersion
from hub.files.models import ModelFile
from merges.registry.models import MergeOutput, Recipe, RecipeVersion

VERSION_FIELDS = ("id", "recipe_id", "number", "document", "recipe_hash", "parent_id", "created_at")


def _recipe_reachable_q(viewer_id: int) -> Q:
    # viewer_id 0 (anonymous) owns nothing, so only non-private recipes match.
    return ~Q(recipe__visibility=Recipe.Visibility.PRIVATE) | Q(recipe__owner_id=viewer_id)


_version_by_number = PreparedValuesQuery(
    "registry_version_by_number",
    # Value(): a plain `number=` would range-check the compile-time sentinel and match nothing.
    lambda recipe_id, number, viewer_id: RecipeVersion.objects.filter(
        _recipe_reachable_q(viewer_id), recipe_id=recipe_id, number=Value(number)
    ).values(*VERSION_FIELDS),
    (int, int, int),
    json_fields=("document",),
)
_version_latest = PreparedValuesQuery(
    "registry_version_latest",
    lambda recipe_id, viewer_id: RecipeVersion.objects.filter(_recipe_reachable_q(viewer_id), recipe_id=recipe_id)
    .order_by("-number")
    .values(*VERSION_FIELDS)[:1],
    (int, int),
    json_fields=("document",),
)


def _version_call(viewer_id: int, recipe_id: int, number: int | None) -> tuple[PreparedValuesQuery, tuple[Any, ...]]:
    if number is None:
        return _version_latest, (recipe_id, viewer_id)
    return _version_by_number, (recipe_id, number, viewer_id)


def recipe_version_row(viewer_id: int, recipe_id: int, number: int | None) -> Row | None:
    query, args = _version_call(viewer_id, recipe_id, number)
    rows = query.rows(*args)
    return rows[0] if rows else None


INPUT_FIELDS = (
    "id", "version_id", "sha256", "size_bytes", "storage_key", "format", "pickle_scan_status", "primary",
    "version__name", "version__model__name", "version__model__owner_id", "version__model__status",
    "version__model__allow_derivatives", "autov3",
)
# One statement per shape (number of model-version and SHA-256 inputs); recipes have a handful.
_inputs_by_shape: dict[tuple[int, int], PreparedValuesQuery] = {}


def _inputs_query(n_versions: int, n_shas: int) -> PreparedValuesQuery:
    query = _inputs_by_shape.get((n_versions, n_shas))
    if query is None:

        def build(*args: Any):
            version_ids, shas, viewer_id = args[:n_versions], args[n_versions:-1], args[-1]
            wanted = Q(pk__in=[])
            if version_ids:
                wanted |= Q(version_id__in=list(version_ids))
            if shas:
                wanted |= Q(sha256__in=list(shas))
            return (
                ModelFile.objects.filter(wanted)
                .filter(version_visible_q_for(viewer_id, prefix="version__"))
                .order_by("-primary", "id")
                .values(*INPUT_FIELDS)
            )

        query = PreparedValuesQuery(
            f"registry_inputs_{n_versions}_{n_shas}", build, (int,) * n_versions + (str,) * n_shas + (int,)
        )
        _inputs_by_shape[(n_versions, n_shas)] = query
    return query


# A licence follows the bytes (hub.catalog.licences): other creators' published
# copies of the inputs' bytes (same SHA-256, or same tensors by AutoV3) whose
# licence forbids derivatives. Fetched with the inputs, in the same round trip.
_copies_by_shape: dict[tuple[int, int], PreparedValuesQuery] = {}


def _copies_query(n_versions: int, n_shas: int) -> PreparedValuesQuery:
    query = _copies_by_shape.get((n_versions, n_shas))
    if query is None:

        def build(*args: Any):
            version_ids, shas, viewer_id = args[:n_versions], args[n_versions:-1], args[-1]
            wanted = Q(pk__in=[])
            if version_ids:
                wanted |= Q(version_id__in=list(version_ids))
            if shas:
                wanted |= Q(sha256__in=list(shas))
            named = ModelFile.objects.filter(wanted)
            return (
                ModelFile.objects.filter(
                    Q(sha256__in=named.values("sha256")) | Q(autov3__in=named.exclude(autov3="").values("autov3")),
                    version__status=ModelVersion.Status.PUBLISHED,
                    version__model__allow_derivatives=False,
                )
                .exclude(version__model__owner_id=viewer_id)
                .values(*COPY_FIELDS)
            )

        query = PreparedValuesQuery(
            f"registry_forbidding_copies_{n_versions}_{n_shas}", build, (int,) * n_versions + (str,) * n_shas + (int,)
        )
        _copies_by_shape[(n_versions, n_shas)] = query
    return query


COPY_FIELDS = ("sha256", "autov3", "version__model__owner_id")


def _with_copies(inputs: list[Row], copies: list[Row]) -> list[Row]:
    """Marks each input row with `copy_forbidding_owner`: another creator whose copy forbids derivatives, or None."""
    by_sha = {c["sha256"]: c["version__model__owner_id"] for c in copies}
    by_v3 = {c["autov3"]: c["version__model__owner_id"] for c in copies if c["autov3"]}
    for row in inputs:
        row["copy_forbidding_owner"] = by_sha.get(row["sha256"], by_v3.get(row["autov3"]) if row["autov3"] else None)
    return inputs


def input_file_rows(viewer_id: int, version_ids: list[int], shas: list[str]) -> list[Row]:
    """Files of the given versions and with the given digests that the viewer may see, primary first.

    Each row also says whether another creator published the same bytes
    under a licence that forbids derivatives (`copy_forbidding_owner`).
    """
    args = (*version_ids, *shas, viewer_id)
    inputs, copies = rows_many([
        (_inputs_query(len(version_ids), len(shas)), args), (_copies_query(len(version_ids), len(shas)), args),
    ])
    return _with_copies(inputs, copies)


OUTPUT_FIELDS = (
    "id", "model_version_id", "merge_key", "engine_version",
    "model_version__name", "model_version__model_id", "model_version__model__name",
    "model_version__model__slug", "model_version__model__owner_id",
)
_outputs = PreparedValuesQuery(
    "registry_visible_outputs",
    lambda merge_key, viewer_id: MergeOutput.objects.filter(merge_key=merge_key)
    .filter(version_visible_q_for(viewer_id, prefix="model_version__"))
    .order_by("id")
    .values(*OUTPUT_FIELDS),
    (str, int),
)


def visible_output_rows(viewer_id: int, merge_key: str) -> list[Row]:
    return _outputs.rows(merge_key, viewer_id)


def cached_run_rows(
    viewer_id: int,
    recipe_id: int,
    number: int | None,
    version_ids: list[int],
    shas: list[str],
    merge_key: str,
    *,
    first: tuple[PreparedValuesQuery, tuple[Any, ...]] | None = None,
) -> tuple[Any, ...]:
    """A cached run's three lookups in one round trip, for inputs and a merge key already known.

    Returns (version row or None, input rows, output rows), preceded by the
    rows of `first` when a lookup is given to run ahead of them (the API key's).
    The caller must check that the version found is the one those inputs and
    that key were derived from.
    """
    input_args = (*version_ids, *shas, viewer_id)
    calls = [
        _version_call(viewer_id, recipe_id, number),
        (_inputs_query(len(version_ids), len(shas)), input_args),
        (_copies_query(len(version_ids), len(shas)), input_args),
        (_outputs, (merge_key, viewer_id)),
    ]
    results = rows_many([first, *calls] if first is not None else calls)
    version, inputs, copies, outputs = results[-4:]
    return (*results[:-4], version[0] if version else None, _with_copies(inputs, copies), outputs)
