"""The 2D page's flow-matching sections (issue 13): diffusion beside flow matching, for the shipped moons and
moons-flow runs or the visitor's model and its twin (ui.toy2d.twin2d), each pair with the same data, network, budget and
seed, sampled from the same initial noises: paths drawn together with the exact flow's, Liu et al.'s straightness,
quality against NFE with the floor; and the current model's likelihood by the probability-flow ODE beside the true
density's (the floor), with its density map.

Results are cached per run key (st.cache_data); a computation of more than a few seconds waits for a button that
says how long it takes on this server (ui.timing: unit costs timed here, times the work, for the load now), and
stays shown for that model once asked for.
"""

import json
import math
import statistics
from collections import deque

import numpy as np
import pandas as pd
import streamlit as st
import torch

from diffusion.explore import flow_experiments as flow
from diffusion.explore.catalog import likelihood_end
from diffusion.explore.densities import DensityGrid
from diffusion.explore.nfe_study import plan
from diffusion.metrics.likelihood import divergence, nll_report_2d
from diffusion.sampling.run import Run

from ui.jobs import run_costs, shipped_runs, timing
from ui.toy2d import models2d, plots2d, twin2d
from ui.toy2d.data2d import one_thread
from ui.views import charts
from ui.views.layout import error_box, working

PAIR = {run.method: name for name, run in shipped_runs.SHIPPED.items()      # method (diffusion, flow) -> the
        if run.page == "toy2d" and run.dataset == "moons"}                 # shipped moons run trained by it
COLOURS = {"diffusion": "#4c78a8", "flow": "#e45756", "exact flow": "#54a24b"}
PATHS_N, PATH_STEPS = 24, 50
STRAIGHT_N = 500
QUALITY_N, QUALITY_SAMPLERS, QUALITY_NFE = 1000, ("flow_euler", "ddim"), (2, 5, 10, 20, 50)
NLL_N, DENSITY_SIZE = 500, 25
ODE_BATCHES = (16, 512)          # batch sizes the ODE's dynamics (velocity and exact divergence) are timed at
ODE_BATCH = 1000                 # points per solve (metrics.likelihood.run_log_likelihood's batch_size)
SOLVER_RECORD = {"likelihood": deque(maxlen=8), "density map": deque(maxlen=8)}  # velocity evaluations per solve
                                 # of this server's recent work of each kind
ASKED = "toy2d_flow_asked"        # {(what, run key)} the visitor asked for: shown again on every rerun


def pair() -> dict[str, tuple[str, Run]] | None:
    """family -> (run key, Run) of the shipped pair, or None when this copy lacks one of them."""
    if not all(shipped_runs.has_shipped(name) for name in PAIR.values()):
        return None
    return {family: (shipped_runs.shipped_key(name), shipped_runs.shipped_run(name)) for family, name in PAIR.items()}


@st.cache_data(show_spinner="Integrating both models from the same noises...", max_entries=8)
@one_thread()
def paths(keys: tuple[str, ...], _runs: dict[str, Run], dataset: str) -> dict[str, np.ndarray]:
    """family -> (K + 1, n, 2) flow_euler paths from the same n unit noises; the exact flow's too when known."""
    out = {family: flow.flow_paths(run, PATHS_N, PATH_STEPS).x for family, run in _runs.items()}
    exact = flow.exact_flow_paths(dataset, PATHS_N, PATH_STEPS)
    return out | ({"exact flow": exact.x} if exact is not None else {})


@st.cache_data(show_spinner="Measuring straightness...", max_entries=8)
@one_thread()
def straightness(keys: tuple[str, ...], _runs: dict[str, Run]) -> pd.DataFrame:
    rows = []
    for family, run in _runs.items():
        s = flow.straightness(run, STRAIGHT_N)
        rows.append({"model": family, "straightness S": f"{s.value:.3f} ± {1.96 * s.se:.3f}", "paths": s.n,
                     "Euler steps": s.steps})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=8)
@one_thread()
def quality(keys: tuple[str, ...], _runs: dict[str, Run]) -> pd.DataFrame:
    return flow.quality_vs_nfe(_runs, QUALITY_SAMPLERS, QUALITY_NFE, n=QUALITY_N)


@st.cache_data(show_spinner=False, max_entries=8)
@one_thread()
def nll(run_key: str, _run: Run) -> dict:
    report = nll_report_2d(_run, NLL_N)
    SOLVER_RECORD["likelihood"].append(report["nfe"] / math.ceil(NLL_N / ODE_BATCH))
    return report


