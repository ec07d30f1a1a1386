"""Forking a recipe in a real browser: fork, change one block weight with the editor,
run it on a real Celery worker, watch the progress, and open the output's lineage graph."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from merges.registry.models import MergeJob
from merges.registry.services import recipe_create
from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes
from tests.support.builders import make_published_model

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=username)).to_be_visible()


def test_fork_edit_block_weight_run_and_open_lineage(live_worker, page, alice, bob):
    base = make_published_model(alice, "Tiny Base", data=tiny_checkpoint_bytes(1)).versions.get()
    anime = make_published_model(alice, "Tiny Anime", data=tiny_checkpoint_bytes(2)).versions.get()
    recipe = recipe_create(owner=alice, title="Soft Anime Mix", source=sd1_document(base.pk, anime.pk))
    live_worker()

    sign_in(page, "bob", "bob-password-1")
    page.goto(f"/recipes/{recipe.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Soft Anime Mix")
    page.get_by_role("button", name="Fork").click()
    expect(page.get_by_text("Forked alice/soft-anime-mix v1")).to_be_visible()
    fork_url = page.url
    assert re.search(r"/recipes/\d+/$", fork_url) and f"/recipes/{recipe.pk}/" not in fork_url

    # The editor: one slider and number box per block; changing IN04 rewrites the document.
    page.get_by_role("link", name="Edit").click()
    in04 = page.get_by_label("tune alpha IN04", exact=True)
    expect(in04).to_have_value("0")
    expect(page.locator('.weight-group:has-text("tune") .weight-row')).to_have_count(26)
    in04.fill("0.85")
    in04.dispatch_event("change")
    document = page.get_by_role("textbox", name="Document")
    expect(document).to_have_value(re.compile(r'"blocks": \[0(\.0)?, 0\.1, 0\.2, 0\.3, 0\.4, 0\.85, '))
    expect(page.get_by_label("tune alpha IN04 slider", exact=True)).to_have_value("0.85")
    expect(page.get_by_text("The recipe is valid.")).to_be_visible()
    page.get_by_label("What changed").fill("stronger IN04")
    page.get_by_role("button", name="Save version 2").click()
    expect(page.get_by_text("Saved version 2.")).to_be_visible()

    # Run it and watch the job to the end.
    page.get_by_role("button", name="Run v2").click()
    # The page rewrites the "queued" notice as soon as it sees the job running.
    expect(page.get_by_text(re.compile(r"Merge job \d+ (queued for version 2|for version 2 is (queued|running))"))).to_be_visible()
    status = page.get_by_test_id("job-status").first
    expect(status).to_have_text("succeeded", timeout=240_000)
    job = MergeJob.objects.get()
    assert job.status == "succeeded" and job.requested_by == bob
    assert page.locator(".job-progress").first.evaluate("p => p.value") == 1

    # The output's model page, and its lineage graph.
    page.get_by_role("link", name=re.compile(r"^Output: Soft Anime Mix v2")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Soft Anime Mix")
    page.get_by_test_id("lineage-link").click()
    graph = page.get_by_test_id("lineage-graph")
    expect(graph).to_be_visible()
    expect(graph.locator(".lineage-edge")).to_have_count(2)
    expect(graph.locator(".lineage-root")).to_contain_text("Soft Anime Mix")
    expect(graph).to_contain_text("Tiny Base")
    expect(graph).to_contain_text("Tiny Anime")
    expect(graph.locator(".lineage-label").first).to_contain_text("v2")
