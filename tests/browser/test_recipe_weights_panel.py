"""The recipe editor's Weights panel shows a LoRA's strength without scrolling past 26 block sliders."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from hub.demo.content import demo_recipe_document
from merges.registry.services import recipe_create
from tests.registry.conftest import tiny_checkpoint_bytes
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lora_strength_is_in_view_above_the_block_sliders(page, alice):
    base = make_published_model(alice, "Tiny Base", data=tiny_checkpoint_bytes(1)).versions.get()
    anime = make_published_model(alice, "Tiny Anime", data=tiny_checkpoint_bytes(2)).versions.get()
    lora = make_published_model(alice, "Tiny LoRA", type="LORA",
                                data=tiny_safetensors_bytes(3, kind="lora")).versions.get()
    recipe = recipe_create(owner=alice, title="Blend", source=demo_recipe_document(base.pk, anime.pk, lora.pk))

    page.goto(f"/login/?next=/recipes/{recipe.pk}/edit/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/recipes/{recipe.pk}/edit/")

    groups = page.locator("#weights-panel .weight-group")
    expect(groups.first).to_contain_text("apply_lora · strength")
    strength = page.get_by_label("styled strength slider", exact=True)
    page.get_by_role("heading", name="Weights").scroll_into_view_if_needed()
    expect(strength).to_be_in_viewport()
    expect(page.locator(".weight-group-blocks .weight-row")).to_have_count(26)
