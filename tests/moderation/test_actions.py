"""Moderator actions: each one's effect on what is served, its audit row, the owner's notice and email."""
from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import TestCase

from hub.moderation.models import ModerationAction, Report
from hub.moderation.selectors import is_moderator
from hub.moderation.services import ModerationError, moderation_act, report_create
from tests.moderation.conftest import add_image, client_for
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def act(actor, kind, target_id, action, reason="breaks the rules", **kw):
    # Run the after-commit work (the owner's email) as a real commit would.
    with TestCase.captureOnCommitCallbacks(execute=True):
        return moderation_act(actor=actor, target_kind=kind, target_id=str(target_id), action=action, reason=reason,
                              **kw)


def test_moderators_are_granted_by_command_and_staff_count(alice, bob):
    assert not is_moderator(bob)
    call_command("moderator", "bob")
    bob.refresh_from_db()
    del bob._perm_cache, bob._user_perm_cache, bob._group_perm_cache
    assert is_moderator(bob)
    call_command("moderator", "bob", "--revoke")
    from django.contrib.auth import get_user_model

    assert not is_moderator(get_user_model().objects.get(pk=bob.pk))
    alice.is_staff = True
    assert is_moderator(alice)


def test_only_moderators_act_see_the_queue_and_the_log(alice, bob, client):
    model = make_published_model(alice, "Not yours")
    with pytest.raises(ModerationError) as exc:
        act(bob, "model", model.pk, "hide")
    assert exc.value.status == 403
    api = client_for(bob)
    assert api.get("/api/v1/moderation/queue").status_code == 403
    refused = api.post("/api/v1/moderation/actions", {"targetKind": "model", "targetId": str(model.pk),
                                                      "action": "hide", "reason": "x"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    client.force_login(bob)
    assert client.get("/moderation/").status_code == 403
    assert client.get("/moderation/log/").status_code == 403
    assert client.post("/moderation/act/", {}).status_code == 403
    model.refresh_from_db()
    assert model.moderation == "" and not ModerationAction.objects.exists()


def test_the_queue_groups_reports_by_object_oldest_first_with_owner_and_earlier_actions(alice, bob, carol):
    from hub.accounts.services import user_create

    dave = user_create(username="dave", password="dave-password-1")
    first = make_published_model(alice, "First reported")
    second = make_published_model(bob, "Second reported")
    report_create(reporter=bob, target_kind="model", target_id=str(first.pk), reason="spam")
    report_create(reporter=dave, target_kind="model", target_id=str(second.pk), reason="illegal")
    report_create(reporter=dave, target_kind="model", target_id=str(first.pk), reason="malware")
    # An earlier action on `first`, then a new report on it.
    act(carol, "model", first.pk, "dismiss", reason="looked fine")
    report_create(reporter=bob, target_kind="model", target_id=str(first.pk), reason="spam")
    report_create(reporter=dave, target_kind="model", target_id=str(first.pk), reason="malware")
    items = client_for(carol).get("/api/v1/moderation/queue").json()["items"]
    assert [(i["targetKind"], i["targetId"]) for i in items] == [("model", str(second.pk)), ("model", str(first.pk))]
    assert items[0]["owner"] == "bob" and items[1]["owner"] == "alice"
    assert [r["reason"] for r in items[1]["reports"]] == ["spam", "malware"]
    assert [a["action"] for a in items[1]["actions"]] == ["dismiss"]
    assert items[1]["actions"][0]["reason"] == "looked fine"
    assert Report.objects.filter(status="dismissed").count() == 2


def test_hide_a_model_owner_only_with_a_notice_audit_row_and_email(alice, bob, carol, client, api_client):
    model = make_published_model(alice, "Hide me")
    version = model.versions.get()
    report_create(reporter=bob, target_kind="model", target_id=str(model.pk), reason="spam")
    record = act(carol, "model", model.pk, "hide", reason="spam links in the description")

    assert (record.actor, record.action, record.target_owner, record.reason) == (carol, "hide", alice,
                                                                                  "spam links in the description")
    assert record.details == {"from": "", "to": "hidden"} and record.created_at
    assert Report.objects.get().status == "resolved" and Report.objects.get().resolution == record
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    assert "spam links in the description" in mail.outbox[0].body

    # Others: gone from pages, lists, detail and downloads.
    assert api_client.get(f"/api/v1/models/{model.pk}").status_code == 404
    assert model.pk not in [m["id"] for m in api_client.get("/api/v1/models").json()["items"]]
    assert api_client.get(f"/api/v1/model-versions/{version.pk}").status_code == 404
    assert api_client.get(f"/api/download/models/{version.pk}").status_code == 404
    client.force_login(bob)
    assert client.get(f"/models/{model.pk}/{model.slug}/").status_code == 404
    # The owner: the page with the notice, and their own file still.
    client.force_login(alice)
    page = client.get(f"/models/{model.pk}/{model.slug}/")
    assert page.status_code == 200
    assert b"Hidden by a moderator" in page.content and b"spam links in the description" in page.content
    assert client.get(f"/api/download/models/{version.pk}").status_code == 302

    act(carol, "model", model.pk, "restore", reason="description fixed")
    assert api_client.get(f"/api/v1/models/{model.pk}").status_code == 200
    assert ModerationAction.objects.filter(target_kind="model", target_id=str(model.pk)).count() == 2


def _serving_routes(model, version, file_name):
    return [
        f"/api/download/models/{version.pk}",
        f"/api/download/models/{version.pk}?fileId={version.files.get().pk}",
        f"/{model.owner.username}/{model.slug}/resolve/main/{file_name}",
        f"/{model.owner.username}/{model.slug}/resolve/{version.name}/{file_name}",
        f"/api/v1/model-versions/{version.pk}",
        f"/api/v1/model-versions/by-hash/{version.files.get().sha256}",
    ]


@pytest.mark.parametrize("kind", ["model", "version"])
def test_taken_down_files_are_never_served_but_kept(alice, bob, carol, client, kind):
    from hub.files.storage import blob_storage

    model = make_published_model(alice, f"Takedown {kind}", file_name="weights.safetensors")
    version = model.versions.get()
    blob = version.files.get().storage_key
    routes = _serving_routes(model, version, "weights.safetensors")
    client.force_login(alice)
    assert [client.get(url).status_code for url in routes] == [302, 302, 302, 302, 200, 200]

    act(carol, kind, model.pk if kind == "model" else version.pk, "takedown", reason="stolen from dana")
    for user in (None, bob, alice, carol):  # nobody, the owner and the moderator included
        client.logout()
        if user is not None:
            client.force_login(user)
        # The HF routes answer an anonymous client 401 for a repository it cannot see, as huggingface.co does.
        assert all(client.get(url).status_code in (401, 404) for url in routes), user
    assert model.pk not in [m["id"] for m in client.get("/api/v1/models").json()["items"]] or kind == "version"
    assert blob_storage().exists(blob), "files are kept for evidence"
    # The owner still sees the page, with the notice.
    client.force_login(alice)
    page = client.get(f"/models/{model.pk}/{model.slug}/?modelVersionId={version.pk}")
    assert page.status_code == 200 and b"Taken down by a moderator" in page.content and b"stolen from dana" in page.content

    act(carol, kind, model.pk if kind == "model" else version.pk, "restore", reason="claim withdrawn")
    assert client.get(routes[0]).status_code == 302


def test_a_taken_down_version_is_left_out_of_the_models_api_for_everyone(alice, carol, client):
    model = make_published_model(alice, "Two versions")
    from tests.support.builders import add_published_version, tiny_safetensors_bytes

    second = add_published_version(model, "v2", data=tiny_safetensors_bytes(77))
    act(carol, "version", second.pk, "takedown")
    for user in (None, alice):
        client.logout()
        if user:
            client.force_login(user)
        listed = [v["id"] for v in client.get(f"/api/v1/models/{model.pk}").json()["modelVersions"]]
        assert second.pk not in listed and len(listed) == 1


def test_example_images_hidden_for_others_taken_down_for_all(alice, bob, carol, client):
    model = make_published_model(alice, "Images")
    version = model.versions.get()
    image = add_image(version, alice)
    url = f"/api/v1/images/{image.pk}"
    act(carol, "image", image.pk, "hide", reason="a real person")
    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert client.get(f"/images/{image.pk}/").status_code == 404
    assert client.get(f"/api/v1/model-versions/{version.pk}/images").json() == []
    client.force_login(alice)
    assert client.get(url).status_code in (200, 302)  # 302: S3 answers with a presigned redirect
    page = client.get(f"/images/{image.pk}/")
    assert b"Hidden by a moderator" in page.content and b"a real person" in page.content
    model_page = client.get(f"/models/{model.pk}/{model.slug}/")
    assert b"a real person" in model_page.content

    act(carol, "image", image.pk, "takedown", reason="confirmed")
    for user in (bob, alice, carol):
        client.force_login(user)
        assert client.get(url).status_code == 404
    client.force_login(alice)
    assert b"Taken down" in client.get(f"/images/{image.pk}/").content


def test_the_images_of_a_taken_down_model_are_not_served(alice, carol, client):
    model = make_published_model(alice, "Model down")
    image = add_image(model.versions.get(), alice)
    act(carol, "model", model.pk, "takedown")
    client.force_login(alice)
    assert client.get(f"/api/v1/images/{image.pk}").status_code == 404


def test_preview_grids_follow_their_moderation(alice, bob, carol):
    from hub.previews.models import PreviewGrid, PreviewImage
    from hub.previews.selectors import grid_get_for, grids_for_version, image_get_for

    model = make_published_model(alice, "Previews")
    version = model.versions.get()
    grid = PreviewGrid.objects.create(model_version=version, render_key="k" * 64, image_key="g.png", thumb_key="g.webp",
                                      width=8, height=8, checkpoint_sha256="0" * 64)
    cell = PreviewImage.objects.create(grid=grid, row=0, col=0, prompt="p", seed=1, parameters="p", image_key="i.png",
                                       thumb_key="i.webp", width=8, height=8, sha256="0" * 64)
    act(carol, "preview", cell.pk, "hide", reason="not ok")
    grid.refresh_from_db()
    assert grid.moderation == "hidden"
    assert image_get_for(bob, cell.pk) is None and grid_get_for(bob, grid.pk) is None
    assert image_get_for(alice, cell.pk) is not None
    assert grids_for_version(version) == []
    act(carol, "preview", cell.pk, "takedown", reason="not ok at all")
    assert image_get_for(alice, cell.pk) is None and grid_get_for(alice, grid.pk) is None


def test_a_hidden_recipe_is_seen_by_its_owner_only(alice, bob, carol):
    from merges.registry.models import Recipe
    from merges.registry.selectors import recipe_get_for, recipes_visible_to

    recipe = Recipe.objects.create(owner=alice, slug="mix", title="Mix")
    act(carol, "recipe", recipe.pk, "hide", reason="impersonates someone")
    assert recipe_get_for(bob, recipe.pk) is None and recipe_get_for(None, recipe.pk) is None
    assert not recipes_visible_to(bob).filter(pk=recipe.pk).exists()
    assert recipe_get_for(alice, recipe.pk) is not None


def test_suspending_a_user_stops_keys_sign_in_and_hides_their_content(alice, bob, carol, client, api_client):
    from hub.accounts.services import api_key_create

    model = make_published_model(alice, "Suspended owner")
    token = api_key_create(user=alice, name="k", scopes=["read", "download"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/v1/me").status_code == 200
    client.force_login(alice)

    record = act(carol, "user", alice.pk, "suspend", reason="repeated stolen uploads")
    assert record.target_owner == alice and len(mail.outbox) == 1
    refused = api_client.get("/api/v1/me")
    assert refused.status_code == 401 and refused.json()["status"] == 401
    assert api_client.get(f"/api/download/models/{model.versions.get().pk}").status_code == 401
    assert client.get("/account/api-keys/").status_code == 302  # the session no longer signs her in
    from django.test import Client

    assert not Client().login(username="alice", password="alice-password-1")
    anonymous = Client()
    assert anonymous.get(f"/api/v1/models/{model.pk}").status_code == 404
    assert anonymous.get(f"/models/{model.pk}/{model.slug}/").status_code == 404

    with pytest.raises(ModerationError):
        act(carol, "user", carol.pk, "suspend")

    act(carol, "user", alice.pk, "restore", reason="appeal accepted")
    assert api_client.get("/api/v1/me").status_code == 200
    assert anonymous.get(f"/api/v1/models/{model.pk}").status_code == 200


def test_actions_are_refused_where_they_make_no_sense(alice, carol):
    model = make_published_model(alice, "Wrong actions")
    cases = [("model", model.pk, "suspend"), ("user", alice.pk, "hide"), ("model", model.pk, "release"),
             ("model", model.pk, "explode"), ("model", "9223372036854775808", "hide")]
    for kind, target_id, action in cases:
        with pytest.raises(ModerationError):
            act(carol, kind, target_id, action)
    with pytest.raises(ModerationError) as exc:
        act(carol, "model", model.pk, "hide", reason="  ")
    assert exc.value.code == "reason_required"
    assert not ModerationAction.objects.exists()


def test_the_actions_api_acts_and_reads_the_log(alice, carol):
    model = make_published_model(alice, "Via API")
    api = client_for(carol)
    response = api.post("/api/v1/moderation/actions", {"targetKind": "model", "targetId": str(model.pk),
                                                       "action": "takedown", "reason": "malware"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["actor"] == "carol"
    bad = api.post("/api/v1/moderation/actions", {"targetKind": "model", "targetId": str(model.pk),
                                                  "action": "suspend", "reason": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_action"
    log = api.get(f"/api/v1/moderation/actions?targetKind=model&targetId={model.pk}").json()["items"]
    assert [(a["action"], a["reason"]) for a in log] == [("takedown", "malware")]


def test_changing_the_nsfw_level_goes_through_the_catalogue_and_is_logged(alice, bob, carol):
    model = make_published_model(alice, "Too tame a label")
    image = add_image(model.versions.get(), alice)
    report_create(reporter=bob, target_kind="model", target_id=str(model.pk), reason="wrong_nsfw")
    record = act(carol, "model", model.pk, "nsfw_level", reason="explicit previews", nsfw_level=8)
    model.refresh_from_db()
    assert model.nsfw_level == 8 and record.details["to"] == 8
    act(carol, "image", image.pk, "nsfw_level", reason="explicit", nsfw_level=4)
    image.refresh_from_db()
    assert image.nsfw_level == 4
    with pytest.raises(ModerationError):
        act(carol, "model", model.pk, "nsfw_level", nsfw_level=3)
    assert Report.objects.get().status == "resolved"


def test_the_queue_page_dismisses_and_the_log_page_lists(alice, bob, carol, client):
    model = make_published_model(alice, "Dismissed")
    report_create(reporter=bob, target_kind="model", target_id=str(model.pk), reason="spam")
    client.force_login(carol)
    queue = client.get("/moderation/")
    assert queue.status_code == 200 and b"Dismissed" in queue.content and b"alice" in queue.content
    missing_reason = client.post("/moderation/act/", {"target_kind": "model", "target_id": str(model.pk),
                                                      "action": "dismiss", "reason": ""}, follow=True)
    assert b"Nothing done" in missing_reason.content and Report.objects.get().status == "open"
    with TestCase.captureOnCommitCallbacks(execute=True):
        done = client.post("/moderation/act/", {"target_kind": "model", "target_id": str(model.pk),
                                                "action": "dismiss", "reason": "not spam"}, follow=True)
    assert b"No open reports." in done.content
    assert Report.objects.get().status == "dismissed" and not mail.outbox  # the owner is not told of a dismissal
    log = client.get("/moderation/log/")
    assert b"not spam" in log.content and b"Dismissed the reports" in log.content
