"""Sections of the conditional page, each on demand: the accuracy / diversity / FID trade-off over a sweep of guidance
scales, class histograms of unguided samples, label interpolation and label-added versus cross-attention
conditioning side by side. Each has its own guidance setting; none follows the grid's w."""

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.explore import image_experiments as ei
from diffusion.explore import trends
from diffusion.metrics.evaluation import row_interval, rows_frame
from diffusion.metrics.intervals import reading
from diffusion.sampling.sampler_config import SamplerConfig

from ui.images import image_cache
from ui.images.image_ondemand import opened, run_parts
from ui.images.image_sections import Model, Sampling, class_name, guidance_slider
from ui.jobs import run_costs, shipped_runs, timing
from ui.views import charts
from ui.views.layout import error_box, working

SWEEP_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
SWEEP_NS = (20, 50, 100, 200, 500)
SWEEP_LABELS = {"accuracy": "label accuracy", "diversity": "within-class diversity", "fid": "FID (classifier)"}
HIST_NS = (100, 200, 500, 1000)
HIST_CHUNK = 100          # samples per histogram chunk: progress and a stop between chunks, each chunk cached
COMPARED = ("cond", "cross")
COMPARE_PER_CLASS, COMPARE_N = 3, 100


def _sweep_frame(points: list[dict]) -> pd.DataFrame:
    """The sweep in charts.metric_curves' long form (step = w): FID and accuracy with intervals, FID's floor."""
    long = rows_frame([{**p, "step": p["guidance"]} for p in points], list(SWEEP_LABELS))
    return long.assign(metric=long["metric"].map(SWEEP_LABELS))


def guidance_sweep_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("The guidance trade-off")
    run_key, run = model
    n = st.select_slider("Samples per scale", SWEEP_NS, 50, key=f"{prefix}_sweep_n")
    st.caption(f"For each w in {', '.join(f'{w:g}' for w in SWEEP_SCALES)}: {n} samples (balanced labels, DDIM "
               f"{ei.LIVE_STEPS}), the share the classifier reads as the requested label (Wilson interval), the mean "
               f"distance between samples of one class, and FID against {n} held-out images (bootstrap interval; "
               f"floor: {n} training images against the same ones). Each point is cached.")
    promise = sum(sampling.promise("guidance sweep", n, ei.LIVE_STEPS, w) for w in SWEEP_SCALES)
    promise += timing.expect(sampling.kind("guidance sweep"),
                             (run_costs.measurement_cost(run.config, n), len(SWEEP_SCALES)))
    if not opened(f"{prefix}_sweep", run_key, n, "Run the guidance sweep", promise):
        return
    try:
        points = run_parts("Sweeping guidance scales:", [
            (f"w = {w:g}", lambda w=w: image_cache.guidance_point(run_key, run, w, n, ei.LIVE_STEPS))
            for w in SWEEP_SCALES], promise)
    except ValueError as e:
        error_box("No guidance sweep", e)
        return
    charts.panels(charts.metric_curves, _sweep_frame(points), x_title="guidance scale w")
    st.caption(f"FID on {ei.fid_extractor(run.config.data)}, n = {points[0]['n']:,} ({points[0]['protocol']} at "
               "w = 0); bars: 95% intervals; the green band is the floor (training images against the same held-out "
               f"ones). Measured here: {_sweep_reading(points)}.")


def _sweep_reading(points: list[dict]) -> str:
    """What the sweep's curves show (diffusion.explore.trends), one clause per metric."""
    return "; ".join(trends.describe_rows(points, "guidance", metric, SWEEP_LABELS[metric], "w", fmt)
                     for metric, fmt in (("accuracy", "{:.0%}".format), ("diversity", "{:.3g}".format),
                                         ("fid", "{:.3g}".format)))


def class_histogram(df: pd.DataFrame) -> alt.LayerChart:
    """Grouped bars of class shares (columns class, source, share, low, high), the generated ones with their 95%
    Wilson intervals as error bars."""
    base = alt.Chart(df).encode(x=alt.X("class:N", title="class"), xOffset="source:N")
    bars = base.mark_bar().encode(
        y=alt.Y("share:Q", title="share", axis=alt.Axis(format="%")),
        color=alt.Color("source:N", title=None),
        tooltip=["class:N", "source:N", alt.Tooltip("share:Q", format=".1%"), alt.Tooltip("low:Q", format=".1%"),
                 alt.Tooltip("high:Q", format=".1%")])
    errors = base.transform_filter("datum.high > datum.low").mark_rule(color="black").encode(y="low:Q", y2="high:Q")
    return alt.layer(bars, errors, title="Class shares").properties(height=charts.PANEL_HEIGHT)


