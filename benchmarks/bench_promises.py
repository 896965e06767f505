"""Do the times the pages promise hold? Every on-demand section of the image pages and every page's default training,
driven through AppTest exactly as a visitor's clicks would, each promise (ui.jobs.timing.Estimate) against the time the
work took:

    python benchmarks/bench_promises.py [--rounds 2] [--steps N] [--no-train] [--no-sections] [--pages digit,cond]

Round 1 starts from an empty record (the promise is unit cost x work for the load now); later rounds clear the
result caches and run again, with the promises corrected by the server's record of round 1. The goal is a ratio
observed / promised within 0.7-1.3 on an idle machine. The default trainings also report their last measurement
against its floor. --steps N trains N steps instead of each page's default (a quick check on a busy machine).
"""

import argparse
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui.jobs import timing  # noqa: E402

PAGES = {"toy2d": "app_pages/toy2d.py", "digit": "app_pages/mnist_digit.py",
         "cond": "app_pages/mnist_conditional.py", "img32": "app_pages/images32.py"}
SECTIONS = {"digit": ("film", "memo", "diversity", "noise_path"),
            "cond": ("film", "memo", "diversity", "noise_path", "sweep", "hist", "label_path", "cmp", "cmp_measure"),
            "img32": ("cost", "film", "memo", "diversity", "noise_path")}
KINDS = {"grid": "grid", "film": "filmstrip", "memo": "memorisation", "diversity": "diversity",
         "noise_path": "noise interpolation", "sweep": "guidance sweep", "hist": "class histogram",
         "label_path": "label interpolation", "cmp": "conditioning grids", "cmp_measure": "conditioning FID",
         "cost": "cost table"}    # section -> how its promise's kind starts (a rerun also redraws the open ones)
FLOORS = {"toy2d": "w1", "digit": "fid", "cond": "fid", "img32": "fid"}
TIMEOUT = 1800
OBSERVED: list[tuple[str, float, float]] = []     # (kind, promised seconds, observed seconds) of each timed block


def _logging_timed():
    """ui.jobs.timing.timed, also logging each block's promise and observed time (the pages call it as timing.timed)."""
    real = timing.timed

    @contextmanager
    def timed(promise, record=timing.RECORD, min_share=0.0):
        with real(promise, record, min_share) as clock:
            yield clock
        OBSERVED.append((promise.kind, promise.seconds, clock.elapsed()))
    return timed


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGES[name]).run()
    assert not at.exception, at.exception
    return at


def sections(name: str) -> list[tuple[str, float, float]]:
    """The first render's grid, then each on-demand section of a page in turn: (section, promised, observed) of
    each (its timed blocks summed)."""
    out = []

    def log(section: str, before: int) -> None:
        blocks = [b for b in OBSERVED[before:] if b[0].startswith(KINDS[section])]
        if blocks:
            out.append((section, sum(b[1] for b in blocks), sum(b[2] for b in blocks)))
    before = len(OBSERVED)
    at = _page(name)
    log("grid", before)
    for section in SECTIONS[name]:
        before = len(OBSERVED)
        at.button(key=f"{name}_{section}_run").click().run()
        assert not at.exception, at.exception
        log(section, before)
    return out


def training(name: str, steps: int | None) -> tuple[float, float, str]:
    """The page's default training (or `steps` steps of it): (promised, observed wall in its slot, the last
    measurement against its floor)."""
    at = _page(name)
    if name != "toy2d" and any(t.key == f"{name}_train_open" for t in at.toggle):
        at.toggle(key=f"{name}_train_open").set_value(True).run()
    if steps is not None:
        at.slider(key=f"{name}_steps").set_value(steps).run()
    at.button(key=f"{name}_train").click().run()
    job = at.session_state[f"{name}_job"]
    while job.running:          # redrawn every second, as a visitor's page would be
        time.sleep(1.0)
        at.run()
    snap = job.snapshot()
    metric = FLOORS[name]
    rows = [r for r in snap.metrics if math.isfinite(r.get(metric, math.nan))]
    quality = f"{metric} {rows[-1][metric]:.3g} (floor {rows[-1][f'{metric}_floor']:.3g})" if rows else "not measured"
    return snap.expected, snap.wall, quality


def _row(what: str, promised: float, observed: float, note: str = "") -> str:
    return f"| {what} | {promised:.1f} | {observed:.1f} | {observed / promised:.2f} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="train this many steps instead of the defaults")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-sections", action="store_true")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated: " + ", ".join(PAGES))
    args = parser.parse_args()
    timing.timed = _logging_timed()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {timing.cores()} cores")
    lines = []
    for r in range(1, args.rounds + 1):
        st.cache_data.clear()
        pages = args.pages.split(",")
        for name in () if args.no_sections else [p for p in pages if p in SECTIONS]:
            lines += [_row(f"round {r} · {name} · {s}", p, o) for s, p, o in sections(name)]
        for name in () if args.no_train else pages:
            lines.append(_row(f"round {r} · {name} · training", *training(name, args.steps)))
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| work | promised (s) | observed (s) | observed / promised | last measurement |")
    print("|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
