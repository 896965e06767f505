"""Altair chart builders for the pages, the defaults every chart of the app is drawn with, and `show` / `live_chart`,
which draw a chart (the latter from a cached spec).

The defaults (the "explorer" Altair theme, enabled on import; docs/charts.md): the height of a chart is its plot
area's (autosize fit-x: titles, axes and legends add to it, so a panel never shrinks to a strip), panels
PANEL_HEIGHT px tall, legends below the plot and never cut (labelLimit 0), titles wrapped to fit their panel, one
colour per sampler, family and run on every page (`colour`, `colours`), log axes labelled at decades or 1-2-5 only
(`log_axis`), every mark clipped to its plot area (`clipped`: no line drawn past its frame), and every chart drawn
as SVG (`SVG`: Streamlit 1.67 switches to a canvas above 2,000 points, where neither a reader's tools nor the
browser test can read its axes).

Every encoding names its type (":Q", ":N"), so a builder also works on an empty frame: that is how
live_chart turns it into a Vega-Lite spec once and then only ships new data on each refresh (Altair's
to_dict costs ~40 ms a chart, time the training thread would lose to the GIL twice a second).
"""

import textwrap
import zlib
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.metrics.points2d import POINT_METRICS

DOMAIN = 3.5                    # 2D plots show [-DOMAIN, DOMAIN]^2 (the toy sets have std 1)
PANEL = 250                     # side of one 2D panel, pixels
TICKS = ",.3~r"                 # tick labels: 3 significant digits, no exponent, no trailing zeros (10, 0.0978, 1,500)
PANEL_HEIGHT = 200              # plot area of a small multiple, pixels (titles, axes and legend come on top of it)
STRETCH_HEIGHT = 280            # plot area of a full-width chart whose line carries the story
TITLE_CHARS = 44                # a panel's title is wrapped to lines of this many characters (a 1,024 px half column)
SVG = {"embedOptions": {"renderer": "svg"}}     # usermeta: keep the SVG renderer whatever the number of points
FIT_X = {"type": "fit-x", "contains": "padding"}  # the width is the column's; the height is the plot area's
FLOOR_COLOUR = "#54a24b"
PALETTE = ("#4c78a8", "#e45756", "#f58518", "#72b7b2", "#b279a2", "#9d755d", "#eeca3b", "#ff9da6", "#79706e",
           "#1f77b4", "#d62728", "#9467bd")
NAMED_COLOURS = {                # one colour per sampler and family on every page (the rest: a stable hash)
    "ddpm": "#4c78a8", "ddim": "#f58518", "euler": "#e45756", "heun": "#b279a2", "dpmpp2m": "#72b7b2",
    "flow_euler": "#9d755d", "flow_midpoint": "#ff9da6", "diffusion": "#4c78a8", "flow": "#e45756",
    "exact flow": FLOOR_COLOUR, "floor": FLOOR_COLOUR}
SCHEDULE_LABELS = {"beta": "β_t", "alpha_bar": "ᾱ_t", "log_snr": "log SNR_t"}
METRIC_LABELS = {m.name: m.label for m in POINT_METRICS.values() if not m.needs_mixture}   # the curves of every set
Builder = Callable[[pd.DataFrame], alt.TopLevelMixin]


@alt.theme.register("explorer", enable=True)
def explorer_theme() -> alt.theme.ThemeConfig:
    """The app's chart defaults (see the module's docstring)."""
    return {"config": {
        "autosize": FIT_X,
        "view": {"continuousHeight": PANEL_HEIGHT},
        "axis": {"labelFontSize": 12, "titleFontSize": 12, "titlePadding": 8, "labelOverlap": True,
                 "labelFlush": False},
        "legend": {"orient": "bottom", "direction": "horizontal", "columns": 1, "labelLimit": 0, "titleLimit": 0,
                   "symbolLimit": 0, "labelFontSize": 12, "titleFontSize": 12, "offset": 10},
        "title": {"anchor": "start", "fontSize": 14, "subtitleFontSize": 12, "subtitlePadding": 4, "offset": 10},
        "range": {"category": list(PALETTE)},
    }}


