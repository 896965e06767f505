"""The 2D page's "Where the error comes from" (issue 19): for the current model (the visitor's, or a shipped moons
run) and a sampler, the error budget (explore.error_budget: floor, solver, network and total W1 from the same noises)
as a table with intervals and protocol, and the denoiser's error against the noise level as a chart. It computes on
a click that names its time on this machine (ui.jobs.timing), per model and sampler, and stays shown for them.
"""

import pandas as pd
import streamlit as st
import torch

from diffusion.explore.error_budget import CURVE_LEVELS, CURVE_N, RAW, ErrorBudget, denoiser_error, error_budget, \
    exact_model
from diffusion.metrics.intervals import reading
from diffusion.metrics.points2d import score_2d
from diffusion.metrics.protocol import points_protocol, sampler_tag
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import REGISTRY, SAMPLERS
from diffusion.sampling.run import Run

from ui.jobs import timing
from ui.toy2d.flow2d import asked
from ui.toy2d.data2d import PER_MODEL, one_thread, step_options
from ui.views import charts
from ui.views.layout import error_box, working

BUDGET_N = 1000               # samples of each model, true points in the reference and in each floor draw
SCORES = 3                    # scorings of n points per budget: the learned and exact samples against the reference,
                              # and against each other (the reference and its floor: built once per process)
STEP_CHOICES = (1, 2, 5, 10, 18, 20, 50, 100, 250, 500, 1000)


@st.cache_data(show_spinner="Timing both denoisers on this machine...", max_entries=PER_MODEL)
@one_thread()
def evaluation_cost(run_key: str, _run: Run) -> timing.Cost:
    """One evaluation of the learned and of the exact denoiser on BUDGET_N points."""
    exact, _ = exact_model(_run)
    learned_d, exact_d = _run.denoiser(RAW), exact.denoiser(RAW)
    x, t = torch.randn(BUDGET_N, 2), torch.full((BUDGET_N,), _run.schedule.T // 2)
    return timing.measure(lambda: (learned_d(x, t, None), exact_d(x, t, None)), repeats=2)


@st.cache_resource(show_spinner="Timing one W1 and KL measurement...")
@one_thread()
def score_cost() -> timing.Cost:
    """Scoring BUDGET_N points against BUDGET_N others (W1, W2 by exact transport, KL by bootstrap)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(BUDGET_N, 2, generator=g), torch.randn(BUDGET_N, 2, generator=g)
    return timing.measure(lambda: score_2d(a, b), warmup=0, repeats=1)


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
@one_thread()
def budget(run_key: str, _run: Run, sampler: SamplerConfig, n: int) -> ErrorBudget:
    return error_budget(_run, points_protocol(n, sampler))


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
@one_thread()
def curve(run_key: str, _run: Run, n: int) -> pd.DataFrame:
    return denoiser_error(_run, n)


def table(b: ErrorBudget) -> pd.DataFrame:
    """The budget for display: each term's W1 with its interval, how it reads against the floor (where that is a
    question), what it measures and how its interval was made. Every row shares one protocol, said once under it (a
    column of it made the table scroll sideways at 1,024 px)."""
    against = {"floor": "—", "solver": reading(b.solver, b.floor), "total": reading(b.total, b.floor)}
    return pd.DataFrame([{"term": r["term"], "W1 [95% interval]": f"{r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}]",
                          "against the floor": against.get(r["term"], "—"), "what it measures": r["meaning"],
                          "interval": r["method"]} for r in b.rows()])


def _sampler(T: int) -> SamplerConfig:
    cols = st.columns(2)
    name = cols[0].radio("Sampler", SAMPLERS, index=SAMPLERS.index("ddim"), horizontal=True,
                         key="toy2d_error_budget_sampler",
                         help="Both models go through this sampler, on its grid, from the same noises")
    spec = REGISTRY[name]
    discrete = spec.space == "timesteps"
    default = min(spec.default_steps, T) if discrete else spec.default_steps     # the sampler's own (docs/samplers.md)
    options = sorted({*(step_options(T, STEP_CHOICES) if discrete else STEP_CHOICES), default})
    steps = cols[1].select_slider("Sampling steps", options, value=default, key=f"toy2d_error_budget_steps_{name}_{T}")
    return SamplerConfig(name, steps)


def section(model: tuple[str, Run] | None) -> None:
    st.subheader("Where the error comes from")
    if model is None:
        st.info("Train a model or use a shipped run first (section 3).")
        return
    run_key, run = model
    st.markdown("How far your model's samples are from the data splits into three parts, measured from **the same "
                "initial noises**: the **floor** (what a perfect model scores with this many points), the **solver** "
                "(the exact denoiser E[x_0 | x_t] through the same sampler: what the sampler's steps cost), and the "
                "**network** (your model's samples against the exact model's, sample by sample). The **total** is "
                "your model's W1, as in the table above; it lies between |solver − network| and solver + network.")
    sampler = _sampler(run.schedule.T)
    promise = timing.expect("error budget 2d", (evaluation_cost(run_key, run), sampler.nfe + CURVE_LEVELS * CURVE_N /
                                                BUDGET_N), (score_cost(), SCORES))
    if not asked("error_budget", f"{run_key}|{sampler_tag(sampler)}", "Compute the error budget", promise):
        return
    try:
        with working("Sampling your model and the exact model from the same noises", promise):
            b, c = budget(run_key, run, sampler, BUDGET_N), curve(run_key, run, CURVE_N)
    except ValueError as e:
        error_box("No error budget for this model", e)
        return
    st.table(table(b).set_index("term"))                              # five rows: wrapped, never scrolled
    st.caption(f"Protocol of every row: {b.protocol.name}. W1 in the data's scale units, 95% intervals. Exact model: "
               f"{b.law.description}. {b.protocol.describe()}. |solver − network| ≤ total ≤ solver + network: "
               f"{'holds' if b.consistent else 'fails'}.")
    charts.show(charts.denoiser_error(c))
    st.caption(f"E‖D_θ(x_t) − D*(x_t)‖² is what the network has not learned at each noise level, over x_t = √ᾱ x_0 + "
               f"√(1 − ᾱ) ε with {CURVE_N:,} fresh true x_0 per level (the raw network, no projection); "
               "E‖D*(x_t) − x_0‖² is what no denoiser can remove. The network's own error on x_0 is their sum. Bars: "
               f"95% intervals (std / √n). Exact model: {b.law.description}.")
