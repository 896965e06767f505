"""Sections of the conditional page: per-class grid with the same noise for every class under a guidance slider,
the accuracy / diversity / FID trade-off over a sweep of scales, class histograms, label interpolation, and
self- versus cross-attention conditioning side by side."""

import altair as alt
import pandas as pd
import streamlit as st

from diffusion import explore_images as ei
from diffusion.runs import SamplerConfig

from . import charts, image_cache
from .image_sections import GUIDANCE_FORMULA, Model
from .layout import error_box

SWEEP_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
SWEEP_LABELS = {"accuracy": "label accuracy", "diversity": "within-class diversity", "fid": "FID (classifier)"}


def class_grid_section(prefix: str, model: Model) -> float:
    """Rows = classes, columns = the same initial noises; returns the guidance scale chosen."""
    st.header("Samples per class, the same noise in every row")
    run_key, run = model
    st.markdown(f"**{GUIDANCE_FORMULA}**")
    cols = st.columns(2)
    w = cols[0].slider("Guidance scale w", 0.0, 8.0, 1.0, 0.5, key=f"{prefix}_grid_w")
    steps = cols[1].select_slider("DDIM steps", (10, 20, 50), 20, key=f"{prefix}_grid_steps")
    st.image(image_cache.class_grid(run_key, run, 8, SamplerConfig("ddim", steps=steps, guidance=w)),
             caption=f"Row c: class c; column j: initial noise j (seed 0), w = {w:g}, DDIM {steps} steps")
    return w


def _sweep_frame(points: list[dict]) -> pd.DataFrame:
    rows = [{"step": p["guidance"], "metric": label, "value": p[m], "floor": p["fid_floor"] if m == "fid" else
             float("nan")} for p in points for m, label in SWEEP_LABELS.items()]
    return pd.DataFrame(rows)


def guidance_sweep_section(prefix: str, model: Model) -> None:
    st.header("The guidance trade-off")
    run_key, run = model
    n = st.select_slider("Samples per scale", (50, 100, 200, 500), 100, key=f"{prefix}_sweep_n")
    st.caption(f"For each w in {', '.join(f'{w:g}' for w in SWEEP_SCALES)}: {n} samples (balanced labels, DDIM "
               f"{ei.LIVE_STEPS}), the share the classifier reads as the requested label, the mean distance between "
               f"samples of one class, and FID against {n} real images (floor: {n} other real images). On a CPU "
               f"about {n // 10} s per scale with the small U-Net; each point is cached.")
    if not st.toggle("Run the sweep", key=f"{prefix}_sweep"):
        return
    progress, points = st.progress(0.0, "Sweeping guidance scales..."), []
    for i, w in enumerate(SWEEP_SCALES):
        try:
            points.append(image_cache.guidance_point(run_key, run, w, n, ei.LIVE_STEPS))
        except ValueError as e:
            error_box(f"No measurement at w = {w:g}", e)
            return
        progress.progress((i + 1) / len(SWEEP_SCALES), f"w = {w:g} done")
    progress.empty()
    st.altair_chart(charts.metric_curves(_sweep_frame(points), "guidance scale w"))
    st.caption(f"FID on {ei.fid_extractor(run.config.data)}, n = {points[0]['fid_n']:.0f}; the green band is "
               "the real-vs-real floor. Accuracy rises with w while diversity falls: guidance trades variety for "
               "fidelity to the label.")


def class_histogram(df: pd.DataFrame) -> alt.Chart:
    """Grouped bars of class shares (columns class, source, share)."""
    return alt.Chart(df, title="Class shares").mark_bar().encode(
        x=alt.X("class:N", title="class"), xOffset="source:N", y=alt.Y("share:Q", title="share", axis=alt.Axis(
            format="%")), color=alt.Color("source:N", title=None, legend=alt.Legend(orient="top")),
        tooltip=["class:N", "source:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=charts.STRETCH_HEIGHT)


def histogram_section(prefix: str, model: Model) -> None:
    st.header("Generated classes against the training set's")
    run_key, run = model
    n = st.select_slider("Samples", (100, 200, 500, 1000), 200, key=f"{prefix}_hist_n")
    try:
        df = image_cache.class_histograms(run_key, run, n, ei.LIVE_STEPS)
    except ValueError as e:
        error_box("No class histogram", e)
        return
    st.altair_chart(class_histogram(df), width="stretch")
    st.caption(f"{n} samples with w = 0 (the unconditional model: what it learned p(x) to be), each classified by "
               "the shipped classifier, against the class shares of the training set.")


def label_interpolation_section(prefix: str, model: Model, guidance: float) -> None:
    st.header("Interpolation between two labels")
    run_key, run = model
    cols = st.columns(4)
    a = cols[0].selectbox("From class", range(run.num_classes), 1, key=f"{prefix}_label_a")
    b = cols[1].selectbox("To class", range(run.num_classes), 7, key=f"{prefix}_label_b")
    seed = int(cols[2].number_input("Seed", 0, 10_000, 0, key=f"{prefix}_label_seed"))
    points = cols[3].slider("Points", 3, 12, 8, key=f"{prefix}_label_points")
    st.image(image_cache.label_path(run_key, run, a, b, points, seed, ei.LIVE_STEPS, guidance),
             caption=f"One x_T (seed {seed}); x̂_0 = (1 − a) D(x_t, {a}) + a D(x_t, {b}) with a from 0 to 1, "
                     f"deterministic DDIM {ei.LIVE_STEPS} steps, w = {guidance:g}")


def conditioning_comparison(prefix: str, guidance: float) -> None:
    """The shipped label-added and cross-attention runs side by side, when both exist."""
    st.header("Conditioning: label added to the time embedding vs cross-attention")
    runs = {name: image_cache.shipped_run(name) for name in ("cond", "cross")}
    if any(run is None for run in runs.values()):
        st.info("Needs both shipped runs (checkpoints/mnist16-cond and checkpoints/mnist16-cond-cross).",
                icon=":material/info:")
        return
    cols = st.columns(2)
    sampler = SamplerConfig("ddim", steps=ei.LIVE_STEPS, guidance=guidance)
    for col, (name, run) in zip(cols, runs.items()):
        key = image_cache.shipped_key(name)
        params = sum(p.numel() for p in run.net.parameters())
        col.image(image_cache.class_grid(key, run, 6, sampler),
                  caption=f"{image_cache.SHIPPED[name]}: {run.config.model.conditioning}, {params:,} parameters, "
                          f"step {run.step:,}, w = {guidance:g}")
    if st.toggle("Measure both (FID and accuracy, 100 samples each, ~10 s on a CPU)", key=f"{prefix}_cmp_measure"):
        table = pd.DataFrame([{"run": image_cache.SHIPPED[name], **image_cache.fid(
            image_cache.shipped_key(name), run, 100, ei.LIVE_STEPS, guidance)} for name, run in runs.items()])
        st.dataframe(table, hide_index=True)
