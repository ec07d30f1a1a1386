"""REST API v1 for recipes, merge jobs and lineage. Views are thin: parse, call, render.

Scopes for API keys: reading needs none beyond a valid key; creating recipes,
versions, forks and imports needs `upload`; starting and cancelling merges
needs `run`. Website sessions act with every scope.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.utils import json as drf_json
from rest_framework.views import APIView

from hub.accounts.auth import ApiKeyAuthentication, HasScope, bearer_token
from hub.accounts.services import InvalidApiKey
from hub.api.errors import error_body
from hub.api.negotiation import JsonOnlyNegotiation
from hub.api.permissions import ReadScopeIfKey
from hub.api.pagination import cursor_datetime, cursor_int, decode_cursor, encode_cursor, page_metadata, parse_limit
from hub.api.schemas import ErrorOut
from hub.catalog.api_serialize import iso
from hub.catalog.models import ModelVersion
from hub.faults import BIGINT_MAX
from hub.catalog.selectors import version_get_for
from hub.files.models import ModelFile
from merges.registry import conf, selectors, services
from merges.registry.diff import diff_summary
from merges.registry.documents import DocumentInvalid, document_parse, document_text
from merges.registry.models import MergeJob, Recipe, RecipeVersion

# --- bodies ------------------------------------------------------------------------------


def _web(name: str, **kwargs: Any) -> str:
    return reverse(f"frontend:{name}", kwargs=kwargs)


def version_ref_out(version: RecipeVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "id": version.pk,
        "recipeId": version.recipe_id,
        "number": version.number,
        "title": version.recipe.title,
        "owner": version.recipe.owner.username,
    }


def recipe_version_out(version: RecipeVersion, *, with_document: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": version.pk,
        "recipeId": version.recipe_id,
        "number": version.number,
        "hash": version.recipe_hash,
        "message": version.message,
        "architecture": version.architecture,
        "parent": (
            {"id": version.parent.pk, "recipeId": version.parent.recipe_id, "number": version.parent.number}
            if version.parent_id
            else None
        ),
        "createdBy": version.created_by.username if version.created_by_id else None,
        "createdAt": iso(version.created_at),
    }
    if with_document:
        body["document"] = version.document
        body["source"] = version.source
    return body


def recipe_out(recipe: Recipe, *, latest: RecipeVersion | None = None, version_count: int | None = None) -> dict:
    return {
        "id": recipe.pk,
        "slug": recipe.slug,
        "title": recipe.title,
        "description": recipe.description,
        "visibility": recipe.visibility,
        "architecture": recipe.architecture,
        "owner": {"username": recipe.owner.username},
        "forkedFrom": version_ref_out(recipe.forked_from),
        "latestVersion": recipe_version_out(latest) if latest is not None else None,
        "versionCount": version_count,
        "createdAt": iso(recipe.created_at),
        "updatedAt": iso(recipe.updated_at),
        "url": _web("recipe", recipe_id=recipe.pk),
    }


def output_out(version: ModelVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "modelVersionId": version.pk,
        "modelId": version.model_id,
        "name": version.name,
        "modelName": version.model.name,
        "url": _web("model", model_id=version.model_id, slug=version.model.slug) + f"?modelVersionId={version.pk}",
    }


def job_out(job: MergeJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "progress": round(job.progress, 4),
        "phase": (job.phase or None) if job.status == MergeJob.Status.RUNNING else None,
        "tensors": {"done": job.tensors_done, "total": job.tensors_total},
        "bytes": {"done": job.bytes_done, "total": job.bytes_total},
        "attempts": job.attempts,
        "maxAttempts": conf.max_attempts(),
        "cancelRequested": job.cancel_requested,
        "worker": job.worker or None,
        "error": job.error or None,
        # An earlier attempt died or failed and this one is its retry; `error` says why.
        "retrying": job.status in MergeJob.ACTIVE and job.attempts >= 1 and bool(job.error),
        "mergeKey": job.merge_key,
        "engineVersion": job.engine_version,
        "recipeId": job.recipe_version.recipe_id,
        "recipeVersion": job.recipe_version.number,
        "recipeVersionId": job.recipe_version_id,
        "requestedBy": job.requested_by.username,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
        "engineSeconds": job.engine_seconds,
        "output": output_out(job.output) if job.output_id else None,
        "url": reverse("api:merge-job", kwargs={"job_id": job.pk}),
    }


# --- schema helpers ---------------------------------------------------------------------

_JSON = OpenApiTypes.OBJECT
_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}
_RUN_ERRORS = {**_ERRORS, 503: OpenApiResponse(ErrorOut, description="The task queue is down; nothing was queued (Retry-After)")}


class RecipeIn(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    visibility = serializers.ChoiceField(choices=Recipe.Visibility.values, default=Recipe.Visibility.PUBLIC)
    document = serializers.JSONField(help_text="The recipe: a JSON object, or JSON/YAML text")
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class RecipePatchIn(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    visibility = serializers.ChoiceField(choices=Recipe.Visibility.values, required=False)


class VersionIn(serializers.Serializer):
    document = serializers.JSONField(help_text="The recipe: a JSON object, or JSON/YAML text")
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ForkIn(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1, help_text="Version number (default: latest)")
    title = serializers.CharField(required=False, max_length=200)
    visibility = serializers.ChoiceField(choices=Recipe.Visibility.values, required=False)


# Version numbers are a 32-bit column.
RUN_VERSION_MAX = 2**31 - 1


class RunIn(serializers.Serializer):
    version = serializers.IntegerField(required=False, min_value=1, max_value=RUN_VERSION_MAX, help_text="Version number (default: latest)")


class ValidateIn(serializers.Serializer):
    document = serializers.JSONField(help_text="The recipe: a JSON object, or JSON/YAML text")


class ImportIn(serializers.Serializer):
    fileId = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    modelVersionId = serializers.IntegerField(required=False, min_value=1, max_value=BIGINT_MAX)
    title = serializers.CharField(required=False, max_length=200)


_RECIPE_OUT = inline_serializer("Recipe", {"id": serializers.IntegerField(), "title": serializers.CharField(),
                                            "latestVersion": serializers.JSONField()})
_JOB_OUT = inline_serializer("MergeJob", {"id": serializers.IntegerField(), "status": serializers.CharField(),
                                          "progress": serializers.FloatField(),
                                          "phase": serializers.ChoiceField(
                                              choices=MergeJob.Phase.values, allow_null=True,
                                              help_text="While running: fetching inputs, merging tensors, or "
                                                        "storing the output"),
                                          "output": serializers.JSONField()})


def _body(serializer_class, request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _document_source(value: Any) -> Any:
    if isinstance(value, (dict, str)):
        return value
    raise ValidationError({"document": ["expected a JSON object or JSON/YAML text"]})


# --- base view ------------------------------------------------------------------------------


class RegistryView(APIView):
    content_negotiation_class = JsonOnlyNegotiation
    permission_classes = [AllowAny]
    write_scope = "upload"

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            # As in the catalogue: anyone may read, but an API key only with `read`.
            return [ReadScopeIfKey()]
        self.required_scope = self.write_scope
        return [HasScope()]

    def handle_exception(self, exc):
        if isinstance(exc, services.RegistryError):
            return Response(
                error_body(exc.message, code=exc.code, status_code=exc.status, details=exc.details), status=exc.status
            )
        return super().handle_exception(exc)

    def recipe(self, recipe_id: int) -> Recipe:
        recipe = selectors.recipe_get_for(self.request.user, recipe_id)
        if recipe is None:
            raise NotFound(f"recipe {recipe_id} not found")
        return recipe

    def version(self, recipe: Recipe, number: int | None) -> RecipeVersion:
        version = (
            services.recipe_latest_version(recipe) if number is None else selectors.recipe_version_get(recipe, number)
        )
        if version is None:
            raise NotFound(f"recipe {recipe.pk} has no version {number}")
        return version


def _recipe_detail(recipe: Recipe) -> dict[str, Any]:
    return recipe_out(recipe, latest=services.recipe_latest_version(recipe), version_count=recipe.versions.count())


# --- recipes -------------------------------------------------------------------------------

_SORTS = {"Newest": "created_at", "Recently Updated": "updated_at"}


class RecipeListView(RegistryView):
    @extend_schema(
        operation_id="recipes_list",
        summary="List and search recipes",
        description="Public recipes plus your own. Keyset (cursor) pagination, stable while recipes are added.",
        parameters=[
            OpenApiParameter("query", OpenApiTypes.STR, description="Words to find in title, description or slug"),
            OpenApiParameter("username", OpenApiTypes.STR),
            OpenApiParameter("architecture", OpenApiTypes.STR, description="sd1, sd2, sdxl or flux"),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(_SORTS), description="Default: Recently Updated"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1–100, default 20"),
            OpenApiParameter("cursor", OpenApiTypes.STR),
        ],
        responses={200: OpenApiResponse(_JSON, description="{items: [Recipe], metadata: {nextCursor, nextPage}}")},
        tags=["recipes"],
    )
    def get(self, request):
        sort = request.query_params.get("sort") or "Recently Updated"
        if sort not in _SORTS:
            raise ValidationError({"sort": [f"one of {', '.join(_SORTS)}"]})
        field = _SORTS[sort]
        limit = parse_limit(request, default=20)
        qs = selectors.recipe_search(
            user=request.user,
            query=request.query_params.get("query", "").strip(),
            username=request.query_params.get("username", "").strip(),
            architecture=request.query_params.get("architecture", "").strip(),
            sort=sort,
        ).select_related("forked_from", "forked_from__recipe", "forked_from__recipe__owner")
        if cursor := request.query_params.get("cursor"):
            at, last_id = decode_cursor(cursor, f"recipes:{field}", 2)
            at, last_id = cursor_datetime(at), cursor_int(last_id)
            qs = qs.filter(Q(**{f"{field}__lt": at}) | Q(**{field: at, "id__lt": last_id}))
        rows = list(qs[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        items = [recipe_out(r) for r in rows]
        next_cursor = encode_cursor(f"recipes:{field}", getattr(rows[-1], field), rows[-1].pk) if more else None
        return Response({"items": items, "metadata": page_metadata(request, next_cursor)})

    @extend_schema(
        operation_id="recipes_create",
        summary="Create a recipe with its first version",
        description="Needs the `upload` scope. The document is validated by the merge engine; errors name each field.",
        request=RecipeIn,
        responses={201: _RECIPE_OUT, **_ERRORS},
        tags=["recipes"],
    )
    def post(self, request):
        data = _body(RecipeIn, request)
        recipe = services.recipe_create(
            owner=request.user,
            title=data["title"],
            source=_document_source(data["document"]),
            description=data["description"],
            visibility=data["visibility"],
            message=data["message"],
        )
        return Response(_recipe_detail(recipe), status=status.HTTP_201_CREATED)


class RecipeDetailView(RegistryView):
    @extend_schema(operation_id="recipes_retrieve", summary="A recipe with its latest version",
                   responses={200: _RECIPE_OUT, 404: ErrorOut}, tags=["recipes"])
    def get(self, request, recipe_id: int):
        return Response(_recipe_detail(self.recipe(recipe_id)))

    @extend_schema(operation_id="recipes_update", summary="Change title, description or visibility",
                   request=RecipePatchIn, responses={200: _RECIPE_OUT, **_ERRORS}, tags=["recipes"])
    def patch(self, request, recipe_id: int):
        data = _body(RecipePatchIn, request)
        recipe = services.recipe_update(recipe=self.recipe(recipe_id), user=request.user, **data)
        return Response(_recipe_detail(recipe))


class RecipeVersionsView(RegistryView):
    @extend_schema(operation_id="recipes_versions_list", summary="Version history, newest first",
                   responses={200: OpenApiResponse(_JSON, description="{items: [RecipeVersion]}"), 404: ErrorOut},
                   tags=["recipes"])
    def get(self, request, recipe_id: int):
        recipe = self.recipe(recipe_id)
        versions = selectors.recipe_versions(recipe)
        return Response({"items": [recipe_version_out(v) for v in versions]})

    @extend_schema(
        operation_id="recipes_versions_create",
        summary="Add a version (owner only)",
        description=(
            "Needs the `upload` scope. Returns 201 with the new version, or 200 with the latest version when the "
            "document is identical to it (no new version). Others get 403: fork the recipe instead."
        ),
        request=VersionIn,
        responses={200: _JSON, 201: _JSON, **_ERRORS},
        tags=["recipes"],
    )
    def post(self, request, recipe_id: int):
        recipe = self.recipe(recipe_id)
        data = _body(VersionIn, request)
        version, created = services.recipe_version_create(
            recipe=recipe, author=request.user, source=_document_source(data["document"]), message=data["message"]
        )
        body = {**recipe_version_out(version), "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RecipeVersionDetailView(RegistryView):
    @extend_schema(operation_id="recipes_versions_retrieve", summary="One version with its document",
                   responses={200: _JSON, 404: ErrorOut}, tags=["recipes"])
    def get(self, request, recipe_id: int, number: int):
        return Response(recipe_version_out(self.version(self.recipe(recipe_id), number)))


class RecipeForkView(RegistryView):
    @extend_schema(
        operation_id="recipes_fork",
        summary="Fork a version into a new recipe of your own",
        description="Needs the `upload` scope. The fork's first version has the forked version as its parent.",
        request=ForkIn,
        responses={201: _RECIPE_OUT, **_ERRORS},
        tags=["recipes"],
    )
    def post(self, request, recipe_id: int):
        data = _body(ForkIn, request)
        source = self.version(self.recipe(recipe_id), data.get("version"))
        fork = services.recipe_fork(
            version=source, owner=request.user, title=data.get("title"), visibility=data.get("visibility")
        )
        return Response(_recipe_detail(fork), status=status.HTTP_201_CREATED)


def _version_param(request, recipe: Recipe, name: str, view: RegistryView) -> RecipeVersion:
    """`N` (a version of this recipe) or `RECIPE:N` (any visible recipe, e.g. a fork's parent)."""
    raw = request.query_params.get(name, "")
    recipe_part, _, number_part = raw.rpartition(":")
    try:
        number = int(number_part)
        other = int(recipe_part) if recipe_part else None
    except ValueError:
        raise ValidationError({name: ["expected a version number N or RECIPE_ID:N"]}) from None
    return view.version(view.recipe(other) if other is not None else recipe, number)


class RecipeDiffView(RegistryView):
    @extend_schema(
        operation_id="recipes_diff",
        summary="Structural diff between two versions",
        description=(
            "Steps added or removed, parameter changes old → new, block-weight changes per block, inputs swapped. "
            "`from`/`to` are version numbers of this recipe, or `RECIPE_ID:N` for another recipe's version."
        ),
        parameters=[
            OpenApiParameter("from", OpenApiTypes.STR, required=True),
            OpenApiParameter("to", OpenApiTypes.STR, required=True),
        ],
        responses={200: _JSON, 400: ErrorOut, 404: ErrorOut},
        tags=["recipes"],
    )
    def get(self, request, recipe_id: int):
        recipe = self.recipe(recipe_id)
        old = _version_param(request, recipe, "from", self)
        new = _version_param(request, recipe, "to", self)
        diff = services.recipe_diff(old=old, new=new)
        return Response({**diff, "summary": diff_summary(diff)})


_UNREAD = object()


def _peek_run_version(request) -> Any:
    """The `version` a run request's JSON body names (None: absent), or _UNREAD if it is not that simple.

    Read from the raw bytes, by rules no looser than DRF's JSONParser and
    RunIn, so that anything else is left to them, untouched.
    """
    if request.method != "POST" or (request.content_type or "").split(";")[0].strip().lower() != "application/json":
        return _UNREAD
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > 1024:
            return _UNREAD  # not a plain run request; DRF reads it with its own limits
        raw = request.body.decode(request.encoding or "utf-8")
        body = drf_json.loads(raw) if raw else {}
    except (ValueError, LookupError, RecursionError):
        return _UNREAD
    if not isinstance(body, dict):
        return _UNREAD
    if "version" not in body:
        return None
    number = body["version"]
    return number if type(number) is int and 1 <= number <= RUN_VERSION_MAX else _UNREAD


class RecipeRunView(RegistryView):
    write_scope = "run"
    prefetched: services.PrefetchedRun | None = None
    number: Any = _UNREAD

    def initial(self, request, *args, **kwargs):
        # An API-key request that repeats a cached run: the key check and the
        # run's lookups share one round trip. Permissions are checked after,
        # as for any request, and nothing is run before they pass.
        token = bearer_token(request)
        self.number = _peek_run_version(request) if token is not None else _UNREAD
        if self.number is not _UNREAD:
            try:
                key, self.prefetched = services.merge_run_with_api_key(
                    token=token, recipe_id=kwargs["recipe_id"], number=self.number
                )
            except InvalidApiKey as exc:
                raise AuthenticationFailed(str(exc)) from exc
            request.user, request.auth = key.user, key
            # What DRF records when an authenticator succeeds; a refusal reads it.
            request._authenticator = next(a for a in request.authenticators if isinstance(a, ApiKeyAuthentication))
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="recipes_run",
        summary="Run a version's merge",
        description=(
            "Needs the `run` scope. Every input must be downloadable by you and its licence must allow derivatives "
            "(403 with the reason otherwise). When this exact merge (same inputs, recipe and engine version) already "
            "has an output the answer is 200 with `cached: true` and the output; otherwise 202 with the job (the "
            "same job for concurrent identical requests). Poll `job.url` for progress."
        ),
        request=RunIn,
        responses={
            200: OpenApiResponse(_JSON, description="{cached: true, job: null, output}"),
            202: OpenApiResponse(_JSON, description="{cached: false, job, output: null}"),
            **_RUN_ERRORS,
        },
        tags=["merge jobs"],
    )
    def post(self, request, recipe_id: int):
        # A body already read in initial() was read by rules no looser than RunIn's.
        number = _body(RunIn, request).get("version") if self.number is _UNREAD else self.number
        found = services.merge_run_for(
            user=request.user, recipe_id=recipe_id, number=number, prefetched=self.prefetched
        )
        if found is None:
            self.version(self.recipe(recipe_id), number)  # raises the right 404
            raise NotFound(f"recipe {recipe_id} has no such version")  # created since: ask again
        _, outcome = found
        body = {
            "cached": outcome.cached,
            "job": job_out(outcome.job) if outcome.job is not None else None,
            "output": output_out(outcome.output),
        }
        return Response(body, status=status.HTTP_200_OK if outcome.cached else status.HTTP_202_ACCEPTED)