def colour(name: str) -> str:
    """The colour of a sampler, family or run on every page: a fixed one for the samplers and families (the name's
    first word, e.g. "ddim (eta 0)" -> ddim), a stable hash of the name into PALETTE for the rest."""
    key = str(name).strip().lower()
    for candidate in (key, key.split(" ")[0], key.split(" · ")[-1].split(" ")[0]):
        if candidate in NAMED_COLOURS:
            return NAMED_COLOURS[candidate]
    return PALETTE[zlib.crc32(key.encode()) % len(PALETTE)]


def colours(names: Iterable[str]) -> alt.Scale:
    """A colour scale that gives each of `names` its colour(name), unless a name before it in this chart has that
    colour: then the first of PALETTE that none has (a hash of a few names into 12 colours collides often: mnist and
    shapes, fashion-mnist and 8gaussians)."""
    names, taken = list(dict.fromkeys(str(n) for n in names)), []
    for name in names:
        own = colour(name)
        taken.append(own if own not in taken else next((c for c in PALETTE if c not in taken), own))
    return alt.Scale(domain=names, range=taken)


def log_axis(channel: str = "y", title: str | None = alt.Undefined, **options) -> alt.Axis:
    """A log axis labelled at round values only, as densely as there is room for a label every ~18 px on a y axis
    (~45 px on an x axis): every 1..9 x 10^k on a short span, 1-2-5 on a longer one, decades (every k-th over many
    decades) beyond; ticks without a label at the other values. Vega's own log ticks label 1..9 and then drop the
    labels that overlap (10, 4, 2, 0.5, 0.3), which reads as noise."""
    size, gap = ("height", 18) if channel == "y" else ("width", 45)
    span = f"max(log(domain('{channel}')[1] / domain('{channel}')[0]) / LN10, 0.01)"
    per_decade = f"({size} / {span})"
    exponent = "floor(log(datum.value) / LN10 + 1e-6)"
    mantissa = f"(datum.value / pow(10, {exponent}))"
    decade = f"abs({mantissa} - 1) < 1e-3"
    one_two_five = f"({decade} || abs({mantissa} - 2) < 1e-3 || abs({mantissa} - 5) < 1e-3)"
    every = f"max(ceil({gap} / {per_decade}), 1)"
    shown = (f"({per_decade} * 0.046 >= {gap} || ({per_decade} * 0.3 >= {gap} ? {one_two_five} : "
             f"({decade} && {exponent} % {every} == 0)))")        # 0.046: log10(10/9), the closest pair of 1..9
    values = [m * 10.0 ** e for e in range(-6, 10) for m in range(1, 10)]
    return alt.Axis(title=title, values=values, tickCount=len(values), labelOverlap=False, format=TICKS,
                    labelExpr=f"{shown} ? datum.label : ''", **options)


LOG_PADDING = 6                 # pixels between a log axis's end and the data's extent: its end points drawn whole


def log_scale() -> alt.Scale:
    """A log scale on the data's extent (not niced to whole decades: the curve fills the plot), padded by
    LOG_PADDING px at both ends, so that the points at its ends are drawn whole inside the clipped frame."""
    return alt.Scale(type="log", nice=False, padding=LOG_PADDING)


def wrap(title: str, chars: int = TITLE_CHARS) -> list[str]:
    """A title as lines of at most `chars` characters (Streamlit cuts a one-line title at the chart's width)."""
    return textwrap.wrap(title, chars) or [""]


def titled(text: str, subtitle: str | None = None, chars: int = TITLE_CHARS) -> alt.Title:
    """A chart title wrapped to fit its panel, with an optional wrapped subtitle."""
    return alt.Title(wrap(text, chars), subtitle=wrap(subtitle, int(chars * 1.2)) if subtitle else alt.Undefined)


def clipped(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """A copy of chart (a chart or a layer of charts, as every page draws) with every mark clipped to its plot area,
    unless the mark says clip=False: a value beyond a scale's domain (a clamped or fixed domain, a point on a log
    axis's edge) is cut at the frame instead of drawn over the axis or the next panel. Vega-Lite's config has no
    default for `clip`, so show and live_chart set it on every mark."""
    chart = chart.copy(deep=False)
    if isinstance(chart, alt.LayerChart):
        chart.layer = [clipped(part) for part in chart.layer]
        return chart
    if isinstance(chart.mark, str):
        chart.mark = alt.MarkDef(type=chart.mark, clip=True)
    elif chart.mark.clip is alt.Undefined:
        chart.mark = chart.mark.copy(deep=False)
        chart.mark.clip = True
    return chart


def show(chart: alt.TopLevelMixin, container=st, **kwargs) -> None:
    """Draw an Altair chart in `container` at its column's width, as SVG, its marks clipped to their plot areas."""
    container.altair_chart(clipped(chart).properties(usermeta=SVG, autosize=FIT_X), **{"width": "stretch", **kwargs})


def _axis(name: str, title: str) -> alt.X:
    return alt.X(f"{name}:Q", title=title, scale=alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True))


