"""The study page's runs, stored results and charts: shipped runs loaded once per process, study results kept by
their inputs (shared: a DataFrame is never mutated), and Altair charts of quality, wall time and the literature."""

import math
from collections import OrderedDict

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.explore import literature, nfe_study as study
from diffusion.sampling.registry import nfe as nfe_of
from diffusion.sampling.run import Run

from ui.jobs import budget, run_costs, scheduler, session_runs, shipped_runs, timing, visitor
from ui.views.charts import (FLOOR_COLOUR, METRIC_LABELS, PANEL_HEIGHT, STRETCH_HEIGHT, TICKS, colour, colours,
                             log_axis, log_scale, panels, titled)
from ui.views.layout import error_box

STORED_STUDIES = 64          # results kept per process (every visitor's)
LABELS = {**METRIC_LABELS, "fid": "FID (classifier features)", "accuracy": "label accuracy",
          "solver": "solver: the exact denoiser's W1", "network": "network: W1, learned to exact samples"}
SHIPPED_STUDY = "study.csv"  # a shipped run's sweep at the page's 2D defaults, drawn when the page opens on it
SHIPPED_INPUTS = dict(samplers=tuple(study.SAMPLERS), nfe_targets=(5, 10, 20, 50, 100), n=500,
                      precisions=("float32",), reference=True)
SHIPPED_COMMAND = ("python -m diffusion study --checkpoint checkpoints/moons --nfe 5,10,20,50,100 "
                   "--out checkpoints/moons/study.csv")


def runs() -> dict[str, tuple[str, Run]]:
    """label -> (key, Run): the shipped runs present on disk, then this visitor's session runs."""
    out = {}
    for name, shipped in shipped_runs.SHIPPED.items():
        if shipped.role == "model" and shipped_runs.has_shipped(name):
            out[f"{shipped.label} · checkpoints/{shipped.folder}"] = (shipped_runs.shipped_key(name),
                                                                      shipped_runs.shipped_run(name))
    for name, run in session_runs.session_runs().items():
        out[f"{name} (this session)"] = (f"session-{id(run)}@{run.step}", run)
    return out


@st.cache_resource
def _store() -> OrderedDict:
    return OrderedDict()


def shipped_file(run_key: str, inputs: dict, file: str) -> pd.DataFrame | None:
    """The table `file` shipped in a shipped run's folder (a sweep or its budget, at the page's default inputs), when
    the page's inputs are the ones it was computed with; None otherwise. Text columns stay text, empty where none."""
    if inputs != SHIPPED_INPUTS:
        return None
    for name, shipped in shipped_runs.SHIPPED.items():
        path = shipped_runs.SHIPPED_ROOT / shipped.folder / file
        if path.is_file() and shipped_runs.has_shipped(name) and shipped_runs.shipped_key(name) == run_key:
            frame = pd.read_csv(path)
            return frame.assign(**{c: frame[c].astype(object).fillna("") for c in ("settings", "error") if c in frame})
    return None


def shipped_study(run_key: str, inputs: dict) -> pd.DataFrame | None:
    """The sweep shipped in a shipped run's folder (SHIPPED_STUDY, written by SHIPPED_COMMAND) for these inputs."""
    return shipped_file(run_key, inputs, SHIPPED_STUDY)


def stored(key: tuple) -> pd.DataFrame | None:
    """A result (a study, or its budget: key ("budget", *key)) already computed with these inputs, or None."""
    return _store().get(key)


def keep(key: tuple, frame: pd.DataFrame) -> None:
    """Keep a complete result under key for every visitor (the oldest go beyond STORED_STUDIES)."""
    store = _store()
    store[key] = frame
    while len(store) > STORED_STUDIES:
        store.popitem(last=False)


def run_study(key: tuple, run: Run, promise: timing.Estimate, progress, **inputs) -> tuple[pd.DataFrame, bool]:
    """(rows, complete) of study.study(run, **inputs) in a slot of the server's scheduler (ValueError when its promise
    would exceed a job's budget, or the queue refuses it), with progress(fraction, text) while it waits and after
    every row (with the time left). The sweep stops before a row expected to end beyond the job budget (the clock
    starts with the slot: the floor and the warm-up count): the next row is expected to take the larger of the mean
    row so far and the time so far per network evaluation times its evaluations. A complete sweep is kept under key."""
    budget.check_time(promise.seconds, "this sweep")
    limit, rows = budget.budget().job_seconds, {"done": 0, "total": 1}
    calls = [nfe_of(c.name, c.steps) for c in study.plan(run, inputs["samplers"], inputs["nfe_targets"],
                                                         inputs["reference"])]

    def row_done(done: int, total: int, row: dict) -> bool:
        rows.update(done=done, total=total)
        elapsed = clock.elapsed()
        progress(done / total, f"{done}/{total}: {row['precision']} {row['sampler']} at {row['nfe']} NFE · "
                               f"{timing.progress_text(done / total, elapsed, promise.seconds)}")
        spent = sum(calls[i % len(calls)] for i in range(done))
        return elapsed + max(elapsed / done, elapsed * calls[done % len(calls)] / spent) > limit
    with scheduler.turn("study sweep", promise.seconds, lambda place: progress(0.0, f"Queued, {place.describe()}"),
                        visitor.visitor_key()):
        with timing.timed(promise) as clock:
            frame = study.study(run, progress=row_done, **inputs)
    complete = rows["done"] == rows["total"]
    if complete:
        keep(key, frame)
    return frame, complete


