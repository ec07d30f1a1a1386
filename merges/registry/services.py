"""Writes of the recipe registry: recipes, versions, forks, runs, outputs.

Worker-side job execution lives in `merges.registry.jobs`; this module holds
everything a request does, plus the publishing of a merge output (shared by
the worker and by cache hits).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from hub.accounts.models import ApiKey, User
from hub.accounts.services import (
    api_key_authenticate,
    api_key_check,
    api_key_from_rows,
    api_key_lookup_call,
    api_key_split,
    api_key_user_guess,
)
from hub.catalog.api_prepared import Row, instance_from_row
from hub.catalog.licences import licence_of_bytes
from hub.catalog.licences import Licence as CatalogLicence
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import model_create, model_version_create, model_version_publish
from hub.faults import BrokerUnavailable
from hub.community.services import recipe_forked_notify, recipe_run_notify
from hub.files.models import ModelFile
from hub.files.services import BlobInfo, model_file_create
from hub.tasks_enqueue import broker_started_at, task_send
from merges.engine.recipe import OPS, RecipeError, merge_key as engine_merge_key
from merges.registry import conf, lookups, selectors
from merges.registry.diff import document_diff
from merges.registry.documents import DocumentError, DocumentInvalid, ParsedDocument, document_parse, document_text
from merges.registry.models import LineageEdge, MergeJob, MergeOutput, Recipe, RecipeVersion

MERGE_TASK = "workers.tasks.merge.merge_job_run"
BASE_MODEL_OF_ARCH = {
    "sd1": ModelVersion.BaseModel.SD_1_5,
    "sd2": ModelVersion.BaseModel.SD_2_1,
    "sdxl": ModelVersion.BaseModel.SDXL_1_0,
    "flux": ModelVersion.BaseModel.FLUX_1_D,
}
# Base models that share an architecture's weights layout; an output keeps
# its inputs' base model when they agree and it belongs to the recipe's architecture.
ARCH_OF_BASE_MODEL = {
    ModelVersion.BaseModel.SD_1_5: "sd1",
    ModelVersion.BaseModel.SD_2_1: "sd2",
    ModelVersion.BaseModel.SDXL_1_0: "sdxl",
    ModelVersion.BaseModel.PONY: "sdxl",
    ModelVersion.BaseModel.ILLUSTRIOUS: "sdxl",
    ModelVersion.BaseModel.FLUX_1_D: "flux",
    ModelVersion.BaseModel.FLUX_1_S: "flux",
}


class RegistryError(Exception):
    """A refused registry request; `status` and `code` are what the API answers."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class RecipeInvalid(RegistryError):
    code = "invalid_recipe"

    def __init__(self, errors: list[DocumentError]):
        super().__init__(
            "the recipe is invalid: " + "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in errors),
            details=[e.as_dict() for e in errors],
        )
        self.errors = errors


class RegistryPermissionDenied(RegistryError):
    status = 403
    code = "permission_denied"


class RegistryNotFound(RegistryError):
    status = 404
    code = "not_found"


class RegistryConflict(RegistryError):
    status = 409
    code = "conflict"


def _parse(source: str | Mapping[str, Any]) -> ParsedDocument:
    try:
        return document_parse(source)
    except DocumentInvalid as exc:
        raise RecipeInvalid(exc.errors) from exc


