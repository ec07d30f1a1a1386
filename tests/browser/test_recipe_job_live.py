"""A recipe page follows its merge job in a real browser, on a real Celery worker:
real progress while it merges, then the output in the job, in Outputs and in the
notice that said "queued", all without a reload."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from merges.registry.models import MergeJob
from merges.registry.services import recipe_create
from tests.browser.test_recipe_fork_run import sign_in
from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes
from tests.support.builders import make_published_model

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def test_recipe_page_follows_its_job_to_the_output(live_worker, page, alice, monkeypatch):
    # Slow the merge down (968 tensors) so that the page is seen mid-merge; no preview renders.
    monkeypatch.setenv("MERGE_DEBUG_TENSOR_DELAY", "0.01")
    monkeypatch.setenv("MERGE_PREVIEWS", "false")
    base = make_published_model(alice, "Tiny Base", data=tiny_checkpoint_bytes(1)).versions.get()
    anime = make_published_model(alice, "Tiny Anime", data=tiny_checkpoint_bytes(2)).versions.get()
    recipe = recipe_create(owner=alice, title="Soft Anime Mix", source=sd1_document(base.pk, anime.pk))
    live_worker()

    sign_in(page, "alice", "alice-password-1")
    page.goto(f"/recipes/{recipe.pk}/")
    outputs = page.get_by_test_id("recipe-outputs")
    expect(outputs).to_contain_text("No outputs yet.")
    page.get_by_role("button", name="Run v1").click()
    notice = page.locator(".messages .notice")
    # The notice says "queued" until the page's first look at the job rewrites it.
    expect(notice).to_have_text(re.compile(r"^Merge job \d+ (queued for version 1|for version 1 is (queued|running))\."))
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page

    item = page.locator(".job").first
    phase = item.get_by_test_id("job-phase")
    expect(phase).to_have_text(re.compile(r"^Merging: [1-9][\d,]* / 968 tensors · .* · \d+%$"), timeout=120_000)
    fraction = item.locator(".job-progress").evaluate("p => p.position")
    assert 0 < fraction < 1
    assert "0 / 0" not in item.inner_text()

    expect(item.get_by_test_id("job-status")).to_have_text("succeeded", timeout=240_000)
    expect(phase).to_have_text(re.compile(r"^Done: 968 tensors in [\d.]+ s$"))
    assert item.locator(".job-progress").evaluate("p => p.value") == 1
    job = MergeJob.objects.get()
    assert job.status == "succeeded" and job.output_id

    expect(notice).to_have_text(re.compile(rf"^Merge job {job.pk} for version 1 succeeded: Soft Anime Mix v1$"))
    expect(page.get_by_text("queued")).to_have_count(0)
    output_link = outputs.get_by_role("link", name="Soft Anime Mix v1")
    expect(output_link).to_be_visible()
    expect(outputs).not_to_contain_text("No outputs yet.")
    assert page.evaluate("window.__sameDocument") is True

    output_link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Soft Anime Mix")
    assert f"modelVersionId={job.output_id}" in page.url
