"""The API docs render with no internet: every request to another host is refused."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _cut_the_network(page) -> list[str]:
    refused: list[str] = []

    def route(r):
        url = r.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS or url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            refused.append(url)
            r.abort("internetdisconnected")

    page.route("**/*", route)
    return refused


def test_swagger_ui_lists_operations_offline(page):
    refused = _cut_the_network(page)
    page.goto("/api/docs/")
    models_list = page.locator(".opblock-get:has(.opblock-summary-path[data-path='/api/v1/models'])").first
    models_list.wait_for()
    assert page.locator(".opblock").count() > 20
    models_list.locator(".opblock-summary").click()
    page.get_by_text("baseModels").first.wait_for()  # the operation's parameters expand
    assert refused == []


def test_redoc_lists_operations_offline(page):
    refused = _cut_the_network(page)
    page.goto("/api/redoc/")
    page.get_by_role("heading", name="Mergeworks API").wait_for()
    page.get_by_role("heading", name="Start an upload").wait_for()
    assert refused == []
    assert "fonts.googleapis.com" not in page.content()