class RecipeJobsView(RegistryView):
    @extend_schema(operation_id="recipes_jobs_list",
                   summary="Recent merge jobs of a recipe (all for its owner, your own for others)",
                   responses={200: OpenApiResponse(_JSON, description="{items: [MergeJob]}"), 404: ErrorOut},
                   tags=["merge jobs"])
    def get(self, request, recipe_id: int):
        recipe = self.recipe(recipe_id)
        return Response({"items": [job_out(j) for j in selectors.recipe_jobs(request.user, recipe)]})


class RecipeValidateView(RegistryView):
    def get_permissions(self):
        return [AllowAny()]

    @extend_schema(
        operation_id="recipes_validate",
        summary="Validate a recipe document without saving it",
        description="Each error has the field path and, for text documents, the 1-based line it is on.",
        request=ValidateIn,
        responses={200: OpenApiResponse(_JSON, description="{valid, errors: [{path, message, line}], document, hash}")},
        tags=["recipes"],
    )
    def post(self, request):
        source = _document_source(_body(ValidateIn, request)["document"])
        try:
            parsed = document_parse(source)
        except DocumentInvalid as exc:
            return Response({"valid": False, "errors": [e.as_dict() for e in exc.errors], "document": None})
        document = parsed.document
        return Response(
            {"valid": True, "errors": [], "document": document, "text": document_text(document), "hash": parsed.hash}
        )