def run_with_bar(what: str, promise: timing.Estimate, work) -> pd.DataFrame | None:
    """work(progress) -> (rows, complete) under a progress bar that starts from the promise: its rows, with a
    warning when it stopped at the server's job budget; an error box and None when it was refused."""
    bar, frame = st.progress(0.0, f"starting ({promise.text()} expected)..."), None
    try:
        frame, complete = work(bar.progress)
        if not complete:
            st.warning(f"The {what} stopped at this server's job budget after {len(frame)} rows: fewer samplers, NFE "
                       "values or samples fit; the rows below are those it measured.", icon=":material/timer:")
    except ValueError as e:
        error_box(f"The {what} failed", e)
    bar.empty()
    return frame


def promise(run_key: str, run: Run, samplers: tuple[str, ...], nfe_targets: tuple[int, ...], n: int,
            precisions: tuple[str, ...], reference: bool) -> timing.Estimate:
    """How long the sweep takes on this server: its network calls, samples through the network and one quality
    measurement per row, at the unit costs timed here (ui.jobs.run_costs.sweep_promise)."""
    configs = study.plan(run, samplers, nfe_targets, reference)
    return run_costs.sweep_promise("study sweep", run_key, run, configs, n, run_costs.script_threads(),
                                   len(precisions), nice=scheduler.job_nice())


def curve_names(frame: pd.DataFrame) -> pd.Series:
    """'sampler (settings)' for each row, or the sampler alone when it has no settings: one curve per sampler
    configuration."""
    settings = frame["settings"].fillna("").astype(str)
    return frame["sampler"].where(settings == "", frame["sampler"] + " (" + settings + ")")


