"""Altair chart builders for the pages, and `live_chart`, which redraws a chart from a cached spec.

Every encoding names its type (":Q", ":N"), so a builder also works on an empty frame: that is how
live_chart turns it into a Vega-Lite spec once and then only ships new data on each refresh (Altair's
to_dict costs ~40 ms a chart, time the training thread would lose to the GIL twice a second).
"""

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.metrics.points2d import POINT_METRICS

DOMAIN = 3.5                    # 2D plots show [-DOMAIN, DOMAIN]^2 (the toy sets have std 1)
PANEL = 250                     # side of one 2D panel, pixels
TICKS = ",.3~r"                 # tick labels: 3 significant digits, no exponent, no trailing zeros (10, 0.0978, 1,500)
STRETCH_HEIGHT = 280            # full-width charts: Streamlit fits title, axes and legend in this height
SCHEDULE_LABELS = {"beta": "β_t", "alpha_bar": "ᾱ_t", "log_snr": "log SNR_t"}
METRIC_LABELS = {m.name: m.label for m in POINT_METRICS.values() if not m.needs_mixture}   # the curves of every set
Builder = Callable[[pd.DataFrame], alt.TopLevelMixin]


def _axis(name: str, title: str) -> alt.X:
    return alt.X(f"{name}:Q", title=title, scale=alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True))


def scatter(df: pd.DataFrame, title: str, x: str = "x", y: str = "y", color: str = "#4c78a8") -> alt.Chart:
    """Points (x, y) on the fixed 2D window, square."""
    return alt.Chart(df, title=title).mark_circle(size=9, opacity=0.6, color=color, clip=True).encode(
        x=_axis(x, "x"), y=alt.Y(f"{y}:Q", title="y", scale=alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True)),
    ).properties(width=PANEL, height=PANEL)


def schedule_curves(df: pd.DataFrame, t: int | None = None) -> alt.LayerChart:
    """One quantity (beta_t, alpha_bar_t or log-SNR) against t (columns t, value): a panel of panels(); the current
    t marked (a rule, a point and the value there) when given."""
    base = alt.Chart(df).encode(x=alt.X("t:Q", title="t"),
                                y=alt.Y("value:Q", title=None, axis=alt.Axis(format=TICKS)))
    layers = [base.mark_line()]
    if t is not None:
        now = base.transform_filter(f"datum.t == {int(t)}")
        layers += [now.mark_rule(color="#e45756", strokeDash=[4, 3]).encode(y=alt.Undefined),
                   now.mark_point(color="#e45756", filled=True, size=60, tooltip=True),
                   now.mark_text(align="left", dx=6, dy=-8, color="#e45756").encode(
                       text=alt.Text("value:Q", format=".3~g"))]
    return alt.layer(*layers).properties(height=160)


def schedule_frame(df: pd.DataFrame) -> pd.DataFrame:
    """beta_t, alpha_bar_t and log-SNR (columns t, beta, alpha_bar, log_snr) in long form, labelled (columns t,
    quantity, value), for panels(schedule_curves, ..., by="quantity")."""
    long = df.melt(id_vars="t", value_vars=list(SCHEDULE_LABELS), var_name="quantity", value_name="value")
    return long.assign(quantity=long["quantity"].map(SCHEDULE_LABELS))


def loss_curve(df: pd.DataFrame) -> alt.Chart:
    """Training loss against step (columns step, loss)."""
    return alt.Chart(df, title="Training loss (mean over bins of steps)").mark_line().encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("loss:Q", title="loss (log scale)", scale=alt.Scale(type="log")),
    ).properties(height=STRETCH_HEIGHT)


def metric_curves(df: pd.DataFrame, x_title: str = "step", log_x: bool = False, log_y: bool = False) -> alt.LayerChart:
    """One metric's panel (columns step, value, low, high, floor, floor_low, floor_high): the curve with each
    number's 95% interval as an error bar, and the floor, labelled, as a band over its interval (a pale bar at each
    point, so that a single measurement shows it too): a number inside it reads "at the floor". log_y for FID,
    which spans orders of magnitude while a model trains. Drawn by panels(), one per metric."""
    x = alt.X("step:Q", title=x_title, scale=alt.Scale(type="log") if log_x else alt.Undefined,
              axis=alt.Axis(format=TICKS))
    y_scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    base = alt.Chart().encode(x=x)
    band = base.mark_area(opacity=0.25, color="#54a24b").encode(
        y=alt.Y("floor_low:Q", title=None, scale=y_scale, axis=alt.Axis(format=TICKS)), y2="floor_high:Q")
    floor_bars = base.mark_rule(opacity=0.35, color="#54a24b", strokeWidth=7).encode(y="floor_low:Q",
                                                                                      y2="floor_high:Q")
    floor = base.mark_line(color="#54a24b", strokeDash=[4, 3]).encode(y="floor:Q")
    label = base.transform_filter("isValid(datum.floor)").transform_joinaggregate(
        last="max(step)").transform_filter("datum.step == datum.last").mark_text(
        text="floor", align="right", dy=-7, color="#3b7d3a", fontSize=10).encode(y="floor:Q")
    bars = base.mark_rule(color="#4c78a8").encode(y="low:Q", y2="high:Q")
    line = base.mark_line(point=True).encode(y=alt.Y("value:Q", title=None), tooltip=[
        "step:Q", "metric:N", "value:Q", "low:Q", "high:Q", "floor:Q", "floor_low:Q", "floor_high:Q"])
    return alt.layer(band, floor_bars, floor, label, bars, line, data=df).properties(height=170)


