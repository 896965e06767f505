"""Guidance in 2D (the 2D page's last section): a class-conditional MLP trained with label dropout on a labelled set
(its recipe from training.defaults, a short run through ui.jobs.training under its own job key), then the guidance scale
w: samples per class beside the exact guided sampler of labelled mixtures (explore.exact: the exact posterior means
as the denoiser), W1 per class against its floor, the share of samples off the data, and what the numbers show."""

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.config import ScheduleConfig
from diffusion.data import toy_for
from diffusion.data.toy_datasets import TOY_DATASETS, toy_dataset
from diffusion.explore import guidance2d
from diffusion.explore.quality2d import class_quality
from diffusion.metrics.intervals import Interval, wilson
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run
from diffusion.training.defaults import run_config_2d

from ui.jobs import training
from ui.toy2d import data2d
from ui.toy2d.training2d import panel_2d
from ui.views import charts, training_view

PREFIX = "toy2d_guided"
PANEL = panel_2d(PREFIX, curves=False)
SCALES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
SAMPLER = SamplerConfig("ddim", steps=50)
N = 2000
EXACT_WORK, EXACT_MIN_N = 200_000, 200   # samples x mixture components the exact sampler may cost (its time grows
                                         # with both: ~5 s for 2,000 samples of a 90-point set on a loaded CPU)
STEP_OPTIONS = (300, 600, 1200, 2400, 3600, 7200)
PALETTE = "tableau20"


def labelled_sets() -> list[str]:
    """The labelled presets, then this visitor's custom sets with labels (a CSV with a label column)."""
    presets = [name for name, toy in TOY_DATASETS.items() if toy.num_classes]
    return [*presets, *(data2d.data_config(name).dataset for name, cfg in data2d.custom_sets().items()
                        if cfg.labels is not None)]


def guidance_section() -> None:
    st.header("Guidance in 2D")
    st.markdown("Classifier-free guidance (Ho & Salimans 2022) on a labelled 2D set: one MLP learns both the "
                "conditional denoiser (class y given) and the unconditional one (the label dropped, 10% of the time); "
                "sampling uses uncond + w (cond − uncond). w = 0 ignores the class, w = 1 is the plain conditional "
                "model, w > 1 is guidance. For mixtures the exact guided sampler (the same formula with the exact "
                "posterior means) is drawn beside it.")
    dataset = st.selectbox("Labelled set", labelled_sets(), format_func=_describe, key="toy2d_guided_dataset")
    data = data2d.data_config(dataset)
    classes = toy_for(data).num_classes
    default = run_config_2d(data, num_classes=classes)
    steps = st.select_slider("Steps (conditional model)", STEP_OPTIONS, value=default.train.steps, key=f"toy2d_guided_steps_{dataset}",
                             help="The set's recipe by default (training.defaults): about 10 s on 2 idle cores")
    config = run_config_2d(data, num_classes=classes, steps=steps)
    train = config.train
    st.caption(f"MLP {config.model.width}×{config.model.depth} conditioned on {classes} classes, label dropout "
               f"{train.label_dropout:g}, {train.objective}-prediction, batch {train.batch_size:,}, lr {train.lr:g} "
               f"({train.decay} decay), linear schedule T = {config.schedule.timesteps}.")
    training_view.train_buttons(config, steps, None, 0, panel=PANEL)
    training_view.show_training(training.current_job(PANEL.key), PANEL)
    model = training.current_run(PANEL.key)
    if model is None:
        st.info("Train the conditional model to guide it.")
        return
    _guided_view(*model)


def _describe(dataset: str) -> str:
    """Works outside a script run (AppTest formats options with it): custom sets are registered by labelled_sets."""
    return f"{data2d.custom_name(dataset)}: {toy_dataset(dataset).num_classes} classes"


@st.cache_data(show_spinner="Sampling with guidance...", max_entries=4 * data2d.PER_MODEL)
def _learned(run_key: str, _run: Run, w: float) -> pd.DataFrame:
    return guidance2d.guided_frame(_run, w, N, SAMPLER)


