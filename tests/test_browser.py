"""A real browser on the real server: headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) driven by
Playwright uploads the bundled sample video, reads the verdict off the page, plays the annotated video, toggles the
CAM view, saves a screenshot to ``outputs/web_screenshot.png`` and deletes the video.

Without Chromium the test is skipped, unless ``FORGELAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a
failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.assets import SAMPLE_VIDEO
from web.app import Settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]  # fmt: skip


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The app with MesoNet's published Meso4 on uvicorn, on a free local port."""
    from tests.test_web import MESO
    from web.benchmark import running
    from web.models import load_models

    models = load_models([MESO], "cpu", swap=False)
    with running(models, Settings(work_dir=tmp_path_factory.mktemp("web"))) as (url, app):
        yield url, app


def test_upload_in_a_real_browser_reads_the_verdict_and_deletes(server: tuple[str, object]) -> None:
    binary = chromium()
    if binary is None:
        if os.environ.get("FORGELAB_REQUIRE_BROWSER") == "1":
            pytest.fail("FORGELAB_REQUIRE_BROWSER=1 but no chromium binary: `apt-get install chromium`")
        pytest.skip("no chromium binary (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    url, app = server
    shot = ROOT / "outputs" / "web_screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1700})
        page.goto(url)
        assert "Afchar et al." in page.inner_text("#panel-detect")  # each detector with its source
        page.set_input_files("#video-input", str(SAMPLE_VIDEO))
        page.wait_for_selector("#result:not([hidden])", timeout=180_000)
        verdict = page.inner_text("#verdict")
        assert verdict in ("REAL", "FAKE", "INCONCLUSIVE")
        assert verdict in page.get_attribute("#verdict", "class")
        assert "carphone_pristine.mp4" in page.inner_text("#faces")
        assert page.locator("#detector-table tbody tr").count() == 1
        page.wait_for_function("document.getElementById('annotated').readyState >= 2", timeout=30_000)
        assert page.evaluate("document.getElementById('annotated').videoWidth") == 176  # H.264 decoded in the browser
        page.wait_for_function("document.getElementById('timeline').naturalWidth > 0")
        page.wait_for_function("document.getElementById('face-strip').naturalWidth > 0")
        if page.is_visible("#cam-block"):
            page.check("#cam-toggle")
            page.wait_for_function("document.getElementById('cam').naturalWidth > 0")
        page.screenshot(path=str(shot), full_page=True)
        job_id = next(iter(job.id for job in app.state.jobs.all()))
        page.click("#delete")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('Deleted')")
        browser.close()
    assert app.state.jobs.get(job_id) is None
    assert list((app.state.root / "jobs").iterdir()) == []
    assert shot.stat().st_size > 20_000
