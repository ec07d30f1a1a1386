"""Reports: who may file them, deduplication per user and object, the rate limit, copyright claims."""
from __future__ import annotations

import pytest

from hub.moderation.models import Report
from tests.moderation.conftest import add_image, client_for
from tests.support.builders import make_published_model

pytestmark = pytest.mark.django_db


def test_a_signed_in_user_reports_a_model_once(alice, bob):
    model = make_published_model(alice, "Reported")
    api = client_for(bob)
    first = api.post("/api/v1/reports", {"targetKind": "model", "targetId": str(model.pk), "reason": "spam"},
                     format="json")
    assert first.status_code == 201, first.content
    assert first.json()["duplicate"] is False
    again = api.post("/api/v1/reports", {"targetKind": "model", "targetId": str(model.pk), "reason": "illegal"},
                     format="json")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert Report.objects.filter(target_kind="model", target_id=str(model.pk)).count() == 1


@pytest.mark.parametrize("kind", ["version", "image", "user"])
def test_every_kind_can_be_reported(alice, bob, kind):
    model = make_published_model(alice, f"Kinds {kind}")
    version = model.versions.get()
    target = {"version": version.pk, "image": add_image(version, alice).pk, "user": alice.pk}[kind]
    response = client_for(bob).post("/api/v1/reports", {"targetKind": kind, "targetId": str(target),
                                                        "reason": "other", "details": "see for yourself"}, format="json")
    assert response.status_code == 201, response.content


def test_a_recipe_can_be_reported(alice, bob):
    from merges.registry.models import Recipe

    recipe = Recipe.objects.create(owner=alice, slug="r", title="R")
    response = client_for(bob).post("/api/v1/reports", {"targetKind": "recipe", "targetId": str(recipe.pk),
                                                        "reason": "impersonation"}, format="json")
    assert response.status_code == 201, response.content


def test_bad_reports_are_json_4xx(alice, bob, api_client):
    model = make_published_model(alice, "Bad reports", visibility="private")
    public = make_published_model(alice, "Public one")
    api = client_for(bob)
    cases = [
        ({"targetKind": "upload", "targetId": "1", "reason": "spam"}, 400),  # quarantined files are not reportable
        ({"targetKind": "comment", "targetId": "999999", "reason": "spam"}, 404),
        ({"targetKind": "model", "targetId": str(public.pk), "reason": "boring"}, 400),
        ({"targetKind": "model", "targetId": str(public.pk), "reason": "other"}, 400),  # other needs details
        ({"targetKind": "model", "targetId": "9223372036854775808", "reason": "spam"}, 404),
        ({"targetKind": "model", "targetId": "abc", "reason": "spam"}, 404),
        ({"targetKind": "model", "targetId": str(model.pk), "reason": "spam"}, 404),  # private: not visible to bob
    ]
    for body, status in cases:
        response = api.post("/api/v1/reports", body, format="json")
        assert response.status_code == status, (body, response.content)
        assert response["Content-Type"].startswith("application/json") and response.json()["status"] == status
    anonymous = api_client.post("/api/v1/reports", cases[2][0], format="json")
    assert anonymous.status_code in (401, 403) and anonymous.json()["code"]
    assert not Report.objects.exists()


def test_reports_are_rate_limited_per_user_in_the_shared_cache(alice, bob, settings):
    settings.MODERATION_REPORTS_PER_HOUR = 2
    models = [make_published_model(alice, f"Limit {i}") for i in range(3)]
    api = client_for(bob)

    def report(model):
        return api.post("/api/v1/reports", {"targetKind": "model", "targetId": str(model.pk), "reason": "spam"},
                        format="json")

    assert report(models[0]).status_code == 201
    assert report(models[1]).status_code == 201
    # A duplicate is answered from the database and does not count.
    assert report(models[0]).status_code == 200
    limited = report(models[2])
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert Report.objects.count() == 2
    # The count is in the cache every process shares, not in this process.
    from django.core.cache import cache

    assert cache.get(f"moderation:rl:report:{bob.pk}") == 3


def test_the_report_page_files_a_report(alice, bob, client):
    model = make_published_model(alice, "Page report")
    client.force_login(bob)
    page = client.get(f"/report/model/{model.pk}/")
    assert page.status_code == 200 and b"Send report" in page.content
    response = client.post(f"/report/model/{model.pk}/", {"reason": "no_consent", "details": "that is me"})
    assert response.status_code == 302
    report = Report.objects.get()
    assert (report.reporter, report.reason, report.details) == (bob, "no_consent", "that is me")
    assert client.get("/report/model/999999/").status_code == 404


def test_a_copyright_claim_needs_no_account_and_becomes_a_stolen_upload_report(alice, client, settings):
    settings.MODERATION_CLAIMS_PER_HOUR = 1
    model = make_published_model(alice, "Claimed")
    version = model.versions.get()
    form = {"claimant_name": "Dana Artist", "claimant_email": "dana@example.org",
            "url": f"http://testserver/models/{model.pk}/{model.slug}/?modelVersionId={version.pk}",
            "original_work": "My LoRA, published on my site in 2024", "good_faith": "on"}
    response = client.post("/copyright/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    report = Report.objects.get()
    assert report.reporter is None and report.reason == Report.Reason.STOLEN
    assert (report.target_kind, report.target_id) == ("version", str(version.pk))
    assert report.claimant_email == "dana@example.org" and "2024" in report.details
    # Past the limit for this address: refused, nothing stored.
    again = client.post("/copyright/", {**form, "url": f"/models/{model.pk}/"})
    assert again.status_code == 429
    assert Report.objects.count() == 1


def test_a_claim_must_be_in_good_faith_and_name_a_page_here(alice, client):
    model = make_published_model(alice, "Claimed 2")
    base = {"claimant_name": "Dana", "claimant_email": "dana@example.org", "original_work": "mine"}
    no_faith = client.post("/copyright/", {**base, "url": f"/models/{model.pk}/"})
    assert no_faith.status_code == 200 and b"errorlist" in no_faith.content
    elsewhere = client.post("/copyright/", {**base, "url": "https://example.com/x", "good_faith": "on"})
    assert elsewhere.status_code == 200 and b"must name a public model" in elsewhere.content
    assert not Report.objects.exists()
