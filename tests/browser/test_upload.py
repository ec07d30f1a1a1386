"""Uploading through the website in a real browser: S3 (moto), a real Celery worker, resume and publish."""
from __future__ import annotations

import re
import urllib.request

import pytest
from playwright.sync_api import expect

from hub.catalog.models import ModelVersion
from hub.uploads.models import Upload
from tests.uploads.files import lora_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]

PART = 5 * 1024 * 1024  # S3's smallest part, so a 16 MB LoRA comes in four


def sign_in(page, next_path: str = "/upload/") -> None:
    page.goto(f"/login/?next={next_path}")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_path}")


def track_progress(page) -> list[float]:
    """Every value the progress bar takes, across navigations."""
    seen: list[float] = []
    page.expose_function("mwProgress", lambda value: seen.append(float(value)))
    page.add_init_script("""
      document.addEventListener("DOMContentLoaded", () => {
        const bar = document.getElementById("upload-progress");
        if (bar) new MutationObserver(() => window.mwProgress(bar.value)).observe(bar, {attributes: true});
      });
    """)
    return seen


def track_phase_by_progress(page) -> list[tuple[float, str]]:
    """(progress, phase text) each time the progress bar moves: the text must say what is happening."""
    seen: list[tuple[float, str]] = []
    page.expose_function("mwPhase", lambda value, text: seen.append((float(value), text)))
    page.add_init_script("""
      document.addEventListener("DOMContentLoaded", () => {
        const bar = document.getElementById("upload-progress");
        const phase = document.getElementById("upload-phase");
        if (bar && phase) new MutationObserver(() => window.mwPhase(bar.value, phase.textContent))
          .observe(bar, {attributes: true});
      });
    """)
    return seen


def test_upload_interrupt_resume_prefill_publish_list_and_download(page, live_server, live_worker, alice, settings,
                                                                    tmp_path):
    settings.UPLOAD_PART_SIZE = PART
    data = lora_bytes(min_bytes=16 * 1024 * 1024, seed=31)
    path = tmp_path / "mychar.safetensors"
    path.write_bytes(data)
    live_worker()
    progress = track_progress(page)
    phases = track_phase_by_progress(page)
    sign_in(page)

    # The connection drops for parts 3 and 4: parts 1 and 2 arrive, then the page says it stopped.
    dropped = re.compile(r".*partNumber=[34]\b.*")
    page.route(dropped, lambda route: route.abort("connectionreset"))
    page.set_input_files("#upload-file", str(path))
    expect(page.locator("#upload-error")).to_contain_text("Your progress is saved", timeout=60_000)
    upload = Upload.objects.get(owner=alice)
    assert upload.part_count == 4 and upload.status == "receiving"

    # Reload: the page lists the unfinished upload; the same file resumes from the server's parts.
    page.unroute(dropped)
    page.reload()
    expect(page.locator("#unfinished")).to_contain_text("mychar.safetensors")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "PUT" else None)
    progress.clear()
    page.set_input_files("#upload-file", str(path))
    page.wait_for_url(re.compile(r".*/upload/[0-9a-f-]{36}/$"), timeout=60_000)
    assert max(progress) == 100
    assert sorted(re.search(r"partNumber=(\d+)", u).group(1) for u in sent) == ["3", "4"]
    moving = [text for value, text in phases if 0 < value < 100]
    assert moving and "Preparing…" not in moving
    assert "Sending the remaining 2 of 4 parts…" in moving

    # The worker checks the file; the page updates by itself and shows the pre-filled form.
    trigger = page.get_by_label("Trigger words")
    expect(trigger).to_have_value("mychar, <b>bold</b>", timeout=60_000)  # 1girl, smile: too generic
    expect(page.locator("#fact-rank")).to_have_text("16")
    expect(page.locator("#fact-detected")).to_have_text("LoRA for SD 1.x")
    expect(page.get_by_label("Type", exact=True)).to_have_value("LORA")
    # "Checkpoint type" is for checkpoints: it appears only when the type says so.
    expect(page.get_by_label("Checkpoint type")).to_be_hidden()
    page.get_by_label("Type", exact=True).select_option("Checkpoint")
    expect(page.get_by_label("Checkpoint type")).to_be_visible()
    page.get_by_label("Type", exact=True).select_option("LORA")
    expect(page.get_by_label("Checkpoint type")).to_be_hidden()
    expect(page.get_by_label("Base model")).to_have_value("SD 1.5")
    assert page.locator("b", has_text="bold").count() == 0  # metadata is text, never markup

    page.get_by_label("Model name").fill("My Char LoRA")
    page.get_by_label("Tags").fill("character, anime")
    page.get_by_label("Description").fill("Trained on **40** images.\n\n<script>window.pwned = 1</script>")
    page.get_by_role("button", name="Preview description").click()
    expect(page.locator("#description-preview strong")).to_have_text("40")
    assert page.evaluate("window.pwned") is None
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(re.compile(r".*/models/\d+/[\w-]+/.*"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("My Char LoRA")

    page.goto("/models/")
    expect(page.get_by_role("link", name="My Char LoRA")).to_be_visible()

    version = ModelVersion.objects.get(model__name="My Char LoRA")
    assert version.status == "published" and version.trained_words[0] == "mychar"
    from hub.accounts.services import api_key_create

    token = api_key_create(user=alice, name="dl", scopes=["download"]).plaintext
    with urllib.request.urlopen(f"{live_server.url}/api/download/models/{version.pk}?token={token}", timeout=60) as r:
        assert r.read() == data


def test_a_rejected_file_shows_its_reason_and_cancel_works(page, live_server, live_worker, alice, tmp_path):
    from merges.engine import hostile

    live_worker()
    sign_in(page)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(hostile.overlapping_offsets())
    page.set_input_files("#upload-file", str(bad))
    page.wait_for_url(re.compile(r".*/upload/[0-9a-f-]{36}/$"))
    reason = page.locator("#upload-reason")
    expect(reason).to_contain_text("Rejected", timeout=60_000)
    expect(reason).to_contain_text("overlap")

    # Cancel a second upload while its parts are held back.
    page.goto("/upload/")
    page.route(re.compile(r".*partNumber=.*"), lambda route: None)  # never answered
    big = tmp_path / "big.safetensors"
    big.write_bytes(lora_bytes(min_bytes=6 * 1024 * 1024))
    page.set_input_files("#upload-file", str(big))
    expect(page.locator("#upload-progress-area")).to_be_visible()
    page.get_by_role("button", name="Cancel upload").click()
    expect(page.locator("#upload-progress-area")).to_be_hidden()
    assert Upload.objects.get(filename="big.safetensors").status == "aborted"


def test_sign_in_is_required(page, live_server):
    page.goto("/upload/")
    expect(page).to_have_url(re.compile(r".*/login/\?next=/upload/"))
