"""The compare page's loaders and charts: every run (shipped, in checkpoints/, in folders the visitor added, trained
in this session) summarised by diffusion.explore.catalog, folders re-read only when their files change; overlays of
loss and metric curves; one metric against one hyperparameter."""

from dataclasses import dataclass, replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from diffusion.explore import catalog
from diffusion.sampling.run import Run
from diffusion.training.checkpoints import CONFIG, EMA, METRICS

from ui.views.charts import (
    FLOOR_COLOUR, METRIC_LABELS, PANEL_HEIGHT, STRETCH_HEIGHT, TICKS, colours, log_axis, log_scale)
from ui.jobs.roots import confine, run_roots
from ui.jobs.session_runs import session_runs

FOLDERS_KEY, PATH_KEY, ADD_ERROR_KEY = "compare_folders", "compare_path", "compare_add_error"
LABELS = {**METRIC_LABELS, "fid": "FID (classifier features)", "accuracy": "label accuracy", "nll": "NLL (exact density)",
          "kid": "KID", "final_loss": f"final loss (mean of last {catalog.LOSS_WINDOW})",
          "train_seconds": "training time (s, on its device)",
          "bits_per_dim": "bits/dim of held-out images (ODE to sigma 0.01)",
          "model_nll": "model NLL of held-out points (nats, ODE to sigma 0.01)"}
HIGHER_IS_BETTER = ("accuracy",)
SCAN_TTL_S = 30      # a folder's list of runs is scanned again after this many seconds, not on every rerun
NO_PROTOCOL = "no protocol recorded"
LEGACY_PREFIX = "old·"           # protocols measured before the protocol existed (diffusion.metrics.measure.LEGACY)
X_AXES = {"step": "step", "time": "training time (s)"}


@dataclass(frozen=True)
class Axis:
    """A hyperparameter the analysis can put on the x axis: its table column, and how to scale it."""

    column: str
    numeric: bool
    log: bool = False


AXES = {"parameters": Axis("parameters", True, log=True), "T (timesteps)": Axis("T", True, log=True),
        "schedule": Axis("schedule", False), "objective": Axis("objective", False),
        "batch size": Axis("batch_size", True, log=True), "learning rate": Axis("lr", True, log=True),
        "conditioning": Axis("conditioning", False), "architecture": Axis("architecture", False)}


def _stamp(folder: Path) -> tuple:
    """(mtime, size) of the files a summary reads: a change to any of them invalidates the cached summary."""
    stats = [(folder / name).stat() if (folder / name).exists() else None for name in (CONFIG, EMA, METRICS)]
    return tuple((s.st_mtime_ns, s.st_size) if s else None for s in stats)


@st.cache_data(show_spinner=False, max_entries=512)
def _read_folder(path: str, source: str | None, stamp: tuple) -> catalog.RunSummary:
    return catalog.read_folder(path, source=source)


@st.cache_data(show_spinner=False, max_entries=64, hash_funcs={Run: lambda run: (id(run), run.step)})
def _read_run(name: str, run: Run) -> catalog.RunSummary:
    return catalog.read_run(name, run)


def _folder(path: Path, source: str | None = None) -> catalog.RunSummary:
    return _read_folder(str(path), source, _stamp(path))


@st.cache_data(show_spinner=False, ttl=SCAN_TTL_S, max_entries=64)
def _runs_in(path: str) -> list[Path]:
    """catalog.folder_runs, cached for SCAN_TTL_S seconds (a deep scan per rerun would cost seconds)."""
    return catalog.folder_runs(path)


@st.cache_data(show_spinner=False, ttl=SCAN_TTL_S, max_entries=4)
def _discovered(root: str) -> list[Path]:
    return catalog.discover(root)


def _added(path: str) -> list[catalog.RunSummary]:
    """The runs of a folder the visitor added; one error row if it has gone since."""
    try:
        return [_folder(p, "folder") for p in _runs_in(path)]
    except ValueError as e:
        return [catalog.RunSummary(Path(path).name or path, "folder", path, str(e))]


