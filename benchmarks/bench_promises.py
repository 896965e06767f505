"""Do the times the pages promise hold? Every button and training that names a time, driven through AppTest
exactly as a visitor's clicks would, each promise (ui.jobs.timing.Estimate) against the time the work took: the 2D
page's step sweep, flow quality, likelihood and density map and its default training; the study page's sweep and
its error budget; every on-demand section of the image pages and their default trainings. Then the same again under
an external load the script makes itself: --load N busy-loop processes, started long enough before (LOAD_SETTLE_S)
for the machine's one-minute load average, which the promises read, to see them.

    python benchmarks/bench_promises.py [--rounds 2] [--steps N] [--load 4] [--no-idle] [--no-train] [--no-sections]
                                        [--pages toy2d,study,digit,cond,img32]

Round 1 starts from an empty record (the promise is unit cost x work for the load now); later rounds clear the
result caches and run again, with the promises corrected by the server's record of round 1. Goals: observed /
promised within 0.7-1.3 on an idle machine, within 0.5-2 under an external load of 4-6. The default trainings also
report their last measurement against its floor. --steps N trains N steps instead of each image page's default (a
quick check on a busy machine); --load 0 skips the loaded pass, --no-idle the pass before it. A section or training
the page refuses is a row with the page's message. The study runs at n = 1,000 idle, 256 under load (STUDY_N).
"""

import argparse
import math
import multiprocessing
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest, local_script_runner  # noqa: E402

from ui.jobs import timing  # noqa: E402
from ui.toy2d import flow2d  # noqa: E402
from ui.views import study_view  # noqa: E402

PAGES = {"toy2d": "app_pages/toy2d.py", "study": "app_pages/study.py", "digit": "app_pages/mnist_digit.py",
         "cond": "app_pages/mnist_conditional.py", "img32": "app_pages/images32.py"}
SECTIONS = {"toy2d": ("step_sweep", "quality", "nll", "density"), "study": ("study_moons", "study_budget"),
            "digit": ("film", "memo", "diversity", "noise_path", "analytic", "agreement"),
            "cond": ("film", "memo", "diversity", "noise_path", "sweep", "hist", "label_path", "cmp", "cmp_measure",
                     "analytic", "agreement"),
            "img32": ("cost", "film", "memo", "diversity", "noise_path", "analytic", "agreement")}
KINDS = {"grid": "grid", "film": "filmstrip", "memo": "memorisation", "diversity": "diversity",
         "noise_path": "noise interpolation", "sweep": "guidance sweep", "hist": "class histogram",
         "label_path": "label interpolation", "cmp": "conditioning grids", "cmp_measure": "conditioning FID",
         "cost": "cost table", "step_sweep": "step sweep", "quality": "flow quality", "nll": "likelihood",
         "density": "density map", "study_moons": "study sweep", "study_budget": "study budget",
         "analytic": "analytic samples", "agreement": "analytic agreement"}
# section -> how its promise's kind starts (a rerun also redraws the open ones)
STUDY_RUNS = {"study_moons": ("moons (2D MLP) · checkpoints/moons", "study_n_False")}
STUDY_N = {False: 1000, True: 256}   # idle, loaded: not the shipped sweep's n (500), which the page draws at once
# without timing anything; under load a smaller n, whose error budget fits a job's 600 s (at 1,000 it is promised
# about 2,300 s beside 4 busy processes, and refused)
FLOORS = {"toy2d": "w1", "digit": "fid", "cond": "fid", "img32": "fid"}
TIMEOUT = 1800
LOAD_SETTLE_S = 120       # the one-minute load average reaches 1 - e^-2 = 86% of a new load in two minutes
OBSERVED: list[tuple[str, float, float]] = []     # (kind, promised seconds, observed seconds) of each timed block


def _logging_timed():
    """ui.jobs.timing.timed, also logging each block's promise and observed time (the pages call it as timing.timed)."""
    real = timing.timed

    @contextmanager
    def timed(promise, record=timing.RECORD, min_share=0.0, threads=1):
        with real(promise, record, min_share, threads) as clock:
            yield clock
        OBSERVED.append((promise.kind, promise.seconds, clock.elapsed()))
    return timed


def _patient_wait(runner, timeout: float = 3) -> None:
    """AppTest's wait for a script run (streamlit.testing.v1.local_script_runner.require_widgets_deltas), polling
    every 50 ms instead of every millisecond. Each poll takes the GIL: beside busy processes a script thread at the
    job niceness, preempted while it holds the GIL, makes the poller wait for it a whole time slice, and gets the
    GIL back only after the poller sleeps again; a priority inversion no server has (its event loop waits in epoll)
    and a study sweep at n = 256 under load 4 took 2.78x its promise with it."""
    start = time.time()
    while time.time() - start < timeout:
        time.sleep(0.05)
        if runner.script_stopped():
            return
    runner.request_stop()
    runner.join()
    raise RuntimeError(f"AppTest script run timed out after {timeout} s")


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGES[name]).run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, name: str, section: str, loaded: bool) -> None:
    """What a visitor does to open a section: the image pages' buttons, the 2D page's (on the shipped moons run)
    and its step-sweep toggle, the study page's sweep of a shipped run."""
    if section == "step_sweep":
        at.toggle(key="toy2d_sweep").set_value(True).run()
    elif section == "study_budget":             # after study_moons: the same run and n
        at.toggle(key="study_budget").set_value(True).run()
    elif name == "toy2d":
        at.button(key=f"toy2d_{section}_button").click().run()
    elif name == "study":
        label, n_key = STUDY_RUNS[section]
        at.selectbox(key="study_run").set_value(label).run()
        at.select_slider(key=n_key).set_value(STUDY_N[loaded]).run()
        at.button(key="study_go").click().run()
    else:
        at.button(key=f"{name}_{section}_run").click().run()


