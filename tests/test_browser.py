"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, against `streamlit run`.

Set SCREENSHOTS_DIR=docs/screenshots to refresh the README's screenshots.
"""

import os
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import CHROMIUM, chromium_page, serve_app

from ui.pages import PAGES

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app_url():
    with serve_app() as url:
        yield url


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as p, chromium_page(p) as pg:
        yield pg


def _shot(pg, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    size = pg.viewport_size
    pg.set_viewport_size({"width": size["width"], "height": 2000})  # the app scrolls inside its main block
    pg.wait_for_timeout(1000)
    pg.screenshot(path=str(folder / f"{name}.png"))
    pg.set_viewport_size(size)
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


POINTS_JS = "els => els.map(e => e.getAttribute('transform'))"


def _positions(chart) -> list[str]:
    """The rendered SVG positions of every marker in a Plotly chart (Plotly 7 ships its data base64-encoded: the
    DOM is where positions can be read)."""
    return chart.locator("g.trace.scatter path.point").evaluate_all(POINTS_JS)


def test_2d_page_plays_the_reverse_process_in_the_browser_without_a_rerun(page, app_url, tmp_path):
    """The shipped moons run becomes the model at a click; Play advances the reverse-process frames in the browser
    with no message to the server (a rerun would send the page's widget states), Pause stops them; the sections
    after it render."""
    expect = sync_api.expect
    sent: list[bytes | str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    page.goto(f"{app_url}/toy2d")
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=60_000)
    main.get_by_role("button", name="Use the shipped moons run").click()
    chart = main.locator(".st-key-toy2d_reverse_anim .js-plotly-plot")
    expect(chart).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=120_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    chart.scroll_into_view_if_needed()
    before, lines = _positions(chart), chart.locator("g.trace.scatter path.js-line")
    assert len(before) > 300                      # 300 particles and the marks on the paths
    drawn = lines.count()                         # the density's contour lines and the paths
    sent.clear()
    chart.locator("g.updatemenu-button", has_text="Play").click()
    page.wait_for_timeout(1200)                   # about 12 of the 1x speed's 10 frames a second: mid-way
    chart.locator("g.updatemenu-button", has_text="Pause").click()
    paused = _positions(chart)
    assert sum(a != b for a, b in zip(before, paused)) > len(before) // 2, "the particles did not move"
    page.wait_for_timeout(800)
    assert _positions(chart) == paused, "the animation went on after Pause"
    assert lines.count() == drawn > 0, "playing removed the density or the paths"
    reruns = [p for p in sent if (p if isinstance(p, bytes) else p.encode()).find(b"toy2d_") >= 0]
    assert not reruns, "playing the animation sent the page's widget states to the server (a rerun)"
    chart.locator("g.updatemenu-button", has_text="Play").click()       # on to x_0, from where it paused
    expect(chart.locator("g.slider-container text.slider-label").first).to_have_text("t = 0",
                                                                         timeout=30_000)
    for heading in ("5. Samplers", "6. Diffusion vs flow matching", "7. Likelihood"):
        expect(main.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    folder = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    folder = folder if folder.is_absolute() else ROOT / folder
    main.locator(".st-key-toy2d_reverse_anim").screenshot(path=str(folder / "toy2d-reverse.png"))


IMAGE_PAGES = ("app_pages/mnist_digit.py", "app_pages/mnist_conditional.py", "app_pages/images32.py")
OTHER_PAGES = [p for p in PAGES if p.path not in ("app_pages/overview.py", "app_pages/toy2d.py")]


@pytest.mark.parametrize("info", OTHER_PAGES, ids=lambda p: Path(p.path).stem)
def test_every_other_page_renders_in_the_browser(page, app_url, tmp_path, info):
    """Each page, from the menu, runs to completion with the shipped runs and shows no exception."""
    expect = sync_api.expect
    page.goto(app_url)
    page.get_by_test_id("stSidebarNav").get_by_text(info.title, exact=True).click()
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.locator("h1").first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1000)                        # the script starts
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=120_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    if info.path in IMAGE_PAGES:                       # the shipped run's sample grid is drawn on arrival
        expect(main.get_by_test_id("stImage").first).to_be_visible(timeout=60_000)
    if info.path == "app_pages/study.py":              # the default sweep (moons, seconds) draws its charts
        main.get_by_role("button", name="Run the sweep").click()
        expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=180_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=180_000)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    _shot(page, Path(info.path).stem, tmp_path)