def _unique_slug(owner: User, base: str) -> str:
    base = slugify(base)[:100] or "recipe"
    slug, n = base, 2
    while Recipe.objects.filter(owner=owner, slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _check_visibility(visibility: str) -> None:
    if visibility not in Recipe.Visibility.values:
        raise RegistryError(f"unknown visibility {visibility!r}; allowed: {', '.join(Recipe.Visibility.values)}")


def _version_add(
    *, recipe: Recipe, parsed: ParsedDocument, author: User | None, message: str, parent: RecipeVersion | None
) -> RecipeVersion:
    # Numbers come from the locked recipe row, so two concurrent edits get n+1 and n+2.
    Recipe.objects.select_for_update().filter(pk=recipe.pk).get()
    last = recipe.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = RecipeVersion.objects.create(
        recipe=recipe,
        number=last + 1,
        document=parsed.document,
        source=parsed.source,
        recipe_hash=parsed.hash,
        message=message.strip()[:500],
        parent=parent,
        created_by=author,
    )
    Recipe.objects.filter(pk=recipe.pk).update(architecture=parsed.recipe.architecture, updated_at=timezone.now())
    recipe.architecture = parsed.recipe.architecture
    return version


def recipe_create(
    *,
    owner: User,
    title: str,
    source: str | Mapping[str, Any],
    description: str = "",
    visibility: str = Recipe.Visibility.PUBLIC,
    message: str = "",
    slug: str | None = None,
) -> Recipe:
    """A new recipe with its first version."""
    title = title.strip()
    if not title:
        raise RegistryError("title must not be empty", details={"title": ["must not be empty"]})
    _check_visibility(visibility)
    parsed = _parse(source)
    with transaction.atomic():
        recipe = Recipe.objects.create(
            owner=owner,
            slug=_unique_slug(owner, slug or title),
            title=title[:200],
            description=description,
            visibility=visibility,
            architecture=parsed.recipe.architecture,
        )
        _version_add(recipe=recipe, parsed=parsed, author=owner, message=message or "First version", parent=None)
    return recipe


def recipe_latest_version(recipe: Recipe) -> RecipeVersion:
    return recipe.versions.order_by("-number").first()


def recipe_version_create(
    *, recipe: Recipe, author: User, source: str | Mapping[str, Any], message: str = ""
) -> tuple[RecipeVersion, bool]:
    """Add version n+1 edited from the latest; returns (version, created).

    A document whose canonical form equals the latest version's creates
    nothing and returns the latest version.
    """
    if recipe.owner_id != author.pk:
        raise RegistryPermissionDenied("only the recipe's owner can add versions; fork it to make your own")
    parsed = _parse(source)
    with transaction.atomic():
        Recipe.objects.select_for_update().filter(pk=recipe.pk).get()
        latest = recipe_latest_version(recipe)
        if latest is not None and latest.recipe_hash == parsed.hash:
            return latest, False
        return _version_add(recipe=recipe, parsed=parsed, author=author, message=message, parent=latest), True


def recipe_fork(
    *,
    version: RecipeVersion,
    owner: User,
    title: str | None = None,
    visibility: str | None = None,
    description: str | None = None,
) -> Recipe:
    """Copy `version` into a new recipe owned by `owner`; its history starts at that version."""
    source_recipe = version.recipe
    visibility = visibility or (
        Recipe.Visibility.PRIVATE if source_recipe.visibility == Recipe.Visibility.PRIVATE else Recipe.Visibility.PUBLIC
    )
    _check_visibility(visibility)
    title = (title or source_recipe.title).strip() or source_recipe.title
    parsed = _parse(version.source or version.document)
    with transaction.atomic():
        recipe = Recipe.objects.create(
            owner=owner,
            slug=_unique_slug(owner, title),
            title=title[:200],
            description=source_recipe.description if description is None else description,
            visibility=visibility,
            forked_from=version,
            architecture=parsed.recipe.architecture,
        )
        _version_add(
            recipe=recipe,
            parsed=parsed,
            author=owner,
            message=f"Forked from {source_recipe.owner.username}/{source_recipe.slug} v{version.number}",
            parent=version,
        )
        recipe_forked_notify(fork=recipe, source_recipe=source_recipe, user=owner)
    return recipe


def recipe_update(
    *, recipe: Recipe, user: User, title: str | None = None, description: str | None = None, visibility: str | None = None
) -> Recipe:
    """Change a recipe's title, description or visibility (its versions stay as they are)."""
    if recipe.owner_id != user.pk:
        raise RegistryPermissionDenied("only the recipe's owner can change it")
    fields = []
    if title is not None:
        if not title.strip():
            raise RegistryError("title must not be empty", details={"title": ["must not be empty"]})
        recipe.title, fields = title.strip()[:200], fields + ["title"]
    if description is not None:
        recipe.description, fields = description, fields + ["description"]
    if visibility is not None:
        _check_visibility(visibility)
        recipe.visibility, fields = visibility, fields + ["visibility"]
    if fields:
        recipe.save(update_fields=[*fields, "updated_at"])
    return recipe


def recipe_diff(*, old: RecipeVersion, new: RecipeVersion) -> dict[str, Any]:
    """Structural diff between two versions (see merges.registry.diff)."""
    diff = document_diff(old.document, new.document)

    def ref(v: RecipeVersion) -> dict[str, Any]:
        return {"recipe": v.recipe_id, "number": v.number, "id": v.pk, "hash": v.recipe_hash}

    return {"from": ref(old), "to": ref(new), **diff}


# --- runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedInput:
    name: str
    sha256: str
    size: int
    storage_key: str
    model_version_id: int | None
    file_id: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "storage_key": self.storage_key,
            "model_version": self.model_version_id,
            "file": self.file_id,
        }


def _downloadable(user: User, row: Mapping[str, Any]) -> bool:
    """Whether a merge may read this (visible) file for `user`: the download endpoint's rules, safetensors only."""
    if row["version__model__status"] == Model.Status.ARCHIVED and row["version__model__owner_id"] != user.pk:
        return False
    return row["format"] == ModelFile.Format.SAFETENSOR and row["pickle_scan_status"] != ModelFile.ScanStatus.DANGER


