"""Two users in two browsers: B follows A, A publishes a version, B sees the unread badge and the
Following feed, reviews and comments; A sees both notifications and replies to each.

The follower fan-out runs on a real Celery worker (the request only enqueues it).
"""
from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.support.builders import add_published_version, make_published_model, tiny_safetensors_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=username)).to_be_visible()


def test_follow_publish_review_comment_notify_reply(live_worker, live_server, browser, page, alice, bob,
                                                    local_storage):
    cache.clear()
    model = make_published_model(alice, "Dream Mix", data=tiny_safetensors_bytes(601))
    live_worker("default")

    # B follows A.
    sign_in(page, "bob", "bob-password-1")
    page.goto("/users/alice/")
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_text("You now follow alice.")).to_be_visible()
    expect(page.get_by_test_id("follow")).to_contain_text("1 follower")

    # A publishes a version; the worker tells B.
    add_published_version(model, "v2", data=tiny_safetensors_bytes(602))
    badge = page.get_by_test_id("unread-badge")
    for _ in range(60):
        page.goto("/")
        page.wait_for_load_state("networkidle")  # the badge is filled from the API after the page
        if badge.count():
            break
        page.wait_for_timeout(500)
    expect(badge).to_have_text(re.compile(r"^1\s*unread$"))

    # The Following tab shows the new version.
    page.get_by_role("link", name="Following").click()
    feed = page.get_by_test_id("following-feed")
    expect(feed).to_contain_text("Dream Mix v2")
    feed.get_by_role("link", name="Dream Mix v2").click()
    expect(page.get_by_role("heading", name="v2", exact=True)).to_be_visible()

    # B reviews v2 and comments.
    page.get_by_label("Recommend", exact=True).check()
    page.get_by_label("Your review (optional, Markdown)").fill("Sharper than **v1**.")
    page.get_by_role("button", name="Post review").click()
    expect(page.get_by_text("Your review is saved.")).to_be_visible()
    expect(page.get_by_test_id("review-summary")).to_contain_text("1 recommend")
    page.get_by_label("Add a comment (Markdown)").fill("Which sampler do you use?")
    page.get_by_role("button", name="Comment", exact=True).click()
    expect(page.get_by_test_id("comment")).to_contain_text("Which sampler do you use?")

    # A sees both notifications and replies to each.
    other = browser.new_context(base_url=live_server.url)
    a_page = other.new_page()
    sign_in(a_page, "alice", "alice-password-1")
    expect(a_page.get_by_test_id("unread-badge")).to_have_text(re.compile(r"^2\s*unread$"))
    a_page.get_by_test_id("notifications-link").click()
    notes = a_page.get_by_test_id("notifications")
    expect(notes).to_contain_text("bob recommends Dream Mix v2")
    expect(notes).to_contain_text("bob commented on Dream Mix")
    notes.get_by_role("link", name="bob recommends Dream Mix v2").click()
    a_page.get_by_label("Reply to bob").fill("Thank you!")
    a_page.get_by_role("button", name="Reply", exact=True).first.click()
    expect(a_page.get_by_test_id("owner-reply")).to_contain_text("Thank you!")
    a_page.locator(".reply-form summary").first.click()
    a_page.locator(".reply-form textarea").first.fill("Euler a, 28 steps.")
    a_page.locator(".reply-form").get_by_role("button", name="Reply").first.click()
    expect(a_page.locator(".comment-replies")).to_contain_text("Euler a, 28 steps.")
    other.close()

    # B hears about both replies.
    page.goto("/notifications/")
    expect(page.get_by_test_id("notifications")).to_contain_text("alice replied to your review of Dream Mix")
    expect(page.get_by_test_id("notifications")).to_contain_text("alice replied to your comment on Dream Mix")