def scatter(df: pd.DataFrame, title: str, x: str = "x", y: str = "y", color: str = "#4c78a8") -> alt.Chart:
    """Points (x, y) on the fixed 2D window, square."""
    return alt.Chart(df, title=title).mark_circle(size=9, opacity=0.6, color=color, clip=True).encode(
        x=_axis(x, "x"), y=alt.Y(f"{y}:Q", title="y", scale=alt.Scale(domain=[-DOMAIN, DOMAIN], clamp=True)),
    ).properties(width=PANEL, height=PANEL)


def schedule_curves(df: pd.DataFrame, t: int | None = None, y_title: str | None = None) -> alt.LayerChart:
    """One quantity (beta_t, alpha_bar_t or log-SNR) against t (columns t, value): a panel of panels(); the current
    t marked by a rule and a point, its value in the panel's subtitle."""
    base = alt.Chart(df).encode(x=alt.X("t:Q", title="t", axis=alt.Axis(format=TICKS)),
                                y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=TICKS)))
    layers = [base.mark_line(clip=True)]
    chart_title = alt.Undefined
    if t is not None:
        now = base.transform_filter(f"datum.t == {int(t)}")
        layers += [now.mark_rule(color="#e45756", strokeDash=[4, 3]).encode(y=alt.Undefined),
                   now.mark_point(color="#e45756", filled=True, size=60, tooltip=True)]
        at = df.loc[df["t"] == int(t), "value"]
        if y_title and len(at):
            chart_title = titled(y_title, f"at t = {int(t):,}: {float(at.iloc[0]):.3g} (red)")
    return alt.layer(*layers, title=chart_title).properties(height=PANEL_HEIGHT)


def schedule_frame(df: pd.DataFrame) -> pd.DataFrame:
    """beta_t, alpha_bar_t and log-SNR (columns t, beta, alpha_bar, log_snr) in long form, labelled (columns t,
    quantity, value), for panels(schedule_curves, ..., by="quantity")."""
    long = df.melt(id_vars="t", value_vars=list(SCHEDULE_LABELS), var_name="quantity", value_name="value")
    return long.assign(quantity=long["quantity"].map(SCHEDULE_LABELS))


def spans_decades(values: pd.Series, ratio: float = 3.0) -> bool:
    """Whether positive values span enough (max / min >= ratio) for a log axis to help; a narrower span reads
    better on a linear axis (a log axis would have one round value in it)."""
    values = values[values > 0]
    return len(values) > 1 and float(values.max()) >= ratio * float(values.min())


def loss_curve(df: pd.DataFrame, log_y: bool = True) -> alt.Chart:
    """Training loss against step (columns step, loss), on a log axis when log_y (spans_decades); the x axis ends
    at the run's last step."""
    y = (alt.Y("loss:Q", title="loss (log scale)", scale=log_scale(), axis=log_axis("y")) if log_y else
         alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False), axis=alt.Axis(format=TICKS)))
    return alt.Chart(df, title="Training loss (mean over bins of steps)").mark_line(clip=True).encode(
        x=alt.X("step:Q", title="step", scale=alt.Scale(nice=False), axis=alt.Axis(format=TICKS)), y=y,
    ).properties(height=STRETCH_HEIGHT)