def _licence_check(user: User, name: str, row: Mapping[str, Any]) -> None:
    """The input's licence is the strictest over every published copy of its bytes, not just the row chosen.

    Otherwise a re-upload with looser terms, or naming the file by SHA-256,
    would open a merge that the original creator's licence forbids.
    """
    described = f"{row['version__model__name']} {row['version__name']} (model version {row['version_id']})"
    if not row["version__model__allow_derivatives"] and row["version__model__owner_id"] != user.pk:
        message = f"input {name!r}: the licence of {described} does not allow derivatives, so it cannot be merged"
    elif row.get("copy_forbidding_owner") is not None:
        message = (
            f"input {name!r}: the file of {described} is also published by another creator under a licence that "
            "does not allow derivatives, so it cannot be merged"
        )
    else:
        return
    raise RegistryPermissionDenied(
        message,
        details={"input": name, "model_version": row["version_id"], "sha256": row["sha256"],
                 "reason": "licence_forbids_derivatives"},
    )


def inputs_resolve(*, document: Mapping[str, Any], user: User) -> dict[str, ResolvedInput]:
    """Resolve every input to a file the user may download and whose licence allows derivatives.

    One (prepared) query for all inputs: runs answered from the cache must stay cheap.
    """
    version_ids, shas = _input_refs(document)
    return _inputs_from_rows(document, user, lookups.input_file_rows(user.pk, version_ids, shas))


def _input_refs(document: Mapping[str, Any]) -> tuple[list[int], list[str]]:
    """The model versions and SHA-256s a document's inputs name."""
    refs: Mapping[str, Mapping[str, Any]] = document["inputs"]
    for name, ref in refs.items():
        if "path" in ref:
            raise RegistryError(
                f"input {name!r}: local paths only work with the command-line engine; use sha256 or model_version",
                details={"input": name},
            )
    version_ids = sorted({ref["model_version"] for ref in refs.values() if "model_version" in ref})
    shas = sorted({ref["sha256"] for ref in refs.values() if "sha256" in ref})
    return version_ids, shas


def _inputs_from_rows(
    document: Mapping[str, Any], user: User, rows: Iterable[Mapping[str, Any]]
) -> dict[str, ResolvedInput]:
    refs: Mapping[str, Mapping[str, Any]] = document["inputs"]
    by_version: dict[int, Mapping[str, Any]] = {}
    by_sha: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:  # visible to the user, primary first
        if not _downloadable(user, row):
            continue
        by_version.setdefault(row["version_id"], row)
        by_sha.setdefault(row["sha256"], []).append(row)

    resolved: dict[str, ResolvedInput] = {}
    for name, ref in refs.items():
        if "model_version" in ref:
            row = by_version.get(ref["model_version"])
            if row is None:
                raise RegistryPermissionDenied(
                    f"input {name!r}: model version {ref['model_version']} is not available to you as a safetensors file",
                    details={"input": name, "model_version": ref["model_version"], "reason": "input_unavailable"},
                )
        else:
            candidates = by_sha.get(ref["sha256"], [])
            if not candidates:
                raise RegistryPermissionDenied(
                    f"input {name!r}: no file with SHA-256 {ref['sha256']} is available to you",
                    details={"input": name, "sha256": ref["sha256"], "reason": "input_unavailable"},
                )
            # The same bytes may be on the hub several times: prefer the user's
            # own upload, then one whose licence allows derivatives.
            row = min(
                candidates,
                key=lambda r: (r["version__model__owner_id"] != user.pk, not r["version__model__allow_derivatives"], r["id"]),
            )
        _licence_check(user, name, row)
        resolved[name] = ResolvedInput(
            name=name,
            sha256=row["sha256"],
            size=row["size_bytes"],
            storage_key=row["storage_key"],
            model_version_id=row["version_id"],
            file_id=row["id"],
        )
    return resolved


@dataclass(frozen=True)
class RunOutcome:
    job: MergeJob | None
    output: ModelVersion | None

    @property
    def cached(self) -> bool:
        return self.job is None and self.output is not None


def _enqueue(job_id: int) -> None:
    task_send(MERGE_TASK, args=[job_id])


def _job_send(job_id: int) -> None:
    """Send a new job's message, after its row is committed; only then is it queued.

    `enqueued_at` stays empty until the broker has taken the message, so a
    job without one is known to have none (the sweeper resends it). A job
    whose message cannot be sent now is withdrawn and the run answers 503:
    nobody has been told it is queued, so nothing is left that looks queued.
    """
    try:
        _enqueue(job_id)
    except BrokerUnavailable:
        MergeJob.objects.filter(pk=job_id, status=MergeJob.Status.QUEUED, enqueued_at__isnull=True, attempts=0).delete()
        raise
    MergeJob.objects.filter(pk=job_id, enqueued_at__isnull=True).update(enqueued_at=timezone.now())


def _output_version(row: Mapping[str, Any]) -> ModelVersion:
    """The output version from a lookup row, with the fields the API shows (others load on access)."""
    model = instance_from_row(Model, {
        "id": row["model_version__model_id"], "name": row["model_version__model__name"],
        "slug": row["model_version__model__slug"], "owner_id": row["model_version__model__owner_id"],
    })
    version = instance_from_row(
        ModelVersion, {"id": row["model_version_id"], "name": row["model_version__name"], "model_id": model.pk}
    )
    version.model = model
    return version


