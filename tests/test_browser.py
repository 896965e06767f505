"""End to end in a real browser: Debian's Chromium, headless, driven by Playwright, against `streamlit run`.

Every page is read at 1,400 and 1,024 px, on arrival and after its main interactions (_readable): the layout
(nothing wider than its column, no sideways scrolling, tables that do not scroll inside themselves) and every
chart as a person reads it (tests/chart_reader.py: a y axis >= 100 px with >= 2 tick labels in every panel, no text
over other text, no text cut), each time once the page has settled (chart_reader.settle), not after a fixed delay.

Set SCREENSHOTS_DIR=docs/screenshots to refresh the screenshots (each page at both widths) and the Overview's
thumbnails (docs/screenshots/thumbs/).
"""

import os
import re
from pathlib import Path

import pytest
from chart_reader import chart_problems, settle
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
  for (const box of (main || document.body).querySelectorAll("*")) {     // a box or chip row scrolling sideways
    if (box.scrollWidth <= box.clientWidth + 3 || !box.checkVisibility()) continue;   // KaTeX rounds by 2 px
    const overflow = getComputedStyle(box).overflowX;
    if ((overflow === "auto" || overflow === "scroll") && !box.closest("[data-testid=stDataFrame]"))
      problems.push(`${box.dataset.testid || box.className.toString().split(" ")[0] || box.tagName} under `
                    + `"${where(box)}" scrolls sideways: ${box.scrollWidth} > ${box.clientWidth}: `
                    + `"${box.innerText.slice(0, 40)}"`);
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
SECTIONS = {"app_pages/mnist_digit.py": ("Record the denoising steps", "Compare 16 samples", "with all four denoisers",
                                        "noise levels", "images per N"),
            "app_pages/mnist_conditional.py": ("Sample both runs", "with all four denoisers"),
            "app_pages/images32.py": ("Record the denoising steps", "with all four denoisers")}     # on-demand sections with images (each
#   under 10 s here; Phase 2's: the analytic denoisers, their agreement along t and the training-set-size sweep too)


def _readable(pg, shot: str | None = None, tmp_path: Path | None = None) -> None:
    """At each of WIDTHS, once the page has settled: no sideways scrolling of the page, no chart, table or image
    wider than its column (its drawing included) and no table scrolling inside itself, every Plotly legend inside
    the window, images of one size side by side drawn at one size, and every chart readable (chart_reader). With
    `shot`, a screenshot at each width (_shot). The window is restored to its first size."""
    size, problems = pg.viewport_size, []
    for width in WIDTHS:
        pg.set_viewport_size({"width": width, "height": size["height"]})
        settle(pg)                                       # Streamlit re-lays out and the charts redraw
        problems += [f"{width} px: {p}" for p in pg.evaluate(LAYOUT, CHARTS) + pg.evaluate(SAME_SIZE)
                     + chart_problems(pg)]
        if shot:
            _shot(pg, shot if width == WIDTHS[0] else f"{shot}-{width}", tmp_path)
    pg.set_viewport_size(size)
    settle(pg)
    assert not problems, "\n".join(problems)


def _folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SCREENSHOTS_DIR", tmp_path))
    folder = folder if folder.is_absolute() else ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shot(pg, name: str, tmp_path: Path) -> None:
    """The page's first 2,000 px at the window's width, as `name`.png."""
    folder = _folder(tmp_path)
    size = pg.viewport_size
    pg.set_viewport_size({"width": size["width"], "height": 2000})  # the app scrolls inside its main block
    settle(pg)
    pg.screenshot(path=str(folder / f"{name}.png"))
    pg.set_viewport_size(size)
    settle(pg)
    assert (folder / f"{name}.png").stat().st_size > 10_000


THUMB_WIDTH, THUMB_HEIGHT = 360, 240     # pixels: the Overview's cards (the middle of the first result)
THUMB_SHARE = 0.8                        # an image: this share of its largest 3:2 box; a chart: its marks fill this share of the card
FIRST_RESULT = ".js-plotly-plot, [data-testid=stVegaLiteChart], [data-testid=stImage] img"


# A chart drawn as an icon for its card (72 px wide on the Overview, where 2 px lines and 3 px points vanish):
# thick lines, opaque points, no grid lines, no axes' labels, titles or legend (the card names the page).
ICON_STYLE = """
.js-plotly-plot .scatterlayer path.js-line, .vega-embed .mark-line path, .vega-embed .mark-rule line
  { stroke-width: 9px !important; }
.js-plotly-plot .scatterlayer path.point, .vega-embed .mark-symbol path { opacity: 1 !important; }
.js-plotly-plot .gridlayer, .js-plotly-plot .zerolinelayer, .vega-embed .role-axis-grid { display: none; }
.js-plotly-plot .xtick, .js-plotly-plot .ytick, .js-plotly-plot .g-xtitle, .js-plotly-plot .g-ytitle,
.js-plotly-plot .infolayer, .js-plotly-plot .modebar-container, .js-plotly-plot .updatemenu-container,
.js-plotly-plot .slider-container, .vega-embed .role-axis, .vega-embed .role-legend, .vega-embed .role-title
  { display: none !important; }
"""


def _thumbnail(pg, name: str, tmp_path: Path) -> None:
    """The page's first result (chart or image) at 1,400 px, THUMB_WIDTH wide, as thumbs/`name`.png: the picture on
    the Overview's card for the page (an image's middle; a chart's marks in ICON_STYLE, cropped to them)."""
    from PIL import Image, ImageChops
    folder = _folder(tmp_path) / "thumbs"
    folder.mkdir(exist_ok=True)
    main = pg.get_by_test_id("stMainBlockContainer")
    first = main.locator(FIRST_RESULT).first
    first.evaluate("el => el.scrollIntoView({block: 'center'})")    # clear of Streamlit's header
    style = pg.add_style_tag(content=ICON_STYLE)
    settle(pg)
    path = folder / f"{name}.png"
    first.screenshot(path=str(path))
    style.evaluate("el => el.remove()")
    with Image.open(path) as image:
        image = image.convert("RGB")
    if first.evaluate("el => el.tagName") == "IMG":    # a picture: the middle of it at 3:2
        width = int(THUMB_SHARE * min(image.width, image.height * THUMB_WIDTH // THUMB_HEIGHT))
        height = width * THUMB_HEIGHT // THUMB_WIDTH
        left, top = (image.width - width) // 2, (image.height - height) // 2
        thumb = image.crop((left, top, left + width, top + height)).resize((THUMB_WIDTH, THUMB_HEIGHT))
    else:                                              # a chart: its marks, as large as the card allows
        background = Image.new("RGB", image.size, image.getpixel((0, 0)))
        marks = image.crop(ImageChops.difference(image, background).getbbox() or (0, 0, *image.size))
        scale = THUMB_SHARE * min(THUMB_WIDTH / marks.width, THUMB_HEIGHT / marks.height)
        marks = marks.resize((max(1, round(marks.width * scale)), max(1, round(marks.height * scale))))
        thumb = Image.new("RGB", (THUMB_WIDTH, THUMB_HEIGHT), image.getpixel((0, 0)))
        thumb.paste(marks, ((THUMB_WIDTH - marks.width) // 2, (THUMB_HEIGHT - marks.height) // 2))
    thumb.save(path, optimize=True)


def test_overview_then_train_on_the_2d_page(page, app_url, tmp_path):
    """The Overview opens on the moving picture and a card per phase above the fold (a 1,000 px tall window at
    both widths); the 2D page reads well on arrival and after a training."""
    expect = sync_api.expect
    page.goto(app_url)
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_text("Diffusion Explorer", exact=False).first).to_be_visible(timeout=30_000)
    expect(main.locator(".js-plotly-plot g.updatemenu-button", has_text="Play")).to_be_visible(timeout=120_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        settle(page)
        links = main.get_by_test_id("stPageLink")
        assert links.count() >= len(OTHER_PAGES) + 1
        for k in range(len(OTHER_PAGES) + 1):         # every phase's card
            box = links.nth(k).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 1000, f"a card is below the fold at {width} px"
    page.set_viewport_size({"width": WIDTHS[0], "height": 1000})
    _readable(page, "overview", tmp_path)

    page.get_by_test_id("stSidebarNav").get_by_text("2D toy data").click()
    expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=30_000)
    settle(page, timeout=120)
    _readable(page)
    _thumbnail(page, "toy2d", tmp_path)
    steps = main.locator('input[type=range][aria-label="Steps"]')
    steps.focus()
    steps.press("Home")                       # the smallest budget: 100 steps
    charts_before = main.locator("[data-testid=stVegaLiteChart]").count()
    main.get_by_role("button", name="Train", exact=False).first.click()
    expect(main.get_by_text("Done:", exact=False)).to_be_visible(timeout=120_000)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    assert main.locator("[data-testid=stVegaLiteChart]").count() > charts_before
    _readable(page, "toy2d", tmp_path)


POINTS_JS = "els => els.map(e => e.getAttribute('transform'))"


def _positions(chart) -> list[str]:
    """The rendered SVG positions of every marker in a Plotly chart (Plotly 7 ships its data base64-encoded: the
    DOM is where positions can be read)."""
    return chart.locator("g.trace.scatter path.point").evaluate_all(POINTS_JS)


FLOW_SECTIONS = ("Measure quality against NFE for both", "Compute the NLL of", "Draw the model's density map")


def test_2d_page_plays_the_reverse_process_in_the_browser_without_a_rerun(page, app_url, tmp_path):
    """The shipped moons run becomes the model at a click; Play advances the reverse-process frames in the browser
    with no message to the server (a rerun would send the page's widget states), Pause stops them; the sections
    after it render, and its error budget, quality against NFE, likelihood and density map at a click, each read at
    both widths (shot as toy2d-error-budget*.png and toy2d-likelihood*.png)."""
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
    main.locator(".st-key-toy2d_reverse_anim").screenshot(path=str(_folder(tmp_path) / "toy2d-reverse.png"))
    main.get_by_role("button", name="Compute the error budget", exact=False).click()     # the shipped run's budget
    expect_visible(main.get_by_text("is what no denoiser can remove", exact=False))
    for action in FLOW_SECTIONS:                       # sections 6 and 7 on the shipped pair
        main.get_by_role("button", name=action, exact=False).click()
        settle(page, timeout=300)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    _section_shot(page, main, "7. Likelihood", ".st-key-toy2d_density_true", "toy2d-likelihood", tmp_path)
    _section_shot(page, main, "Where the error comes from", "is what no denoiser can remove", "toy2d-error-budget",
                  tmp_path)
    _readable(page)


IMAGE_PAGES = ("app_pages/mnist_digit.py", "app_pages/mnist_conditional.py", "app_pages/images32.py")
OTHER_PAGES = [p for p in PAGES if p.path not in ("app_pages/overview.py", "app_pages/toy2d.py")]


def _train_a_few_image_steps(pg, main) -> None:
    """Phase 2's training at its smallest: the tiny U-Net, 50 steps of batch 16, FID on the smallest n at step 50."""
    main.get_by_text("Train a model yourself", exact=False).click()
    for label, moves in (("Steps", ["Home"]), ("Batch size", ["Home"]), ("Samples and FID every", ["Home", "ArrowRight"]),
                         ("FID samples n", ["Home"])):
        widget = main.locator(f'input[type=range][aria-label="{label}"]')
        expect_visible(widget)
        widget.focus()
        for key in moves:
            widget.press(key)
        settle(pg, timeout=120)
    main.get_by_role("button", name="Train", exact=False).first.click()
    sync_api.expect(main.get_by_text("Done:", exact=False)).to_be_visible(timeout=300_000)
    settle(pg, timeout=120)
    sync_api.expect(main.get_by_role("radio", name="the model you trained")).to_be_checked()
    assert main.locator("[data-testid=stVegaLiteChart]").count() >= 2      # the loss and the FID panel


def _run_the_guidance_sweep(pg, main) -> None:
    samples = main.locator('input[type=range][aria-label="Samples per scale"]')
    samples.focus()
    samples.press("Home")
    settle(pg, timeout=120)
    main.get_by_role("button", name="Run the guidance sweep", exact=False).click()
    sync_api.expect(main.get_by_text("Measured here:", exact=False)).to_be_visible(timeout=300_000)


def expect_visible(locator) -> None:
    locator.scroll_into_view_if_needed()
    sync_api.expect(locator).to_be_visible(timeout=60_000)


def _show_the_error_budget(pg, main) -> None:
    """The study's error budget of the shipped moons run (shipped beside its sweep: drawn at once on the toggle)."""
    main.get_by_text("Split each row's error", exact=False).click()
    settle(pg, timeout=180)
    expect_visible(main.get_by_text("Exact model:", exact=False))
    main.locator("h1").first.evaluate("el => el.scrollIntoView({block: 'start'})")   # the page's shot: its top


def _section_shot(pg, main, heading: str, last: str, name: str, tmp_path: Path) -> None:
    """From the heading `heading` to the lowest element with text `last` (or matching the CSS class selector `last`),
    at each of WIDTHS, as `name`.png (and `name`-1024.png); the window is restored to its first size."""
    size = pg.viewport_size
    for width in WIDTHS:
        pg.set_viewport_size({"width": width, "height": 2000})
        top = main.get_by_role("heading", name=heading)
        top.evaluate("el => { el.scrollIntoView({block: 'start'}); "           # clear of Streamlit's header
                     "el.closest('[data-testid=stMain]').scrollBy(0, -80); }")
        settle(pg)
        ends = main.locator(last) if last.startswith(".") else main.get_by_text(last, exact=False)
        b = max((ends.nth(k).bounding_box() for k in range(ends.count())), key=lambda box: box["y"] + box["height"])
        a, frame = top.bounding_box(), main.bounding_box()
        pg.mouse.move(0, 0)                                 # no chart hovered: Plotly's tool bar hides
        shot = _folder(tmp_path) / f"{name if width == WIDTHS[0] else f'{name}-{width}'}.png"
        pg.screenshot(path=str(shot), clip={"x": frame["x"], "y": a["y"] - 10, "width": frame["width"],
                                            "height": b["y"] + b["height"] + 20 - a["y"]})
    pg.set_viewport_size(size)
    settle(pg)


ANALYTIC = "Beside analytic denoisers: copy, Gaussian, patches"
SECTION_SHOTS = {"app_pages/mnist_digit.py": "d1 against the run's own N",         # to the size sweep's last caption
                 "app_pages/images32.py": "RMS to network, each sample"}          # the analytic section's caption
INTERACTIONS = {"app_pages/mnist_digit.py": _train_a_few_image_steps,
                "app_pages/mnist_conditional.py": _run_the_guidance_sweep,
                "app_pages/study.py": _show_the_error_budget}


@pytest.mark.parametrize("info", OTHER_PAGES, ids=lambda p: Path(p.path).stem)
def test_every_other_page_renders_in_the_browser(page, app_url, tmp_path, info):
    """Each page, from the menu, runs to completion with the shipped runs and shows no exception and opens on a
    result (the study page: the shipped sweep drawn); it reads at every width (_readable) on arrival, with its cheap
    on-demand image sections open, and after its main interaction (Phase 2: a training of a few steps; Phase 3:
    the guidance sweep; the study: its error budget, also shot as study-budget*.png; the analytic denoisers of
    Phases 2 and 4, with Phase 2's size sweep, shot as mnist_digit-analytic*.png and images32-analytic*.png)."""
    expect = sync_api.expect
    page.goto(app_url)
    page.get_by_test_id("stSidebarNav").get_by_text(info.title, exact=True).click()
    main = page.get_by_test_id("stMainBlockContainer")
    expect(main.locator("h1").first).to_be_visible(timeout=60_000)
    if info.path == "app_pages/study.py":                # its title is its name in the menu
        expect(main.locator("h1").first).to_have_text(info.title)
    settle(page, timeout=180)
    expect(page.locator("[data-testid=stException]")).to_have_count(0)
    draw = main.get_by_role("button", name="Draw the grid", exact=False)
    if draw.count():                                   # a loaded machine: the grid waits for a click
        draw.click()
        settle(page, timeout=300)
    expect(main.locator(FIRST_RESULT).first).to_be_visible(timeout=60_000)   # a result, not only controls
    _readable(page)
    _thumbnail(page, Path(info.path).stem, tmp_path)
    for action in SECTIONS.get(info.path, ()):
        main.get_by_role("button", name=action).click()
        settle(page, timeout=180)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    if info.path in SECTION_SHOTS:                     # before a training changes the model (and closes them)
        _readable(page)
        _section_shot(page, main, ANALYTIC, SECTION_SHOTS[info.path], f"{Path(info.path).stem}-analytic", tmp_path)
    if info.path in INTERACTIONS:
        INTERACTIONS[info.path](page, main)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    _readable(page, Path(info.path).stem, tmp_path)
    if info.path == "app_pages/study.py":
        _section_shot(page, main, "Where each row's error comes from", "Every row's budget", "study-budget", tmp_path)


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
    _readable(page)