def metric_curves(df: pd.DataFrame, x_title: str = "step", log_x: bool = False, log_y: bool = False,
                  y_title: str | None = None) -> alt.LayerChart:
    """One metric's panel (columns step, value, low, high, floor, floor_low, floor_high): the curve with each
    number's 95% interval as an error bar, and the floor as a green band over its interval (a pale bar at each
    point, so that a single measurement shows it too): a number inside it reads "at the floor". log_y for FID,
    which spans orders of magnitude while a model trains. Drawn by panels(), one per metric. The y scale covers
    the curve, its intervals and the floor, so a single point or a flat run still gets a labelled y axis."""
    x = alt.X("step:Q", title=x_title, scale=log_scale() if log_x else alt.Scale(nice=False),
              axis=log_axis("x") if log_x else alt.Axis(format=TICKS))
    y_scale = log_scale() if log_y else alt.Scale(zero=False)
    y_axis = log_axis("y") if log_y else alt.Axis(format=TICKS)
    base = alt.Chart().encode(x=x)
    band = base.mark_area(opacity=0.25, color=FLOOR_COLOUR, clip=True).encode(
        y=alt.Y("floor_low:Q", title=y_title, scale=y_scale, axis=y_axis), y2="floor_high:Q")
    floor_bars = base.mark_rule(opacity=0.35, color=FLOOR_COLOUR, strokeWidth=7, clip=True).encode(
        y="floor_low:Q", y2="floor_high:Q")
    floor = base.mark_line(color=FLOOR_COLOUR, strokeDash=[4, 3], clip=True).encode(y="floor:Q")
    bars = base.mark_rule(color="#4c78a8", clip=True).encode(y="low:Q", y2="high:Q")
    line = base.mark_line(point=True, clip=True).encode(y=alt.Y("value:Q", title=y_title), tooltip=[
        "step:Q", "metric:N", "value:Q", "low:Q", "high:Q", "floor:Q", "floor_low:Q", "floor_high:Q"])
    return alt.layer(band, floor_bars, floor, bars, line, data=df).properties(height=PANEL_HEIGHT)


Y_COLUMNS = ("value", "low", "high", "floor", "floor_low", "floor_high")     # what a metric panel puts on its y axis


def positive(df: pd.DataFrame) -> pd.DataFrame:
    """df with every value <= 0 of its y columns (Y_COLUMNS) made missing: a log axis has no place for them, and
    one (a floor's lower bound at 0, say) would leave the whole axis without a domain, so without ticks."""
    return df.assign(**{c: df[c].where(df[c] > 0) for c in Y_COLUMNS if c in df})


def panels(builder: Callable[..., alt.TopLevelMixin], df: pd.DataFrame, by: str = "metric",
           order: Sequence[str] = tuple(METRIC_LABELS.values()), per_row: int = 2, live: bool = False,
           **options) -> None:
    """Small multiples that fit any width: builder(rows of one value of df[by], y_title=value, **options) for each
    value (in `order`, then the rest), titled by it (a builder may title itself: a subtitle), per_row to a row of
    columns, each as wide as its column (a facet's panels keep their width in pixels and overflow a narrow page).
    A FID panel gets a log axis (log_y). Panels with a floor say what the green band is."""
    present = list(dict.fromkeys(df[by]))
    values = [v for v in order if v in present] + [v for v in present if v not in order]
    for start in range(0, len(values), per_row):
        for col, value in zip(st.columns(per_row), values[start:start + per_row]):
            part = df[df[by] == value]
            kw = {**options, "y_title": str(value), **({"log_y": True} if str(value).startswith("FID") else {})}
            if kw.get("log_y"):
                part = positive(part)
            floor = "floor" in part and part["floor"].notna().any()
            title = titled(str(value), "green band: the floor (95%)" if floor else None)
            with col:
                if live:
                    live_chart(builder, part, title=title.to_dict(), options=kw, width="stretch")
                else:
                    chart = builder(part, **kw)
                    show(chart if chart.title is not alt.Undefined else chart.properties(title=title))


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
    y_scale = alt.Scale(type="log", domain=[bottom, top])   # not clamped: log_axis's round values beyond it would pile up
    #   at its ends (every label from 10 to 1e9 drawn at the top, found in the browser at 1,400 px)
    colour = alt.Color("curve:N", title=None, scale=alt.Scale(domain=list(names.values()),
                                                              range=["#e45756", "#4c78a8"]),
                       )
    base = alt.Chart(long).encode(x=alt.X("sigma:Q", title="noise level σ (log)", scale=log_scale(),
                                          axis=log_axis("x")), color=colour)
    bars = base.mark_rule(opacity=0.6).encode(y=alt.Y("low:Q", scale=y_scale), y2="high:Q")
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="mean squared error (log)", scale=y_scale,
                axis=log_axis("y")),
        tooltip=["curve:N", alt.Tooltip("sigma:Q", format=".3~g"), alt.Tooltip("value:Q", format=".3~g"),
                 alt.Tooltip("low:Q", format=".3~g"), alt.Tooltip("high:Q", format=".3~g")])
    return alt.layer(bars, line, title="Where the network has not learned the denoiser").properties(
        height=STRETCH_HEIGHT)


