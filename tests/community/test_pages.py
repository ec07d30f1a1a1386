"""Community pages: forms post, come back with the result or an error message, and hide what is hidden."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from hub.community.models import Comment, Review
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_limits():
    cache.clear()


def test_review_comment_follow_and_header_badge(client, alice, bob, local_storage):
    model = make_published_model(alice, "Dream", data=tiny_safetensors_bytes(9))
    page = f"/models/{model.pk}/{model.slug}/"
    client.force_login(bob)
    for url in ["/", page, "/users/alice/", "/following/", "/notifications/", "/favourites/"]:
        assert client.get(url).status_code == 200, url
    version = model.versions.get()
    assert client.post(f"/community/versions/{version.pk}/review/", {"recommended": "yes", "text": "good"}).status_code == 302
    assert client.post("/community/comments/new/", {"model": model.pk, "text": "hello"}).status_code == 302
    assert client.post("/users/alice/follow/", {"action": "follow"}).status_code == 302
    html = client.get(page).content.decode()
    assert "hello" in html and "Recommends" in html
    assert "👍" in client.get("/").content.decode()  # the card shows the count
    profile = client.get("/users/alice/").content.decode()
    assert "1 follower" in profile and "1 model" in profile and "100% recommend (1 review)" in profile

    # Refused: empty comment, second review; nothing saved and the page says why.
    response = client.post("/community/comments/new/", {"model": model.pk, "text": "  ", "next": page}, follow=True)
    assert "must not be empty" in response.content.decode()
    assert Comment.objects.count() == 1
    assert Review.objects.count() == 1

    client.force_login(alice)
    html = client.get("/").content.decode()
    assert 'data-unread-url="/api/v1/notifications/unread-count"' in html  # site.js fills the badge from it
    assert client.get("/api/v1/notifications/unread-count").json()["unread"] == 2
    own = client.post(f"/community/versions/{version.pk}/review/", {"recommended": "yes", "next": page}, follow=True)
    assert "cannot review your own model" in own.content.decode()
    client.post("/notifications/read/")
    assert client.get("/api/v1/notifications/unread-count").json()["unread"] == 0


def test_hidden_objects_are_404(client, alice, bob, local_storage):
    private = make_published_model(alice, "Secret", data=tiny_safetensors_bytes(10), visibility="private")
    client.force_login(bob)
    version = private.versions.get()
    assert client.post(f"/community/versions/{version.pk}/review/", {"recommended": "yes"}).status_code == 404
    assert client.post("/community/comments/new/", {"model": private.pk, "text": "hi"}).status_code == 404
    assert client.post(f"/community/version/{version.pk}/favorite/").status_code == 404
    assert not Comment.objects.exists() and not Review.objects.exists()


def test_collections_pages(client, alice, bob, local_storage):
    model = make_published_model(alice, "Dream", data=tiny_safetensors_bytes(11))
    version = model.versions.get()
    client.force_login(bob)
    response = client.post("/collections/new/", {"name": "Picks", "visibility": "public"})
    assert response.status_code == 302
    url = response["Location"]
    assert "Add to collection" in client.get(f"/models/{model.pk}/{model.slug}/").content.decode()
    collection_id = int(url.strip("/").split("/")[-1])
    client.post("/collections/items/", {"collection": collection_id, "version": version.pk})
    assert "Dream v1.0" in client.get(url).content.decode()
    assert "Picks" in client.get("/favourites/").content.decode()
    client.force_login(alice)
    assert "Dream v1.0" in client.get(url).content.decode()  # public: others see it
    client.logout()
    from hub.community.models import Collection

    Collection.objects.filter(pk=collection_id).update(visibility="private")
    assert client.get(url).status_code == 404
