"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, against `streamlit run`.

Set SCREENSHOTS_DIR=docs/screenshots to refresh the README's screenshots.
"""

import os
import re
from pathlib import Path

import pytest
from conftest import ROOT
from streamlit_server import CHROMIUM, chromium_page, serve_app

from ui.views.pages import PAGES

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


WIDTHS = (1400, 1024)          # a laptop's browser, and a small one (the sidebar stays open at both)
CHARTS = (".js-plotly-plot, [data-testid=stVegaLiteChart], [data-testid=stDataFrame], [data-testid=stTable], "
          "[data-testid=stImage] img")
LAYOUT = """charts => {
  const problems = [], vw = window.innerWidth, se = document.scrollingElement;
  if (se.scrollWidth > se.clientWidth) problems.push(`page scrolls sideways: ${se.scrollWidth} > ${se.clientWidth}`);
  const main = document.querySelector("[data-testid=stMain]");
  if (main && main.scrollWidth > main.clientWidth + 1)
    problems.push(`main block scrolls sideways: ${main.scrollWidth} > ${main.clientWidth}`);
  const where = el => {
    const top = el.getBoundingClientRect().top;
    const h = [...document.querySelectorAll("h1, h2, h3")].filter(h => h.getBoundingClientRect().top <= top).pop();
    return h ? h.innerText.slice(0, 50) : "top";
  };
  for (const el of document.querySelectorAll(charts)) {
    if (!el.checkVisibility()) continue;                      // e.g. in a closed expander
    const box = el.closest("[data-testid=stColumn]") || el.closest("[data-testid=stMainBlockContainer]");
    const r = box.getBoundingClientRect(), style = getComputedStyle(box);
    const left = r.left + parseFloat(style.paddingLeft), right = r.right - parseFloat(style.paddingRight);
    let a = el.getBoundingClientRect().left, b = el.getBoundingClientRect().right;
    for (const inner of el.querySelectorAll("canvas, svg.main-svg, .vega-embed > svg")) {
      const q = inner.getBoundingClientRect();
      if (q.width > 0) { a = Math.min(a, q.left); b = Math.max(b, q.right); }
    }
    const scroller = el.querySelector(".dvn-scroller") || el;  // a table scrolls inside its grid when too wide
    if (a < left - 1 || b > right + 1 || scroller.scrollWidth > scroller.clientWidth + 1)
      problems.push(`${el.dataset.testid || el.tagName} under "${where(el)}": [${Math.round(a)}, ${Math.round(b)}] `
                    + `in its column [${Math.round(left)}, ${Math.round(right)}]`);
  }
  for (const legend of document.querySelectorAll(".js-plotly-plot g.legend")) {
    const q = legend.getBoundingClientRect();
    if (q.width > 0 && (q.left < 0 || q.right > vw))
      problems.push(`a legend under "${where(legend)}" leaves the window: [${Math.round(q.left)}, ${Math.round(q.right)}]`);
  }
  return problems;
}"""


SAME_SIZE = """() => {
  const problems = [];
  for (const row of document.querySelectorAll("[data-testid=stHorizontalBlock]")) {
    const imgs = [...row.querySelectorAll("[data-testid=stImage] img")].filter(i => i.checkVisibility());
    for (const img of imgs.slice(1)) {
      const a = imgs[0];
      if (a.naturalWidth === img.naturalWidth && Math.abs(a.getBoundingClientRect().width
                                                           - img.getBoundingClientRect().width) > 1)
        problems.push(`images of one size drawn at ${a.getBoundingClientRect().width} and `
                      + `${img.getBoundingClientRect().width} px side by side`);
    }
  }
  return problems;
}"""
SECTIONS = {"app_pages/mnist_digit.py": ("Record the denoising steps", "Compare 16 samples"),
            "app_pages/mnist_conditional.py": ("Sample both runs",),
            "app_pages/images32.py": ("Record the denoising steps",)}     # cheap on-demand sections with images


def _readable(pg) -> None:
    """At each of WIDTHS: no sideways scrolling of the page, no chart, table or image wider than its column (its
    drawing included), every Plotly legend inside the window (Vega draws its legends inside the chart's canvas,
    which the column must hold), images of one size side by side drawn at one size. The window is restored to its
    first size."""
    size, problems = pg.viewport_size, []
    for width in WIDTHS:
        pg.set_viewport_size({"width": width, "height": size["height"]})
        pg.wait_for_timeout(1500)                        # Streamlit re-lays out and the charts redraw
        problems += [f"{width} px: {p}" for p in pg.evaluate(LAYOUT, CHARTS) + pg.evaluate(SAME_SIZE)]
    pg.set_viewport_size(size)
    assert not problems, "\n".join(problems)


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
    _readable(page)
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
    _readable(page)
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
    """Each page, from the menu, runs to completion with the shipped runs and shows no exception; with its cheap
    on-demand image sections open, it reads at every width (_readable)."""
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
    for action in SECTIONS.get(info.path, ()):
        main.get_by_role("button", name=action).click()
        page.wait_for_timeout(1000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=120_000)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    if info.path == "app_pages/study.py":              # the default sweep (moons, seconds) draws its charts
        main.get_by_role("button", name="Run the sweep").click()
        expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=180_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=180_000)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    _readable(page)
    _shot(page, Path(info.path).stem, tmp_path)


def _draw(pg, canvas, strokes) -> None:
    """Drag the mouse along each stroke (points in 0..1 of the canvas), as a visitor draws."""
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        pg.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        pg.mouse.down()
        for x, y in stroke[1:]:
            pg.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=2)
        pg.mouse.up()
        pg.wait_for_timeout(300)


def test_draw_a_distribution_train_on_it_and_guide_a_conditional_model(page, app_url, tmp_path):
    """The canvas in Chromium: two strokes become a set that is selected and trained; then the guidance section
    trains its conditional model (300 steps) and shows guided samples beside the exact law, with its reading."""
    import math
    expect = sync_api.expect
    page.goto(f"{app_url}/toy2d")
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=60_000)
    main.get_by_text("Bring your own distribution", exact=False).click()
    canvas = main.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible(timeout=30_000)
    ring = [(0.5 + 0.3 * math.cos(a / 20 * 2 * math.pi), 0.5 + 0.3 * math.sin(a / 20 * 2 * math.pi)) for a in range(21)]
    _draw(page, canvas, [ring, [(0.2, 0.9), (0.8, 0.9)]])
    main.get_by_label("Name (letters, digits, - and _)").fill("ring-and-bar")
    main.get_by_role("button", name="Use this distribution").click()
    expect(main.get_by_text("Added ring-and-bar (yours): 2,000 points", exact=False)).to_be_visible(timeout=60_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    canvas.scroll_into_view_if_needed()
    _shot(page, "toy2d_custom", tmp_path)

    steps = main.locator('input[type=range][aria-label="Steps"]')
    steps.focus()
    steps.press("Home")                        # 100 steps: a few seconds
    main.get_by_role("button", name="Train", exact=False).first.click()
    expect(main.get_by_text("Done:", exact=False)).to_be_visible(timeout=120_000)
    expect(main.get_by_text(re.compile(r"Model: .* · custom:ring-and-bar")).first).to_be_visible(timeout=60_000)

    guided_steps = main.locator('input[type=range][aria-label="Steps (conditional model)"]')
    guided_steps.focus()
    guided_steps.press("Home")                 # 300 steps of the conditional model on 8gaussians
    main.get_by_role("button", name="Train").filter(has_not_text="Continue").click()
    expect(main.get_by_text("Measured at w = 3 against w = 1", exact=False)).to_be_visible(timeout=180_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    main.get_by_text("Guidance scale w").scroll_into_view_if_needed()
    _shot(page, "toy2d_guidance", tmp_path)