def nfe_curves(df: pd.DataFrame, metric: str = "w1") -> alt.LayerChart:
    """A metric against NFE (log) per run and sampler (explore.flow.quality_vs_nfe: columns run, sampler, nfe,
    metric, metric_low, metric_high, metric_floor_low, metric_floor_high), 95% error bars, the floor as a band."""
    df = df.assign(curve=df["run"] + " · " + df["sampler"])
    x = alt.X("nfe:Q", title="network evaluations (NFE, log)", scale=log_scale(), axis=log_axis("x"))
    color = alt.Color("curve:N", title=None, scale=colours(df["curve"]))
    base = alt.Chart(df).encode(x=x)
    band = base.mark_area(opacity=0.2, color=FLOOR_COLOUR).encode(
        y=alt.Y(f"min({metric}_floor_low):Q"), y2=f"max({metric}_floor_high):Q")
    bars = base.mark_rule().encode(y=f"{metric}_low:Q", y2=f"{metric}_high:Q", color=color)
    line = base.mark_line(point=True).encode(
        y=alt.Y(f"{metric}:Q", title=f"{METRIC_LABELS.get(metric, metric)} (log)", scale=log_scale(),
                axis=log_axis("y")),
        color=color,
        strokeDash=alt.StrokeDash("run:N", title=None), tooltip=["run:N", "sampler:N", "nfe:Q", f"{metric}:Q",
                                                                  f"{metric}_low:Q", f"{metric}_high:Q"])
    return alt.layer(band, bars, line).properties(height=STRETCH_HEIGHT)


def label_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """The metric column's names (w1, kl_model_true, ...) replaced by their display labels."""
    return df.assign(metric=df["metric"].map(METRIC_LABELS))


@lru_cache(maxsize=None)
def _spec(builder: Builder, columns: tuple[str, ...], options: tuple = ()) -> dict:
    """The Vega-Lite spec of builder(empty frame, **options), its marks clipped, without its data (the data travels
    separately)."""
    chart = clipped(builder(pd.DataFrame({c: [] for c in columns}), **dict(options)))
    spec = chart.properties(usermeta=SVG, autosize=FIT_X).to_dict()
    spec.pop("data", None)
    spec.pop("datasets", None)
    return spec


def live_chart(builder: Builder, df: pd.DataFrame, title: str | dict | None = None, options: dict | None = None,
               **kwargs) -> None:
    """Draw builder(df, **options) cheaply, as SVG, its marks clipped: a spec cached per builder and options plus
    this frame as its data."""
    spec = _spec(builder, tuple(df.columns), tuple(sorted((options or {}).items())))
    st.vega_lite_chart(df, {**spec, "title": title} if title else spec, **kwargs)


def agreement_curves(df: pd.DataFrame) -> alt.LayerChart:
    """Mean squared x0_hat difference per pixel against the paper timestep t, one line per denoiser
    (explore.analytic_comparison.agreement: columns t, denoiser, value, low, high), both axes log, 95% error bars."""
    base = alt.Chart(df).encode(x=alt.X("t:Q", title="timestep t (log)", scale=log_scale(), axis=log_axis("x")))
    color = alt.Color("denoiser:N", title=None)
    bars = base.transform_calculate(shown="max(datum.low, datum.value / 100)").mark_rule().encode(
        y="shown:Q", y2="high:Q", color=color)    # a log axis has no 0: an interval reaching 0 is cut at value / 100
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="mean |Δ x̂0|² per pixel (log)", scale=log_scale(), axis=log_axis("y")),
        color=color, tooltip=["t:Q", "sigma:Q", "denoiser:N", "value:Q", "low:Q", "high:Q"])
    return alt.layer(bars, line).properties(height=STRETCH_HEIGHT)