class RecipeImportView(RegistryView):
    @extend_schema(
        operation_id="recipes_import",
        summary="Turn a checkpoint's sd_merge_recipe metadata into a private draft recipe",
        description=(
            "Needs the `upload` scope. Weighted sum and add difference (A1111's checkpoint merger) with the stated "
            "multiplier; inputs are matched by SHA-256 to files on the hub where possible."
        ),
        request=ImportIn,
        responses={201: OpenApiResponse(_JSON, description="{recipe, notes}"), **_ERRORS},
        tags=["recipes"],
    )
    def post(self, request):
        data = _body(ImportIn, request)
        model_file = None
        if data.get("fileId"):
            model_file = ModelFile.objects.select_related("version", "version__model").filter(pk=data["fileId"]).first()
            if model_file is not None and version_get_for(request.user, model_file.version_id) is None:
                model_file = None
        elif data.get("modelVersionId"):
            version = version_get_for(request.user, data["modelVersionId"])
            model_file = version.files.order_by("-primary", "id").first() if version is not None else None
        else:
            raise ValidationError({"fileId": ["give fileId or modelVersionId"]})
        if model_file is None:
            raise NotFound("no such file")
        recipe, notes = services.recipe_import(model_file=model_file, owner=request.user, title=data.get("title"))
        return Response({"recipe": _recipe_detail(recipe), "notes": notes}, status=status.HTTP_201_CREATED)


