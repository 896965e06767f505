"""An idle server idles. Started as the README starts it (its settings come from .streamlit/config.toml), after a
visitor has opened every page, 30 s with nobody on it cost the server under 1 s of CPU: Streamlit's file watcher,
crawling the project with its .venv, once kept an idle server at 77-88% of a core. Visitors see no Deploy button."""

import os
import time
from pathlib import Path

import pytest
from streamlit_server import CHROMIUM, app_server, chromium_page, cpu_seconds, proc_stat

from ui.views.pages import PAGES

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

IDLE_S, CPU_BUDGET_S = 30, 1.0


def test_an_idle_server_uses_no_cpu_and_shows_visitors_no_deploy_button():
    expect = sync_api.expect
    with app_server() as (url, server):
        with sync_api.sync_playwright() as p, chromium_page(p) as page:
            page.goto(url)
            for info in PAGES:
                page.get_by_test_id("stSidebarNav").get_by_text(info.title, exact=True).click()
                expect(page.get_by_test_id("stMainBlockContainer").locator("h1").first).to_be_visible(timeout=60_000)
                page.wait_for_timeout(500)
                expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=120_000)
            expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
        start = cpu_seconds(proc_stat(f"/proc/{server.pid}/stat"))            # the visitor has left
        time.sleep(IDLE_S)
        used = cpu_seconds(proc_stat(f"/proc/{server.pid}/stat")) - start
    assert used < CPU_BUDGET_S, f"the idle server used {used:.2f} s of CPU in {IDLE_S} s"
