"""Reads of the recipe registry, filtered by what the asking user may see.

Lists show public recipes plus the user's own; unlisted recipes are reachable
by link; private ones only by their owner (others get a 404, as if they did
not exist). Jobs and outputs follow their recipe.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from hub.catalog.api_prepared import instance_from_row
from hub.catalog.models import ModelVersion
from hub.catalog.selectors import models_visible_to
from merges.registry import lookups
from merges.registry.models import LineageEdge, MergeJob, MergeOutput, Recipe, RecipeVersion


def _is_user(user) -> bool:
    return user is not None and user.is_authenticated


def recipes_visible_to(user) -> QuerySet[Recipe]:
    listed = Q(visibility=Recipe.Visibility.PUBLIC, moderation="", owner__is_active=True)
    if _is_user(user):
        listed |= Q(owner_id=user.pk)
    return Recipe.objects.filter(listed)


def recipe_get_for(user, recipe_id: int) -> Recipe | None:
    reachable = ~Q(visibility=Recipe.Visibility.PRIVATE) & Q(moderation="", owner__is_active=True)
    if _is_user(user):
        reachable |= Q(owner_id=user.pk)
    return (
        Recipe.objects.filter(reachable, pk=recipe_id)
        .select_related("owner", "forked_from", "forked_from__recipe", "forked_from__recipe__owner")
        .first()
    )


RECIPE_SORTS = {
    "Newest": ("-created_at", "-id"),
    "Recently Updated": ("-updated_at", "-id"),
    "Most Forked": ("-fork_count", "-id"),
}


def recipe_search(
    *, user, query: str = "", username: str = "", architecture: str = "", sort: str = "Recently Updated"
) -> QuerySet[Recipe]:
    qs = recipes_visible_to(user).select_related("owner")
    if query:
        for word in query.split()[:8]:
            qs = qs.filter(Q(title__icontains=word) | Q(description__icontains=word) | Q(slug__icontains=word))
    if username:
        qs = qs.filter(owner__username__iexact=username)
    if architecture:
        qs = qs.filter(architecture=architecture)
    if sort == "Most Forked":
        qs = qs.annotate(fork_count=Count("versions__forks", distinct=True))
    return qs.order_by(*RECIPE_SORTS.get(sort, RECIPE_SORTS["Recently Updated"]))


def recipe_versions(recipe: Recipe) -> QuerySet[RecipeVersion]:
    return recipe.versions.select_related("created_by", "parent", "parent__recipe").order_by("-number")


def recipe_version_get(recipe: Recipe, number: int) -> RecipeVersion | None:
    return recipe.versions.select_related("recipe", "recipe__owner", "parent").filter(number=number).first()


def recipe_version_get_for(user, recipe_id: int, number: int | None = None) -> RecipeVersion | None:
    """A version (the latest when `number` is None) of a recipe the user may see, in one prepared query.

    Only the fields a run needs are loaded; the others (and `.recipe`) load on access.
    """
    row = lookups.recipe_version_row(user.pk if _is_user(user) else 0, recipe_id, number)
    if row is None:
        return None
    return instance_from_row(RecipeVersion, row)


def recipe_version_for(user, version_id: int) -> RecipeVersion | None:
    version = RecipeVersion.objects.select_related("recipe").filter(pk=version_id).first()
    if version is None or recipe_get_for(user, version.recipe_id) is None:
        return None
    return version


def recipe_forks(user, recipe: Recipe) -> QuerySet[Recipe]:
    return recipes_visible_to(user).filter(forked_from__recipe=recipe).select_related("owner", "forked_from")


def job_get_for(user, job_id: int) -> MergeJob | None:
    job = (
        MergeJob.objects.select_related("recipe_version", "recipe_version__recipe", "requested_by", "output")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return None
    if _is_user(user) and job.requested_by_id == user.pk:
        return job
    return job if recipe_get_for(user, job.recipe_version.recipe_id) is not None else None


def recipe_jobs(user, recipe: Recipe, limit: int = 20) -> list[MergeJob]:
    """Recent jobs of a recipe: everyone's for its owner, the user's own for others."""
    qs = MergeJob.objects.filter(recipe_version__recipe=recipe).select_related("recipe_version", "requested_by")
    if not _is_user(user):
        return []
    if recipe.owner_id != user.pk:
        qs = qs.filter(requested_by=user)
    return list(qs.order_by("-created_at", "-id")[:limit])


def recipe_outputs(user, recipe: Recipe, limit: int = 50) -> list[MergeOutput]:
    visible_models = models_visible_to(user)
    return list(
        MergeOutput.objects.filter(recipe_version__recipe=recipe, model_version__model__in=visible_models)
        .filter(model_version__status=ModelVersion.Status.PUBLISHED)
        .select_related("model_version", "model_version__model", "model_version__model__owner", "recipe_version")
        .order_by("-created_at", "-id")[:limit]
    )


def output_of(model_version: ModelVersion) -> MergeOutput | None:
    return (
        MergeOutput.objects.filter(model_version=model_version)
        .select_related("recipe_version", "recipe_version__recipe", "recipe_version__recipe__owner")
        .first()
    )


# --- lineage -------------------------------------------------------------------------


def _visible_versions(user, ids: set[int]) -> dict[int, ModelVersion]:
    """The subset of version ids the user may see (the catalogue's rules), loaded."""
    if not ids:
        return {}
    own = Q(model__owner_id=user.pk) if _is_user(user) else Q(pk__in=[])
    public = Q(status=ModelVersion.Status.PUBLISHED, model__status__in=["published", "archived"]) & ~Q(
        model__visibility="private"
    ) & Q(moderation="", model__moderation="", model__owner__is_active=True)
    return {
        v.pk: v
        for v in ModelVersion.objects.filter(pk__in=ids).filter(own | public).select_related("model", "model__owner")
    }


def _node(version: ModelVersion, role: str) -> dict[str, Any]:
    return {
        "id": version.pk,
        "kind": "modelVersion",
        "role": role,
        "name": version.name,
        "modelId": version.model_id,
        "modelName": version.model.name,
        "modelType": version.model.type,
        "baseModel": version.base_model,
        "owner": version.model.owner.username,
    }


def lineage_graph(user, root: ModelVersion, *, max_depth: int = 8, max_nodes: int = 200) -> dict[str, Any]:
    """Ancestors and descendants of `root` as nodes and edges (input → output, labelled by recipe version).

    Versions the user may not see are left out with their edges. An input the
    hub only knows by SHA-256 (no catalogue version) appears as a `file` node.
    """
    nodes: dict[str, dict[str, Any]] = {str(root.pk): _node(root, "root")}
    edges: list[dict[str, Any]] = []
    seen_edges: set[int] = set()
    truncated = False

    def walk(direction: str) -> None:
        nonlocal truncated
        frontier = deque([(root.pk, 0)])
        visited = {root.pk}
        while frontier:
            batch = [frontier.popleft() for _ in range(len(frontier))]
            depth_of = {vid: depth for vid, depth in batch if depth < max_depth}
            if not depth_of:
                continue
            field = "output_id__in" if direction == "up" else "input_id__in"
            found = list(
                LineageEdge.objects.filter(**{field: list(depth_of)})
                .select_related("recipe_version", "recipe_version__recipe", "recipe_version__recipe__owner")
                .order_by("id")
            )
            neighbour_ids = {e.input_id if direction == "up" else e.output_id for e in found} - {None}
            visible = _visible_versions(user, neighbour_ids)
            for edge in found:
                here = edge.output_id if direction == "up" else edge.input_id
                there = edge.input_id if direction == "up" else edge.output_id
                if edge.pk in seen_edges:
                    continue
                if there is None:
                    node_id = f"sha256:{edge.input_sha256}"
                    nodes.setdefault(
                        node_id, {"id": node_id, "kind": "file", "role": "ancestor", "sha256": edge.input_sha256}
                    )
                elif there in visible:
                    node_id = str(there)
                    if node_id not in nodes:
                        if len(nodes) >= max_nodes:
                            truncated = True
                            continue
                        nodes[node_id] = _node(visible[there], "ancestor" if direction == "up" else "descendant")
                    if there not in visited:
                        visited.add(there)
                        frontier.append((there, depth_of[here] + 1))
                else:
                    continue
                seen_edges.add(edge.pk)
                rv = edge.recipe_version
                recipe_visible = rv.recipe.visibility != Recipe.Visibility.PRIVATE or (
                    _is_user(user) and rv.recipe.owner_id == user.pk
                )
                label = (
                    {
                        "id": rv.pk,
                        "recipeId": rv.recipe_id,
                        "number": rv.number,
                        "title": rv.recipe.title,
                        "owner": rv.recipe.owner.username,
                        "slug": rv.recipe.slug,
                    }
                    if recipe_visible
                    else {"id": rv.pk, "number": rv.number, "private": True}
                )
                edges.append(
                    {
                        "source": node_id if direction == "up" else str(edge.input_id),
                        "target": str(edge.output_id) if direction == "up" else node_id,
                        "input": edge.input_name,
                        "recipeVersion": label,
                    }
                )

    walk("up")
    walk("down")
    return {"root": str(root.pk), "nodes": list(nodes.values()), "edges": edges, "truncated": truncated}


# --- where a file's merge metadata came from ----------------------------------------


@dataclass(frozen=True)
class MergeProvenance:
    """What a version's primary file says about how it was merged, for its pages.

    `made_here`: the file was written by our merge engine (its `mergeworks_*`
    metadata), whether or not this version is the output row itself (a
    downloaded output may be uploaded again). `recipe_version`: the recipe
    version that made it, when the viewer may see it. `importable`: the file
    carries `sd_merge_recipe` from another tool (A1111, supermerger), the only
    case where drafting a recipe from it makes sense.
    """

    made_here: bool
    recipe_version: RecipeVersion | None
    importable: bool


def merge_provenance(user, version: ModelVersion, primary_file=None) -> MergeProvenance:
    if primary_file is None:
        primary_file = version.files.order_by("-primary", "id").first()
    metadata = ((primary_file.header_summary or {}).get("metadata") or {}) if primary_file is not None else {}
    origin = output_of(version)
    made_here = origin is not None or any(str(k).startswith("mergeworks_") for k in metadata)
    recipe_version = origin.recipe_version if origin is not None else None
    if recipe_version is None and made_here:
        merge_key, recipe_hash = metadata.get("mergeworks_merge_key"), metadata.get("mergeworks_recipe_hash")
        by_key = MergeOutput.objects.filter(merge_key=merge_key).order_by("id") if isinstance(merge_key, str) else None
        found = by_key.select_related("recipe_version").first() if by_key is not None else None
        if found is not None:
            recipe_version = found.recipe_version
        elif isinstance(recipe_hash, str):
            recipe_version = RecipeVersion.objects.filter(
                recipe_hash=recipe_hash, recipe__in=recipes_visible_to(user)).order_by("id").first()
    if recipe_version is not None and recipe_get_for(user, recipe_version.recipe_id) is None:
        recipe_version = None
    if recipe_version is not None:
        recipe_version = RecipeVersion.objects.select_related("recipe", "recipe__owner").get(pk=recipe_version.pk)
    return MergeProvenance(
        made_here=made_here,
        recipe_version=recipe_version,
        importable=not made_here and "sd_merge_recipe" in metadata,
    )
