"""The previews API, the model page section, file responses and the compare page."""
from __future__ import annotations

import pytest

from hub.accounts.services import api_key_create
from hub.previews.jobs import render_job_execute
from hub.previews.models import RenderJob
from tests.previews.conftest import SMALL, checkpoint_version


def client_for(user, scopes):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(user=user, name='t', scopes=scopes).plaintext}")
    return client


@pytest.fixture
def rendered(checkpoint, alice, enqueued, unique_spec):
    """A finished grid of alice's checkpoint, rendered in process."""
    from hub.previews.services import render_request_create

    job = render_request_create(model_version=checkpoint, requested_by=alice, spec=unique_spec)
    assert render_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    job.refresh_from_db()
    return job


def test_signed_in_users_request_previews_and_follow_the_job(
    checkpoint, bob, api_client, enqueued, django_capture_on_commit_callbacks
):
    url = f"/api/v1/model-versions/{checkpoint.pk}/previews"
    assert api_client.post(url, SMALL, format="json").status_code == 401
    assert client_for(bob, ["read"]).post(url, SMALL, format="json").status_code == 403  # needs `run`
    bob_api = client_for(bob, ["read", "run"])
    with django_capture_on_commit_callbacks(execute=True):
        response = bob_api.post(url, {**SMALL, "sampler": "Euler"}, format="json")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert enqueued == [body["id"]]
    assert body["status"] == "queued" and body["images"] == {"done": 0, "total": 4} and body["progress"] == 0
    assert body["requestedBy"] == "bob" and body["spec"]["sampler"] == "Euler"
    RenderJob.objects.filter(pk=body["id"]).update(status="running", images_done=1)
    assert client_for(bob, ["run"]).get(body["url"]).status_code == 403  # a key reads only with `read`
    job = api_client.get(body["url"])  # anyone who can see the version can follow it
    assert job.status_code == 200 and job["Cache-Control"] == "no-store"
    assert job.json()["progress"] == 0.25 and job.json()["images"] == {"done": 1, "total": 4}

    bad = bob_api.post(url, {**SMALL, "size": [64, 66]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["details"] == {"size": ["size: width and height must be multiples of 8, got 64x66"]}
    assert bob_api.post("/api/v1/model-versions/999999/previews", SMALL, format="json").status_code == 404
    assert api_client.get("/api/v1/render-jobs/999999").status_code == 404


def test_private_versions_previews_stay_private(alice, bob, preview_settings, enqueued, api_client):
    private = checkpoint_version(alice, "Secret", seed=1)
    private.model.visibility = "private"
    private.model.save()
    url = f"/api/v1/model-versions/{private.pk}/previews"
    assert client_for(bob, ["read", "run"]).post(url, SMALL, format="json").status_code == 404
    job = client_for(alice, ["read", "run"]).post(url, SMALL, format="json").json()
    assert api_client.get(job["url"]).status_code == 404
    assert client_for(bob, ["read"]).get(job["url"]).status_code == 404
    assert client_for(alice, ["read"]).get(job["url"]).status_code == 200


def test_grid_api_and_files_are_served_with_type_and_nosniff(rendered, api_client, client):
    grid_id = rendered.grid_id
    listing = api_client.get(f"/api/v1/model-versions/{rendered.model_version_id}/previews").json()
    assert [g["id"] for g in listing["items"]] == [grid_id]
    grid = api_client.get(f"/api/v1/preview-grids/{grid_id}").json()
    assert grid["rows"] == SMALL["prompts"] and grid["columns"] == ["seed 1", "seed 2"] and len(grid["images"]) == 4
    for url, content_type, magic in (
        (grid["url"], "image/png", b"\x89PNG"),
        (grid["thumbnailUrl"], "image/webp", b"RIFF"),
        (grid["images"][3]["url"], "image/png", b"\x89PNG"),
        (grid["images"][3]["thumbnailUrl"], "image/webp", b"RIFF"),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == content_type
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Disposition"].startswith("inline; filename=")
        assert b"".join(response.streaming_content).startswith(magic)
    assert client.get(grid["url"].replace(".png", ".svg")).status_code == 404
    assert client.get(f"/previews/grid/{grid_id + 999}.png").status_code == 404


def test_model_page_shows_grids_and_the_owner_can_ask_for_more(rendered, checkpoint, alice, bob, client, enqueued):
    page_url = f"/models/{checkpoint.model_id}/{checkpoint.model.slug}/"
    page = client.get(page_url).content.decode()
    assert 'data-testid="previews"' in page and f"/previews/grid/{rendered.grid_id}.webp" in page
    assert "Steps: 2, Sampler: Euler a" in page and 'data-testid="preview-request"' not in page

    client.force_login(bob)
    assert 'data-testid="preview-request"' not in client.get(page_url).content.decode()
    assert client.post(f"/model-versions/{checkpoint.pk}/previews/", {}).status_code == 404

    client.force_login(alice)
    assert 'data-testid="preview-request"' in client.get(page_url).content.decode()
    response = client.post(f"/model-versions/{checkpoint.pk}/previews/", {"prompts": "a red chair\na blue car", "seeds": "3, 4"})
    assert response.status_code == 302 and response["Location"].endswith("#previews")
    job = RenderJob.objects.filter(trigger="page").get()
    assert job.spec["prompts"] == ["a red chair", "a blue car"] and job.spec["seeds"] == [3, 4]
    page = client.get(page_url).content.decode()
    assert f'data-render-job-url="/api/v1/render-jobs/{job.pk}"' in page


def test_a_failed_render_tells_the_owner_why_and_visitors_nothing(checkpoint, alice, bob, client, enqueued):
    detail = "could not load the checkpoint: OSError: /srv/data/cache/ab/abcd: boom (run manage.py hub_base_configs)"
    reason = "The checkpoint could not be loaded for rendering. Check the file."
    job = RenderJob.objects.create(model_version=checkpoint, requested_by=alice, render_key="", status="failed",
                                   error=detail, reason=reason)
    url = f"/models/{checkpoint.model_id}/{checkpoint.model.slug}/"
    for visitor in (None, bob):
        if visitor:
            client.force_login(visitor)
        page = client.get(url).content.decode()
        assert "No previews yet." in page and "failed" not in page and "/srv/data" not in page
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert f"The last preview render failed. {reason}" in page
    assert "/srv/data" not in page and "manage.py" not in page and "OSError" not in page
    body = client.get(f"/api/v1/render-jobs/{job.pk}").json()
    assert body["error"] == reason


def test_a_loras_render_form_offers_checkpoints_of_its_base_model(checkpoint, lora, alice, bob, client, enqueued):
    theirs = checkpoint_version(bob, "Bob Public Base", seed=3)
    checkpoint_version(alice, "Alice SDXL Base", base_model="SDXL 1.0", arch="sdxl")
    private = checkpoint_version(bob, "Bob Private Base", seed=4)
    private.model.visibility = "private"
    private.model.save(update_fields=["visibility"])
    client.force_login(alice)
    page = client.get(f"/models/{lora.model_id}/{lora.model.slug}/").content.decode()
    assert 'data-testid="preview-base"' in page
    assert f'<option value="{checkpoint.pk}">' in page and f'<option value="{theirs.pk}">' in page
    assert "Bob Private Base" not in page and "Alice SDXL Base" not in page
    # Alice's own checkpoint first; the search box asks the API.
    assert page.index(f'<option value="{checkpoint.pk}">') < page.index(f'<option value="{theirs.pk}">')
    url = f"/api/v1/model-versions/{lora.pk}/preview-bases"
    items = client.get(url, {"query": "bob"}).json()["items"]
    assert [i["id"] for i in items] == [theirs.pk] and items[0]["label"] == f"Bob Public Base · {theirs.name}"
    assert client.get(url, {"limit": "x"}).status_code == 400
    # A checkpoint's own page has no such pick.
    assert 'data-testid="preview-base"' not in client.get(f"/models/{checkpoint.model_id}/{checkpoint.model.slug}/").content.decode()


def test_two_versions_compare_side_by_side(rendered, alice, enqueued, client):
    from hub.previews.services import render_request_create

    other = checkpoint_version(alice, "Tiny Other", seed=5)
    job = render_request_create(model_version=other, requested_by=alice, spec=rendered.spec)
    assert render_job_execute(job_id=job.pk, worker="test").status == "succeeded"
    job.refresh_from_db()
    response = client.get(f"/previews/compare/?a={rendered.model_version_id}&b={other.pk}")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('data-testid="compare-pair"') == 1
    for left, right in zip(rendered.grid.images.all(), job.grid.images.all()):
        assert f"/previews/image/{left.pk}.webp" in page and f"/previews/image/{right.pk}.webp" in page
    assert client.get(f"/previews/compare/?a=x&b={other.pk}").status_code == 404

    # A model name instead of a version id: one match goes straight to it, several are listed.
    base = f"/previews/compare/?a={rendered.model_version_id}"
    found = client.get(f"{base}&b=tiny oth")
    assert found.status_code == 302 and found["Location"] == f"{base}&b={other.pk}"
    none = client.get(f"{base}&b=nothing like it")
    assert none.status_code == 200 and "No model with previews matches" in none.content.decode()
    third = checkpoint_version(alice, "Tiny Third", seed=6)
    grid = job.grid  # the search only asks whether a version has a grid: borrow one rather than render again
    grid.pk, grid.model_version = None, third
    grid.save()
    listed = client.get(f"{base}&b=tiny").content.decode()
    assert f'b={other.pk}">Tiny Other' in listed and f'b={third.pk}">Tiny Third' in listed
    model_page = client.get(f"/models/{other.model_id}/{other.model.slug}/").content.decode()
    assert 'name="b" type="search"' in model_page and "Compare with version id" not in model_page


def test_recipe_page_shows_its_outputs_previews(rendered, alice, client):
    from merges.registry.models import MergeOutput
    from merges.registry.services import recipe_create, recipe_latest_version

    version = rendered.model_version
    recipe = recipe_create(owner=alice, title="Mix", source={
        "format": "mergeworks/recipe@1", "architecture": "sd1",
        "inputs": {"a": {"model_version": version.pk}, "b": {"model_version": version.pk}},
        "steps": [{"id": "mix", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.5}],
        "output": {"step": "mix", "dtype": "fp16"},
    })
    MergeOutput.objects.create(model_version=version, recipe_version=recipe_latest_version(recipe), merge_key="k" * 64,
                               sha256=version.files.get().sha256, engine_version="0")
    page = client.get(f"/recipes/{recipe.pk}/").content.decode()
    assert 'data-testid="preview-thumb"' in page and f"/previews/grid/{rendered.grid_id}.webp" in page