def _unique(summaries: list[catalog.RunSummary]) -> list[catalog.RunSummary]:
    """Distinct names (charts and pickers key on them): a repeated name gets its source, then a number."""
    seen: set[str] = set()
    out = []
    for s in summaries:
        name, k = s.name, 1
        while name in seen:
            k += 1
            name = f"{s.name} ({s.source})" if k == 2 else f"{s.name} ({s.source} {k - 1})"
        seen.add(name)
        out.append(s if name == s.name else replace(s, name=name))
    return out


def all_runs() -> list[catalog.RunSummary]:
    """Shipped and checkpoints/ runs, the visitor's added folders, then this session's runs; folders first seen
    once (an added folder under checkpoints/ is not listed twice)."""
    listed = [_folder(p) for p in _discovered(str(catalog.CHECKPOINTS_DIR))]
    paths = {s.path for s in listed}
    for folder in st.session_state.get(FOLDERS_KEY, []):
        listed += [s for s in _added(folder) if s.path not in paths]
        paths |= {s.path for s in listed}
    listed += [_read_run(name, run) for name, run in session_runs().items()]
    return _unique(listed)


def add_folder() -> None:
    """Callback of the Add button: remember the typed folder if it lies inside the allowed roots (ui.jobs.roots) and
    holds runs, else keep the error to show."""
    typed = st.session_state.get(PATH_KEY, "").strip()
    st.session_state[ADD_ERROR_KEY] = None
    if not typed:
        return
    try:
        path = str(confine(typed, run_roots(), "run folder"))
        _runs_in(path)
    except ValueError as e:
        st.session_state[ADD_ERROR_KEY] = str(e)
        return
    folders = st.session_state.setdefault(FOLDERS_KEY, [])
    if path not in folders:
        folders.append(path)
    st.session_state[PATH_KEY] = ""


def add_error() -> str | None:
    """Why the last folder the visitor typed was refused (None if it was not)."""
    return st.session_state.get(ADD_ERROR_KEY)


def default_overlay(runs: list[catalog.RunSummary], most: int = 3) -> list[str]:
    """The runs the Curves section opens on: those on one data (dataset, classes, image size) with the most points
    measured under one of today's protocols, so that it opens on curves, not single points or a loss alone (at most
    `most`, in the list's order); with none measured so, the first `most`."""
    readable = [s for s in runs if s.ok]
    curves = catalog.metric_curves(readable)
    curves = curves[~curves["protocol"].fillna(NO_PROTOCOL).str.startswith((LEGACY_PREFIX, NO_PROTOCOL))]
    if curves.empty:
        return [s.name for s in runs[:most]]
    data = catalog.table(readable).set_index("name")[list(catalog.SAME_DATA)].map(str).agg(" ".join, axis=1)
    curves = curves.assign(data=curves["run"].map(data))
    best_data, best_protocol = curves.groupby(["data", "protocol"]).size().idxmax()
    chosen = set(curves.loc[(curves["data"] == best_data) & (curves["protocol"] == best_protocol), "run"])
    return [s.name for s in readable if s.name in chosen][:most]


def metric_options(table: pd.DataFrame) -> list[str]:
    """The columns the analysis can plot: final loss, the measured metrics the table has, training time."""
    measured = [m for m in (*catalog.METRIC_ORDER, *catalog.LIKELIHOOD_METRICS) if m in table]
    return ["final_loss", *measured, "train_seconds"]


def device_note(table: pd.DataFrame) -> str | None:
    """A warning when these runs' training times were spent on different devices (CPU and GPU seconds differ)."""
    devices = table["device"].replace("", "not recorded") if "device" in table else pd.Series(dtype=str)
    if devices.nunique() < 2:
        return None
    groups = "; ".join(f"{d}: {', '.join(table.loc[devices == d, 'name'])}" for d in sorted(devices.unique()))
    return f"Training times were measured on different devices ({groups}): a CPU second is not a GPU second."