def _visible_output(user: User, key: str, rows: list[Mapping[str, Any]] | None = None) -> ModelVersion | None:
    """The user's own output for this merge, else any output of it they can see."""
    rows = lookups.visible_output_rows(user.pk, key) if rows is None else rows
    if not rows:
        return None
    own = [r for r in rows if r["model_version__model__owner_id"] == user.pk]
    return _output_version((own or rows)[0])


# (version id, its canonical hash, input SHA-256s, engine version) -> merge key.
# A version never changes, so its key for the same input bytes never does
# either; recomputing it (validation, canonical JSON, hashing) was a tenth of
# a cached run's time.
_MERGE_KEYS: dict[tuple[Any, ...], str] = {}
_MERGE_KEYS_MAX = 4096


def _merge_key_of(version: RecipeVersion, shas: Mapping[str, str], engine_version: str) -> str:
    memo = (version.pk, version.recipe_hash, tuple(sorted(shas.items())), engine_version)
    key = _MERGE_KEYS.get(memo) if version.pk is not None else None
    if key is None:
        try:
            key = engine_merge_key(version.document, shas, engine_version)
        except RecipeError as exc:
            raise RecipeInvalid([DocumentError(path=p, message=m, line=None) for p, m in exc.errors]) from exc
        if len(_MERGE_KEYS) >= _MERGE_KEYS_MAX:
            _MERGE_KEYS.clear()
        _MERGE_KEYS[memo] = key
    return key


@dataclass(frozen=True)
class _RunGuess:
    """What the last run of a (recipe, version number) looked up: inputs named and merge key."""

    version_id: int
    version_ids: list[int]
    shas: list[str]
    merge_key: str


# (recipe id, version number or None for the latest) -> _RunGuess. Lets a
# repeated run make its three lookups in one round trip; every row is still
# fetched and checked as on the slow path, so a wrong guess only costs a retry.
_RUN_GUESSES: dict[tuple[int, int | None], _RunGuess] = {}


@dataclass(frozen=True)
class PrefetchedRun:
    """What `merge_run_with_api_key` found for a run before the request was authorised."""

    user_id: int
    recipe_id: int
    number: int | None
    version: RecipeVersion | None  # None: the user cannot see that version
    outcome: RunOutcome | None  # the cached answer, if the guess held


def merge_run_for(
    *, user: User, recipe_id: int, number: int | None, prefetched: PrefetchedRun | None = None
) -> tuple[RecipeVersion, RunOutcome] | None:
    """`merge_run` for a version named by recipe and number (None: the latest); None if the user cannot see it.

    A run already answered from the cache is answered again with one round
    trip to the database: the version, its inputs and the outputs for the
    merge key are fetched together, from what the last run of that version
    found, and used only if the version and the merge key come out the same.
    `prefetched` is that round trip made already, with the API key check.
    """
    if prefetched is None or (prefetched.user_id, prefetched.recipe_id, prefetched.number) != (
        user.pk, recipe_id, number
    ):
        guess = _RUN_GUESSES.get((recipe_id, number))
        if guess is None:
            version = selectors.recipe_version_get_for(user, recipe_id, number)
            if version is None:
                return None
            return version, _merge_run_remembered(version, user, recipe_id, number)
        rows = lookups.cached_run_rows(user.pk, recipe_id, number, guess.version_ids, guess.shas, guess.merge_key)
        prefetched = _prefetched_run(guess, user, recipe_id, number, *rows)
    if prefetched.version is None:
        return None
    if prefetched.outcome is not None:
        return prefetched.version, prefetched.outcome
    return prefetched.version, _merge_run_remembered(prefetched.version, user, recipe_id, number)


def merge_run_with_api_key(
    *, token: str, recipe_id: int, number: int | None
) -> tuple[ApiKey, PrefetchedRun | None]:
    """Authenticate an API key and look up a run it repeats, in one round trip; nothing is run yet.

    Raises InvalidApiKey as `api_key_authenticate` does. Otherwise returns the
    key and, when earlier runs of this version told what to fetch, what was
    found for the key's user, to pass to `merge_run_for` once the request is
    authorised (None: nothing was fetched). Nothing is written but the key's
    last-used time and no registry error is raised here, so an unauthorised
    request is refused exactly as it would be without this.
    """
    prefix, secret = api_key_split(token)
    guess = _RUN_GUESSES.get((recipe_id, number))
    user_id = api_key_user_guess(prefix)
    if guess is None or user_id is None:
        return api_key_authenticate(token), None
    key_rows, row, input_rows, output_rows = lookups.cached_run_rows(
        user_id, recipe_id, number, guess.version_ids, guess.shas, guess.merge_key,
        first=api_key_lookup_call(prefix),
    )
    key = api_key_check(api_key_from_rows(key_rows), secret)
    if key.user_id != user_id:
        return key, None  # the rows were fetched for someone else
    try:
        return key, _prefetched_run(guess, key.user, recipe_id, number, row, input_rows, output_rows)
    except RegistryError:
        return key, None  # raised again by the full run, after the permission checks


