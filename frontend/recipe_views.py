"""Recipe pages: list, detail, editor, diff, fork/run, import, and the lineage graph.

Reads go through merges.registry.selectors, writes through its services; the
pages only arrange what those return.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from hub.catalog.models import ModelVersion
from hub.catalog.selectors import version_get_for
from hub.files.models import ModelFile
from merges.engine.blocks import BLOCK_NAMES
from merges.engine.recipe import ARCHITECTURES, OPS
from merges.registry import selectors, services
from merges.registry.diff import diff_summary
from merges.registry.documents import document_text
from merges.registry.models import MergeJob, Recipe, RecipeVersion

RECIPES_PER_PAGE = 24
STARTER_DOCUMENT = """{
  "format": "mergeworks/recipe@1",
  "architecture": "sd1",
  "inputs": {
    "base": {"model_version": 1},
    "other": {"model_version": 2}
  },
  "steps": [
    {"id": "mix", "op": "weighted_sum", "inputs": ["base", "other"], "alpha": 0.5}
  ],
  "output": {"step": "mix", "dtype": "fp16"}
}
"""


def _recipe_or_404(request, recipe_id: int) -> Recipe:
    recipe = selectors.recipe_get_for(request.user, recipe_id)
    if recipe is None:
        raise Http404("No such recipe")
    return recipe


def _version_or_404(recipe: Recipe, number: Any) -> RecipeVersion:
    if number in (None, ""):
        version = services.recipe_latest_version(recipe)
    else:
        try:
            version = selectors.recipe_version_get(recipe, int(number))
        except (TypeError, ValueError):
            version = None
    if version is None:
        raise Http404("No such recipe version")
    return version


def recipe_list(request):
    query = request.GET.get("query", "").strip()[:200]
    architecture = request.GET.get("architecture", "")
    architecture = architecture if architecture in ARCHITECTURES else ""
    recipes = selectors.recipe_search(user=request.user, query=query, architecture=architecture).select_related(
        "forked_from", "forked_from__recipe", "forked_from__recipe__owner"
    )
    page = Paginator(recipes, RECIPES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "frontend/recipe_list.html",
        {"page": page, "query": query, "architecture": architecture, "architectures": ARCHITECTURES},
    )


# --- readable documents ----------------------------------------------------------------------


@dataclass
class InputRow:
    name: str
    ref: dict[str, Any]
    version: ModelVersion | None = None
    used_by: list[str] = field(default_factory=list)


@dataclass
class ParamRow:
    name: str
    value: Any
    blocks: list[tuple[str, Any]] | None = None


@dataclass
class StepRow:
    id: str
    op: str
    inputs: list[tuple[str, bool]]  # (name, is an input rather than a step)
    params: list[ParamRow]
    is_output: bool


def _input_rows(user, document: dict[str, Any]) -> list[InputRow]:
    rows = []
    for name, ref in document["inputs"].items():
        version = None
        if "model_version" in ref:
            version = version_get_for(user, ref["model_version"])
        elif "sha256" in ref:
            for file in ModelFile.objects.filter(sha256=ref["sha256"]).order_by("id")[:10]:
                version = version_get_for(user, file.version_id)
                if version is not None:
                    break
        used_by = [s["id"] for s in document["steps"] if name in s["inputs"]]
        rows.append(InputRow(name=name, ref=ref, version=version, used_by=used_by))
    return rows


def _step_rows(document: dict[str, Any]) -> list[StepRow]:
    names = BLOCK_NAMES.get(document.get("architecture") or "", [])
    rows = []
    for step in document["steps"]:
        params = []
        for key, value in step.items():
            if key in ("id", "op", "inputs"):
                continue
            blocks = None
            if isinstance(value, dict) and isinstance(value.get("blocks"), list):
                blocks = list(zip(names or [str(i) for i in range(len(value["blocks"]))], value["blocks"]))
            params.append(ParamRow(name=key, value=value, blocks=blocks))
        rows.append(
            StepRow(
                id=step["id"],
                op=step["op"],
                inputs=[(ref, ref in document["inputs"]) for ref in step["inputs"]],
                params=params,
                is_output=step["id"] == document["output"]["step"],
            )
        )
    return rows


def recipe_detail(request, recipe_id: int):
    recipe = _recipe_or_404(request, recipe_id)
    version = _version_or_404(recipe, request.GET.get("version"))
    latest = services.recipe_latest_version(recipe)
    versions = list(selectors.recipe_versions(recipe))
    is_owner = request.user.is_authenticated and recipe.owner_id == request.user.pk
    jobs = selectors.recipe_jobs(request.user, recipe)
    context = {
        "recipe": recipe,
        "version": version,
        "latest": latest,
        "versions": versions,
        "is_owner": is_owner,
        "inputs": _input_rows(request.user, version.document),
        "steps": _step_rows(version.document),
        "document_text": document_text(version.document),
        "jobs": jobs,
        "active_jobs": [j for j in jobs if j.status in MergeJob.ACTIVE],
        "outputs": selectors.recipe_outputs(request.user, recipe),
        "forks": list(selectors.recipe_forks(request.user, recipe)[:20]),
        "highlight_job": request.GET.get("job", ""),
    }
    return render(request, "frontend/recipe_detail.html", context)


def recipe_outputs(request, recipe_id: int):
    """The Outputs list alone, fetched by the recipe page when one of its jobs succeeds."""
    recipe = _recipe_or_404(request, recipe_id)
    response = render(request, "frontend/_recipe_outputs.html", {"outputs": selectors.recipe_outputs(request.user, recipe)})
    add_never_cache_headers(response)
    return response


# --- editor ---------------------------------------------------------------------------------------


def _editor_context(*, recipe: Recipe | None, text: str, errors: list[dict[str, Any]], message: str = "") -> dict:
    param_ranges = {
        op: {
            name: {"min": p.lo, "max": p.hi}
            for name, p in spec.params.items()
            if p.kind == "weight"
        }
        for op, spec in OPS.items()
    }
    return {
        "recipe": recipe,
        "text": text,
        "errors": errors,
        "message": message,
        "block_names": BLOCK_NAMES,
        "param_ranges": param_ranges,
        "gutter": [
            (n, "; ".join(e["message"] for e in errors if e.get("line") == n))
            for n in range(1, text.count("\n") + 2)
        ],
    }


@login_required
@require_http_methods(["GET", "POST"])
def recipe_new(request):
    errors: list[dict[str, Any]] = []
    text = STARTER_DOCUMENT
    title = ""
    if request.method == "POST":
        text = request.POST.get("document", "")
        title = request.POST.get("title", "").strip()
        try:
            recipe = services.recipe_create(
                owner=request.user,
                title=title,
                source=text,
                description=request.POST.get("description", ""),
                visibility=request.POST.get("visibility", Recipe.Visibility.PUBLIC),
                message=request.POST.get("message", ""),
            )
        except services.RecipeInvalid as exc:
            errors = [e.as_dict() for e in exc.errors]
        except services.RegistryError as exc:
            errors = [{"path": "", "message": exc.message, "line": None}]
        else:
            messages.success(request, f"Recipe “{recipe.title}” created.")
            return redirect("frontend:recipe", recipe_id=recipe.pk)
    context = _editor_context(recipe=None, text=text, errors=errors)
    context.update(title=title, visibilities=Recipe.Visibility.choices)
    return render(request, "frontend/recipe_edit.html", context, status=400 if errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def recipe_edit(request, recipe_id: int):
    recipe = _recipe_or_404(request, recipe_id)
    if recipe.owner_id != request.user.pk:
        raise PermissionDenied("Only the recipe's owner can edit it; fork it to make your own.")
    latest = services.recipe_latest_version(recipe)
    errors: list[dict[str, Any]] = []
    text = document_text(latest.document)
    message = ""
    if request.method == "POST":
        text = request.POST.get("document", "")
        message = request.POST.get("message", "")
        try:
            version, created = services.recipe_version_create(
                recipe=recipe, author=request.user, source=text, message=message
            )
        except services.RecipeInvalid as exc:
            errors = [e.as_dict() for e in exc.errors]
        except services.RegistryError as exc:
            errors = [{"path": "", "message": exc.message, "line": None}]
        else:
            if created:
                messages.success(request, f"Saved version {version.number}.")
            else:
                messages.info(request, f"No changes: the document is the same as version {version.number}.")
            return redirect("frontend:recipe", recipe_id=recipe.pk)
    context = _editor_context(recipe=recipe, text=text, errors=errors, message=message)
    context["latest"] = latest
    return render(request, "frontend/recipe_edit.html", context, status=400 if errors else 200)


# --- diff, fork, run -------------------------------------------------------------------------------


def recipe_diff(request, recipe_id: int):
    recipe = _recipe_or_404(request, recipe_id)
    versions = list(selectors.recipe_versions(recipe))
    new = _version_or_404(recipe, request.GET.get("to"))
    if request.GET.get("from"):
        old = _version_or_404(recipe, request.GET.get("from"))
    elif new.parent_id and selectors.recipe_version_for(request.user, new.parent_id) is not None:
        old = new.parent  # a fork's first version compares with the version it was forked from
    else:
        old = new
    diff = services.recipe_diff(old=old, new=new)
    return render(
        request,
        "frontend/recipe_diff.html",
        {"recipe": recipe, "old": old, "new": new, "diff": diff, "summary": diff_summary(diff), "versions": versions},
    )


@login_required
@require_POST
def recipe_fork(request, recipe_id: int):
    recipe = _recipe_or_404(request, recipe_id)
    version = _version_or_404(recipe, request.POST.get("version"))
    fork = services.recipe_fork(version=version, owner=request.user)
    messages.success(request, f"Forked {recipe.owner.username}/{recipe.slug} v{version.number}. Edit it and run it.")
    return redirect("frontend:recipe", recipe_id=fork.pk)


@login_required
@require_POST
def recipe_run(request, recipe_id: int):
    recipe = _recipe_or_404(request, recipe_id)
    version = _version_or_404(recipe, request.POST.get("version"))
    url = reverse("frontend:recipe", kwargs={"recipe_id": recipe.pk})
    try:
        outcome = services.merge_run(version=version, user=request.user)
    except services.RegistryError as exc:
        messages.error(request, exc.message)
        return redirect(f"{url}?version={version.number}")
    if outcome.cached:
        messages.info(request, "This exact merge already exists; here is its output.")
        output = outcome.output
        return redirect(
            reverse("frontend:model", kwargs={"model_id": output.model_id, "slug": output.model.slug})
            + f"?modelVersionId={output.pk}"
        )
    messages.success(request, f"Merge job {outcome.job.pk} queued for version {version.number}.")
    return redirect(f"{url}?version={version.number}&job={outcome.job.pk}#jobs")


# --- import -------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def recipe_import(request):
    try:
        file_id = int(request.GET.get("file") or request.POST.get("file") or 0)
    except ValueError:
        file_id = 0
    model_file = ModelFile.objects.select_related("version", "version__model").filter(pk=file_id).first()
    if model_file is None or version_get_for(request.user, model_file.version_id) is None:
        raise Http404("No such file")
    provenance = selectors.merge_provenance(request.user, model_file.version, model_file)
    if provenance.recipe_version is not None:
        # Our own output: its recipe exists already, so there is nothing to import.
        rv = provenance.recipe_version
        messages.info(request, "This file was merged on Mergeworks by this recipe version.")
        return redirect(f"{reverse('frontend:recipe', kwargs={'recipe_id': rv.recipe_id})}?version={rv.number}")
    if provenance.made_here:
        return render(request, "frontend/recipe_import.html", {
            "model_file": model_file, "problem": "This file was merged on Mergeworks by a recipe you cannot see."})
    if request.method == "POST":
        try:
            recipe, notes = services.recipe_import(model_file=model_file, owner=request.user)
        except services.RegistryError as exc:
            messages.error(request, exc.message)
            return redirect(f"{reverse('frontend:recipe-import')}?file={model_file.pk}")
        for note in notes:
            messages.warning(request, note)
        messages.success(request, "Draft recipe created (private). Check it, then run it.")
        return redirect("frontend:recipe", recipe_id=recipe.pk)
    from merges.engine.inspect import summarize_metadata

    metadata = (model_file.header_summary or {}).get("metadata") or {}
    summary = summarize_metadata({k: v for k, v in metadata.items() if isinstance(v, str)})
    draft, notes, problem = None, [], ""
    try:
        arch = services.ARCH_OF_BASE_MODEL.get(model_file.version.base_model, "sd1")
        document, notes = services.recipe_draft_from_metadata(summary=summary, architecture=arch)
        draft = document_text(document)
    except services.RegistryError as exc:
        problem = exc.message
    return render(
        request,
        "frontend/recipe_import.html",
        {"model_file": model_file, "draft": draft, "notes": notes, "problem": problem},
    )


# --- lineage graph -----------------------------------------------------------------------------------

NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 220, 60, 120, 28, 20


def lineage_layout(graph: dict[str, Any]) -> dict[str, Any]:
    """Place the lineage graph in columns: ancestors left of the version, descendants right.

    A node's column is its shortest distance from the root (negative
    upstream), so edges run left to right.
    """
    root = graph["root"]
    ins: dict[str, list[str]] = {}
    outs: dict[str, list[str]] = {}
    for e in graph["edges"]:
        outs.setdefault(e["source"], []).append(e["target"])
        ins.setdefault(e["target"], []).append(e["source"])
    column = {root: 0}
    for links, step in ((ins, -1), (outs, 1)):  # upstream, then downstream, breadth first
        frontier = [root]
        while frontier:
            nxt = []
            for node in frontier:
                for other in links.get(node, []):
                    if other not in column:
                        column[other] = column[node] + step
                        nxt.append(other)
            frontier = nxt
    for node in graph["nodes"]:
        column.setdefault(str(node["id"]), 0)
    lo = min(column.values())
    by_col: dict[int, list[dict[str, Any]]] = {}
    for node in graph["nodes"]:
        by_col.setdefault(column[str(node["id"])] - lo, []).append(node)
    rows = max((len(v) for v in by_col.values()), default=1)
    height = PAD * 2 + rows * NODE_H + (rows - 1) * ROW_GAP
    width = PAD * 2 + len(by_col) * NODE_W + max(len(by_col) - 1, 0) * COL_GAP
    placed: dict[str, dict[str, Any]] = {}
    for col, nodes in sorted(by_col.items()):
        nodes.sort(key=lambda n: (n.get("modelName") or n.get("sha256") or "", str(n["id"])))
        top = (height - (len(nodes) * NODE_H + (len(nodes) - 1) * ROW_GAP)) / 2
        for i, node in enumerate(nodes):
            x = PAD + col * (NODE_W + COL_GAP)
            y = top + i * (NODE_H + ROW_GAP)
            placed[str(node["id"])] = {**node, "x": x, "y": y, "cx": x + NODE_W / 2, "ty": y + 24, "ty2": y + 44}
    edges = []
    labels: dict[tuple[str, int], dict[str, Any]] = {}
    for e in graph["edges"]:
        s, t = placed.get(e["source"]), placed.get(e["target"])
        if s is None or t is None:
            continue
        x1, y1 = s["x"] + NODE_W, s["y"] + NODE_H / 2
        x2, y2 = t["x"], t["y"] + NODE_H / 2
        mid = (x1 + x2) / 2
        edges.append({**e, "d": f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"})
        # One label per recipe version and output, just left of the output.
        key = (e["target"], e["recipeVersion"]["id"])
        labels.setdefault(key, {"x": x2 - COL_GAP / 2, "y": y2 - 8, "recipe": e["recipeVersion"], "inputs": []})
        labels[key]["inputs"].append(e["input"])
    return {
        "width": width,
        "height": height,
        "nodes": list(placed.values()),
        "edges": edges,
        "labels": list(labels.values()),
        "node_w": NODE_W,
        "node_h": NODE_H,
    }


def lineage(request, version_id: int):
    version = version_get_for(request.user, version_id)
    if version is None:
        raise Http404("No such model version")
    graph = selectors.lineage_graph(request.user, version)
    layout = lineage_layout(graph)
    for node in layout["nodes"]:
        if node["kind"] == "modelVersion":
            node["url"] = (
                reverse("frontend:model-short", kwargs={"model_id": node["modelId"]})
                + f"?modelVersionId={node['id']}"
            )
            node["lineage_url"] = reverse("frontend:lineage", kwargs={"version_id": node["id"]})
    for label in layout["labels"]:
        recipe = label["recipe"]
        if not recipe.get("private"):
            label["url"] = reverse("frontend:recipe", kwargs={"recipe_id": recipe["recipeId"]}) + (
                f"?version={recipe['number']}"
            )
    names = {
        str(n["id"]): (f"{n['modelName']} {n['name']}" if n["kind"] == "modelVersion" else f"file {n['sha256'][:12]}…")
        for n in graph["nodes"]
    }
    merges = [{**e, "source_name": names.get(e["source"]), "target_name": names.get(e["target"])} for e in graph["edges"]]
    primary = version.files.order_by("-primary", "id").first()
    provenance = selectors.merge_provenance(request.user, version, primary)
    return render(
        request,
        "frontend/recipe_lineage.html",
        {
            "version": version,
            "graph": graph,
            "layout": layout,
            "merges": merges,
            "provenance": provenance,
            "import_file": primary if provenance.importable and request.user.is_authenticated else None,
        },
    )