def one_protocol(curves: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, str | None]:
    """The curve points measured under `protocol`, and a note naming what was left out (None if nothing was)."""
    measured = curves["protocol"].fillna(NO_PROTOCOL)
    kept, left = curves[measured == protocol], curves[measured != protocol]
    if left.empty:
        return kept, None
    others = ", ".join(sorted(left["protocol"].fillna(NO_PROTOCOL).unique()))
    return kept, (f"Only points measured with {protocol} are drawn: {len(left)} point(s) of "
                  f"{', '.join(sorted(left['run'].unique()))} were measured otherwise ({others}) and are not "
                  "comparable with them.")


HEADLINE = {"fid": "FID", "w1": "W1", "nll": "NLL", "kid": "KID"}   # the quality a run is read by first, in order


def _reading(row: pd.Series, metric: str, suffix: str = "") -> str:
    """'FID 2.7 [0.37, 5.0]' (the value and its interval, or its floor with suffix "_floor"); blank without one."""
    value = row.get(f"{metric}{suffix}")
    if value is None or pd.isna(value):
        return ""
    low, high = row.get(f"{metric}{suffix}_low"), row.get(f"{metric}{suffix}_high")
    bounds = f" [{low:.2g}, {high:.2g}]" if not suffix and pd.notna(low) and pd.notna(high) else ""
    return f"{HEADLINE.get(metric, '')} {value:.3g}{bounds}".strip()