@st.cache_data(show_spinner=False, max_entries=8)
@one_thread()
def density_grids(run_key: str, _run: Run) -> tuple[DensityGrid, DensityGrid | None]:
    """The model's density by the ODE likelihood and the true one, on a DENSITY_SIZE grid."""
    out = flow.density_map(_run, DENSITY_SIZE)
    SOLVER_RECORD["density map"].append(out["nfe"] / math.ceil(DENSITY_SIZE ** 2 / ODE_BATCH))
    ticks = np.unique(out["x"][:, 0])
    shape = (len(ticks), len(ticks))
    model = DensityGrid(ticks, ticks.copy(), out["model"].reshape(shape), False, "model density (ODE likelihood)")
    true = DensityGrid(ticks, ticks.copy(), out["true"].reshape(shape), True, "true density") if "true" in out else None
    return model, true


@st.cache_data(show_spinner=False, max_entries=8)
@one_thread()
def ode_costs(run_key: str, _run: Run) -> tuple[timing.Cost, timing.Cost]:
    """(per evaluation, per point in it) of the probability-flow ODE's dynamics on this run, the velocity and its
    exact divergence timed here at two batch sizes, on one thread as the likelihoods run."""
    velocity, (t_min, t_max) = _run.velocity(), _run.flow_range()
    x = torch.randn(ODE_BATCHES[1], 2, generator=torch.Generator().manual_seed(0))
    return timing.measure_fit(lambda n: divergence(velocity, x[:n], torch.full((n,), (t_min + t_max) / 2), None),
                              ODE_BATCHES)


def solver_evaluations(kind: str, run_key: str, run: Run) -> float:
    """Velocity evaluations the adaptive solver makes per solve of `kind` ("likelihood" or "density map"): the median
    of this server's recent work of that kind, else for a likelihood what the shipped moons run's recorded one took
    (its likelihood.json), else a count on a few points of the work itself (grid points take more steps than
    held-out points: 361 against 295 a solve on the shipped moons run)."""
    if SOLVER_RECORD[kind]:
        return statistics.median(SOLVER_RECORD[kind])
    path = shipped_runs.SHIPPED_ROOT / shipped_runs.SHIPPED[PAIR["diffusion"]].folder / "likelihood.json"
    if kind == "likelihood" and path.is_file():
        record = json.loads(path.read_text())
        return record["nfe"] / math.ceil(record["n"] / ODE_BATCH)
    return counted_evaluations(kind, run_key, run)


@st.cache_data(show_spinner="Counting the likelihood solver's steps on a few points...", max_entries=8)
@one_thread()
def counted_evaluations(kind: str, run_key: str, _run: Run) -> float:
    """Velocity evaluations of one solve of `kind` on this run, counted on a few of its points: held-out points, or a
    4 x 4 grid over the density map's window (the adaptive solver's error norm is a mean over the points, so their
    number barely changes the count)."""
    if kind == "density map":
        return float(flow.density_map(_run, 4)["nfe"])
    return float(nll_report_2d(_run, ODE_BATCHES[0])["nfe"])


def ode_promise(kind: str, run_key: str, run: Run, n: int) -> timing.Estimate:
    """How long an ODE likelihood of n points takes on this server: the solver's evaluations (solver_evaluations)
    of the dynamics at their costs timed here."""
    evaluations = solver_evaluations(kind, run_key, run)
    per_call, per_point = ode_costs(run_key, run)
    return timing.expect(kind, (per_call, evaluations * math.ceil(n / ODE_BATCH)), (per_point, evaluations * n))


def quality_promise(keys: tuple[str, ...], runs: dict[str, Run]) -> timing.Estimate:
    """How long quality against NFE takes for both runs: each run's sweep at its costs timed here."""
    with one_thread():
        return sum(run_costs.sweep_promise("flow quality", key, run, plan(run, QUALITY_SAMPLERS, QUALITY_NFE, False),
                                           QUALITY_N, threads=1) for key, run in zip(keys, runs.values()))


def asked(what: str, run_key: str, label: str, promise: timing.Estimate) -> bool:
    """A button naming how long the work takes on this server; True once the visitor asked for `what` on this model
    (kept for the session)."""
    done = st.session_state.setdefault(ASKED, set())
    if (what, run_key) not in done:           # the click marks it before the rerun: the button goes with the click
        st.button(f"{label} ({promise.text()})", key=f"toy2d_{what}_button", icon=":material/play_arrow:",
                  on_click=done.add, args=((what, run_key),))
    return (what, run_key) in done


SOURCES = {"shipped": "the shipped moons and moons-flow runs", "own": "your model and its twin of the other family"}


def comparison_section(model: tuple[str, Run] | None) -> None:
    """Diffusion beside flow matching: the shipped pair, or the visitor's model and its twin."""
    source = st.radio("Compare", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="toy2d_flow_source")
    if source == "own":
        if model is None or models2d.is_shipped(model[0]):
            st.info("Train a model first (section 3): its twin of the other family trains here.")
            return
        runs = twin2d.own_pair(model)
        if runs is not None:
            compare(runs, "Your model and its twin")
        return
    runs = pair()
    if runs is None:
        st.info("The shipped moons and moons-flow runs are not in this copy (checkpoints/).")
        return
    compare(runs, "Two shipped runs")


