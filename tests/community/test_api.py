"""Reviews, comments, follows, notifications and favourites through REST API v1 (PostgreSQL, Redis cache)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hub.accounts.services import api_key_create, user_create
from hub.community.models import Comment, Notification
from hub.community.services import notifications_fan_out_new_version, wilson_lower_bound
from tests.support.builders import add_published_version, make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture(autouse=True)
def _clear_limits():
    cache.clear()
    yield
    cache.clear()


def _aged(user):
    """Accounts older than a day may post links."""
    type(user).objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=2))
    user.refresh_from_db()
    return user


@pytest.fixture
def carol(db):
    return user_create(username="carol", password="carol-password-1", email="carol@example.com")


@pytest.fixture
def model(alice, local_storage):
    return make_published_model(alice, "Dream Mix", data=tiny_safetensors_bytes(501))


def _as(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_review_lifecycle_and_stats(api_client, alice, bob, model):
    version = model.versions.get()
    client = _as(api_client, bob)
    r = client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True, "text": "**Great**"},
                    format="json")
    assert r.status_code == 201, r.json()
    review = r.json()
    assert review["recommended"] is True and review["user"] == {"username": "bob"}

    again = client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": False}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_reviewed"

    detail = client.get(f"/api/v1/models/{model.pk}").json()
    assert detail["stats"]["thumbsUpCount"] == 1 and detail["stats"]["ratingCount"] == 1
    assert detail["modelVersions"][0]["stats"]["thumbsUpCount"] == 1
    assert detail["stats"]["rating"] == 5
    listed = client.get("/api/v1/models").json()["items"][0]
    assert listed["stats"]["thumbsUpCount"] == 1 and listed["modelVersions"][0]["stats"]["ratingCount"] == 1

    r = client.patch(f"/api/v1/reviews/{review['id']}", {"recommended": False}, format="json")
    assert r.status_code == 200 and r.json()["recommended"] is False
    stats = client.get(f"/api/v1/model-versions/{version.pk}").json()["stats"]
    assert (stats["thumbsUpCount"], stats["thumbsDownCount"]) == (0, 1)

    # Only the owner replies, once.
    assert client.post(f"/api/v1/reviews/{review['id']}/reply", {"text": "hi"}, format="json").status_code == 403
    owner = _as(api_client, alice)
    r = owner.post(f"/api/v1/reviews/{review['id']}/reply", {"text": "Thanks!"}, format="json")
    assert r.status_code == 200 and r.json()["ownerReply"] == "Thanks!"
    assert owner.post(f"/api/v1/reviews/{review['id']}/reply", {"text": "x"}, format="json").status_code == 409
    assert owner.delete(f"/api/v1/reviews/{review['id']}").status_code == 403
    # Notifications both ways: the review to alice, the reply to bob.
    assert Notification.objects.filter(user=alice, kind="review").count() == 1
    assert Notification.objects.filter(user=bob, kind="reply").count() == 1

    client = _as(api_client, bob)
    assert client.delete(f"/api/v1/reviews/{review['id']}").status_code == 204
    stats = client.get(f"/api/v1/models/{model.pk}").json()["stats"]
    assert stats["ratingCount"] == 0 and stats["thumbsDownCount"] == 0


def test_review_refusals(api_client, alice, bob, model, local_storage):
    version = model.versions.get()
    own = _as(api_client, alice).post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True},
                                      format="json")
    assert own.status_code == 403 and own.json()["code"] == "own_model"
    client = _as(api_client, bob)
    long = client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True, "text": "x" * 5001},
                       format="json")
    assert long.status_code == 400 and "at most 5000" in long.json()["error"]
    link = client.post(f"/api/v1/model-versions/{version.pk}/reviews",
                       {"recommended": True, "text": "see https://spam.example"}, format="json")
    assert link.status_code == 400 and link.json()["code"] == "links_not_allowed_yet"
    missing = client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"text": "no verdict"}, format="json")
    assert missing.status_code == 400 and "recommended" in missing.json()["details"]
    private = make_published_model(alice, "Secret", data=tiny_safetensors_bytes(502), visibility="private")
    hidden = client.post(f"/api/v1/model-versions/{private.versions.get().pk}/reviews", {"recommended": True},
                         format="json")
    assert hidden.status_code == 404
    assert client.get(f"/api/v1/models/{private.pk}/reviews").status_code == 404
    assert client.post(f"/api/v1/models/{private.pk}/comments", {"text": "hi"}, format="json").status_code == 404
    assert client.post(f"/api/v1/model-versions/{private.versions.get().pk}/favorite").status_code == 404
    anonymous = api_client
    anonymous.force_authenticate(None)
    assert anonymous.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True},
                          format="json").status_code in (401, 403)


def test_writes_need_upload_scope(api_client, bob, model):
    version = model.versions.get()
    read_only = api_key_create(user=bob, name="r", scopes=["read"]).plaintext
    r = api_client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {read_only}")
    assert r.status_code == 403 and "upload" in r.json()["error"]
    upload = api_key_create(user=bob, name="u", scopes=["upload", "read"]).plaintext
    r = api_client.post(f"/api/v1/model-versions/{version.pk}/reviews", {"recommended": True}, format="json",
                        HTTP_AUTHORIZATION=f"Bearer {upload}")
    assert r.status_code == 201


def test_comments_threads_edit_window_and_deleted_placeholder(api_client, alice, bob, carol, model, settings):
    version = model.versions.get()
    client = _as(api_client, _aged(bob))
    top = client.post(f"/api/v1/models/{model.pk}/comments",
                      {"text": "Nice [link](https://example.com) <script>x</script>", "modelVersionId": version.pk},
                      format="json")
    assert top.status_code == 201, top.json()
    top = top.json()
    assert top["modelVersionId"] == version.pk
    assert client.post(f"/api/v1/models/{model.pk}/comments", {"text": "   "}, format="json").status_code == 400

    reply = _as(api_client, carol).post(f"/api/v1/models/{model.pk}/comments", {"text": "agreed", "parentId": top["id"]},
                                        format="json").json()
    # A reply to a reply joins the same thread (one level).
    nested = _as(api_client, alice).post(f"/api/v1/models/{model.pk}/comments",
                                         {"text": "thanks both", "parentId": reply["id"]}, format="json").json()
    assert nested["parentId"] == top["id"]
    assert Notification.objects.filter(user=bob, kind="reply").count() == 1
    assert Notification.objects.filter(user=carol, kind="reply").count() == 1
    assert Notification.objects.filter(user=alice, kind="comment").count() == 2

    listed = api_client.get(f"/api/v1/models/{model.pk}/comments").json()["items"]
    assert [len(c["replies"]) for c in listed] == [2]
    assert api_client.get(f"/api/v1/models/{model.pk}").json()["stats"]["commentCount"] == 3

    client = _as(api_client, bob)
    assert client.patch(f"/api/v1/comments/{top['id']}", {"text": "edited"}, format="json").json()["editedAt"]
    Comment.objects.filter(pk=top["id"]).update(created_at=timezone.now() - timedelta(hours=2))
    late = client.patch(f"/api/v1/comments/{top['id']}", {"text": "too late"}, format="json")
    assert late.status_code == 409 and late.json()["code"] == "edit_window_closed"
    assert _as(api_client, carol).delete(f"/api/v1/comments/{top['id']}").status_code == 403
    assert _as(api_client, bob).delete(f"/api/v1/comments/{top['id']}").status_code == 204
    listed = api_client.get(f"/api/v1/models/{model.pk}/comments").json()["items"]
    assert listed[0]["deleted"] is True and listed[0]["text"] is None and listed[0]["user"] is None
    assert len(listed[0]["replies"]) == 2
    assert api_client.get(f"/api/v1/models/{model.pk}").json()["stats"]["commentCount"] == 2


def test_recipe_comments_name_a_version(api_client, alice, bob, local_storage):
    from merges.registry.services import recipe_create, recipe_version_create

    base = make_published_model(alice, "Base", data=tiny_safetensors_bytes(503))
    doc = {"format": "mergeworks/recipe@1", "architecture": "sd1",
           "inputs": {"a": {"model_version": base.versions.get().pk}, "b": {"model_version": base.versions.get().pk}},
           "steps": [{"id": "mix", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.5}],
           "output": {"step": "mix", "dtype": "fp16"}}
    recipe = recipe_create(owner=alice, title="Mix", source=doc)
    doc["steps"][0]["alpha"] = 0.6
    recipe_version_create(recipe=recipe, author=alice, source=doc, message="tweak")
    client = _as(api_client, bob)
    r = client.post(f"/api/v1/recipes/{recipe.pk}/comments", {"text": "v2 is better", "recipeVersion": 2},
                    format="json")
    assert r.status_code == 201 and r.json()["recipeVersion"] == 2
    assert client.post(f"/api/v1/recipes/{recipe.pk}/comments", {"text": "x", "recipeVersion": 9},
                       format="json").status_code == 404
    assert Notification.objects.filter(user=alice, kind="comment", recipe=recipe).count() == 1
    private = recipe_create(owner=alice, title="Hidden", source=doc, visibility="private")
    assert client.post(f"/api/v1/recipes/{private.pk}/comments", {"text": "x"}, format="json").status_code == 404


def test_follow_publish_fan_out_feed_and_notifications(api_client, alice, bob, carol, model, settings):
    client = _as(api_client, bob)
    assert client.post("/api/v1/creators/alice/follow").json() == {"following": True}
    status = client.get("/api/v1/creators/alice/follow").json()
    assert status["following"] is True and status["followerCount"] == 1 and status["modelCount"] == 1
    assert client.post("/api/v1/creators/bob/follow").status_code == 400
    assert client.post("/api/v1/creators/nobody/follow").status_code == 404
    _as(api_client, carol).post("/api/v1/creators/alice/follow")
    _as(api_client, carol).put("/api/v1/notifications/preferences", {"mutedKinds": ["new_version"]}, format="json")

    with pytest.MonkeyPatch.context() as mp:
        sent = []
        # What reaches the broker is the task's name and arguments (hub.tasks_enqueue sends them).
        mp.setattr("hub.tasks_enqueue.task_send", lambda name, args: sent.append((name, list(args))))
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            version = add_published_version(model, "v2", data=tiny_safetensors_bytes(504))
    assert sent == [("workers.tasks.community.notifications_fan_out_new_version", [version.pk])]
    assert Notification.objects.filter(kind="new_version").count() == 0  # nothing in the request
    assert notifications_fan_out_new_version(version_id=version.pk) == 1  # carol muted new versions
    notifications_fan_out_new_version(version_id=version.pk)  # a redelivered task adds nothing
    assert Notification.objects.filter(kind="new_version").count() == 1

    client = _as(api_client, bob)
    assert client.get("/api/v1/notifications/unread-count").json() == {"unread": 1, "capped": False}
    items = client.get("/api/v1/notifications").json()["items"]
    assert items[0]["kind"] == "new_version" and items[0]["actor"] == {"username": "alice"}
    feed = client.get("/api/v1/feed").json()["items"]
    assert [f["title"] for f in feed if f["kind"] == "version"][0] == "Dream Mix v2"
    # Gone private: the notification and the feed item disappear for bob.
    type(model).objects.filter(pk=model.pk).update(visibility="private")
    assert client.get("/api/v1/notifications/unread-count").json()["unread"] == 0
    assert client.get("/api/v1/notifications").json()["items"] == []
    assert client.get("/api/v1/feed").json()["items"] == []
    type(model).objects.filter(pk=model.pk).update(visibility="public")
    assert client.post("/api/v1/notifications/mark-read", {}, format="json").json() == {"marked": 1}
    assert client.get("/api/v1/notifications/unread-count").json()["unread"] == 0
    assert client.delete("/api/v1/creators/alice/follow").json() == {"following": False}
    bad = client.put("/api/v1/notifications/preferences", {"mutedKinds": ["nope"]}, format="json")
    assert bad.status_code == 400
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/notifications").status_code in (401, 403)


def test_rate_limit_answers_429_with_retry_after(api_client, bob, alice, model, settings):
    settings.COMMUNITY_RATE_LIMITS = {"comment": (2, 600)}
    client = _as(api_client, bob)
    for _ in range(2):
        assert client.post(f"/api/v1/models/{model.pk}/comments", {"text": "hi"}, format="json").status_code == 201
    r = client.post(f"/api/v1/models/{model.pk}/comments", {"text": "hi"}, format="json")
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert 1 <= int(r["Retry-After"]) <= 600
    # Per user: alice is not limited by bob's comments.
    assert _as(api_client, alice).post(f"/api/v1/models/{model.pk}/comments", {"text": "hi"},
                                       format="json").status_code == 201


def test_favourites(api_client, alice, bob, model):
    version = model.versions.get()
    client = _as(api_client, bob)
    assert client.post(f"/api/v1/model-versions/{version.pk}/favorite").json() == {"favorite": True}
    assert client.post(f"/api/v1/model-versions/{version.pk}/favorite").json() == {"favorite": True}
    assert client.get(f"/api/v1/models/{model.pk}").json()["stats"]["favoriteCount"] == 1
    assert [f["id"] for f in client.get("/api/v1/me/favorites").json()["items"]] == [version.pk]
    assert client.delete(f"/api/v1/model-versions/{version.pk}/favorite").json() == {"favorite": False}
    assert client.get(f"/api/v1/models/{model.pk}").json()["stats"]["favoriteCount"] == 0


def test_highest_rated_orders_by_wilson_bound_within_six_queries(client, alice, bob, carol, local_storage):
    from hub.community.services import review_create

    one_vote = make_published_model(alice, "One vote", data=tiny_safetensors_bytes(510))
    many = make_published_model(alice, "Many votes", data=tiny_safetensors_bytes(511))
    unrated = make_published_model(alice, "Unrated", data=tiny_safetensors_bytes(512))
    voters = [bob, carol] + [user_create(username=f"v{i}", password="pw-pw-pw-pw-1") for i in range(4)]
    review_create(author=bob, version=one_vote.versions.get(), recommended=True)
    for i, voter in enumerate(voters):
        review_create(author=voter, version=many.versions.get(), recommended=i != 0)
    assert wilson_lower_bound(1, 0) < wilson_lower_bound(5, 1)
    names = [m["name"] for m in client.get("/api/v1/models?sort=Highest%20Rated").json()["items"]]
    assert names == ["Many votes", "One vote", "Unrated"]
    pages, url = [], "/api/v1/models?sort=Highest%20Rated&limit=1"
    while url:
        body = client.get(url).json()
        pages += [m["name"] for m in body["items"]]
        url = body["metadata"]["nextPage"]
    assert pages == names
    assert unrated.pk
    client.force_login(alice)
    counts = {}
    for limit in (1, 3, 100):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/api/v1/models?limit={limit}&sort=Highest%20Rated").status_code == 200
        counts[limit] = len(ctx.captured_queries)
    assert len(set(counts.values())) == 1 and counts[100] <= 6, counts


def test_collections_public_private_and_hidden_items(api_client, alice, bob, model, local_storage):
    version = model.versions.get()
    client = _as(api_client, bob)
    r = client.post("/api/v1/collections", {"name": "Anime picks", "visibility": "public"}, format="json")
    assert r.status_code == 201
    public = r.json()["id"]
    private = client.post("/api/v1/collections", {"name": "Later"}, format="json").json()["id"]
    assert client.post("/api/v1/collections", {"name": "Later"}, format="json").status_code == 409
    assert client.post("/api/v1/collections", {"name": " "}, format="json").status_code == 400
    assert client.post(f"/api/v1/collections/{public}/items", {"modelVersionId": version.pk},
                       format="json").json() == {"added": True}
    secret = make_published_model(alice, "Secret", data=tiny_safetensors_bytes(520), visibility="private")
    assert client.post(f"/api/v1/collections/{public}/items", {"modelVersionId": secret.versions.get().pk},
                       format="json").status_code == 404

    other = _as(api_client, alice)
    assert [c["name"] for c in other.get("/api/v1/collections?username=bob").json()["items"]] == ["Anime picks"]
    assert other.get(f"/api/v1/collections/{private}").status_code == 404
    body = other.get(f"/api/v1/collections/{public}").json()
    assert [i["id"] for i in body["items"]] == [version.pk]
    assert other.post(f"/api/v1/collections/{public}/items", {"modelVersionId": version.pk},
                      format="json").status_code == 403
    # The model goes private: the item disappears for others.
    type(model).objects.filter(pk=model.pk).update(visibility="private")
    api_client.force_authenticate(None)
    assert api_client.get(f"/api/v1/collections/{public}").json()["items"] == []
    client = _as(api_client, bob)
    assert client.delete(f"/api/v1/collections/{public}").status_code == 204


def test_unread_count_with_api_keys(api_client, bob, alice, model):
    from hub.community.services import notification_send

    notification_send(user_id=bob.pk, kind="comment", text="hello")
    key = api_key_create(user=bob, name="r", scopes=["read"]).plaintext
    for _ in range(2):  # the first request learns the key's user; the second fuses key check and count
        r = api_client.get("/api/v1/notifications/unread-count", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert r.json() == {"unread": 1, "capped": False}
    other = api_key_create(user=alice, name="a", scopes=["read"]).plaintext
    assert api_client.get("/api/v1/notifications/unread-count",
                          HTTP_AUTHORIZATION=f"Bearer {other}").json()["unread"] == 0
    no_read = api_key_create(user=bob, name="d", scopes=["download"]).plaintext
    assert api_client.get("/api/v1/notifications/unread-count",
                          HTTP_AUTHORIZATION=f"Bearer {no_read}").status_code == 403
    bad = api_client.get("/api/v1/notifications/unread-count", HTTP_AUTHORIZATION="Bearer mw_nope_nope")
    assert bad.status_code in (401, 403) and bad.json()["error"]
    assert api_client.get("/api/v1/notifications/unread-count").status_code in (401, 403)


def test_unread_count_with_a_website_session(client, bob):
    from hub.community.services import notification_send

    notification_send(user_id=bob.pk, kind="comment", text="hello")
    assert client.get("/api/v1/notifications/unread-count").status_code in (401, 403)
    client.force_login(bob)
    assert client.get("/api/v1/notifications/unread-count").json() == {"unread": 1, "capped": False}
