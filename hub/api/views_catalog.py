"""REST API v1 catalogue endpoints: models, model versions, by-hash lookups, tags, creators.

Views parse parameters, call hub.catalog.api_selectors and return bodies built
by hub.catalog.api_serialize. DRF does routing, authentication and the schema.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from hub.api import schemas
from hub.api.base import V1View, download_base
from hub.api.pagination import (
    cursor_datetime,
    cursor_float,
    cursor_int,
    decode_cursor,
    encode_cursor,
    multi_param,
    page_metadata,
    parse_bool,
    parse_limit,
)
from hub.catalog import api_selectors as sel
from hub.catalog import page_cache
from hub.catalog.api_serialize import iso, models_out, model_out, version_out
from hub.catalog.models import Model, ModelVersion
from hub.catalog.nsfw import ALL_LEVELS_MASK
from hub.catalog.selectors import model_get_for, version_get_for

MAX_BULK_HASHES = 1000
_TYPES = {t.lower(): t for t in Model.Type.values}
_BASE_MODELS = {b.lower(): b for b in ModelVersion.BaseModel.values}
_SORTS = {s.lower(): s for s in sel.Sort.ALL}
# Cursor kinds: a cursor only continues the list and order it came from.
_SORT_CURSOR = {sel.Sort.NEWEST: "models:newest", sel.Sort.MOST_DOWNLOADED: "models:downloads",
                sel.Sort.HIGHEST_RATED: "models:rated"}
_HASH_TYPE_NAMES = {"sha256": "SHA256", "blake3": "BLAKE3", "autov3": "AutoV3", "autov2": "AutoV2",
                    "autov1": "AutoV1", "crc32": "CRC32"}
ERRORS = {400: schemas.ErrorOut, 401: schemas.ErrorOut, 403: schemas.ErrorOut}


def _choices(request, name: str, allowed: dict[str, str]) -> tuple[str, ...]:
    values = []
    for raw in multi_param(request, name):
        canonical = allowed.get(raw.lower())
        if canonical is None:
            raise ValidationError({name: [f"unknown value {raw!r}; allowed: {', '.join(allowed.values())}"]})
        values.append(canonical)
    return tuple(dict.fromkeys(values))


def _browsing_mask(request) -> int | None:
    raw = request.query_params.get("browsingLevel")
    if raw in (None, ""):
        return None
    try:
        mask = int(raw)
    except ValueError:
        mask = 0
    if not 1 <= mask <= ALL_LEVELS_MASK:
        raise ValidationError({"browsingLevel": ["a bitmask from 1 to 15: 1 PG, 2 PG-13, 4 R, 8 X"]})
    return mask


class ModelListView(V1View):
    @extend_schema(
        operation_id="models_list",
        summary="List and search models",
        description=(
            "Public published models plus the caller's own. Keyset cursor pagination: follow `metadata.nextPage` "
            "(or pass `metadata.nextCursor` as `cursor` with the same filters and sort); pages stay stable while "
            "models are added. `Highest Rated` orders by the Wilson lower bound of the share of reviews that "
            "recommend the model, so a model with one vote does not lead."
        ),
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 100"),
            OpenApiParameter("cursor", OpenApiTypes.STR, description="metadata.nextCursor of the previous page"),
            OpenApiParameter("query", OpenApiTypes.STR, description="Substring of the model name"),
            OpenApiParameter("tag", OpenApiTypes.STR),
            OpenApiParameter("username", OpenApiTypes.STR, description="Creator's username"),
            OpenApiParameter("types", OpenApiTypes.STR, many=True, enum=Model.Type.values,
                             description="Repeat or comma-separate"),
            OpenApiParameter("baseModels", OpenApiTypes.STR, many=True, enum=ModelVersion.BaseModel.values,
                             description="Models with a version on one of these base models"),
            OpenApiParameter("nsfw", OpenApiTypes.BOOL, description="false hides NSFW models; true or absent shows all"),
            OpenApiParameter(
                "browsingLevel", OpenApiTypes.INT,
                description="Bitmask of NSFW levels to list, as Civitai's: 1 PG, 2 PG-13, 4 R, 8 X (e.g. 3 = PG and "
                            "PG-13). Covers are never above the caller's own level (PG without an account).",
            ),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(sel.Sort.ALL), description="Default Newest"),
        ],
        responses={200: schemas.ModelListOut, **ERRORS},
        tags=["models"],
    )
    def get(self, request):
        body, etag, _ = page_cache.cached_page(request, lambda: JSONRenderer().render(self._page(request)))
        if page_cache.if_none_match(request, etag):
            response = HttpResponseNotModified()
        else:
            response = HttpResponse(body, content_type="application/json")
        response["ETag"] = etag
        patch_vary_headers(response, ["Authorization", "Cookie"])
        return response

    def _page(self, request) -> dict:
        sort_raw = request.query_params.get("sort") or sel.Sort.NEWEST
        sort = _SORTS.get(sort_raw.lower())
        if sort is None:
            raise ValidationError({"sort": [f"unknown sort {sort_raw!r}; allowed: {', '.join(sel.Sort.ALL)}"]})
        filters = sel.ModelFilters(
            types=_choices(request, "types", _TYPES),
            base_models=_choices(request, "baseModels", _BASE_MODELS),
            tag=request.query_params.get("tag") or None,
            username=request.query_params.get("username") or None,
            query=request.query_params.get("query") or None,
            nsfw=parse_bool(request, "nsfw"),
            browsing_mask=_browsing_mask(request),
        )
        limit = parse_limit(request, default=100)
        kind = _SORT_CURSOR[sort]
        after = None
        if cursor := request.query_params.get("cursor"):
            key, last_id = decode_cursor(cursor, kind, 2)
            if sort == sel.Sort.NEWEST:
                key = cursor_datetime(key)
            elif sort == sel.Sort.HIGHEST_RATED:
                key = cursor_float(key)
            else:
                key = cursor_int(key)
            after = (key, cursor_int(last_id))
        page = sel.models_page(request.user, filters=filters, sort=sort, limit=limit, after=after)
        next_cursor = encode_cursor(kind, *page.next_key) if page.next_key else None
        return {"items": models_out(page, download_base(request)), "metadata": page_metadata(request, next_cursor)}


class ModelDetailView(V1View):
    @extend_schema(operation_id="models_retrieve", summary="A model with its versions and files",
                   responses={200: schemas.ModelOut, 404: schemas.ErrorOut, **ERRORS}, tags=["models"])
    def get(self, request, model_id: int):
        model = model_get_for(request.user, model_id)
        if model is None:
            raise NotFound(f"model {model_id} not found")
        row = sel.model_row(model)
        row["cover"] = sel.model_cover(request.user, model.pk)
        return Response(model_out(row, sel.models_related(request.user, [row]), download_base(request)))


class ModelVersionDetailView(V1View):
    @extend_schema(operation_id="model_versions_retrieve", summary="A model version with its files",
                   responses={200: schemas.VersionDetailOut, 404: schemas.ErrorOut, **ERRORS},
                   tags=["model-versions"])
    def get(self, request, version_id: int):
        version = version_get_for(request.user, version_id)
        if version is None:
            raise NotFound(f"model version {version_id} not found")
        files = sel.files_for_versions([version.id])
        row = sel.version_row_with_model(version)
        return Response(version_out(row, files.get(version.id, []), download_base(request), with_model=True))


def _normalized(value: str, field: str) -> str:
    normalized = sel.normalize_hash(value) if isinstance(value, str) else None
    if normalized is None:
        raise ValidationError({field: [
            f"{value!r} is not a hash: expected hex of 8 (AutoV1, CRC32), 10 (AutoV2) or 64 (SHA256, AutoV3, BLAKE3) digits"
        ]})
    return normalized


class ModelVersionByHashView(V1View):
    @extend_schema(
        operation_id="model_versions_by_hash",
        summary="The model version holding a file with this hash",
        description="Any hash kind: SHA256, AutoV1, AutoV2, AutoV3, CRC32 or BLAKE3, in either case.",
        responses={200: schemas.VersionDetailOut, 404: schemas.ErrorOut, **ERRORS},
        tags=["model-versions"],
    )
    def get(self, request, hash: str):
        normalized = _normalized(hash, "hash")
        lookup = sel.versions_by_hashes(request.user, [normalized])
        match = lookup.matches.get(normalized)
        if match is None:
            raise NotFound(f"no model version has a file with hash {hash.upper()}")
        vid = match.version_id
        return Response(
            version_out(lookup.versions[vid], lookup.files_by_version[vid], download_base(request), with_model=True)
        )


class ModelVersionByHashBulkView(V1View):
    write_limit_exempt = True  # a read that takes its hashes as a body
    @extend_schema(
        operation_id="model_versions_by_hash_bulk",
        summary="Look up many hashes at once (update checks)",
        description=(
            f"Body: a JSON array of up to {MAX_BULK_HASHES} hashes of any kind (or `{{\"hashes\": [...]}}`). One item "
            "per distinct hash, in request order: the version holding it (null if none visible), the model's newest "
            "published version, and whether that one is newer."
        ),
        request={"application/json": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_BULK_HASHES}},
        responses={200: schemas.ByHashBulkOut, **ERRORS},
        tags=["model-versions"],
    )
    def post(self, request):
        data = request.data
        if isinstance(data, dict):
            data = data.get("hashes")
        if not isinstance(data, list):
            raise ValidationError({"hashes": ["send a JSON array of hashes"]})
        if len(data) > MAX_BULK_HASHES:
            raise ValidationError({"hashes": [f"at most {MAX_BULK_HASHES} hashes per request"]})
        hashes = list(dict.fromkeys(_normalized(h, "hashes") for h in data))
        lookup = sel.versions_by_hashes(request.user, hashes)
        matches, versions, files = lookup.matches, lookup.versions, lookup.files_by_version
        latest = sel.latest_published_versions(v["model_id"] for v in versions.values())
        base = download_base(request)
        bodies = {m.version_id: version_out(versions[m.version_id], files[m.version_id], base, with_model=True)
                  for m in matches.values()}
        items = []
        for h in hashes:
            match = matches.get(h)
            version = versions[match.version_id] if match else None
            newest = latest.get(version["model_id"]) if version else None
            items.append({
                "hash": h.upper(),
                "hashType": _HASH_TYPE_NAMES[match.kind] if match else None,
                "modelVersion": bodies[match.version_id] if match else None,
                "latestVersion": {
                    "id": newest["id"], "name": newest["name"], "publishedAt": iso(newest["published_at"]),
                    "downloadUrl": f"{base}{newest['id']}",
                } if newest else None,
                "newerVersionAvailable": bool(version and newest and sel.is_newer(newest, version)),
            })
        return Response({"items": items})


def _name_cursor(request, kind: str) -> str | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    (name,) = decode_cursor(raw, kind, 1)
    if not isinstance(name, str):
        raise ValidationError({"cursor": ["invalid cursor"]})
    return name


def _models_link(request, **params: str) -> str:
    return request.build_absolute_uri(f"/api/v1/models?{urlencode(params)}")


LIST_PARAMS = [
    OpenApiParameter("query", OpenApiTypes.STR, description="Substring of the name"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 20"),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="metadata.nextCursor of the previous page"),
]


class TagListView(V1View):
    @extend_schema(operation_id="tags_list", summary="Tags in use, by name", parameters=LIST_PARAMS,
                   responses={200: schemas.TagListOut, **ERRORS}, tags=["tags"])
    def get(self, request):
        rows, last = sel.tags_page(query=request.query_params.get("query"), limit=parse_limit(request, default=20),
                                   after=_name_cursor(request, "tags"))
        items = [{"name": r["name"], "modelCount": r["model_count"], "link": _models_link(request, tag=r["name"])}
                 for r in rows]
        next_cursor = encode_cursor("tags", last) if last is not None else None
        return Response({"items": items, "metadata": page_metadata(request, next_cursor)})


class CreatorListView(V1View):
    @extend_schema(operation_id="creators_list", summary="Users with public models, by username",
                   parameters=LIST_PARAMS, responses={200: schemas.CreatorListOut, **ERRORS}, tags=["creators"])
    def get(self, request):
        rows, last = sel.creators_page(query=request.query_params.get("query"),
                                       limit=parse_limit(request, default=20), after=_name_cursor(request, "creators"))
        items = [{"username": r["username"], "modelCount": r["model_count"],
                  "link": _models_link(request, username=r["username"])} for r in rows]
        next_cursor = encode_cursor("creators", last) if last is not None else None
        return Response({"items": items, "metadata": page_metadata(request, next_cursor)})