def panels(builder: Callable[..., alt.TopLevelMixin], df: pd.DataFrame, by: str = "metric",
           order: Sequence[str] = tuple(METRIC_LABELS.values()), per_row: int = 2, live: bool = False,
           **options) -> None:
    """Small multiples that fit any width: builder(rows of one value of df[by], **options) for each value (in
    `order`, then the rest), titled by it, per_row to a row of columns, each as wide as its column (a facet's
    panels keep their width in pixels and overflow a narrow page). A FID panel gets a log axis (log_y)."""
    present = list(dict.fromkeys(df[by]))
    values = [v for v in order if v in present] + [v for v in present if v not in order]
    for start in range(0, len(values), per_row):
        for col, value in zip(st.columns(per_row), values[start:start + per_row]):
            part, kw = df[df[by] == value], {**options, **({"log_y": True} if str(value).startswith("FID") else {})}
            with col:
                if live:
                    live_chart(builder, part, title=str(value), options=kw, width="stretch")
                else:
                    st.altair_chart(builder(part, **kw).properties(title=str(value)), width="stretch")


def paths(df: pd.DataFrame) -> alt.LayerChart:
    """Sampling paths (columns frame, point, x, y) from x_T to the output, which is marked."""
    lines = alt.Chart(df).mark_line(opacity=0.5, strokeWidth=1, clip=True).encode(
        x=_axis("x", "x"), y=alt.Y("y:Q", title="y", scale=alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True)),
        detail="point:N", order="frame:Q")
    ends = alt.Chart(df).transform_joinaggregate(last="max(frame)").transform_filter(
        "datum.frame == datum.last").mark_circle(size=25, color="#e45756").encode(x="x:Q", y="y:Q")
    return alt.layer(lines, ends, title="24 paths, x_T to x_0 (red)").properties(width=PANEL, height=PANEL)


def field(df: pd.DataFrame, title: str) -> alt.LayerChart:
    """A vector field as arrows (columns x, y, x2, y2): a segment from each grid point and a dot at its head."""
    scale = alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True)
    shafts = alt.Chart(df).mark_rule(color="#4c78a8", clip=True).encode(
        x=alt.X("x:Q", title="x_t (x)", scale=scale), y=alt.Y("y:Q", title="x_t (y)", scale=scale),
        x2="x2:Q", y2="y2:Q")
    heads = alt.Chart(df).mark_circle(size=6, color="#e45756", clip=True).encode(x="x2:Q", y="y2:Q")
    return alt.layer(shafts, heads, title=title).properties(width=PANEL + 60, height=PANEL + 60)


def denoiser_error(df: pd.DataFrame) -> alt.LayerChart:
    """E||D_theta - D*||^2 and E||D* - x0||^2 against sigma, both axes log, each point with its 95% interval as an
    error bar (explore.error_budget.denoiser_error: columns sigma, error, error_low, error_high, mmse, mmse_low,
    mmse_high); an interval reaching 0 is drawn down to the axis."""
    names = {"error": "learned vs exact denoiser: E‖D_θ − D*‖²", "mmse": "exact denoiser vs x_0: E‖D* − x_0‖²"}
    long = pd.concat([pd.DataFrame({"sigma": df["sigma"], "curve": label, "value": df[k], "low": df[f"{k}_low"],
                                    "high": df[f"{k}_high"]}) for k, label in names.items()], ignore_index=True)
    positive = long["value"][long["value"] > 0]
    bottom = float(positive.min()) / 3 if len(positive) else 1e-6
    top = float(long["high"].max()) * 1.5
    long["low"] = long["low"].clip(lower=bottom)
    decades = [10.0**k for k in range(math.floor(math.log10(bottom)), math.ceil(math.log10(top)) + 1)]
    y_scale = alt.Scale(type="log", domain=[bottom, top], clamp=True)
    colour = alt.Color("curve:N", title=None, scale=alt.Scale(domain=list(names.values()),
                                                              range=["#e45756", "#4c78a8"]),
                       legend=alt.Legend(orient="top", labelLimit=400))
    base = alt.Chart(long).encode(x=alt.X("sigma:Q", title="noise level σ (log)", scale=alt.Scale(type="log"),
                                          axis=alt.Axis(format=TICKS)), color=colour)
    bars = base.mark_rule(opacity=0.6).encode(y=alt.Y("low:Q", scale=y_scale), y2="high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="mean squared error (log)", scale=y_scale,
                axis=alt.Axis(values=decades, format="~e")),
        tooltip=["curve:N", alt.Tooltip("sigma:Q", format=".3~g"), alt.Tooltip("value:Q", format=".3~g"),
                 alt.Tooltip("low:Q", format=".3~g"), alt.Tooltip("high:Q", format=".3~g")])
    return alt.layer(bars, line, title="Where the network has not learned the denoiser").properties(
        height=STRETCH_HEIGHT + 40)