def compare(runs: dict[str, tuple[str, Run]], what: str) -> None:
    """Paths from the same noises, straightness and (on a click) quality against NFE of a diffusion-flow pair."""
    keys = tuple(key for key, _ in runs.values())
    models = {family: run for family, (_, run) in runs.items()}
    cfg = models["flow"].config
    st.markdown(f"{what} on **{cfg.data.dataset}**, the same MLP {cfg.model.width}×{cfg.model.depth}, batch, "
                f"learning rate, {cfg.train.steps:,} steps and seed: one trained as a diffusion model "
                f"({models['diffusion'].config.train.objective}-prediction), one on the velocity ε − x_0 of the "
                "straight path x_t = (1 − t) x_0 + t ε (flow matching, Lipman et al. 2023; Liu et al. 2022). Both are "
                f"sampled in flow time from the **same initial noises** ({PATH_STEPS} Euler steps); the exact flow of "
                "the true density is drawn from them too.")
    left, right = st.columns([3, 2])
    groups = paths(keys, models, cfg.data.dataset)
    left.plotly_chart(plots2d.paths(groups, f"{PATHS_N} paths from the same noises", COLOURS),
                      width="stretch", key="toy2d_flow_paths")
    with right:
        st.markdown("**Straightness** (Liu et al. 2022, the table below: mean squared gap between the velocity along "
                    "a path and the straight line from x_T to its sample; 0 = straight; 95% interval)")
        st.caption("Straighter paths lose less to few-step integration; one reflow step (re-training on the model's "
                   "own (noise, sample) pairs) straightens them further (`diffusion.explore.flow_experiments.reflow`).")
    st.dataframe(straightness(keys, models), hide_index=True, width="stretch", height="content")   # no inner scroll
    promise = quality_promise(keys, models)
    if asked("quality", "|".join(keys), "Measure quality against NFE for both", promise):
        try:
            with working("Sampling at every NFE and measuring W1 and KL", promise):
                table = quality(keys, models)
            charts.show(charts.nfe_curves(table))
            st.caption(f"W1 of {QUALITY_N:,} samples per point against {QUALITY_N:,} fresh true points, 95% "
                       "intervals (delta method); the green band is the floor (true points against true points, "
                       "same n). Same initial noises for every point.")
        except ValueError as e:
            error_box("Could not measure", e)


def likelihood_section(model: tuple[str, Run] | None) -> None:
    """The current model's NLL of held-out true points beside the true density's, and its density map."""
    if model is None:
        st.info("Train a model or use a shipped run (section 3) to measure its likelihood.")
        return
    run_key, run = model
    st.markdown("log p_0(x) = log N(x_T; 0, I) + ∫ div f(x_t, t) dt along the probability-flow ODE (Song et al. "
                "2021; Chen et al. 2018), integrated by torchdiffeq's adaptive dopri5 with the exact divergence in 2D. "
                "The true density's own NLL of the same points is the floor: the gap estimates KL(true ‖ model).")
    promise = ode_promise("likelihood", run_key, run, NLL_N)
    if asked("nll", run_key, f"Compute the NLL of {NLL_N} held-out points", promise):
        with working("Integrating the probability-flow ODE for each held-out point", promise):
            report = nll(run_key, run)
        st.table(nll_table(report).set_index("quantity"))        # wrapped: its protocol row is a sentence
    promise = ode_promise("density map", run_key, run, DENSITY_SIZE ** 2)
    if asked("density", run_key, "Draw the model's density map", promise):
        with working("Integrating the probability-flow ODE at every grid point", promise):
            learned, true = density_grids(run_key, run)
        cols = st.columns(2)
        cols[0].plotly_chart(plots2d.cloud(pd.DataFrame({"x": [], "y": []}), learned.label, learned),
                             width="stretch", key="toy2d_density_model")
        if true is not None:
            cols[1].plotly_chart(plots2d.cloud(pd.DataFrame({"x": [], "y": []}), "true density", true),
                                 width="stretch", key="toy2d_density_true")


def nll_table(report: dict) -> pd.DataFrame:
    """The NLL report as rows: model, true density (floor), their gap; each mean ± 1.96 se over the points; where the
    ODE ends (the same noise level for diffusion and flow runs: metrics.likelihood.END_SIGMA)."""
    def text(entry: dict | None) -> str:
        return "—" if entry is None else f"{entry['mean']:.3f} ± {1.96 * entry['se']:.3f}"
    return pd.DataFrame([
        {"quantity": "model NLL (nats / point)", "value": text(report["nll"])},
        {"quantity": "true density's NLL, blurred to the same end (floor)", "value": text(report["true_nll"])},
        {"quantity": "gap: KL(true ‖ model) estimate", "value": text(report["kl_true_model"])},
        {"quantity": "protocol", "value": f"{report['n']:,} held-out true points, {report['divergence']} divergence, "
                                          f"{report['nfe']:,} network calls, ODE from {likelihood_end(report)}"}])
