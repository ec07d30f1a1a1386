"""The owner asks for previews on the model page; a real worker renders them; the page shows the grid."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from hub.previews.models import RenderJob
from tests.browser.test_recipe_fork_run import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def test_owner_renders_previews_from_the_model_page(live_worker, page, checkpoint, base_configs_root, monkeypatch, tmp_path):
    monkeypatch.setenv("BASE_CONFIGS_DIR", str(base_configs_root))
    monkeypatch.setenv("RENDER_DEVICE", "cpu")
    live_worker()
    sign_in(page, "alice", "alice-password-1")
    page.goto(f"/models/{checkpoint.model_id}/{checkpoint.model.slug}/")
    section = page.get_by_test_id("previews")
    expect(section.get_by_text("No previews yet.")).to_be_visible()

    section.get_by_text("Prompts and seeds (optional)").click()
    section.get_by_label("Prompts, one per line").fill("a red chair\nportrait of a woman")
    section.get_by_label("Seeds").fill("7 8")
    section.get_by_role("button", name="Render previews").click()
    expect(page.get_by_text("Rendering 4 preview images")).to_be_visible()

    # previews.js follows the job and reloads the page when it is done.
    grid = page.get_by_test_id("preview-grid")
    expect(grid).to_be_visible(timeout=240_000)
    job = RenderJob.objects.get()
    assert job.status == "succeeded" and job.spec["seeds"] == [7, 8]
    image = grid.get_by_role("img", name=re.compile("Preview grid: 2 rows by 2 columns"))
    expect(image).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) == job.grid.width
    grid.get_by_text("Single images and their parameters").click()
    expect(grid.get_by_text(re.compile(r"Steps: 2, Sampler: Euler a, CFG scale: 5, Seed: 8"))).to_have_count(2)
    page.screenshot(path=str(tmp_path / "model-page-previews.png"), full_page=True)