def nfe_curves(df: pd.DataFrame, metric: str = "w1") -> alt.LayerChart:
    """A metric against NFE (log) per run and sampler (explore.flow.quality_vs_nfe: columns run, sampler, nfe,
    metric, metric_low, metric_high, metric_floor_low, metric_floor_high), 95% error bars, the floor as a band."""
    df = df.assign(curve=df["run"] + " · " + df["sampler"])
    x = alt.X("nfe:Q", title="network evaluations (NFE)", scale=alt.Scale(type="log"))
    base = alt.Chart(df).encode(x=x)
    band = base.mark_area(opacity=0.2, color="#54a24b").encode(
        y=alt.Y(f"min({metric}_floor_low):Q"), y2=f"max({metric}_floor_high):Q")
    bars = base.mark_rule().encode(y=f"{metric}_low:Q", y2=f"{metric}_high:Q", color="curve:N")
    line = base.mark_line(point=True).encode(
        y=alt.Y(f"{metric}:Q", title=f"{METRIC_LABELS.get(metric, metric)} (log)", scale=alt.Scale(type="log")),
        color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="top")),
        strokeDash=alt.StrokeDash("run:N", title=None), tooltip=["run:N", "sampler:N", "nfe:Q", f"{metric}:Q",
                                                                  f"{metric}_low:Q", f"{metric}_high:Q"])
    return alt.layer(band, bars, line).properties(height=STRETCH_HEIGHT + 40)


def label_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """The metric column's names (w1, kl_model_true, ...) replaced by their display labels."""
    return df.assign(metric=df["metric"].map(METRIC_LABELS))


@lru_cache(maxsize=None)
def _spec(builder: Builder, columns: tuple[str, ...], options: tuple = ()) -> dict:
    """The Vega-Lite spec of builder(empty frame, **options), without its data (the data travels separately)."""
    spec = builder(pd.DataFrame({c: [] for c in columns}), **dict(options)).to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    return spec


def live_chart(builder: Builder, df: pd.DataFrame, title: str | None = None, options: dict | None = None,
               **kwargs) -> None:
    """Draw builder(df, **options) cheaply: a spec cached per builder and options plus this frame as its data."""
    spec = _spec(builder, tuple(df.columns), tuple(sorted((options or {}).items())))
    st.vega_lite_chart(df, {**spec, "title": title} if title else spec, **kwargs)


def agreement_curves(df: pd.DataFrame) -> alt.LayerChart:
    """Mean squared x0_hat difference per pixel against the paper timestep t, one line per denoiser
    (explore.analytic_comparison.agreement: columns t, denoiser, value, low, high), both axes log, 95% error bars."""
    base = alt.Chart(df).encode(x=alt.X("t:Q", title="timestep t (log)", scale=alt.Scale(type="log"),
                                        axis=alt.Axis(format=TICKS)))
    color = alt.Color("denoiser:N", title=None, legend=alt.Legend(orient="top", labelLimit=400))
    bars = base.transform_calculate(shown="max(datum.low, datum.value / 100)").mark_rule().encode(
        y="shown:Q", y2="high:Q", color=color)    # a log axis has no 0: an interval reaching 0 is cut at value / 100
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="mean |Δ x̂0|² per pixel (log)", scale=alt.Scale(type="log"),
                axis=alt.Axis(format=TICKS)),
        color=color, tooltip=["t:Q", "sigma:Q", "denoiser:N", "value:Q", "low:Q", "high:Q"])
    return alt.layer(bars, line).properties(height=STRETCH_HEIGHT + 40)
