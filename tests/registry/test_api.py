"""REST API contract and permissions for recipes, runs and jobs (no worker: enqueueing is recorded)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from hub.accounts.services import api_key_create
from merges.registry.models import MergeJob, Recipe
from merges.registry.services import recipe_create
from tests.registry.conftest import sd1_document
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr("merges.registry.services._enqueue", sent.append)
    return sent


def client_for(user, scopes):
    from rest_framework.test import APIClient

    client = APIClient()
    issued = api_key_create(user=user, name="test", scopes=scopes)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def test_create_list_and_detail(alice, sd1_inputs, api_client):
    base, anime = sd1_inputs
    alice_api = client_for(alice, ["read", "upload"])
    response = alice_api.post(
        "/api/v1/recipes",
        {"title": "Dreamy", "document": sd1_document(base.pk, anime.pk), "description": "soft"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["title"] == "Dreamy" and body["owner"] == {"username": "alice"}
    assert body["latestVersion"]["number"] == 1 and body["versionCount"] == 1
    assert body["latestVersion"]["document"]["steps"][1]["alpha"]["blocks"][0] == 0.0

    listed = api_client.get("/api/v1/recipes", {"query": "dream"}).json()
    assert [r["id"] for r in listed["items"]] == [body["id"]]
    assert api_client.get("/api/v1/recipes", {"query": "nothing-like-it"}).json()["items"] == []
    detail = api_client.get(f"/api/v1/recipes/{body['id']}").json()
    assert detail["latestVersion"]["hash"] == body["latestVersion"]["hash"]


def test_invalid_document_answers_400_with_errors_by_field(alice, sd1_inputs):
    base, anime = sd1_inputs
    document = sd1_document(base.pk, anime.pk, blocks=[0.5] * 25)
    response = client_for(alice, ["upload"]).post(
        "/api/v1/recipes", {"title": "Short", "document": document}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_recipe"
    assert {"path": "steps[1].alpha", "message": "expected 26 block weights for sd1, got 25"}.items() <= body[
        "details"
    ][0].items()


def test_validate_endpoint_locates_errors_on_lines(api_client):
    text = "format: mergeworks/recipe@1\narchitecture: sd1\ninputs: {a: {model_version: 1}}\nsteps:\n  - {id: x, op: blend, inputs: [a]}\noutput: {step: x}\n"
    body = api_client.post("/api/v1/recipes/validate", {"document": text}, format="json").json()
    assert body["valid"] is False
    assert body["errors"][0]["path"] == "steps[0].op" and body["errors"][0]["line"] == 5


def test_versions_identical_document_creates_nothing(alice, public_recipe):
    api = client_for(alice, ["read", "upload"])
    document = public_recipe.versions.get().document
    response = api.post(f"/api/v1/recipes/{public_recipe.pk}/versions", {"document": document}, format="json")
    assert response.status_code == 200 and response.json()["created"] is False
    changed = {**document, "seed": 7}
    response = api.post(
        f"/api/v1/recipes/{public_recipe.pk}/versions", {"document": changed, "message": "reseed"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["number"] == 2 and response.json()["parent"]["number"] == 1
    versions = api.get(f"/api/v1/recipes/{public_recipe.pk}/versions").json()["items"]
    assert [v["number"] for v in versions] == [2, 1]


def test_editing_someone_elses_recipe_is_403(bob, public_recipe):
    document = {**public_recipe.versions.get().document, "seed": 3}
    response = client_for(bob, ["upload"]).post(
        f"/api/v1/recipes/{public_recipe.pk}/versions", {"document": document}, format="json"
    )
    assert response.status_code == 403 and "fork" in response.json()["error"]
    response = client_for(bob, ["upload"]).patch(
        f"/api/v1/recipes/{public_recipe.pk}", {"title": "mine now"}, format="json"
    )
    assert response.status_code == 403
    assert public_recipe.versions.count() == 1


def test_private_recipe_is_404_and_not_listed(alice, bob, sd1_inputs):
    base, anime = sd1_inputs
    secret = recipe_create(owner=alice, title="Secret Sauce", source=sd1_document(base.pk, anime.pk), visibility="private")
    bob_api = client_for(bob, ["read", "upload", "run"])
    for path in ("", "/versions", "/versions/1", "/diff?from=1&to=1", "/jobs"):
        assert bob_api.get(f"/api/v1/recipes/{secret.pk}{path}").status_code == 404, path
    assert bob_api.post(f"/api/v1/recipes/{secret.pk}/fork", {}, format="json").status_code == 404
    assert bob_api.post(f"/api/v1/recipes/{secret.pk}/run", {}, format="json").status_code == 404
    assert secret.pk not in [r["id"] for r in bob_api.get("/api/v1/recipes").json()["items"]]
    assert secret.pk not in [r["id"] for r in bob_api.get("/api/v1/recipes", {"query": "secret"}).json()["items"]]
    # Its owner sees it.
    alice_api = client_for(alice, ["read"])
    assert secret.pk in [r["id"] for r in alice_api.get("/api/v1/recipes").json()["items"]]
    assert alice_api.get(f"/api/v1/recipes/{secret.pk}").status_code == 200


def test_fork_endpoint(bob, alice, public_recipe):
    response = client_for(bob, ["upload"]).post(
        f"/api/v1/recipes/{public_recipe.pk}/fork", {"version": 1, "title": "Bob's Mix"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner"]["username"] == "bob" and body["title"] == "Bob's Mix"
    assert body["forkedFrom"] == {
        "id": public_recipe.versions.get().pk,
        "recipeId": public_recipe.pk,
        "number": 1,
        "title": "Soft Anime Mix",
        "owner": "alice",
    }
    assert body["latestVersion"]["parent"]["recipeId"] == public_recipe.pk


def test_write_endpoints_need_their_scopes(bob, public_recipe, enqueued):
    read_only = client_for(bob, ["read", "download"])
    fork = read_only.post(f"/api/v1/recipes/{public_recipe.pk}/fork", {}, format="json")
    assert fork.status_code == 403 and "'upload' scope" in fork.json()["error"]
    run = read_only.post(f"/api/v1/recipes/{public_recipe.pk}/run", {}, format="json")
    assert run.status_code == 403 and "'run' scope" in run.json()["error"]
    assert not MergeJob.objects.exists() and enqueued == []
    anonymous = client_for(bob, ["run"])
    anonymous.credentials()
    assert anonymous.post(f"/api/v1/recipes/{public_recipe.pk}/run", {}, format="json").status_code in (401, 403)


def test_reads_are_public_but_a_key_reads_only_with_the_read_scope(bob, public_recipe):
    anonymous = client_for(bob, ["read"])
    anonymous.credentials()
    assert anonymous.get(f"/api/v1/recipes/{public_recipe.pk}").status_code == 200
    run_only = client_for(bob, ["run"]).get(f"/api/v1/recipes/{public_recipe.pk}")
    assert run_only.status_code == 403 and "'read' scope" in run_only.json()["error"]
    assert client_for(bob, ["read"]).get(f"/api/v1/recipes/{public_recipe.pk}/versions").status_code == 200


def test_run_with_an_input_whose_licence_forbids_derivatives_is_403_with_reason(alice, bob, enqueued):
    from tests.registry.conftest import tiny_checkpoint_bytes

    base = make_published_model(bob, "No Derivs", data=tiny_checkpoint_bytes(1), allow_derivatives=False).versions.get()
    other = make_published_model(bob, "Fine", data=tiny_checkpoint_bytes(2)).versions.get()
    recipe = recipe_create(owner=alice, title="Forbidden", source=sd1_document(base.pk, other.pk))
    response = client_for(alice, ["run"]).post(f"/api/v1/recipes/{recipe.pk}/run", {}, format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["details"]["reason"] == "licence_forbids_derivatives"
    assert body["details"]["input"] == "base"
    assert "does not allow derivatives" in body["error"] and "No Derivs" in body["error"]
    assert not MergeJob.objects.exists() and enqueued == []


def test_run_with_an_input_the_user_cannot_download_is_403(alice, bob, enqueued):
    from tests.registry.conftest import tiny_checkpoint_bytes

    hidden = make_published_model(bob, "Bob Private", data=tiny_checkpoint_bytes(1), visibility="private")
    other = make_published_model(bob, "Public", data=tiny_checkpoint_bytes(2))
    recipe = recipe_create(
        owner=alice, title="Peek", source=sd1_document(hidden.versions.get().pk, other.versions.get().pk)
    )
    response = client_for(alice, ["run"]).post(f"/api/v1/recipes/{recipe.pk}/run", {}, format="json")
    assert response.status_code == 403 and response.json()["details"]["reason"] == "input_unavailable"


def test_run_creates_one_job_and_enqueues_it_after_commit(alice, public_recipe, enqueued, django_capture_on_commit_callbacks):
    api = client_for(alice, ["run", "read"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        first = api.post(f"/api/v1/recipes/{public_recipe.pk}/run", {}, format="json")
        assert enqueued == []  # not before the job row is committed
    assert len(callbacks) == 1
    assert first.status_code == 202, first.json()
    job = first.json()["job"]
    assert first.json()["cached"] is False and job["status"] == "queued" and job["attempts"] == 0
    assert enqueued == [job["id"]]
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(f"/api/v1/recipes/{public_recipe.pk}/run", {"version": 1}, format="json")
    assert again.status_code == 202 and again.json()["job"]["id"] == job["id"]
    assert enqueued == [job["id"]]
    assert api.get(job["url"]).json()["mergeKey"] == job["mergeKey"]

    cancelled = api.post(f"/api/v1/merge-jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    # With the old job finished, a new run makes a new job.
    third = api.post(f"/api/v1/recipes/{public_recipe.pk}/run", {}, format="json")
    assert third.json()["job"]["id"] != job["id"]


def test_only_the_requester_or_recipe_owner_cancels(alice, bob, public_recipe, enqueued):
    job_id = client_for(alice, ["run"]).post(f"/api/v1/recipes/{public_recipe.pk}/run", {}, format="json").json()[
        "job"
    ]["id"]
    response = client_for(bob, ["run"]).post(f"/api/v1/merge-jobs/{job_id}/cancel")
    assert response.status_code == 403
    assert MergeJob.objects.get(pk=job_id).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_the_same_merge_share_one_job(alice, bob, public_recipe, enqueued):
    from merges.registry.services import merge_run

    version = public_recipe.versions.get()
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run(user):
        try:
            barrier.wait()
            results.append(merge_run(version=version, user=user).job.pk)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(u,)) for u in (alice, bob, alice, bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(results)) == 1 and len(results) == 4
    assert MergeJob.objects.count() == 1
    assert enqueued == results[:1]


def test_recipe_list_is_cursor_paginated(alice, sd1_inputs, api_client):
    base, anime = sd1_inputs
    ids = [
        recipe_create(owner=alice, title=f"Mix {i}", source=sd1_document(base.pk, anime.pk, alpha=i / 10)).pk
        for i in range(5)
    ]
    first = api_client.get("/api/v1/recipes", {"limit": 2, "sort": "Newest"}).json()
    seen = [r["id"] for r in first["items"]]
    cursor = first["metadata"]["nextCursor"]
    recipe_create(owner=alice, title="Late arrival", source=sd1_document(base.pk, anime.pk, alpha=0.99))
    while cursor:
        page = api_client.get("/api/v1/recipes", {"limit": 2, "sort": "Newest", "cursor": cursor}).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["metadata"]["nextCursor"]
    assert seen == sorted(ids, reverse=True)
    assert Recipe.objects.count() == 6


def test_lineage_of_an_invisible_version_is_404(bob, alice):
    from tests.registry.conftest import tiny_checkpoint_bytes

    hidden = make_published_model(alice, "Hidden", data=tiny_checkpoint_bytes(1), visibility="private")
    response = client_for(bob, ["read"]).get(f"/api/v1/model-versions/{hidden.versions.get().pk}/lineage")
    assert response.status_code == 404
    mine = client_for(alice, ["read"]).get(f"/api/v1/model-versions/{hidden.versions.get().pk}/lineage")
    assert mine.status_code == 200 and mine.json()["edges"] == []


def test_openapi_schema_documents_the_registry(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/recipes/{recipe_id}/run", "/api/v1/recipes/{recipe_id}/fork", "/api/v1/merge-jobs/{job_id}",
                 "/api/v1/model-versions/{version_id}/lineage", "/api/v1/recipes/{recipe_id}/diff"):
        assert path in text, path


def _publish_output_of(job: MergeJob, alice, sd1_inputs):
    """Finish `job` as the worker would, with any stored blob as its output."""
    from django.db import transaction

    from merges.registry.services import _blob_of, merge_output_publish

    base, anime = sd1_inputs
    inputs = {
        "base": {"sha256": base.files.get().sha256, "model_version": base.pk},
        "anime": {"sha256": anime.files.get().sha256, "model_version": anime.pk},
    }
    with transaction.atomic():
        output = merge_output_publish(
            recipe_version=job.recipe_version, requester=alice, blob=_blob_of(base.files.get()),
            merge_key=job.merge_key, inputs=inputs, engine_version=job.engine_version, job=job,
        )
        MergeJob.objects.filter(pk=job.pk).update(status=MergeJob.Status.SUCCEEDED)
    return output


def test_a_repeated_cached_run_is_one_round_trip_and_checks_everything_again(alice, bob, public_recipe, sd1_inputs, enqueued):
    from django.test.utils import CaptureQueriesContext

    from hub.catalog.models import Model

    api = client_for(alice, ["run", "read"])
    url = f"/api/v1/recipes/{public_recipe.pk}/run"
    job = MergeJob.objects.get(pk=api.post(url, {"version": 1}, format="json").json()["job"]["id"])
    output = _publish_output_of(job, alice, sd1_inputs)

    first = api.post(url, {"version": 1}, format="json")
    assert first.status_code == 200 and first.json()["output"]["modelVersionId"] == output.pk
    shown = first.json()["output"]
    assert (shown["name"], shown["modelId"], shown["modelName"]) == (output.name, output.model_id, output.model.name)
    assert shown["url"] == f"/models/{output.model_id}/{output.model.slug}/?modelVersionId={output.pk}"
    with CaptureQueriesContext(connection) as queries:
        again = api.post(url, {"version": 1}, format="json")
    assert again.status_code == 200 and again.json() == first.json()
    # The API key, the version, its inputs, other creators' copies of their bytes and the outputs, together.
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert queries[0]["sql"].startswith("EXECUTE mw_api_key_by_prefix(")
    assert queries[0]["sql"].count("EXECUTE registry_") == 4

    # Nothing is taken on trust from the earlier run: a licence changed since is refused.
    base, _ = sd1_inputs
    Model.objects.filter(pk=base.model_id).update(allow_derivatives=False)
    refused = api.post(url, {"version": 1}, format="json")
    assert refused.status_code == 403 and refused.json()["details"]["reason"] == "licence_forbids_derivatives"
    Model.objects.filter(pk=base.model_id).update(allow_derivatives=True)
    # Nor is the recipe's visibility: made private by its owner, it is gone for others.
    bob_api = client_for(bob, ["run"])
    assert bob_api.post(url, {"version": 1}, format="json").status_code == 200
    Recipe.objects.filter(pk=public_recipe.pk).update(visibility=Recipe.Visibility.PRIVATE)
    assert bob_api.post(url, {"version": 1}, format="json").status_code == 404
    assert MergeJob.objects.count() == 1


def _cached_run(alice, recipe, sd1_inputs) -> str:
    """Run version 1 of `recipe` to a published output and answer it once from the cache; its run URL."""
    api = client_for(alice, ["run", "read"])
    url = f"/api/v1/recipes/{recipe.pk}/run"
    _publish_output_of(MergeJob.objects.get(pk=api.post(url, {"version": 1}, format="json").json()["job"]["id"]),
                       alice, sd1_inputs)
    assert api.post(url, {"version": 1}, format="json").json()["cached"] is True
    return url


def test_the_key_checked_with_a_cached_run_is_checked_in_full(alice, public_recipe, sd1_inputs, enqueued):
    from rest_framework.test import APIClient

    from hub.accounts.services import api_key_revoke

    url = _cached_run(alice, public_recipe, sd1_inputs)
    issued = api_key_create(user=alice, name="second", scopes=["run"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert api.post(url, {"version": 1}, format="json").status_code == 200  # its user is now known

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext[:-4]}abcd")
    response = wrong.post(url, {"version": 1}, format="json")
    assert response.status_code == 401 and response.json()["error"] == "unknown API key"
    assert response["WWW-Authenticate"].startswith("Bearer")

    api_key_revoke(api_key=issued.api_key)
    response = api.post(url, {"version": 1}, format="json")
    assert response.status_code == 401 and "revoked" in response.json()["error"]

    alice.is_active = False
    alice.save(update_fields=["is_active"])
    response = client_for(alice, ["run"]).post(url, {"version": 1}, format="json")
    assert response.status_code == 401 and "disabled" in response.json()["error"]


def test_a_cached_run_still_needs_the_run_scope(alice, public_recipe, sd1_inputs, enqueued):
    from hub.catalog.models import Model

    url = _cached_run(alice, public_recipe, sd1_inputs)
    reader = client_for(alice, ["read"])
    reader.get("/api/v1/recipes")  # the key authenticates once, so its user is known
    refused = reader.post(url, {"version": 1}, format="json")
    assert refused.status_code == 403 and "'run' scope" in refused.json()["error"]
    # The scope is what a key without it hears about, not what running would have said.
    base, _ = sd1_inputs
    Model.objects.filter(pk=base.model_id).update(allow_derivatives=False)
    refused = reader.post(url, {"version": 1}, format="json")
    assert refused.status_code == 403 and "'run' scope" in refused.json()["error"]
    refused = client_for(alice, ["run"]).post(url, {"version": 1}, format="json")
    assert refused.status_code == 403 and refused.json()["details"]["reason"] == "licence_forbids_derivatives"


def test_a_deeply_nested_body_with_a_bad_key_is_401_not_a_crash(alice, public_recipe, sd1_inputs, enqueued):
    from rest_framework.test import APIClient

    url = _cached_run(alice, public_recipe, sd1_inputs)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer mw_000000000000_nope")
    response = api.generic("POST", url, "[" * 1000, content_type="application/json")
    assert response.status_code == 401 and response.json()["error"] == "unknown API key"


def test_a_wrong_guess_of_the_keys_user_falls_back_to_the_full_path(alice, bob, sd1_inputs, enqueued):
    from hub.accounts import services as accounts

    base, anime = sd1_inputs
    private = recipe_create(owner=alice, title="Mine", source=sd1_document(base.pk, anime.pk), visibility="private")
    url = _cached_run(alice, private, sd1_inputs)
    issued = api_key_create(user=alice, name="guessed", scopes=["run"])
    # As if the prefix had last been seen with Bob's id: the rows come back for Bob (who cannot see the recipe).
    accounts._KEY_USERS[issued.api_key.prefix] = bob.pk
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    response = api.post(url, {"version": 1}, format="json")
    assert response.status_code == 200 and response.json()["cached"] is True
    assert accounts._KEY_USERS[issued.api_key.prefix] == alice.pk


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ('{"version": "1"}', "application/json", 200),  # DRF reads "1" as 1; the fast path leaves it to DRF
        ('{"version": 1, "note": "x"}', "application/json", 200),
        ('{"version": 0}', "application/json", 400),
        ('{"version": true}', "application/json", 400),
        ('{"version": 99}', "application/json", 404),
        ('{"version": null}', "application/json", 400),
        ('{"version": 1, "x": NaN}', "application/json", 400),
        ('\ufeff{"version": 1}', "application/json", 400),
        ('{"version": 1}', "application/json; charset=utf-16", 400),
        ('[1]', "application/json", 400),
        ('{"version": ', "application/json", 400),
        ('{"version": 1}', "application/json; charset=utf-8", 200),
        ('{"version": 1}', "application/json-patch+json", 415),
        ("version=1", "application/x-www-form-urlencoded", 200),  # a form: DRF parses it, the slow way
    ],
)
def test_run_bodies_answer_as_drf_reads_them(alice, public_recipe, sd1_inputs, enqueued, body, content_type, expected):
    url = _cached_run(alice, public_recipe, sd1_inputs)
    response = client_for(alice, ["run"]).generic("POST", url, body, content_type=content_type)
    assert response.status_code == expected, response.content
    assert "error" in response.json() or response.json()["cached"] is True
    assert MergeJob.objects.count() == 1


def test_a_cached_run_of_the_latest_version_notices_a_newer_version(alice, public_recipe, sd1_inputs, enqueued):
    from merges.registry.services import recipe_version_create

    api = client_for(alice, ["run", "read"])
    url = f"/api/v1/recipes/{public_recipe.pk}/run"
    job = MergeJob.objects.get(pk=api.post(url, {}, format="json").json()["job"]["id"])
    _publish_output_of(job, alice, sd1_inputs)
    assert api.post(url, {}, format="json").json()["cached"] is True
    assert api.post(url, {}, format="json").json()["cached"] is True

    base, anime = sd1_inputs
    recipe_version_create(recipe=public_recipe, author=alice, source=sd1_document(base.pk, anime.pk, alpha=0.7))
    newer = api.post(url, {}, format="json")
    assert newer.status_code == 202 and newer.json()["job"]["recipeVersion"] == 2