def _prefetched_run(
    guess: _RunGuess, user: User, recipe_id: int, number: int | None,
    row: Row | None, input_rows: list[Row], output_rows: list[Row],
) -> PrefetchedRun:
    """The version found and, if the guess still describes it, its cached output; rows checked as on the slow path."""
    from merges.engine import ENGINE_VERSION

    version = instance_from_row(RecipeVersion, row) if row is not None else None
    outcome = None
    # Ids are never reused, but compare what the guess was made from anyway.
    if version is not None and version.pk == guess.version_id and _input_refs(version.document) == (
        guess.version_ids, guess.shas
    ):
        inputs = _inputs_from_rows(version.document, user, input_rows)
        key = _merge_key_of(version, {n: r.sha256 for n, r in inputs.items()}, ENGINE_VERSION)
        cached = _visible_output(user, key, output_rows) if key == guess.merge_key else None
        outcome = RunOutcome(job=None, output=cached) if cached is not None else None
    return PrefetchedRun(user.pk, recipe_id, number, version, outcome)


def _merge_run_remembered(version: RecipeVersion, user: User, recipe_id: int, number: int | None) -> RunOutcome:
    outcome, guess = _merge_run(version, user)
    if len(_RUN_GUESSES) >= _MERGE_KEYS_MAX:
        _RUN_GUESSES.clear()
    _RUN_GUESSES[(recipe_id, number)] = guess
    return outcome


def merge_run(*, version: RecipeVersion, user: User) -> RunOutcome:
    """Run a recipe version for `user`: a cached output, the active job for the same merge, or a new job."""
    return _merge_run(version, user)[0]


def _merge_run(version: RecipeVersion, user: User) -> tuple[RunOutcome, _RunGuess]:
    from merges.engine import ENGINE_VERSION

    version_ids, shas = _input_refs(version.document)
    inputs = _inputs_from_rows(version.document, user, lookups.input_file_rows(user.pk, version_ids, shas))
    key = _merge_key_of(version, {n: r.sha256 for n, r in inputs.items()}, ENGINE_VERSION)
    guess = _RunGuess(version.pk, version_ids, shas, key)
    outcome = _merge_run_keyed(version, user, inputs, key)
    return outcome, guess


def _merge_run_keyed(version: RecipeVersion, user: User, inputs: dict[str, ResolvedInput], key: str) -> RunOutcome:
    from merges.engine import ENGINE_VERSION

    cached = _visible_output(user, key)
    if cached is not None:
        return RunOutcome(job=None, output=cached)
    existing = MergeOutput.objects.filter(merge_key=key).select_related("model_version").order_by("id").first()
    if existing is not None:
        # The merge was done for someone who keeps it private: publish the same
        # bytes for this user instead of merging again.
        output = merge_output_republish(source=existing, recipe_version=version, requester=user, inputs=inputs)
        return RunOutcome(job=None, output=output)

    with transaction.atomic():
        job = MergeJob.objects.filter(merge_key=key, status__in=MergeJob.ACTIVE).first()
        if job is not None:
            if job.enqueued_at is None:
                # Its message is not known to be sent (its request may still be
                # sending, or failed): send it too, harmless since claims are conditional.
                job_id = job.pk
                transaction.on_commit(lambda: _job_send(job_id))
            return RunOutcome(job=job, output=None)
        try:
            # A savepoint: on a unique-index clash the outer transaction stays usable.
            with transaction.atomic():
                job = MergeJob.objects.create(
                    recipe_version=version,
                    merge_key=key,
                    requested_by=user,
                    inputs={n: r.as_dict() for n, r in inputs.items()},
                    engine_version=ENGINE_VERSION,
                )
        except IntegrityError:
            # A concurrent request created the job first; its insert committed
            # before ours could, so this read sees it.
            job = MergeJob.objects.filter(merge_key=key, status__in=MergeJob.ACTIVE).first()
            if job is None:
                raise RegistryConflict("the same merge changed state while it was requested; try again") from None
            return RunOutcome(job=job, output=None)
        job_id = job.pk
        transaction.on_commit(lambda: _job_send(job_id))
        recipe_run_notify(recipe_id=version.recipe_id, user=user)
    return RunOutcome(job=job, output=None)