def _long(frame: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Columns curve, precision, nfe, metric (labelled), value, low, high, floor, floor_low, floor_high."""
    rows = frame.assign(curve=curve_names(frame))
    parts = []
    for m in metrics:
        part = pd.DataFrame({"curve": rows["curve"], "precision": rows["precision"], "nfe": rows["nfe"],
                             "metric": LABELS.get(m, m), "value": rows[m]})
        for column, suffix in (("low", "_low"), ("high", "_high"), ("floor", "_floor"), ("floor_low", "_floor_low"),
                               ("floor_high", "_floor_high")):
            part[column] = rows[f"{m}{suffix}"] if f"{m}{suffix}" in rows else math.nan
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def quality_panel(long: pd.DataFrame, log_y: bool = False, y_title: str | None = None) -> alt.LayerChart:
    """One quality metric against NFE (log x; columns of _long), one line per sampler configuration (its colour on
    every page) and precision, each point with its 95% interval; the floor as a green band over its interval; the
    legend below."""
    base = alt.Chart().encode(x=alt.X("nfe:Q", title="network evaluations (NFE, log)", scale=log_scale(),
                                      axis=log_axis("x")))
    band = base.mark_area(opacity=0.2, color=FLOOR_COLOUR).encode(y="floor_low:Q", y2="floor_high:Q")
    floor = base.mark_line(strokeDash=[4, 4], color=FLOOR_COLOUR).encode(y="floor:Q")   # a level line across
    color = alt.Color("curve:N", title="sampler", scale=colours(long["curve"]))
    several = long["precision"].nunique() > 1                  # one precision needs no legend of its own
    dash = alt.StrokeDash("precision:N", legend=alt.Legend() if several else None)
    bars = base.mark_rule(clip=True).encode(y="low:Q", y2="high:Q", color=color, strokeDash=dash)
    lines = base.mark_line(point=True, clip=True).encode(
        y=alt.Y("value:Q", title=y_title, scale=log_scale() if log_y else alt.Scale(zero=False),
                axis=log_axis("y") if log_y else alt.Axis(format=TICKS)), color=color, strokeDash=dash,
        tooltip=["curve:N", "precision:N", "nfe:Q", "value:Q", "low:Q", "high:Q", "floor:Q"])
    return alt.layer(band, floor, bars, lines, data=long).properties(height=PANEL_HEIGHT + 40)


def quality_charts(frame: pd.DataFrame, metrics: tuple[str, ...]) -> None:
    """quality_panel of each metric (a study's, or a budget's terms), two to a row (charts.panels)."""
    panels(quality_panel, _long(frame, metrics), order=[LABELS.get(m, m) for m in metrics])


def time_chart(frame: pd.DataFrame) -> alt.Chart:
    """Sampling wall time against NFE, log-log."""
    rows = frame.assign(curve=curve_names(frame))
    return alt.Chart(rows, title="Sampling wall time").mark_line(point=True, clip=True).encode(
        x=alt.X("nfe:Q", title="NFE (log)", scale=log_scale(), axis=log_axis("x")),
        y=alt.Y("seconds:Q", title="seconds (log)", scale=log_scale(), axis=log_axis("y")),
        color=alt.Color("curve:N", title="sampler", scale=colours(rows["curve"])),
        strokeDash=alt.StrokeDash("precision:N", legend=alt.Legend() if rows["precision"].nunique() > 1 else None),
        tooltip=["curve:N", "precision:N", "nfe:Q", "steps:Q", "seconds:Q"]).properties(height=STRETCH_HEIGHT)


def relative_frame(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Our float32 curves and the published ones on one axis: quality over the same curve's 1000-NFE value (its
    best where it has none); columns source, curve, nfe, relative."""
    ours = frame[(frame["precision"] == "float32") & frame[metric].notna()].assign(curve=curve_names(frame))
    ours = ours.assign(source="this run", relative=literature.relative_to_reference(ours, metric))
    theirs = literature.literature_frame()
    return pd.concat([ours[["source", "curve", "nfe", "relative"]], theirs[["source", "curve", "nfe", "relative"]]],
                     ignore_index=True)


def literature_chart(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """relative_frame as lines (published points of single-point curves show as points), log x and y."""
    label = LABELS.get(metric, metric)
    df = relative_frame(frame, metric)
    ours = list(dict.fromkeys(df.loc[df["source"] == "this run", "curve"]))
    theirs = [c for c in dict.fromkeys(df["curve"]) if c not in ours]
    greys = ["#54545c", "#8c8c94", "#b4b4bc", "#3c3c44", "#a0a0a8"]    # the papers: greys, dashed; ours: colours
    scale = alt.Scale(domain=ours + theirs, range=[colour(c) for c in ours]
                      + [greys[i % len(greys)] for i in range(len(theirs))])
    return alt.Chart(df, title=titled(
        f"Relative quality: {label} (ours, solid, in colour) or CIFAR-10 FID (papers, dashed, grey) over the same "
        "curve's 1000-NFE value", "Curves with no 1000-NFE point are divided by their best value. Absolute values "
        "are not comparable (different data, different feature networks); ratios are.", chars=70)).mark_line(
        point=True, clip=True).encode(
        x=alt.X("nfe:Q", title="NFE (log)", scale=log_scale(), axis=log_axis("x")),
        y=alt.Y("relative:Q", title="quality / curve's 1000-NFE value (log)", scale=log_scale(), axis=log_axis("y")),
        color=alt.Color("curve:N", title=None, scale=scale),
        strokeDash=alt.StrokeDash("source:N", legend=None, scale=alt.Scale(     # the title says which is which
            domain=["this run"] + sorted(set(df["source"]) - {"this run"}),
            range=[[1, 0]] + [[5, 3]] * len(set(df["source"]) - {"this run"}))),
        tooltip=["source:N", "curve:N", "nfe:Q", "relative:Q"]).properties(height=STRETCH_HEIGHT)


STABILITY_COLUMNS = {"precision": "precision", "sampler": "sampler", "settings": "settings", "nfe": "NFE",
                     "nonfinite": "non-finite", "max_abs_x": "max |x|", "max_abs_x0": "max |x̂_0|", "error": "error"}


def stability_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The stability columns: non-finite samples and the largest |x_t| and |x0_hat| per row (the error column only
    when some row has one)."""
    columns = [c for c in STABILITY_COLUMNS if c != "error" or (frame["error"].fillna("") != "").any()]
    return frame[columns]


def stability_note(frame: pd.DataFrame) -> str:
    """What the max |x̂_0| column shows, from the data: one value in every row tells the samplers apart nowhere."""
    values = frame["max_abs_x0"].dropna().round(4).unique()
    if len(values) == 1 and len(frame) > 1:
        return (f" max |x̂_0| is {values[0]:.4g} in every row: the largest prediction is the same whatever the sampler "
                "(all start from the same initial noises), so this column does not tell them apart.")
    return ""