def exact_n(dataset: str) -> int:
    """Samples drawn from the exact guided law: N, fewer for large mixtures (a custom set is one component per
    point), 0 when fewer than EXACT_MIN_N would fit in EXACT_WORK."""
    mixture = toy_dataset(dataset).mixture
    n = 0 if mixture is None else min(N, EXACT_WORK // len(mixture.weights))
    return n if n >= EXACT_MIN_N else 0


@st.cache_data(show_spinner="Sampling the exact guided law...", max_entries=4 * data2d.PER_MODEL)
def _exact(dataset: str, _run: Run, schedule: ScheduleConfig, w: float) -> pd.DataFrame | None:
    n = exact_n(dataset)
    return guidance2d.exact_guided_frame(_run.config.data, w, n, SAMPLER, schedule=schedule) if n else None


@st.cache_data(show_spinner="Measuring each class...", max_entries=8 * data2d.PER_MODEL)
def _quality(key: str, _frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """class_quality of the samples `key` names (run key, source, w)."""
    return class_quality(_frame[["x", "y"]].to_numpy(), _frame["label"].to_numpy(), dataset)


def _guided_view(run_key: str, run: Run) -> None:
    dataset = run.config.data.dataset
    st.caption(f"Model: {data2d.custom_name(dataset)} · step {run.step:,} (EMA weights) · {SAMPLER.name.upper()}-"
               f"{SAMPLER.steps}, {N:,} samples, classes in turn, seed 0.")
    w = st.select_slider("Guidance scale w", SCALES, value=3.0, key="toy2d_guided_w")
    sources = {"learned": lambda w: _learned(run_key, run, w),
               "exact": lambda w: _exact(dataset, run, run.config.schedule, w)}
    frames = {name: get(w) for name, get in sources.items()}
    cols = st.columns(2)
    charts.show(_class_scatter(frames["learned"], f"learned model, w = {w:g}"), cols[0])
    if frames["exact"] is not None:
        charts.show(_class_scatter(frames["exact"], f"exact guided law, w = {w:g} "
                                   f"({len(frames['exact']):,} samples)"), cols[1])
    else:
        cols[1].info("The exact guided sampler needs a Gaussian mixture law (8gaussians, 25gaussians, your own sets "
                     f"of at most {EXACT_WORK // EXACT_MIN_N:,} points: its cost grows with the number of points); "
                     "for this set compare with w = 1 and the data above.")
    measured = {name: {v: _measure(f"{run_key}-{name}-{v}", get(v), dataset) for v in {1.0, w}}
                for name, get in sources.items() if frames[name] is not None}
    st.table(_table({name: m[w][0] for name, m in measured.items()}), hide_index=True)   # wraps: never scrolls
    st.caption("W1 of each class's samples to as many fresh true points of that class, beside the floor (other "
               "true points of that class against the same reference, same n), with 95% intervals as everywhere on "
               "this page; off the data: farther from the data than 99% of true points are (Wilson interval). "
               "Per-class W1 is several times (~5x) the overall W1 of the other sections, for a model as good: each "
               "class has only its share of the samples, and W1 between two finite samples grows as they shrink; "
               "its floor, measured at the same per-class n, grows with it, so read each W1 against its own floor.")
    st.markdown(reading(measured["learned"], w))


def _measure(key: str, frame: pd.DataFrame, dataset: str) -> tuple[pd.DataFrame, tuple[float, float]]:
    return _quality(key, frame, dataset), guidance2d.class_geometry(frame)


def _class_scatter(frame: pd.DataFrame, title: str) -> alt.Chart:
    scale = alt.Scale(domain=[-charts.DOMAIN, charts.DOMAIN], clamp=True)
    return alt.Chart(frame, title=charts.titled(title, chars=36)).mark_circle(size=9, opacity=0.6, clip=True).encode(
        x=alt.X("x:Q", scale=scale), y=alt.Y("y:Q", scale=scale),
        color=alt.Color("label:N", title="class", scale=alt.Scale(scheme=PALETTE), legend=None),
    ).properties(height=charts.PANEL + 60)


def _table(qualities: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per source and class: n, W1 and the floor (with their 95% intervals where class_quality gives them),
    W1 / floor, and the share of samples off the data with its Wilson interval."""
    rows = []
    for source, q in qualities.items():
        for r in q.to_dict("records"):
            off = _off_data(r)
            rows.append({"model": source, "class": r["label"], "n": r["n"], "W1 [95%]": _interval(r, "w1"),
                         "floor [95%]": _interval(r, "floor"), "W1 / floor": f"{r['ratio']:.2f}",
                         "off the data [95%]": f"{off.value:.1%} [{off.low:.1%}, {off.high:.1%}]"})
    return pd.DataFrame(rows)


def _off_data(row) -> Interval:
    """The share of a group's samples off the data, with its Wilson interval."""
    return wilson(round(row["off_support"] * row["n"]), int(row["n"]))


def _interval(row: dict, name: str) -> str:
    """'value [low, high]' (3 decimals), or the value alone when the row has no interval for it."""
    low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
    bounds = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{row[name]:.3f}{bounds}"


def reading(measured: dict[float, tuple[pd.DataFrame, tuple[float, float]]], w: float) -> str:
    """What the learned model's numbers at w show against w = 1 (the plain conditional model), in words."""
    if w == 1.0:
        return ("At w = 1 the model samples each class as it learned it (no guidance); move w to see guidance "
                "(w > 1) or its absence (w < 1).")
    (q1, (spread1, sep1)), (qw, (spread, sep)) = measured[1.0], measured[w]
    per_class = lambda q: q[q["label"] != "all"]  # noqa: E731
    ratio1, ratio = per_class(q1)["ratio"].mean(), per_class(qw)["ratio"].mean()
    all1, allw = q1.set_index("label").loc["all"], qw.set_index("label").loc["all"]
    away = _off_data(allw).low > _off_data(all1).high
    text = (f"Measured at w = {w:g} against w = 1 on {int(allw['n']):,} samples: each class's spread (RMS distance to "
            f"its centroid) goes from {spread1:.3f} to {spread:.3f}, the class centroids' mean distance from "
            f"{sep1:.3f} to {sep:.3f}, the mean per-class W1 / floor from {ratio1:.2f} to {ratio:.2f}, and the share "
            f"of samples off the data from {all1['off_support']:.1%} to {allw['off_support']:.1%}. ")
    effects = [("sharpens each class" if spread < spread1 else "blurs each class"),
               ("pushes the classes apart" if sep > sep1 else "draws the classes together")]
    if away:
        effects.append("sends samples off the data (the intervals do not overlap)")
    fit = "closer to" if ratio < ratio1 else "farther from"
    return (text + f"So w = {w:g} " + ", ".join(effects) + f", and each class's samples are {fit} its law than at "
            "w = 1" + ("." if w > 1 else " (w < 1 moves toward the unconditional model)."))