def merge_job_cancel(*, job: MergeJob, user: User) -> MergeJob:
    """Cancel a job: a queued one at once, a running one at its next tensor."""
    if job.requested_by_id != user.pk and job.recipe_version.recipe.owner_id != user.pk:
        raise RegistryPermissionDenied("only whoever started this job, or the recipe's owner, can cancel it")
    now = timezone.now()
    with transaction.atomic():
        MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.QUEUED).update(
            status=MergeJob.Status.CANCELLED, cancel_requested=True, finished_at=now, error="cancelled before it started"
        )
        MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING).update(cancel_requested=True)
    job.refresh_from_db()
    return job


def merge_jobs_sweep() -> dict[str, int]:
    """Recover jobs whose worker died: requeue them, or fail them once out of attempts.

    A running job's heartbeat is written every second or so while it runs; a
    stale one means the worker was killed (or the host lost). Conditional
    updates keep this safe to run anywhere, any number of times.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=conf.stale_seconds())
    limit = conf.max_attempts()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stale = MergeJob.objects.filter(status=MergeJob.Status.RUNNING, heartbeat_at__lt=stale_before)
    for job in stale.only("id", "attempts", "heartbeat_at"):
        if job.attempts >= limit:
            n = MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
                status=MergeJob.Status.FAILED,
                finished_at=now,
                error=f"the worker was lost {job.attempts} times; giving up after {limit} attempts",
            )
            counts["failed"] += n
            continue
        with transaction.atomic():
            n = MergeJob.objects.filter(pk=job.pk, status=MergeJob.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
                status=MergeJob.Status.QUEUED, worker="", enqueued_at=now,
                error=f"attempt {job.attempts} lost its worker; retrying",
            )
            if n:
                job_id = job.pk
                transaction.on_commit(lambda: _enqueue(job_id))
        counts["requeued"] += n
    counts["resent"] = _queued_jobs_resend(now)
    return counts


def _queued_jobs_resend(now) -> int:
    """Send again the messages of queued jobs that may have none; harmless, since claims are conditional.

    - never sent: the request that made the job died between its commit and
      the send (a job whose send failed was withdrawn), after a short grace;
    - sent before the broker's current process started: a restart without
      persistence lost it;
    - untouched for MERGE_JOB_REQUEUE_SECONDS: lost some other way.
    Run by the periodic sweep, so such a job moves within a minute of the broker being back.
    """
    lost = Q(enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=conf.unsent_grace_seconds()))
    lost |= Q(enqueued_at__lt=now - timedelta(seconds=conf.requeue_seconds()))
    if (restarted := broker_started_at()) is not None:
        lost |= Q(enqueued_at__lt=restarted)
    resent = 0
    for job_id, enqueued_at in MergeJob.objects.filter(lost, status=MergeJob.Status.QUEUED).values_list(
        "id", "enqueued_at"
    ):
        if not MergeJob.objects.filter(pk=job_id, status=MergeJob.Status.QUEUED, enqueued_at=enqueued_at).update(
            enqueued_at=now
        ):
            continue  # another sweep or the job's own request got there first
        try:
            _enqueue(job_id)
        except BrokerUnavailable:
            MergeJob.objects.filter(pk=job_id, enqueued_at=now).update(enqueued_at=enqueued_at)
            break  # the broker is down again; the next sweep retries
        resent += 1
    return resent


# --- outputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Licence:
    allow_no_credit: bool
    allow_commercial_use: list[str]
    allow_derivatives: bool
    allow_different_license: bool
    nsfw: bool


def licence_of_inputs(models: Iterable[Model]) -> Licence:
    """The most restrictive combination of the inputs' licences."""
    models = list(models)
    order = list(Model.CommercialUse.values)
    uses = set(order)
    for m in models:
        uses &= set(m.allow_commercial_use or [])
    return Licence(
        allow_no_credit=all(m.allow_no_credit for m in models),
        allow_commercial_use=[u for u in order if u in uses] if models else [],
        allow_derivatives=all(m.allow_derivatives for m in models),
        allow_different_license=all(m.allow_different_license for m in models),
        nsfw=any(m.nsfw for m in models),
    )


def _tightened_by_copies(licence: Licence, sha256s: list[str]) -> Licence:
    """`licence` made at least as strict as every published copy of the input bytes (see hub.catalog.licences)."""
    copies = CatalogLicence.strictest(c.strictest() for c in licence_of_bytes(sha256s).values())
    if copies is None:
        return licence
    return Licence(
        allow_no_credit=licence.allow_no_credit and copies.allow_no_credit,
        allow_commercial_use=[u for u in licence.allow_commercial_use if u in copies.allow_commercial_use],
        allow_derivatives=licence.allow_derivatives and copies.allow_derivatives,
        allow_different_license=licence.allow_different_license and copies.allow_different_license,
        nsfw=licence.nsfw,
    )


def _output_type(document: Mapping[str, Any]) -> str:
    out_step = document["output"]["step"]
    for step in document["steps"]:
        if step["id"] == out_step:
            return Model.Type.LORA if OPS[step["op"]].output == "lora" else Model.Type.CHECKPOINT
    return Model.Type.CHECKPOINT


