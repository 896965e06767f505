"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, against `streamlit run`.

Set SCREENSHOTS_DIR=docs/screenshots to refresh the README's screenshots.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
           "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("streamlit did not start")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=20)


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def _shot(pg, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 10_000


def test_overview_then_train_on_the_2d_page(page, app_url, tmp_path):
    expect = sync_api.expect
    page.goto(app_url)
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text("Diffusion Explorer", exact=False).first).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    _shot(page, "overview", tmp_path)

    page.get_by_test_id("stSidebarNav").get_by_text("2D toy data").click()
    expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=30_000)
    steps = main.locator('input[type=range][aria-label="Steps"]')
    steps.focus()
    steps.press("Home")                       # the smallest budget: 100 steps
    charts_before = main.locator("[data-testid=stVegaLiteChart]").count()
    main.get_by_role("button", name="Train", exact=False).first.click()
    expect(main.get_by_text("Done:", exact=False)).to_be_visible(timeout=120_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    assert main.locator("[data-testid=stVegaLiteChart]").count() > charts_before
    _shot(page, "toy2d", tmp_path)
