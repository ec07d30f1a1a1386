"""A newcomer's first minutes: `make run` on a fresh data folder, then a browser.

This runs the README's own start command (infra/scripts/run-hub.sh) in embedded
mode: SQLite, local disk, Celery's filesystem transport, with none of the
production variables the rest of the suite sets. Nothing is pressed on the
site: the seed queues the demo's preview grids, the worker renders them, and
their first images become example images. Then a visitor finds pictures on the
home page, a grid on the demo model, the parameters in the lightbox, and an
R-rated image blurred.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.worker]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _embedded_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "S3_", "DJANGO_SETTINGS_MODULE", "MERGEWORKS_"))}
    env.update(MERGEWORKS_DATA_DIR=str(data_dir), HOST="127.0.0.1", PORT=str(port), PYTHONUNBUFFERED="1")
    return env


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"make run exited early:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def hub_from_make_run(tmp_path):
    data_dir, port = tmp_path / "data", _free_port()
    log = tmp_path / "make-run.log"
    env = _embedded_env(data_dir, port)
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "infra/scripts/run-hub.sh"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/v1/health/live", proc, log, timeout=240)
        yield f"http://127.0.0.1:{port}", env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _manage(env: dict[str, str], code: str) -> str:
    result = subprocess.run([PY, "manage.py", "shell", "-v", "0", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def test_make_run_shows_pictures_grids_parameters_and_blur(hub_from_make_run, browser, tmp_path):
    base_url, env = hub_from_make_run
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        # The demo's grids and example images arrive on their own; the page is only reloaded.
        deadline = time.monotonic() + 300
        covers = 0
        while time.monotonic() < deadline:
            page.goto("/")
            covers = page.locator("[data-testid=cover-image]").count()
            if covers >= 3:
                break
            time.sleep(3)
        assert covers >= 3, f"the home page shows {covers} cover images"
        page.screenshot(path=str(tmp_path / "home.png"), full_page=True)

        model_url = _manage(env, "from hub.catalog.models import Model; "
                                 "m = Model.objects.get(name='Tiny SD1 Base'); print(f'/models/{m.pk}/{m.slug}/')")
        page.goto(model_url)
        grid = page.get_by_test_id("preview-grid")
        grid.wait_for(state="visible", timeout=60_000)
        cell = grid.get_by_role("img").first
        cell.scroll_into_view_if_needed()  # the grid's image loads lazily, below the gallery
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=cell.element_handle(),
                               timeout=30_000)

        deadline = time.monotonic() + 120
        while page.locator("[data-testid=gallery-item][data-kind=image] .gallery-open").count() == 0:
            assert time.monotonic() < deadline, "the demo's example images were never processed"
            time.sleep(2)
            page.reload()
        page.locator("[data-testid=gallery-item][data-kind=image] .gallery-open").first.click()
        page.locator("[data-testid=lightbox]").wait_for(state="visible")
        assert "a photo of a cat" in page.locator("#lightbox-parameters").inner_text()
        assert page.locator("[data-testid=lightbox-fields] dd[data-field=steps]").inner_text() == "8"
        page.screenshot(path=str(tmp_path / "lightbox.png"))

        # A moderator rates one of the demo's images R: an anonymous visitor gets it blurred.
        _manage(env, "from hub.catalog.models import Model; from hub.uploads.image_services import "
                     "image_nsfw_level_set; v = Model.objects.get(name='Tiny SD1 Base').versions.get(); "
                     "image_nsfw_level_set(image=v.images.order_by('position').last(), level=4)")
        page.goto(model_url)
        blurred = page.locator("[data-testid=gallery-item][data-level=R] img[data-testid=blurred-image]")
        assert blurred.count() == 1
        assert "blur(" in blurred.evaluate("img => getComputedStyle(img).filter")
        page.screenshot(path=str(tmp_path / "blurred.png"), full_page=True)
    finally:
        context.close()