def _output_base_model(document: Mapping[str, Any], inputs: list[ModelVersion]) -> str:
    arch = document["architecture"]
    bases = {v.base_model for v in inputs}
    if len(bases) == 1:
        (base,) = bases
        if ARCH_OF_BASE_MODEL.get(base) == arch:
            return base
    return BASE_MODEL_OF_ARCH.get(arch, ModelVersion.BaseModel.OTHER)


def _blob_of(model_file: ModelFile) -> BlobInfo:
    return BlobInfo(
        sha256=model_file.sha256,
        size=model_file.size_bytes,
        hashes={
            "sha256": model_file.sha256,
            "autov1": model_file.autov1 or None,
            "autov2": model_file.autov2,
            "autov3": model_file.autov3 or None,
            "crc32": model_file.crc32,
            "blake3": model_file.blake3,
        },
        format=model_file.format,
        precision=model_file.precision,
        header_summary=model_file.header_summary,
    )


def merge_output_publish(
    *,
    recipe_version: RecipeVersion,
    requester: User,
    blob: BlobInfo,
    merge_key: str,
    inputs: Mapping[str, Mapping[str, Any]],
    engine_version: str,
    job: MergeJob | None = None,
) -> ModelVersion:
    """Publish a stored merge result as a new version of the requester's model for this recipe.

    Call inside a transaction. The model is the requester's output model for
    this recipe (created on first use); its licence only ever tightens, to the
    most restrictive of every input merged into it.
    """
    recipe = Recipe.objects.select_for_update().get(pk=recipe_version.recipe_id)
    document = recipe_version.document
    input_ids = [ref["model_version"] for ref in inputs.values() if ref.get("model_version")]
    input_versions = list(ModelVersion.objects.filter(pk__in=input_ids).select_related("model"))
    licence = _tightened_by_copies(
        licence_of_inputs(v.model for v in input_versions), [ref["sha256"] for ref in inputs.values() if ref.get("sha256")]
    )
    model_type = _output_type(document)

    prior = (
        MergeOutput.objects.filter(recipe_version__recipe=recipe, model_version__model__owner=requester)
        .select_related("model_version__model")
        .filter(model_version__model__type=model_type)
        .order_by("-id")
        .first()
    )
    if prior is not None:
        model = prior.model_version.model
        model.allow_no_credit &= licence.allow_no_credit
        model.allow_derivatives &= licence.allow_derivatives
        model.allow_different_license &= licence.allow_different_license
        model.allow_commercial_use = [u for u in model.allow_commercial_use if u in licence.allow_commercial_use]
        model.nsfw |= licence.nsfw
        model.save(
            update_fields=[
                "allow_no_credit", "allow_derivatives", "allow_different_license", "allow_commercial_use", "nsfw",
                "updated_at",
            ]
        )
    else:
        model = model_create(
            owner=requester,
            name=recipe.title,
            type=model_type,
            checkpoint_type=Model.CheckpointType.MERGE,
            description=(
                f"Merged on Mergeworks from the recipe “{recipe.title}” by {recipe.owner.username}.\n\n"
                f"{recipe.description}"
            ).strip(),
            visibility=recipe.visibility,
            nsfw=licence.nsfw,
            allow_no_credit=licence.allow_no_credit,
            allow_commercial_use=licence.allow_commercial_use,
            allow_derivatives=licence.allow_derivatives,
            allow_different_license=licence.allow_different_license,
        )
    name = f"v{recipe_version.number}"
    if model.versions.filter(name=name).exists():  # the same version merged again by a newer engine
        name = f"{name}-{merge_key[:8]}"
    version = model_version_create(
        model=model,
        name=name,
        base_model=_output_base_model(document, input_versions),
        description=f"Recipe {recipe.owner.username}/{recipe.slug} v{recipe_version.number}, merge key {merge_key}.",
    )
    file_name = f"{slugify(recipe.title) or 'merge'}-v{recipe_version.number}.safetensors"
    model_file_create(version=version, blob=blob, name=file_name)
    # Not a re-upload even when the bytes equal an input's (a weight of 0):
    # the output credits its inputs as lineage, under their strictest licence.
    model_version_publish(version=version, reupload_check=False)
    MergeOutput.objects.create(
        model_version=version,
        recipe_version=recipe_version,
        merge_key=merge_key,
        job=job,
        sha256=blob.sha256,
        engine_version=engine_version,
    )
    LineageEdge.objects.bulk_create(
        [
            LineageEdge(
                output=version,
                input_id=ref.get("model_version"),
                input_name=name,
                input_sha256=ref["sha256"],
                recipe_version=recipe_version,
            )
            for name, ref in sorted(inputs.items())
        ]
    )
    return version