def runs_overview(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table a visitor reads first, narrow enough for a laptop's window (catalog.table has ~45 columns):
    each run's headline quality with its 95% interval and floor, label accuracy, its steps; text, blank where a run
    has no value (its data and model: in the run's name and under every column)."""
    def headline(row: pd.Series) -> str:
        return next((m for m in HEADLINE if pd.notna(row.get(m))), "")

    rows = []
    for _, row in table.iterrows():
        m = headline(row)
        rows.append({"run": row["name"], "quality [95%]": _reading(row, m) if m else "",
                     "floor": _reading(row, m, "_floor") if m else "",
                     "accuracy [95%]": (f"{row['accuracy']:.0%} [{row['accuracy_low']:.0%}, {row['accuracy_high']:.0%}]"
                                        if pd.notna(row.get("accuracy")) else ""),
                     "steps": f"{row['steps']:,}"})
    return pd.DataFrame(rows)


def loss_overlay(df: pd.DataFrame, x: str, log_y: bool) -> alt.Chart:
    """Loss curves of several runs (columns run, step, time, loss), one colour per run."""
    return alt.Chart(df, title="Training loss (mean over bins of steps)").mark_line(clip=True).encode(
        x=alt.X(f"{x}:Q", title=X_AXES[x], scale=alt.Scale(nice=False), axis=alt.Axis(format=TICKS)),
        y=alt.Y("loss:Q", title="loss (log scale)" if log_y else "loss", scale=log_scale() if log_y else alt.Undefined,
                axis=log_axis("y") if log_y else alt.Axis(format=TICKS)),
        color=alt.Color("run:N", title="run", scale=colours(df["run"])),
        tooltip=["run:N", "step:Q", "time:Q", "loss:Q"],
    ).properties(height=STRETCH_HEIGHT)


def metric_overlay(df: pd.DataFrame, x: str, log_y: bool = False, y_title: str | None = None) -> alt.LayerChart:
    """One metric's panel (columns run, step, time, value, low, high, floor_low, floor_high, protocol), one colour
    per run, each point with its 95% interval as an error bar, and the floor as a green band from the lowest floor
    interval to the highest at each x (the runs' floors: one protocol, the same n); drawn by charts.panels, one per
    metric (metric_frame)."""
    x_axis = alt.X(f"{x}:Q", title=X_AXES[x], axis=alt.Axis(format=TICKS))
    y_scale = log_scale() if log_y else alt.Scale(zero=False)
    band = alt.Chart().mark_area(opacity=0.25, color=FLOOR_COLOUR, clip=True).encode(
        x=x_axis, y=alt.Y("min(floor_low):Q", title=y_title, scale=y_scale,
                          axis=log_axis("y") if log_y else alt.Axis(format=TICKS)), y2="max(floor_high):Q")
    base = alt.Chart().encode(x=x_axis, color=alt.Color("run:N", title="run", scale=colours(df["run"]),
                                                        legend=alt.Legend(columns=1)))
    lines = base.mark_line(point=True, clip=True).encode(
        y=alt.Y("value:Q", title=y_title),
        tooltip=["run:N", "step:Q", "time:Q", "metric:N", "value:Q", "low:Q", "high:Q", "floor_low:Q",
                 "floor_high:Q", "protocol:N"])
    bars = base.mark_rule().encode(y="low:Q", y2="high:Q")
    return alt.layer(band, bars, lines, data=df).properties(height=PANEL_HEIGHT)


def metric_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The overlay's metrics under their labels."""
    return df.assign(metric=df["metric"].map(lambda m: LABELS.get(m, m)))


def analysis_chart(table: pd.DataFrame, metric: str, axis: Axis) -> alt.LayerChart | alt.Chart:
    """metric against a hyperparameter, one point per run coloured by dataset (a bar of the mean per category for
    categorical axes)."""
    df = table.dropna(subset=[metric])
    label = LABELS.get(metric, metric)
    low, high = (f"{metric}_low", f"{metric}_high") if f"{metric}_low" in df else (metric, metric)
    tooltip = ["name:N", "dataset:N", f"{axis.column}:{'Q' if axis.numeric else 'N'}", f"{metric}:Q", f"{low}:Q",
               f"{high}:Q"]
    color = alt.Color("dataset:N", scale=colours(df["dataset"]))
    if axis.numeric:
        x = alt.X(f"{axis.column}:Q", title=axis.column, scale=log_scale() if axis.log else alt.Undefined,
                  axis=log_axis("x") if axis.log else alt.Axis(format=TICKS))
    else:
        x = alt.X(f"{axis.column}:N", title=axis.column)
    points = alt.Chart(df).mark_circle(size=90).encode(
        x=x, y=alt.Y(f"{metric}:Q", title=label, scale=alt.Scale(zero=False)), color=color, tooltip=tooltip)
    bars = alt.Chart(df).mark_rule().encode(x=x, y=f"{low}:Q", y2=f"{high}:Q", color=color)
    layers = [bars, points] if axis.numeric else [
        alt.Chart(df).mark_bar(opacity=0.3).encode(x=x, y=alt.Y(f"mean({metric}):Q", title=label)), bars, points]
    return alt.layer(*layers).properties(height=STRETCH_HEIGHT)


def how_to_read(metric: str, axis_name: str) -> str:
    """One sentence on reading the analysis chart."""
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    return (f"Each point is one run: its {LABELS.get(metric, metric)} ({better} is better, the bar its 95% "
            f"interval) against its {axis_name}. A trend says something only between runs that differ in "
            f"{axis_name} alone (same dataset, steps and the rest: check the table); losses of different objectives "
            "(eps, x0, v, edm) or datasets are not on the same scale, and a metric is read against its floor.")


def current_first(labels: list[str]) -> list[str]:
    """Labels of protocols (or 'protocol on data' groups) with today's protocols first, then the legacy ones
    (measure.LEGACY: 'old·...'), then none recorded; the order among each kept."""
    def age(label: str) -> int:
        return 2 if label.startswith(NO_PROTOCOL) else 1 if label.startswith(LEGACY_PREFIX) else 0
    return sorted(labels, key=age)


def pick_protocol(curves: pd.DataFrame) -> str:
    """The protocol whose points the overlay draws: the visitor's pick when the curves have several (today's
    protocols first, the most common first among them)."""
    protocols = current_first(curves["protocol"].fillna(NO_PROTOCOL).value_counts().index.tolist())
    if len(protocols) == 1:
        return protocols[0]
    return st.selectbox("Measured with (only points of one protocol are comparable)", protocols,
                        key="compare_curve_protocol")


def comparable_runs(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs whose metric was measured under the protocol and data the visitor picks (one group only)."""
    groups = catalog.comparable(table, metric)
    label = st.selectbox("Compared under (protocol and data)", current_first(list(groups)), key="compare_group")
    left = int(table[metric].notna().sum()) - len(groups[label])
    if left:
        st.caption(f"{left} run(s) with a {LABELS[metric]} measured under another protocol or on other data are left "
                   "out: their numbers are not comparable with these.")
    return groups[label]
