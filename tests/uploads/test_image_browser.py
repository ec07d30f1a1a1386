"""In a real browser: covers on the home page, the gallery's lightbox with generation parameters, and an
R-rated image blurred for an anonymous visitor."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.builders import make_published_model
from tests.uploads.test_example_images import PARAMS, png, ready

pytestmark = pytest.mark.browser


def screenshot(page, name: str) -> None:
    """Set MW_SCREENSHOT_DIR to keep full-page screenshots for review, as tests/browser/test_layout.py does."""
    if folder := os.environ.get("MW_SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def pictured(alice):
    main = make_published_model(alice, "Lighthouse Mix")
    version = main.versions.get()
    first = ready(version, alice, png(size=(640, 480), color=(30, 90, 160)))
    ready(version, alice, png(size=(480, 640), color=(160, 90, 30)))
    risky = ready(version, alice, png(text={"parameters": "hidden r prompt\nSteps: 9, Sampler: Euler, CFG scale: 3"},
                                      color=(200, 0, 0)), nsfw_level=4)
    for name, color in (("Forest Blend", (20, 140, 60)), ("Desert LoRA", (220, 180, 90))):
        other = make_published_model(alice, name)
        ready(other.versions.get(), alice, png(size=(300, 300), color=color))
    return main, first, risky


def test_covers_lightbox_parameters_and_blur_for_anonymous_visitors(page, pictured):
    model, first, risky = pictured
    page.goto("/")
    covers = page.locator("[data-testid=cover-image]")
    assert covers.count() >= 3
    for i in range(covers.count()):
        covers.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=covers.nth(i).element_handle())
    screenshot(page, "home-covers")

    page.goto(f"/models/{model.pk}/{model.slug}/")
    blurred = page.locator("[data-testid=gallery-item][data-level=R] img[data-testid=blurred-image]")
    assert blurred.count() == 1
    assert blurred.get_attribute("src").endswith(f"/api/v1/images/{risky.pk}/blur")
    assert "blur(" in blurred.evaluate("img => getComputedStyle(img).filter")
    assert page.locator(f"img[src*='/api/v1/images/{risky.pk}/thumb']").count() == 0
    assert "hidden r prompt" not in page.content()
    screenshot(page, "model-gallery")

    page.locator("[data-testid=gallery-item] .gallery-open").first.click()
    lightbox = page.locator("[data-testid=lightbox]")
    lightbox.wait_for(state="visible")
    fields = page.locator("[data-testid=lightbox-fields]")
    assert fields.locator("dd[data-field=seed]").inner_text() == "1234567"
    assert fields.locator("dd[data-field=prompt]").inner_text() == "a lighthouse at dusk, oil painting"
    assert fields.locator("dd[data-field=negativePrompt]").inner_text() == "blurry, lowres"
    assert fields.locator("dd[data-field=sampler]").inner_text() == "DPM++ 2M Karras"
    assert fields.locator("dd[data-field=cfgScale]").inner_text() == "6.5"
    assert fields.locator("dd[data-field=size]").inner_text() == "640x480"
    assert fields.locator("dd[data-field=modelHash]").inner_text() == "6ce0161689"
    assert page.locator("#lightbox-parameters").inner_text() == PARAMS
    page.wait_for_function("() => document.getElementById('lightbox-image').naturalWidth > 0")
    copy = page.locator("[data-testid=copy-parameters]")
    copy.click()
    page.wait_for_function("b => b.textContent !== 'Copy parameters'", arg=copy.element_handle())
    assert copy.inner_text() in ("Copied", "Press Ctrl+C")
    screenshot(page, "lightbox")
    page.keyboard.press("Escape")
    lightbox.wait_for(state="hidden")


def test_an_opted_in_viewer_reveals_a_blurred_image_with_a_click(browser, live_server, pictured, bob, client):
    from django.conf import settings

    from hub.accounts.services import account_browsing_level_set

    model, _, risky = pictured
    account_browsing_level_set(user=bob, level=1, reveal_blurred=True)
    client.force_login(bob)
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                          "url": live_server.url}])
    page = context.new_page()
    page.goto(f"/models/{model.pk}/{model.slug}/")
    item = page.locator("[data-testid=gallery-item][data-level=R]")
    item.locator(".gallery-reveal").click()
    shown = item.locator(f"img[src$='/api/v1/images/{risky.pk}/thumb']")
    shown.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    shown.click()
    assert page.locator("dd[data-field=prompt]").inner_text() == "hidden r prompt"
    context.close()