def merge_output_republish(
    *, source: MergeOutput, recipe_version: RecipeVersion, requester: User, inputs: Mapping[str, ResolvedInput]
) -> ModelVersion:
    """Publish an already merged blob for another user (no merge runs)."""
    model_file = source.model_version.files.order_by("-primary", "id").first()
    with transaction.atomic():
        return merge_output_publish(
            recipe_version=recipe_version,
            requester=requester,
            blob=_blob_of(model_file),
            merge_key=source.merge_key,
            inputs={n: r.as_dict() for n, r in inputs.items()},
            engine_version=source.engine_version,
        )


# --- import ---------------------------------------------------------------------------


A1111_METHODS = {"weighted sum": "weighted_sum", "add difference": "add_difference"}


def recipe_draft_from_metadata(*, summary: Mapping[str, Any], architecture: str) -> tuple[dict[str, Any], list[str]]:
    """A draft recipe document from a file's `sd_merge_recipe` (A1111's checkpoint merger).

    `summary` is `merges.engine.inspect.summarize_metadata` of the file's
    metadata. Returns the document and notes for the user (inputs the hub
    does not have, fields that were not carried over).
    """
    raw = summary.get("merge_recipe")
    if not raw:
        raise RegistryError("this file carries no sd_merge_recipe metadata")
    method = str(raw.get("interp_method") or "").strip().lower()
    op = A1111_METHODS.get(method)
    if op is None:
        raise RegistryError(
            f"sd_merge_recipe uses {raw.get('interp_method')!r}; only 'Weighted sum' and 'Add difference' can be imported"
        )
    multiplier = raw.get("multiplier")
    if not isinstance(multiplier, (int, float)) or isinstance(multiplier, bool):
        raise RegistryError("sd_merge_recipe has no numeric multiplier")
    roles = [("primary", "primary_model_hash"), ("secondary", "secondary_model_hash")]
    if op == "add_difference":
        roles.append(("tertiary", "tertiary_model_hash"))
    notes: list[str] = []
    inputs: dict[str, Any] = {}
    names = {m.get("sha256"): m.get("name") for m in (summary.get("merge_models") or []) if isinstance(m, dict)}
    for role, field in roles:
        sha = str(raw.get(field) or "").lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise RegistryError(f"sd_merge_recipe.{field} is not a full SHA-256, so the input cannot be matched")
        match = (
            ModelFile.objects.filter(sha256=sha, version__status=ModelVersion.Status.PUBLISHED)
            .exclude(version__model__visibility=Model.Visibility.PRIVATE)
            .order_by("id")
            .values_list("version_id", flat=True)
            .first()
        )
        if match is not None:
            inputs[role] = {"model_version": match}
        else:
            inputs[role] = {"sha256": sha}
            label = names.get(sha) or sha[:10]
            notes.append(f"input {role} ({label}) is not on the hub; upload it before running this recipe")
    step: dict[str, Any] = {"id": "merge", "op": op, "inputs": [r for r, _ in roles], "alpha": float(multiplier)}
    document = {
        "format": "mergeworks/recipe@1",
        "architecture": architecture,
        "inputs": inputs,
        "steps": [step],
        "output": {"step": "merge", "dtype": "fp16" if raw.get("save_as_half") else "fp32"},
    }
    for ignored in ("bake_in_vae", "discard_weights"):
        if raw.get(ignored):
            notes.append(f"{ignored} = {raw[ignored]!r} was not carried over")
    return document, notes


def recipe_import(*, model_file: ModelFile, owner: User, title: str | None = None) -> tuple[Recipe, list[str]]:
    """Turn a checkpoint's `sd_merge_recipe` into a private draft recipe owned by `owner`."""
    from merges.engine.inspect import summarize_metadata

    metadata = (model_file.header_summary or {}).get("metadata") or {}
    summary = summarize_metadata({k: v for k, v in metadata.items() if isinstance(v, str)})
    version = model_file.version
    architecture = (model_file.header_summary or {}).get("architecture") or ARCH_OF_BASE_MODEL.get(
        version.base_model, "sd1"
    )
    document, notes = recipe_draft_from_metadata(summary=summary, architecture=architecture)
    recipe = recipe_create(
        owner=owner,
        title=title or f"{version.model.name} {version.name} (imported)",
        source=document_text(document),
        description=f"Imported from the merge metadata of {model_file.name}.",
        visibility=Recipe.Visibility.PRIVATE,
        message=f"Imported from {model_file.name}",
    )
    return recipe, notes


__all__ = [
    "RegistryError",
    "RecipeInvalid",
    "RegistryPermissionDenied",
    "RegistryNotFound",
    "RegistryConflict",
    "RunOutcome",
    "inputs_resolve",
    "licence_of_inputs",
    "merge_job_cancel",
    "merge_jobs_sweep",
    "merge_output_publish",
    "merge_output_republish",
    "merge_run",
    "recipe_create",
    "recipe_diff",
    "recipe_fork",
    "recipe_import",
    "recipe_draft_from_metadata",
    "recipe_update",
    "recipe_version_create",
]
