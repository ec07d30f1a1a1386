"""The models list's page cache: shared pages come from Redis, and no page outlives a catalogue write."""
from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from hub.accounts.services import api_key_create
from hub.catalog.models import Model, ModelVersion
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = [
    # Committed writes, as in production: a test's own open transaction would keep the cache out of play.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="the page cache lives in Redis"),
]

URL = "/api/v1/models?limit=20"


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json()["items"]]


@pytest.fixture
def catalogue(alice, bob, local_storage):
    return {
        "alice": make_published_model(alice, "Alice Public", data=tiny_safetensors_bytes(1)),
        "bob": make_published_model(bob, "Bob Public", data=tiny_safetensors_bytes(2)),
    }


def test_an_anonymous_page_is_served_from_the_cache_without_queries(client, catalogue):
    first = client.get(URL)
    with CaptureQueriesContext(connection) as ctx:
        second = client.get(URL)
    assert len(ctx.captured_queries) == 0
    assert second.content == first.content and second["Content-Type"] == "application/json"
    assert second["ETag"] == first["ETag"] and "Authorization" in second["Vary"]
    # Another query string is another page.
    assert _names(client.get(URL + "&username=bob")) == ["Bob Public"]


def test_any_write_drops_the_cached_pages_even_an_update_without_signals(client, catalogue):
    assert set(_names(client.get(URL))) == {"Alice Public", "Bob Public"}
    Model.objects.filter(pk=catalogue["bob"].pk).update(visibility=Model.Visibility.PRIVATE)
    assert _names(client.get(URL)) == ["Alice Public"]
    Model.objects.filter(pk=catalogue["alice"].pk).update(download_count=77)
    (item,) = client.get(URL).json()["items"]
    assert item["stats"]["downloadCount"] == 77 if "stats" in item else item["downloadCount"] == 77


def test_a_page_built_inside_a_rolled_back_write_is_not_served_afterwards(client, catalogue):
    client.get(URL)
    with pytest.raises(RuntimeError), transaction.atomic():
        Model.objects.filter(pk=catalogue["bob"].pk).update(name="Renamed In A Transaction")
        assert "Renamed In A Transaction" in _names(client.get(URL))  # this connection sees its own write
        raise RuntimeError("roll back")
    assert set(_names(client.get(URL))) == {"Alice Public", "Bob Public"}


def test_private_rows_never_leak_through_the_shared_page(client, catalogue, alice, bob):
    anonymous = set(_names(client.get(URL)))
    secret = make_published_model(bob, "Bob Secret", data=tiny_safetensors_bytes(3), visibility="private")
    assert set(_names(client.get(URL))) == anonymous  # anonymous: still not there

    bob_key = api_key_create(user=bob, name="r", scopes=["read"]).plaintext
    as_bob = _names(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {bob_key}"))
    assert "Bob Secret" in as_bob
    # Bob's own page is cached for bob alone: the second request only checks his key.
    with CaptureQueriesContext(connection) as ctx:
        assert _names(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {bob_key}")) == as_bob
    assert len(ctx.captured_queries) == 1 and "api_key" in ctx.captured_queries[0]["sql"], ctx.captured_queries
    assert "Bob Secret" not in set(_names(client.get(URL)))

    # Alice owns nothing hidden: she shares the anonymous page, until she has a draft.
    alice_key = api_key_create(user=alice, name="r", scopes=["read"]).plaintext
    assert set(_names(client.get(URL, HTTP_AUTHORIZATION=f"Bearer {alice_key}"))) == anonymous
    ModelVersion.objects.create(model=catalogue["alice"], name="draft v2", base_model="SD 1.5")
    (mine,) = [m for m in client.get(URL, HTTP_AUTHORIZATION=f"Bearer {alice_key}").json()["items"]
               if m["name"] == "Alice Public"]
    assert "draft v2" in [v["name"] for v in mine["modelVersions"]]
    (theirs,) = [m for m in client.get(URL).json()["items"] if m["name"] == "Alice Public"]
    assert "draft v2" not in [v["name"] for v in theirs["modelVersions"]]
    assert secret.pk not in [m["id"] for m in client.get(URL).json()["items"]]


def test_conditional_get_answers_304_until_the_page_changes(client, catalogue):
    etag = client.get(URL)["ETag"]
    not_modified = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified["ETag"] == etag
    Model.objects.filter(pk=catalogue["bob"].pk).update(name="Bob Renamed")
    changed = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and "Bob Renamed" in _names(changed) and changed["ETag"] != etag


def test_bad_parameters_are_never_cached(client, catalogue):
    for _ in range(2):
        response = client.get(URL + "&sort=Bogus")
        assert response.status_code == 400 and response["Content-Type"].startswith("application/json")


def test_without_the_cache_the_list_is_the_same(client, catalogue, settings):
    cached = client.get(URL)
    settings.PAGE_CACHE = False
    with CaptureQueriesContext(connection) as ctx:
        plain = client.get(URL)
    assert len(ctx.captured_queries) > 0
    assert plain.content == cached.content and plain["ETag"] == cached["ETag"]
