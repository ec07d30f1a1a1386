"""Models list and detail: filters, sorting, keyset pagination, visibility, query counts."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.accounts.services import api_key_create, api_key_revoke
from hub.catalog.models import Model, ModelVersion
from tests.support.builders import add_published_version, make_published_model, tiny_safetensors_bytes


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json()["items"]]


def _model(owner, name, seed, **kwargs):
    return make_published_model(owner, name, data=tiny_safetensors_bytes(seed), **kwargs)


def _walk(client, url: str, between_pages=None) -> list[list[str]]:
    pages, n = [], 0
    while url:
        response = client.get(url)
        pages.append(_names(response))
        url = response.json()["metadata"]["nextPage"]
        if between_pages:
            between_pages(n)
        n += 1
    return pages


# --- filters ---------------------------------------------------------------------------

@pytest.fixture
def assorted(alice, bob, local_storage):
    return {
        "anime": _model(alice, "Anime Mix", 1, tags=["anime"], base_model="SD 1.5"),
        "xl": _model(alice, "XL Photo", 2, tags=["photo"], base_model="SDXL 1.0", nsfw=True),
        "lora": _model(bob, "Bob Lora", 3, type="LORA", tags=["anime", "style"], base_model="Pony"),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("types=LORA", {"Bob Lora"}),
        ("types=Checkpoint&types=LORA", {"Anime Mix", "XL Photo", "Bob Lora"}),
        ("types=lora,checkpoint", {"Anime Mix", "XL Photo", "Bob Lora"}),
        ("baseModels=SDXL%201.0", {"XL Photo"}),
        ("baseModels=Pony,SD%201.5", {"Anime Mix", "Bob Lora"}),
        ("tag=anime", {"Anime Mix", "Bob Lora"}),
        ("tag=ANIME&types=Checkpoint", {"Anime Mix"}),
        ("username=bob", {"Bob Lora"}),
        ("username=ALICE", {"Anime Mix", "XL Photo"}),
        ("query=mix", {"Anime Mix"}),
        ("nsfw=false", {"Anime Mix", "Bob Lora"}),
        ("nsfw=true", {"Anime Mix", "XL Photo", "Bob Lora"}),
        ("tag=nothing", set()),
    ],
)
def test_filters(client, assorted, query, expected):
    assert set(_names(client.get(f"/api/v1/models?{query}"))) == expected


@pytest.mark.parametrize(
    "query", ["types=Wizard", "baseModels=SD9", "sort=Best", "limit=0", "limit=101", "limit=x", "nsfw=maybe",
              "cursor=garbage"],
)
def test_bad_parameters_are_400_json(client, db, query):
    response = client.get(f"/api/v1/models?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_base_model_filter_ignores_draft_versions_of_others(client, alice, bob, local_storage):
    model = _model(alice, "Only SD15", 4, base_model="SD 1.5")
    add_published_version(model, "xl-draft", data=tiny_safetensors_bytes(5), base_model="SDXL 1.0", publish=False)
    assert _names(client.get("/api/v1/models?baseModels=SDXL%201.0")) == []
    client.force_login(alice)
    assert _names(client.get("/api/v1/models?baseModels=SDXL%201.0")) == ["Only SD15"]


# --- sorting ---------------------------------------------------------------------------------

def test_sorts(client, alice, local_storage):
    first = _model(alice, "First", 10)
    second = _model(alice, "Second", 11)
    third = _model(alice, "Third", 12)
    for model, count in ((first, 30), (second, 5), (third, 30)):
        Model.objects.filter(pk=model.pk).update(download_count=count)
    assert _names(client.get("/api/v1/models")) == ["Third", "Second", "First"]
    assert _names(client.get("/api/v1/models?sort=Newest")) == ["Third", "Second", "First"]
    # Ties on the count fall back to the newer id.
    assert _names(client.get("/api/v1/models?sort=Most%20Downloaded")) == ["Third", "First", "Second"]
    # No reviews yet: every Wilson score ties, so the newer id comes first (tests/community for real ratings).
    assert _names(client.get("/api/v1/models?sort=highest%20rated")) == ["Third", "Second", "First"]


# --- keyset pagination -----------------------------------------------------------------------------

def test_newest_pages_stay_stable_while_models_are_added(client, alice, local_storage):
    originals = [_model(alice, f"Model {i}", 20 + i).name for i in range(5)]
    added = []

    def insert(page_index):
        added.append(_model(alice, f"Late {page_index}", 40 + page_index).name)

    pages = _walk(client, "/api/v1/models?limit=2", between_pages=insert)
    seen = [name for page in pages for name in page]
    assert seen == list(reversed(originals))  # every original once, in order; newer inserts land before the cursor
    assert [len(p) for p in pages] == [2, 2, 1]
    assert set(_names(client.get("/api/v1/models?limit=100"))) == set(originals) | set(added)


def test_most_downloaded_pages_stay_stable_while_models_are_added(client, alice, local_storage):
    counts = {"A": 50, "B": 40, "C": 30, "D": 20, "E": 10}
    for i, (name, count) in enumerate(counts.items()):
        model = _model(alice, name, 60 + i)
        Model.objects.filter(pk=model.pk).update(download_count=count)

    def insert(page_index):
        if page_index == 0:  # one lands before the cursor (never shown), one after it (shown once)
            for name, count, seed in (("Before", 45, 70), ("After", 25, 71)):
                model = _model(alice, name, seed)
                Model.objects.filter(pk=model.pk).update(download_count=count)

    pages = _walk(client, "/api/v1/models?limit=2&sort=Most%20Downloaded", between_pages=insert)
    assert pages == [["A", "B"], ["C", "After"], ["D", "E"]]


def test_cursor_belongs_to_its_sort(client, alice, local_storage):
    for i in range(3):
        _model(alice, f"M{i}", 80 + i)
    cursor = client.get("/api/v1/models?limit=1").json()["metadata"]["nextCursor"]
    assert client.get(f"/api/v1/models?limit=1&cursor={cursor}").status_code == 200
    assert client.get(f"/api/v1/models?limit=1&sort=Most%20Downloaded&cursor={cursor}").status_code == 400


def test_owner_drafts_sort_first_and_paginate(client, alice, local_storage):
    _model(alice, "Published A", 90)
    _model(alice, "Draft B", 91, publish=False)
    _model(alice, "Published C", 92)
    _model(alice, "Draft D", 93, publish=False)
    client.force_login(alice)
    pages = _walk(client, "/api/v1/models?limit=1")
    assert [n for p in pages for n in p] == ["Draft D", "Draft B", "Published C", "Published A"]


# --- visibility --------------------------------------------------------------------------------------

def test_private_unlisted_and_draft_models_in_lists_and_detail(client, alice, bob, local_storage):
    public = _model(alice, "Public", 100)
    private = _model(alice, "Private", 101, visibility="private")
    unlisted = _model(alice, "Unlisted", 102, visibility="unlisted")
    draft = _model(alice, "Draft", 103, publish=False)

    for viewer in (None, bob):
        if viewer:
            client.force_login(viewer)
        assert _names(client.get("/api/v1/models")) == ["Public"]
        assert client.get(f"/api/v1/models/{public.id}").status_code == 200
        assert client.get(f"/api/v1/models/{unlisted.id}").status_code == 200
        for hidden in (private, draft):
            response = client.get(f"/api/v1/models/{hidden.id}")
            assert response.status_code == 404 and response.json()["code"] == "not_found"
            version = hidden.versions.get()
            assert client.get(f"/api/v1/model-versions/{version.id}").status_code == 404

    client.force_login(alice)
    assert set(_names(client.get("/api/v1/models"))) == {"Public", "Private", "Unlisted", "Draft"}
    for mine in (private, draft):
        assert client.get(f"/api/v1/models/{mine.id}").status_code == 200


def test_draft_versions_show_to_their_owner_only(client, alice, bob, local_storage):
    model = _model(alice, "Growing", 110, version_name="v1")
    draft = add_published_version(model, "v2-draft", data=tiny_safetensors_bytes(111), publish=False)
    versions = lambda: [v["name"] for v in client.get(f"/api/v1/models/{model.id}").json()["modelVersions"]]  # noqa: E731
    listed = lambda: [v["name"] for v in client.get("/api/v1/models").json()["items"][0]["modelVersions"]]  # noqa: E731
    assert versions() == ["v1"] and listed() == ["v1"]
    assert client.get(f"/api/v1/model-versions/{draft.id}").status_code == 404
    client.force_login(bob)
    assert versions() == ["v1"]
    client.force_login(alice)
    assert versions() == ["v2-draft", "v1"] and listed() == ["v2-draft", "v1"]
    body = client.get(f"/api/v1/model-versions/{draft.id}").json()
    assert body["status"] == "Draft" and body["publishedAt"] is None


def test_api_key_identity_sees_own_private_models(client, alice, local_storage):
    _model(alice, "Mine Private", 120, visibility="private")
    key = api_key_create(user=alice, name="r", scopes=["read"]).plaintext
    assert _names(client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}")) == ["Mine Private"]
    assert _names(client.get(f"/api/v1/models?token={key}")) == ["Mine Private"]


def test_key_without_read_scope_is_403_and_revoked_key_401(client, alice, db):
    download_only = api_key_create(user=alice, name="d", scopes=["download"]).plaintext
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {download_only}")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    revoked = api_key_create(user=alice, name="old")
    api_key_revoke(api_key=revoked.api_key)
    response = client.get("/api/v1/models", HTTP_AUTHORIZATION=f"Bearer {revoked.plaintext}")
    assert response.status_code == 401 and "revoked" in response.json()["error"]


# --- SQL per page -------------------------------------------------------------------------------------

def test_models_list_query_count_is_small_and_constant(client, alice, bob, local_storage):
    for i in range(12):
        model = _model(alice if i % 2 else bob, f"Bulk {i}", 200 + i, tags=["a", f"t{i}"])
        add_published_version(model, "v2", data=tiny_safetensors_bytes(300 + i))
    client.force_login(alice)  # session + user lookups count too
    # Whether alice's list is the shared one is looked up once, then cached with the page cache.
    client.get("/api/v1/models?limit=1")
    counts = {}
    for limit in (2, 12, 100):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/api/v1/models?limit={limit}&sort=Most%20Downloaded")
        assert response.status_code == 200
        assert all(len(m["modelVersions"]) == 2 for m in response.json()["items"])
        counts[limit] = len(ctx.captured_queries)
    assert len(set(counts.values())) == 1, counts
    assert counts[100] <= 6, counts
    assert ModelVersion.objects.count() == 24