# --- jobs -------------------------------------------------------------------------------------


class MergeJobView(RegistryView):
    @extend_schema(operation_id="merge_jobs_retrieve", summary="A merge job's status and progress",
                   responses={200: _JOB_OUT, 404: ErrorOut}, tags=["merge jobs"])
    def get(self, request, job_id: int):
        job = selectors.job_get_for(request.user, job_id)
        if job is None:
            raise NotFound(f"merge job {job_id} not found")
        response = Response(job_out(job))
        response["Cache-Control"] = "no-store"
        return response


class MergeJobCancelView(RegistryView):
    write_scope = "run"

    @extend_schema(
        operation_id="merge_jobs_cancel",
        summary="Cancel a merge job",
        description="Needs the `run` scope. A queued job is cancelled at once; a running one stops at its next tensor.",
        request=None,
        responses={200: _JOB_OUT, **_ERRORS},
        tags=["merge jobs"],
    )
    def post(self, request, job_id: int):
        job = selectors.job_get_for(request.user, job_id)
        if job is None:
            raise NotFound(f"merge job {job_id} not found")
        return Response(job_out(services.merge_job_cancel(job=job, user=request.user)))


# --- lineage ----------------------------------------------------------------------------------


class LineageView(RegistryView):
    @extend_schema(
        operation_id="model_versions_lineage",
        summary="Ancestors and descendants of a model version",
        description=(
            "A graph: `nodes` (model versions, or `file` nodes for inputs known only by SHA-256) and `edges` from an "
            "input to the output it was merged into, labelled with the recipe version and the input's name."
        ),
        responses={200: _JSON, 404: ErrorOut},
        tags=["merge jobs"],
    )
    def get(self, request, version_id: int):
        version = version_get_for(request.user, version_id)
        if version is None:
            raise NotFound(f"model version {version_id} not found")
        return Response(selectors.lineage_graph(request.user, version))
