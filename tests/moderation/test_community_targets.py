"""Comments and reviews as moderation targets: reports, hide / take down / restore, and the counters."""
from __future__ import annotations

import pytest

from hub.community import selectors as community
from hub.community.models import Notification
from hub.community.services import CommunityError, comment_create, comment_delete, review_create
from hub.moderation.models import Report
from hub.moderation.services import ModerationError, moderation_act
from tests.moderation.conftest import client_for
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def _stats(model) -> dict:
    from rest_framework.test import APIClient

    return APIClient().get(f"/api/v1/models/{model.pk}").json()["stats"]


def _act(carol, kind, target, action, **extra):
    return moderation_act(actor=carol, target_kind=kind, target_id=str(target.pk), action=action,
                          reason=f"{action}: breaks the rules", **extra)


def test_comments_and_reviews_are_reported_once_through_the_api_and_the_page(alice, bob, client):
    model = make_published_model(alice, "Reported talk")
    version = model.versions.get()
    comment = comment_create(author=bob, text="buy cheap pills", model=model)
    review = review_create(author=bob, version=version, recommended=False, text="spam spam")
    api = client_for(alice)
    for kind, target in (("comment", comment), ("review", review)):
        first = api.post("/api/v1/reports", {"targetKind": kind, "targetId": str(target.pk), "reason": "spam"},
                         format="json")
        assert first.status_code == 201, first.content
        again = api.post("/api/v1/reports", {"targetKind": kind, "targetId": str(target.pk), "reason": "other",
                                             "details": "still spam"}, format="json")
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["id"] == first.json()["id"]
    assert Report.objects.filter(reporter=alice).count() == 2
    missing = api.post("/api/v1/reports", {"targetKind": "comment", "targetId": "999999", "reason": "spam"},
                       format="json")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")

    # Each comment and review has a Report link for signed-in readers other than its author.
    page_url = f"/models/{model.pk}/{model.slug}/"
    client.force_login(alice)
    page = client.get(page_url).content.decode()
    assert f'href="/report/comment/{comment.pk}/"' in page and f'href="/report/review/{review.pk}/"' in page
    client.force_login(bob)
    own = client.get(page_url).content.decode()
    assert "/report/comment/" not in own and "/report/review/" not in own
    client.force_login(alice)
    assert client.get(f"/report/review/{review.pk}/").status_code == 200
    posted = client.post(f"/report/comment/{comment.pk}/", {"reason": "other", "details": "a new one"})
    assert posted.status_code == 302 and posted["Location"].endswith(f"#comment-{comment.pk}")


def test_a_hidden_review_is_the_authors_alone_and_leaves_the_counters(alice, bob, carol, client):
    model = make_published_model(alice, "Rated")
    version = model.versions.get()
    review = review_create(author=bob, version=version, recommended=True, text="great")
    client_for(alice).post("/api/v1/reports", {"targetKind": "review", "targetId": str(review.pk), "reason": "spam"},
                           format="json")
    assert _stats(model)["thumbsUpCount"] == 1
    assert community.notifications_for(user=alice).filter(kind="review").count() == 1

    with pytest.raises(ModerationError) as refused:
        _act(carol, "review", review, "nsfw_level", nsfw_level=4)
    assert refused.value.code == "invalid_action" and "no NSFW level" in str(refused.value)

    _act(carol, "review", review, "hide")
    assert Report.objects.get().status == "resolved"
    assert _stats(model)["thumbsUpCount"] == 0 and _stats(model)["ratingCount"] == 0
    reviews_url = f"/api/v1/models/{model.pk}/reviews"
    assert client_for(alice).get(reviews_url).json()["items"] == []
    assert client_for(carol).get(reviews_url).json()["items"] == []
    mine = client_for(bob).get(reviews_url).json()["items"]
    assert [(r["id"], r["moderated"]) for r in mine] == [(review.pk, True)]
    # The owner's notification quoting the review goes with it.
    assert community.notifications_for(user=alice).filter(kind="review").count() == 0
    client.force_login(bob)
    page = client.get(f"/models/{model.pk}/{model.slug}/").content.decode()
    assert 'data-testid="moderation-notice"' in page and "hide: breaks the rules" in page
    client.force_login(alice)
    assert f'id="review-{review.pk}"' not in client.get(f"/models/{model.pk}/{model.slug}/").content.decode()

    # Taking down the hidden review changes no counter a second time; nobody sees it now.
    _act(carol, "review", review, "takedown")
    assert _stats(model)["thumbsUpCount"] == 0
    assert client_for(bob).get(reviews_url).json()["items"] == []
    assert client_for(bob).patch(f"/api/v1/reviews/{review.pk}", {"text": "x"}, format="json").status_code == 404

    _act(carol, "review", review, "restore")
    assert _stats(model)["thumbsUpCount"] == 1
    assert [r["id"] for r in client_for(alice).get(reviews_url).json()["items"]] == [review.pk]
    assert community.notifications_for(user=alice).filter(kind="review").count() == 1


