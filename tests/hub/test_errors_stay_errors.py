"""Errors stay errors (issue 16 §4): hostile numbers, names and paths get a JSON 4xx, never a 500 or HTML."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from hub.accounts.services import api_key_create
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db

HUGE = 2**63  # one past the largest bigint
HUGER = 10**30


def _api(user, scopes):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=user, name='t', scopes=scopes).plaintext}")
    return api


def _json_error(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == response.status_code and body["code"]
    return body


@pytest.mark.parametrize("number", [HUGE, HUGER])
@pytest.mark.parametrize("path", [
    "/api/download/models/{n}",
    "/api/v1/models/{n}",
    "/api/v1/model-versions/{n}",
    "/api/v1/model-versions/{n}/lineage",
    "/api/v1/recipes/{n}",
    "/api/v1/merge-jobs/{n}",
    "/api/v1/images/{n}",
])
def test_ids_past_a_bigint_in_the_path_are_not_found(client, path, number):
    _json_error(client.get(path.format(n=number)), 404)


def test_ids_past_a_bigint_in_queries_and_bodies_are_refused(alice, client):
    version = make_published_model(alice).versions.get()
    _json_error(client.get(f"/api/download/models/{version.pk}?fileId={HUGE}"), 404)
    api = _api(alice, ["run", "read", "upload"])
    _json_error(api.post(f"/api/v1/recipes/{HUGE}/run", {}, format="json"), 404)
    recipe = api.post("/api/v1/recipes", {"title": "r", "document": {
        "format": "mergeworks/recipe@1", "architecture": "sd1",
        "inputs": {"a": {"model_version": version.pk}, "b": {"model_version": version.pk}},
        "steps": [{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.5}],
        "output": {"step": "m", "dtype": "fp16"},
    }}, format="json")
    assert recipe.status_code == 201, recipe.json()
    recipe_id = recipe.json()["id"]
    for body in ({"version": HUGE}, {"version": HUGER}, {"version": -HUGE}):
        _json_error(api.post(f"/api/v1/recipes/{recipe_id}/run", body, format="json"), 400, 404)
        _json_error(api.post(f"/api/v1/recipes/{recipe_id}/fork", body, format="json"), 400, 404)
    huge_input = {
        "format": "mergeworks/recipe@1", "architecture": "sd1",
        "inputs": {"a": {"model_version": HUGE}, "b": {"model_version": version.pk}},
        "steps": [{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.5}],
        "output": {"step": "m", "dtype": "fp16"},
    }
    created = api.post("/api/v1/recipes", {"title": "huge", "document": huge_input}, format="json")
    if created.status_code == 201:
        _json_error(api.post(f"/api/v1/recipes/{created.json()['id']}/run", {}, format="json"), 400, 403, 404)
    else:
        _json_error(created, 400)
    _json_error(api.post("/api/v1/recipes/import", {"modelVersionId": HUGE}, format="json"), 400)
    _json_error(api.post("/api/v1/uploads", {"filename": "a.safetensors", "size": 10, "modelId": HUGE},
                         format="json"), 400)


def test_a_page_with_a_huge_id_is_a_plain_404(client):
    assert client.get(f"/models/{HUGE}/").status_code == 404
    assert client.get(f"/recipes/{HUGE}/").status_code == 404


def test_unknown_api_paths_and_wrong_methods_answer_json(client, alice):
    for path in ("/api/nope", "/api/v1/nope", "/api/v1/models/abc", "/api/download/models/x"):
        assert _json_error(client.get(path), 404)["code"] == "not_found"
    response = client.delete("/api/v1/health")
    assert _json_error(response, 405)
    make_published_model(alice, "Present")
    response = client.post("/api/models/alice/present")  # GET-only HF route (require_http_methods)
    _json_error(response, 405)
    assert "GET" in response["Allow"]
    response = client.put("/alice/present/resolve/main/present.safetensors")
    _json_error(response, 405)
    # Website pages keep their HTML 404.
    page = client.get("/no-such-page/at-all/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("char", ["%00", "%01", "%0b", "%7f", "%c2%85"])
def test_hf_routes_with_control_characters_are_not_found(client, alice, char):
    make_published_model(alice, "Present")
    paths = [
        f"/alice/present/resolve/main/pre{char}sent.safetensors",
        f"/alice/present/resolve/ma{char}in/present.safetensors",
        f"/api/models/alice/present/tree/ma{char}in",
        f"/api/models/alice/present/tree/main/sub{char}dir",
        f"/api/models/alice/present/revision/ma{char}in",
    ]
    for path in paths:
        for method in ("get", "head") if "/resolve/" in path else ("get",):
            response = getattr(client, method)(path)
            assert response.status_code == 404, (path, method, response.status_code)
            assert response["Content-Type"].startswith("application/json")
            for name, value in response.items():
                assert all(0x20 <= ord(c) < 0x7f for c in value), (path, name, value)


@pytest.mark.parametrize("name", [
    "model\u202eorcim.safetensors",  # displays as "model" + reversed "micro.safetensors"
    "evil\u2066.safetensors",
    "x\u200f.safetensors",
])
def test_file_names_with_bidirectional_controls_are_refused(alice, name):
    response = _api(alice, ["upload"]).post("/api/v1/uploads", {"filename": name, "size": 1000}, format="json")
    assert _json_error(response, 400)["code"] == "bad_filename"

    import io

    from hub.files.services import FileRejected, blob_ingest_stream, model_file_create

    version = make_published_model(alice, "Bidi", publish=False).versions.get()
    data = tiny_safetensors_bytes(7)
    blob = blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
    with pytest.raises(FileRejected, match="bidirectional"):
        model_file_create(version=version, blob=blob, name=name)