def histogram_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Generated classes against the training set's")
    run_key, run = model
    n = st.select_slider("Samples", HIST_NS, 200, key=f"{prefix}_hist_n")
    promise = sampling.promise("class histogram", n, ei.LIVE_STEPS, 1.0)   # w = 0 costs one evaluation per step
    if not opened(f"{prefix}_hist", run_key, n, f"Classify {n} unguided samples", promise):
        return
    try:
        chunks = run_parts("Sampling and classifying:", [
            (f"{(k + 1) * HIST_CHUNK} of {n}",
             lambda k=k: image_cache.unguided_class_counts(run_key, run, HIST_CHUNK, ei.LIVE_STEPS, k))
            for k in range(n // HIST_CHUNK)], promise)
        df = ei.class_shares(sum(chunks), run.config.data)
    except ValueError as e:
        error_box("No class histogram", e)
        return
    charts.show(class_histogram(df))
    st.caption(f"{n} samples with w = 0 (the unconditional model: what it learned p(x) to be), DDIM "
               f"{ei.LIVE_STEPS}, each classified by the shipped classifier (bars: 95% Wilson intervals of each share "
               f"at n = {n}), against the class shares of the training set.")


def label_interpolation_section(prefix: str, model: Model, sampling: Sampling) -> None:
    st.header("Interpolation between two labels")
    run_key, run = model
    cols = st.columns(5)
    a = cols[0].selectbox("From class", range(run.num_classes), 1, format_func=class_name(run), key=f"{prefix}_label_a")
    b = cols[1].selectbox("To class", range(run.num_classes), 7, format_func=class_name(run), key=f"{prefix}_label_b")
    seed = int(cols[2].number_input("Seed", 0, 10_000, 0, key=f"{prefix}_label_seed"))
    points = cols[3].slider("Points", 3, 12, 8, key=f"{prefix}_label_points")
    with cols[4]:
        w = guidance_slider(f"{prefix}_label_w", "Guidance w (this path)")
    promise = sampling.promise("label interpolation", points, ei.LIVE_STEPS, w, per_image=2)   # D(x, a) and D(x, b)
    if not opened(f"{prefix}_label_path", run_key, (a, b, seed, points, w), "Interpolate", promise):
        return
    with working("Interpolating", promise):
        path = image_cache.label_path(run_key, run, a, b, points, seed, ei.LIVE_STEPS, w)
    st.image(path, caption=f"One x_T (seed {seed}); x̂_0 = (1 − a) D(x_t, {a}) + a D(x_t, {b}) with a from 0 to 1, "
                     f"deterministic DDIM {ei.LIVE_STEPS} steps, w = {w:g}")


def _compared() -> dict[str, Sampling]:
    """Each compared shipped run's sampling costs on this machine (cross-attention costs more per image)."""
    return {name: Sampling.of((shipped_runs.shipped_key(name), shipped_runs.shipped_run(name)),
                              SamplerConfig("ddim", steps=ei.LIVE_STEPS)) for name in COMPARED}


def _measure_both(prefix: str, w: float, compared: dict[str, Sampling]) -> None:
    runs = {name: shipped_runs.shipped_run(name) for name in COMPARED}
    config = runs[COMPARED[0]].config          # both runs: the same data and labels, so the same reference
    promise = timing.expect("conditioning FID", (run_costs.measurement_cost(config, COMPARE_N), len(runs))) + sum(
        sampling.promise("conditioning FID", COMPARE_N, ei.LIVE_STEPS, w) for sampling in compared.values())
    if not opened(f"{prefix}_cmp_measure", "shipped", w, f"Measure FID and accuracy, {COMPARE_N} samples each",
                  promise):
        return
    rows = run_parts("Measuring:", [
        (shipped_runs.SHIPPED[name].folder, lambda name=name, run=run: image_cache.fid(
            shipped_runs.shipped_key(name), run, COMPARE_N, ei.LIVE_STEPS, w)) for name, run in runs.items()], promise)
    st.dataframe(pd.DataFrame([{"run": shipped_runs.SHIPPED[name].folder, "FID [95%]": row_interval(row, "fid").text(),
                                "floor [95%]": row_interval(row, "fid", floor=True).text(),
                                "reading": reading(row_interval(row, "fid"), row_interval(row, "fid", floor=True)),
                                "label accuracy [95%]": row_interval(row, "accuracy").text(),
                                "n": row["n"], "protocol": row["protocol"]} for name, row in zip(runs, rows)]),
                 hide_index=True)


def conditioning_comparison(prefix: str) -> None:
    """The shipped label-added and cross-attention runs side by side, when both exist (own w)."""
    st.header("Conditioning: label added to the time embedding vs cross-attention")
    if not all(shipped_runs.has_shipped(name) for name in COMPARED):
        st.info("Needs both shipped runs (checkpoints/mnist16-cond and checkpoints/mnist16-cond-cross).",
                icon=":material/info:")
        return
    w = guidance_slider(f"{prefix}_cmp_w", "Guidance w (both runs)")
    compared = _compared()
    promise = sum(s.promise("conditioning grids", COMPARE_PER_CLASS * 10, ei.LIVE_STEPS, w, calls_per_step=10)
                  for s in compared.values())
    if not opened(f"{prefix}_cmp", "shipped", w, "Sample both runs", promise):
        return
    sampler = SamplerConfig("ddim", steps=ei.LIVE_STEPS, guidance=w)
    with working("Sampling both runs", promise):
        grids = [image_cache.class_grid(shipped_runs.shipped_key(name), shipped_runs.shipped_run(name),
                                        COMPARE_PER_CLASS, sampler).image for name in COMPARED]
    for col, name, grid in zip(st.columns(len(COMPARED)), COMPARED, grids):
        run = shipped_runs.shipped_run(name)
        params = sum(p.numel() for p in run.net.parameters())
        col.image(grid, caption=f"{shipped_runs.SHIPPED[name].folder}: {run.config.model.conditioning}, "
                                f"{params:,} parameters, step {run.step:,}, w = {w:g}", width="stretch")      # the two at one size
    _measure_both(prefix, w, compared)