def sections(name: str, loaded: bool) -> list[tuple[str, float, float, str]]:
    """The first render's grid, then each on-demand section of a page in turn: (section, promised, observed, "") of
    each (its timed blocks summed), or (section, nan, nan, the page's error) for a section the page refused."""
    out = []

    def log(section: str, before: int, errors: int = 0) -> None:
        blocks = [b for b in OBSERVED[before:] if b[0].startswith(KINDS[section])]
        if blocks:
            out.append((section, sum(b[1] for b in blocks), sum(b[2] for b in blocks), ""))
        elif len(at.error) > errors:
            out.append((section, math.nan, math.nan, "refused: " + at.error[-1].value.replace("|", "/")))
    before = len(OBSERVED)
    at = _page(name)
    if name == "toy2d":
        at.button(key="toy2d_use_moons").click().run()
    log("grid", before)
    for section in SECTIONS[name]:
        before, errors = len(OBSERVED), len(at.error)
        click(at, name, section, loaded)
        assert not at.exception, at.exception
        log(section, before, errors)
    return out


def training(name: str, steps: int | None) -> tuple[float, float, str]:
    """The page's default training (or `steps` steps of it): (promised, observed wall in its slot, the last
    measurement against its floor), or (nan, nan, the page's error) when the page refuses it."""
    at = _page(name)
    if name != "toy2d" and any(t.key == f"{name}_train_open" for t in at.toggle):
        at.toggle(key=f"{name}_train_open").set_value(True).run()
    if steps is not None and name != "toy2d":
        at.slider(key=f"{name}_steps").set_value(steps).run()
    at.button(key=f"{name}_train").click().run()
    if f"{name}_job" not in at.session_state:
        if not at.error:
            raise RuntimeError(f"no job and no error after pressing Train on {name}")
        return math.nan, math.nan, "refused: " + at.error[-1].value.replace("|", "/")
    job = at.session_state[f"{name}_job"]
    while job.running:          # drawn again when it ends: AppTest reruns the whole page where a visitor's browser
        time.sleep(1.0)         # redraws the live panel alone, and a whole-page rerun each second at nice 0 stalled
    at.run()                    # a 2-thread job at nice 10 at every OpenMP barrier (1.56x its promise, idle)
    snap = job.snapshot()
    metric = FLOORS[name]
    rows = [r for r in snap.metrics if math.isfinite(r.get(metric, math.nan))]
    quality = f"{metric} {rows[-1][metric]:.3g} (floor {rows[-1][f'{metric}_floor']:.3g})" if rows else "not measured"
    return snap.expected, snap.wall, quality


def _row(what: str, promised: float, observed: float, load: str, note: str = "") -> str:
    ratio = "" if math.isnan(promised) else f"{observed / promised:.2f}"
    return f"| {what} | {promised:.1f} | {observed:.1f} | {ratio} | {load} | {note} |"


def spin() -> None:
    while True:
        pass


@contextmanager
def external_load(n: int):
    """n busy-loop processes for the block (none for n = 0), started LOAD_SETTLE_S before it."""
    procs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(n)]
    for proc in procs:
        proc.start()
    if n:
        time.sleep(LOAD_SETTLE_S)
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.join()


def one_pass(args, loaded: int) -> list[str]:
    """Every round of every page's sections and trainings; table rows labelled with the external load."""
    lines = []
    timing.RECORD.clear()           # each pass starts from an empty record: round 1 is the promise before correction
    for record in flow2d.SOLVER_RECORD.values():
        record.clear()
    for r in range(1, args.rounds + 1):
        st.cache_data.clear()
        study_view._store().clear()  # the study page keeps its sweeps: it would show the stored one, not run again
        pages = args.pages.split(",")
        tag = f"+{loaded} busy" if loaded else "as found"
        for name in () if args.no_sections else [p for p in pages if p in SECTIONS]:
            start = os.getloadavg()[0]
            rows = [_row(f"{tag} · round {r} · {name} · {s}", p, o, f"{start:.1f}", note)
                    for s, p, o, note in sections(name, bool(loaded))]
            print("\n".join(rows), flush=True)             # as it goes: a long run shows its progress
            lines += rows
        for name in () if args.no_train else [p for p in pages if p in FLOORS]:
            start = os.getloadavg()[0]
            promised, observed, quality = training(name, args.steps)
            lines.append(_row(f"{tag} · round {r} · {name} · training", promised, observed, f"{start:.1f}", quality))
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="image pages: train this many steps instead of the defaults")
    parser.add_argument("--load", type=int, default=4, help="busy-loop processes for the loaded pass (0: none)")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-sections", action="store_true")
    parser.add_argument("--no-idle", action="store_true", help="the loaded pass only")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated: " + ", ".join(PAGES))
    args = parser.parse_args()
    timing.timed = _logging_timed()
    local_script_runner.require_widgets_deltas = _patient_wait
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {timing.cores()} cores; load average at start "
          f"{os.getloadavg()[0]:.1f}; command: python benchmarks/bench_promises.py {' '.join(sys.argv[1:])}")
    lines = []
    for loaded in ([] if args.no_idle else [0]) + ([args.load] if args.load else []):
        with external_load(loaded):
            lines += one_pass(args, loaded)
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| work | promised (s) | observed (s) | observed / promised | load average at its start | last measurement, or why refused |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
