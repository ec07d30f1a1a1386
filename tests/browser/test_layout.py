"""Layout checks in a real browser: pages fit a phone screen, the mobile menu
works, and nothing is fetched from another host.

Set MW_SCREENSHOT_DIR to keep full-page screenshots of each page for review.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub.catalog.models import Model
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.browser

DESCRIPTION = """A soft **watercolour** look for portraits and landscapes.

## How to use
1. Add `wcstyle` to the prompt.
2. Weight 0.6–0.8 works best; above 1.0 colours bleed.

| Sampler | Steps | CFG |
|---|---|---|
| DPM++ 2M Karras | 25 | 6.5 |

> Trained on 40 public-domain paintings.
"""


@pytest.fixture
def showcase(alice, bob):
    lora = make_published_model(
        alice,
        "Watercolor Dreams — a very long model name that has to wrap nicely on phones",
        data=tiny_safetensors_bytes(5, kind="lora", metadata={
            "ss_network_module": "networks.lora", "ss_network_dim": "32", "ss_network_alpha": "16",
            "ss_base_model_version": "sd_v1", "ss_output_name": "wcstyle",
        }),
        type="LORA",
        tags=["watercolor", "style", "painting", "portrait", "landscape", "soft"],
        description=DESCRIPTION,
        allow_commercial_use=["Image", "Rent"],
        allow_no_credit=False,
    )
    version = lora.versions.get()
    version.trained_words = ["wcstyle", "watercolor painting, soft light"]
    version.save()
    for i, (name, kind) in enumerate([("Anime Mix v3", "Checkpoint"), ("Ink Outline", "LORA"), ("Film Grain VAE", "VAE")]):
        make_published_model(bob, name, type=kind, tags=["demo"], data=tiny_safetensors_bytes(20 + i))
    Model.objects.filter(pk=lora.pk).update(download_count=12_345)
    return lora


def _shoot(page, name: str) -> None:
    folder = os.environ.get("MW_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _no_horizontal_overflow(page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the viewport"


@pytest.mark.parametrize("width, height, label", [(1280, 900, "desktop"), (375, 740, "phone")])
def test_pages_fit_the_screen_and_fetch_nothing_from_elsewhere(page, live_server, showcase, width, height, label):
    origin = urlsplit(live_server.url).netloc
    foreign: list[str] = []
    page.on("request", lambda r: urlsplit(r.url).netloc not in (origin, "") and foreign.append(r.url))
    page.set_viewport_size({"width": width, "height": height})

    page.goto("/")
    _shoot(page, f"listing-{label}")
    _no_horizontal_overflow(page)

    page.goto(f"/models/{showcase.pk}/{showcase.slug}/")
    page.get_by_text("Hashes").click()
    _shoot(page, f"model-{label}")
    _no_horizontal_overflow(page)

    page.goto("/signup/")
    _shoot(page, f"signup-{label}")
    _no_horizontal_overflow(page)

    assert not foreign, f"requests to other hosts: {foreign}"


def test_mobile_menu_opens_and_closes(page, showcase):
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto("/")
    menu = page.get_by_role("button", name="Menu")
    nav_link = page.get_by_role("navigation", name="Main").get_by_role("link", name="API docs")
    assert menu.is_visible() and not nav_link.is_visible()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true" and nav_link.is_visible()
    _shoot(page, "menu-phone")
    page.keyboard.press("Escape")
    assert menu.get_attribute("aria-expanded") == "false" and not nav_link.is_visible()


def test_copy_buttons_copy_trigger_words(page, browser_context, showcase):
    browser_context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/models/{showcase.pk}/{showcase.slug}/")
    page.get_by_role("button", name="Copy trigger word wcstyle").click()
    assert page.evaluate("navigator.clipboard.readText()") == "wcstyle"
    assert page.get_by_role("status").filter(has_text="Copied").count() == 1


def test_keyboard_users_can_skip_to_content(page, showcase):
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.is_visible()


@pytest.mark.parametrize("width, height, label", [(1280, 900, "desktop"), (375, 740, "phone")])
def test_api_key_pages_fit_the_screen(page, live_server, alice, width, height, label):
    from hub.accounts.services import api_key_create, api_key_revoke

    api_key_revoke(api_key=api_key_create(user=alice, name="old laptop", scopes=["read"]).api_key)
    api_key_create(user=alice, name="ComfyUI manager", scopes=["read", "download"])
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/login/?next=/account/api-keys/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/account/api-keys/")
    _shoot(page, f"api-keys-{label}")
    _no_horizontal_overflow(page)

    page.get_by_label("Name").fill("script")
    page.get_by_role("button", name="Create key").click()
    assert page.get_by_label("API key").input_value().startswith("mw_")
    _shoot(page, f"api-key-created-{label}")
    _no_horizontal_overflow(page)
