"""The study page's error budget (issue 19): for a 2D run, each sampler x steps row of the sweep split into floor,
solver, network and total W1 from the sweep's own noises (diffusion.explore.study_budget), drawn beside the quality
curves: the solver's and the network's W1 against NFE as panels, every row's budget as a table. It costs a second
sweep through the exact denoiser, so it waits for a toggle that names its time on this server (ui.jobs.timing); the
shipped moons run's budget at the page's default inputs ships beside its sweep and is drawn at once."""

import pandas as pd
import streamlit as st

from diffusion.explore import nfe_study
from diffusion.explore.study_budget import budget_plan, study_budget
from diffusion.sampling.registry import nfe as nfe_of
from diffusion.sampling.run import Run

from ui.jobs import budget, run_costs, scheduler, timing, visitor
from ui.views import study_view

SHIPPED_BUDGET = "study_budget.csv"    # beside the shipped sweep, written by SHIPPED_BUDGET_COMMAND
SHIPPED_BUDGET_COMMAND = ("python -m diffusion study --checkpoint checkpoints/moons --nfe 5,10,20,50,100 --budget "
                          "--out checkpoints/moons/study_budget.csv")
PANELS = ("solver", "network")         # the total is the W1 panel above; the floor is each panel's band
SCORINGS = 3                           # per row: the learned and the exact samples against the truth, and each other
TERMS = {"floor": "floor", "solver": "solver", "network": "network (W1)", "displacement": "network (per sample)",
         "total": "total"}


def promise(run_key: str, run: Run, samplers: tuple[str, ...], nfe_targets: tuple[int, ...], n: int,
            reference: bool) -> timing.Estimate:
    """How long the budget takes on this server: every row sampled again through the network and through the exact
    denoiser (its calls on n points timed here), and scored SCORINGS times, at the unit costs of ui.jobs.run_costs."""
    configs = budget_plan(run, samplers, nfe_targets, reference)
    threads = run_costs.script_threads()
    calls = sum(nfe_of(c.name, c.steps) for c in configs)
    setup, step = run_costs.points_sampling_costs(run_key, run, n, configs[0].name, threads)
    return timing.expect("study budget", (setup, 2 * len(configs)), (step, calls),
                         (run_costs.exact_denoiser_cost(run_key, run, n, threads), calls),
                         (run_costs.measurement_cost(run.config, n), SCORINGS * len(configs)),
                         nice=scheduler.job_nice())


def run_budget(key: tuple, run: Run, promise: timing.Estimate, progress, samplers: tuple[str, ...],
               nfe_targets: tuple[int, ...], n: int, reference: bool) -> tuple[pd.DataFrame, bool]:
    """(rows, complete) of study_budget in a slot of the server's scheduler (ValueError when its promise exceeds a
    job's budget, or the queue refuses it), with progress(fraction, text) after every row; it stops before a row
    expected to end past the job budget (at the mean row so far). A complete budget is kept under ("budget", *key)."""
    budget.check_time(promise.seconds, "this error budget")
    limit, rows = budget.budget().job_seconds, {"done": 0, "total": 1}

    def row_done(done: int, total: int, row: dict) -> bool:
        rows.update(done=done, total=total)
        elapsed = clock.elapsed()
        progress(done / total, f"{done}/{total}: {row['sampler']} at {row['nfe']} NFE · "
                               f"{timing.progress_text(done / total, elapsed, promise.seconds)}")
        return elapsed * (done + 1) / done > limit
    with scheduler.turn("study error budget", promise.seconds,
                        lambda place: progress(0.0, f"Queued, {place.describe()}"), visitor.visitor_key()):
        with timing.timed(promise) as clock:
            frame = study_budget(run, samplers, nfe_targets, n=n, reference=reference, progress=row_done)
    complete = rows["done"] == rows["total"]
    if complete:
        study_view.keep(("budget", *key), frame)
    return frame, complete


def table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every row's budget for display: each term as 'value [95% interval]' (nfe_study.with_intervals)."""
    columns = ["sampler", "settings", "nfe", *(f"{t}{s}" for t in TERMS for s in ("", "_low", "_high"))]
    return nfe_study.with_intervals(frame[columns]).rename(columns={"nfe": "NFE", **TERMS})


def reading(frame: pd.DataFrame) -> str:
    """The reference row (DDPM over all T steps, else the most NFE) in words: solver against the floor, network."""
    row = frame.loc[frame["nfe"].idxmax()]
    at_floor = row["solver"] <= row["floor_high"]
    meaning = "no discretisation error measurable at this n" if at_floor else "the steps still cost"
    return (f"At {row['sampler']}-{int(row['steps'])} ({int(row['nfe'])} NFE) the solver's W1 is {row['solver']:.3g}, "
            f"{'within' if at_floor else 'above'} the floor's interval [{row['floor_low']:.3g}, "
            f"{row['floor_high']:.3g}] ({meaning}), and the network moves each sample by {row['displacement']:.3g} on "
            f"average (W1 {row['network']:.3g}).")


def section(run_key: str, run: Run, key: tuple, inputs: dict) -> None:
    """The budget toggle and, once asked (or shipped for these inputs), its panels, reading and table."""
    st.subheader("Where each row's error comes from")
    if run.is_image:
        st.caption("The error budget (floor, solver, network) is for 2D runs: it runs each sampler with the exact "
                   "denoiser of the data's law, and an image set has no exact law. Pick a 2D run (moons) to see it.")
        return
    asked = {k: inputs[k] for k in ("samplers", "nfe_targets", "n", "reference")}
    frame = study_view.stored(("budget", *key))
    shipped = study_view.shipped_file(run_key, inputs, SHIPPED_BUDGET) if frame is None else None
    expected = None if frame is not None or shipped is not None else promise(run_key, run, **asked)
    when = expected.text() if expected else f"{'shipped with this run' if frame is None else 'computed'}: drawn at once"
    st.caption("Each row's W1 split, from the sweep's own noises: the **floor** (true points against the truth), the "
               "**solver** (the exact denoiser E[x_0 | x_t] through the row's sampler: what its steps cost), the "
               "**network** (the learned samples against the exact ones, sample by sample) and the **total** (the "
               "row's W1 above). It samples every row again, through the exact denoiser too.")
    if not st.toggle(f"Split each row's error: floor, solver, network ({when})", key="study_budget"):
        return
    if expected is not None:
        frame = study_view.run_with_bar("error budget", expected,
                                        lambda progress: run_budget(key, run, expected, progress, **asked))
    frame = shipped if frame is None else frame
    if frame is None or frame.empty:
        return
    if shipped is not None:
        st.caption(f"Drawn: the budget shipped with this run for these settings (`{SHIPPED_BUDGET_COMMAND}`).")
    study_view.quality_charts(frame, PANELS)
    holds = "holds in every row" if frame["consistent"].all() else "FAILS in some row"
    float32 = "" if inputs["precisions"] == ("float32",) else " The network runs at float32 here (the exact model " \
                                                              "has no precision)."
    st.caption(f"Bars: 95% intervals; the green band is the floor. {reading(frame)} Exact model: "
               f"{frame['law'].iloc[0]}. |solver − network| ≤ total ≤ solver + network: {holds}.{float32}")
    with st.expander("Every row's budget (table)"):
        st.dataframe(table(frame), hide_index=True, width="stretch", height="content")
