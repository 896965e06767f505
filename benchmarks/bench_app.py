"""The dashboard's speed in a real browser (Debian's Chromium, headless) against `streamlit run`:

    python benchmarks/bench_app.py [--seconds 20]

1. first render of every page: cold (the first visitor after the server starts: imports included) and warm
   (a new visitor on a running server), until Streamlit's "running" indicator goes away;
2. live training on the 2D page with a seconds budget: steps/s with the live display (measurements of W1/W2/KL
   off, then every 500 steps), how often the progress and charts refresh, against the same model trained by
   the package with no UI, in the same run.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from streamlit_server import chromium_page, serve_app  # noqa: E402

from diffusion.config import DataConfig, RunConfig
from diffusion.data import load_data
from diffusion.training.trainer import Trainer
from ui.views.pages import PAGES  # noqa: E402

MAIN, RUNNING = "stMainBlockContainer", "[data-testid=stStatusWidget]"


def render_time(page, url: str, image: bool) -> float:
    """Seconds until the page's script has finished (and, on an image page, its sample grid is drawn)."""
    start = time.perf_counter()
    page.goto(url)
    main = page.get_by_test_id(MAIN)
    expect(main.locator("h1, h2").first).to_be_visible(timeout=60_000)
    if image:
        expect(main.get_by_test_id("stImage").first).to_be_visible(timeout=120_000)
    expect(page.locator(RUNNING)).to_have_count(0, timeout=120_000)
    return time.perf_counter() - start


def page_url(base: str, path: str, default: bool) -> str:
    return base if default else f"{base}/{Path(path).stem}"


def live_training(page, url: str, measure_off: bool) -> tuple[float, float]:
    """(steps/s reported by the app, distinct progress texts seen per second while training)."""
    page.goto(url)
    main = page.get_by_test_id(MAIN)
    expect(main.get_by_role("heading", name="3. Train")).to_be_visible(timeout=60_000)
    main.get_by_text("seconds", exact=True).click()
    if measure_off:
        every = main.locator('input[type=range][aria-label="Measure W1, W2, KL every"]')
        every.focus()
        every.press("Home")
    main.get_by_role("button", name="Train", exact=True).first.click()     # section 3 (guidance has its own)
    progress = main.get_by_text("Training: step", exact=False)
    expect(progress).to_be_visible(timeout=30_000)
    seen, start = set(), time.perf_counter()
    while progress.count():
        try:
            seen.add(progress.first.inner_text(timeout=1000))
        except Exception:  # the panel went away between count() and inner_text(): training ended
            break
        time.sleep(0.05)
    watched = time.perf_counter() - start
    done = main.get_by_text("Done:", exact=False)
    expect(done).to_be_visible(timeout=60_000)
    rate = float(done.inner_text().split("(")[-1].split(" steps/s")[0])
    main.get_by_role("button", name="Discard the model").click()
    return rate, len(seen) / watched


def bare_training(seconds: float) -> float:
    torch.set_num_threads(1)  # as the app's job does
    config = RunConfig(data=DataConfig("moons"))
    trainer = Trainer(config, load_data(config.data).x)
    trainer.run(seconds=seconds)
    return trainer.step / trainer.elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="the app's default seconds budget")
    args = parser.parse_args()
    with serve_app() as url, sync_playwright() as p, chromium_page(p) as page:
        renders = []
        for i, info in enumerate(PAGES):
            image = "mnist" in info.path or "images" in info.path
            cold = render_time(page, page_url(url, info.path, i == 0), image) if i == 0 else None
            warm = render_time(page, page_url(url, info.path, i == 0), image)
            renders.append((info.title, cold, warm))
        ui_off, refresh_off = live_training(page, page_url(url, PAGES[1].path, False), measure_off=True)
        ui_on, refresh_on = live_training(page, page_url(url, PAGES[1].path, False), measure_off=False)
    bare = bare_training(args.seconds)

    print("\n| page | first render, cold server (s) | first render, new visitor (s) |")
    print("|---|---|---|")
    for title, cold, warm in renders:
        print(f"| {title} | {'' if cold is None else f'{cold:.2f}'} | {warm:.2f} |")
    print(f"\nLive training, moons, default model, {args.seconds:.0f} s budget:\n")
    print("| | steps/s | vs no UI | display refreshes/s |")
    print("|---|---|---|---|")
    print(f"| package, no UI | {bare:.0f} | 100% | |")
    print(f"| app, live display, no measurements | {ui_off:.0f} | {ui_off / bare:.0%} | {refresh_off:.1f} |")
    print(f"| app, live display, W1/W2/KL every 500 steps | {ui_on:.0f} | {ui_on / bare:.0%} | {refresh_on:.1f} |")


if __name__ == "__main__":
    main()
