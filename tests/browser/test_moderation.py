"""Moderation in a real browser: B reports A's example image, a moderator hides it from the
queue page, A sees why on their model and image pages, and the audit log holds the action."""
from __future__ import annotations

import re

import pytest
from django.core import mail

from hub.moderation.models import ModerationAction, Report
from tests.moderation.conftest import add_image, carol, clear_moderation_limits  # noqa: F401  (carol: a fixture)
from tests.support.builders import make_published_model

pytestmark = pytest.mark.browser

REASON = "Shows a real person who did not agree to it"


def sign_in(browser_context, username: str, password: str):
    page = browser_context.new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))
    return page


def test_report_hide_notice_and_audit_log(browser, live_server, alice, bob, carol):
    clear_moderation_limits()
    model = make_published_model(alice, "Portrait LoRA", type="LORA")
    image = add_image(model.versions.get(), alice)
    contexts = [browser.new_context(base_url=live_server.url) for _ in range(3)]
    try:
        for context in contexts:
            context.set_default_timeout(15_000)
        b_ctx, mod_ctx, a_ctx = contexts

        # B finds the image from the model page and reports it.
        b = sign_in(b_ctx, "bob", "bob-password-1")
        b.goto(f"/models/{model.pk}/{model.slug}/")
        b.get_by_role("link", name=f"#{image.pk}").click()
        b.wait_for_url(re.compile(rf"/images/{image.pk}/$"))
        assert b.get_by_test_id("example-image").is_visible()
        b.get_by_role("link", name="Report image").click()
        b.get_by_label("A real person without their consent").check()
        b.get_by_label("Details").fill("This is my neighbour.")
        b.get_by_role("button", name="Send report").click()
        assert b.get_by_text("a moderator will look at your report").is_visible()
        report = Report.objects.get()
        assert (report.reporter, report.target_kind, report.target_id) == (bob, "image", str(image.pk))

        # The moderator opens the queue from the navigation and hides the image.
        m = sign_in(mod_ctx, "carol", "carol-password-1")
        m.get_by_role("navigation", name="Main").get_by_role("link", name="Moderation").click()
        entry = m.get_by_test_id("queue-entry").filter(has_text=f"example image {image.pk}")
        assert entry.get_by_text("A real person without their consent", exact=True).is_visible()
        assert entry.get_by_text("This is my neighbour.").is_visible()
        assert entry.get_by_role("link", name="alice").is_visible()  # the owner
        entry.get_by_test_id("action-select").select_option("hide")
        entry.get_by_test_id("action-reason").fill(REASON)
        entry.get_by_test_id("action-submit").click()
        assert m.get_by_text("The owner has been told").is_visible()
        assert m.get_by_text("No open reports.").is_visible()

        # Others no longer see it; A does, with the notice, on the model page and the image page.
        assert b.goto(f"/images/{image.pk}/").status == 404
        a = sign_in(a_ctx, "alice", "alice-password-1")
        a.goto(f"/models/{model.pk}/{model.slug}/")
        notice = a.get_by_test_id("moderation-notice")
        assert "Hidden by a moderator" in notice.inner_text() and REASON in notice.inner_text()
        a.goto(f"/images/{image.pk}/")
        assert REASON in a.get_by_test_id("moderation-notice").inner_text()
        assert a.get_by_test_id("example-image").is_visible()

        # The audit log holds the action: on the page and in the database.
        m.get_by_role("link", name="audit log").click()
        row = m.get_by_test_id("audit-row").first
        assert "carol" in row.inner_text() and "Hid" in row.inner_text() and REASON in row.inner_text()
        action = ModerationAction.objects.get()
        assert (action.actor, action.action, action.target_kind, action.target_id, action.reason) == (
            carol, "hide", "image", str(image.pk), REASON)
        assert action.target_owner == alice
        assert [m.to for m in mail.outbox] == [["alice@example.com"]] and REASON in mail.outbox[0].body
    finally:
        for context in contexts:
            context.close()