def test_a_hidden_comment_with_replies_stays_as_a_placeholder(alice, bob, carol, client):
    model = make_published_model(alice, "Talked about")
    top = comment_create(author=bob, text="rude words here", model=model)
    reply = comment_create(author=carol, text="please be kind", model=model, parent=top)
    lone = comment_create(author=bob, text="more rude words", model=model)
    assert _stats(model)["commentCount"] == 3
    comments_url = f"/api/v1/models/{model.pk}/comments"

    _act(carol, "comment", top, "hide")
    _act(carol, "comment", lone, "hide")
    assert _stats(model)["commentCount"] == 1
    seen = client_for(alice).get(comments_url).json()["items"]
    assert len(seen) == 1
    assert (seen[0]["id"], seen[0]["text"], seen[0]["user"], seen[0]["moderated"]) == (top.pk, None, None, True)
    assert [r["id"] for r in seen[0]["replies"]] == [reply.pk]
    own = client_for(bob).get(comments_url).json()["items"]
    assert [(c["id"], c["text"], c["moderated"]) for c in own] == [(top.pk, "rude words here", True),
                                                                    (lone.pk, "more rude words", True)]
    # The notification to the model's owner about the hidden comment is gone; the reply's remains.
    texts = [n.text for n in community.notifications_for(user=alice)]
    assert texts == ["carol commented on Talked about"]
    top.refresh_from_db()
    with pytest.raises(CommunityError) as no_reply:
        comment_create(author=bob, text="answer", model=model, parent=top)
    assert no_reply.value.code == "moderated"
    answer = client_for(alice).post(comments_url, {"text": "answer", "parentId": top.pk}, format="json")
    assert answer.status_code == 404

    client.force_login(alice)
    page = client.get(f"/models/{model.pk}/{model.slug}/").content.decode()
    assert 'data-testid="comment-moderated"' in page and "rude words" not in page and "please be kind" in page
    client.force_login(bob)
    page = client.get(f"/models/{model.pk}/{model.slug}/").content.decode()
    assert "rude words here" in page and 'data-testid="moderation-notice"' in page

    # Taken down: not even its author sees the text; the placeholder stays for the reply.
    _act(carol, "comment", top, "takedown")
    own = client_for(bob).get(comments_url).json()["items"]
    assert own[0]["text"] is None and own[0]["moderated"] is True
    assert _stats(model)["commentCount"] == 1
    # Deleting a moderated comment does not take it off the counters twice.
    comment_delete(comment=lone, user=bob)
    assert _stats(model)["commentCount"] == 1

    _act(carol, "comment", top, "restore")
    assert _stats(model)["commentCount"] == 2
    seen = client_for(alice).get(comments_url).json()["items"]
    assert [(c["id"], c["text"], c["moderated"]) for c in seen] == [(top.pk, "rude words here", False)]
    assert Notification.objects.filter(user=alice, comment=top).exists()


def test_a_taken_down_comment_cannot_be_reported_again(alice, bob, carol):
    model = make_published_model(alice, "Gone talk")
    comment = comment_create(author=bob, text="gone soon", model=model)
    _act(carol, "comment", comment, "takedown")
    response = client_for(alice).post("/api/v1/reports", {"targetKind": "comment", "targetId": str(comment.pk),
                                                          "reason": "spam"}, format="json")
    assert response.status_code == 404


def test_recipe_comments_are_reported_and_quoted_in_the_queue(alice, bob, carol, client):
    from merges.registry.models import Recipe

    recipe = Recipe.objects.create(owner=alice, slug="talked", title="Talked recipe")
    comment = comment_create(author=bob, text="a <b>loud</b> advert", recipe=recipe)
    client.force_login(alice)
    posted = client.post(f"/report/comment/{comment.pk}/", {"reason": "spam"})
    assert posted["Location"] == f"/recipes/{recipe.pk}/#comment-{comment.pk}"

    client.force_login(carol)
    queue = client.get("/moderation/").content.decode()
    assert 'data-testid="queue-quote"' in queue and "a &lt;b&gt;loud&lt;/b&gt; advert" in queue
    _act(carol, "comment", comment, "hide")
    assert client_for(alice).get(f"/api/v1/recipes/{recipe.pk}/comments").json()["items"] == []
    assert [c["id"] for c in client_for(bob).get(f"/api/v1/recipes/{recipe.pk}/comments").json()["items"]] \
        == [comment.pk]
