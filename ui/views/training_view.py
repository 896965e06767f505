"""The training section's controls and display: the Train button, live progress and charts while the job runs
(a fragment redrawn every REFRESH_S seconds from a snapshot), and the outcome once it stops. A TrainingPanel says
what differs between pages (widget keys, data, measurement, how measurements are drawn); the 2D page's panels are in ui.toy2d.training2d."""

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from diffusion.config import DataConfig, RunConfig
from diffusion.data import TrainingData
from diffusion.explore import toy2d_experiments as explore2d
from diffusion.metrics.evaluation import row_interval

from ui.jobs import budget, session_runs, timing, training
from ui.jobs.training import Measurement, Snapshot, TrainingJob
from ui.views import charts
from ui.views.layout import error_box

REFRESH_S = 0.8  # at least one redraw a second (the goal), each costing the trainer little
FAR = {"w1": 1.5, "fid": 3.0}   # a finished run whose last number exceeds this many floors is too short to judge
QUEUE_REFRESH_S = 2.0   # a waiting job's line is redrawn less often: many waiting pages must not load the server


@dataclass(frozen=True)
class TrainingPanel:
    """What differs between the pages that train: the widget-key prefix (the job lives under PREFIX_job), the
    training data, the measurement, the metric chart (builder, frame), the caption of the last measurement, a preview
    of the model, and the promise (the expected time) of a training when the page does not pass one (the 2D panels:
    ui.toy2d.training2d.expected_2d)."""

    prefix: str
    data: Callable[[DataConfig], TrainingData]
    measurement: Callable[[RunConfig], Measurement]
    metric_chart: Callable[[Snapshot, RunConfig], tuple[Callable, object] | None]
    summary: Callable[[Snapshot, RunConfig], str | None]
    preview: Callable[[Snapshot], None] = lambda snap: None
    promise: Callable[[RunConfig, int | None, float | None, int], timing.Estimate] | None = None
    fewest_steps: int = 1      # the smallest training the page offers

    @property
    def key(self) -> str:
        return f"{self.prefix}_job"


def _start(config: RunConfig, steps: int | None, seconds: float | None, measure_every: int,
           panel: TrainingPanel, promise: timing.Estimate) -> None:
    job = training.current_job(panel.key)
    if job is not None and job.running:
        return
    try:
        budget.check_time(promise.seconds, "this training", steps, panel.fewest_steps)
        training.start_training(config, panel.data(config.data), steps, seconds, measure_every, panel.key,
                                panel.measurement(config), promise)
    except ValueError as e:
        error_box("Could not start training", e)


def train_buttons(config: RunConfig, steps: int | None, seconds: float | None, measure_every: int,
                  panel: TrainingPanel, expected: timing.Estimate | None = None) -> None:
    """Train (continuing the current model when only the budget changed) with the promised time, and Discard.
    expected: the promise when the page has measured its parts (default: the panel's promise).

    A click is handled before the button is drawn (its value is already in session_state), with this run's
    widget values, so the button is drawn disabled in the same run."""
    try:
        budget.check_config(config)              # before a network is built, even to time a step
        expected = expected or panel.promise(config, steps, seconds, measure_every)
    except ValueError as e:
        error_box("Cannot train with these settings", e)
        return
    if st.session_state.get(f"{panel.prefix}_train"):
        _start(config, steps, seconds, measure_every, panel, expected)
    job = training.current_job(panel.key)
    running = job is not None and job.running
    if running:
        label = "Training..."
    elif job is None:
        label = "Train"
    elif training.same_model(job.config, config):
        label = f"Continue training from step {job.step:,}"
    else:
        label = "Train a new model (settings changed; replaces the current one)"
    left, right = st.columns([3, 2])
    left.button(label, key=f"{panel.prefix}_train", type="primary", icon=":material/play_arrow:", disabled=running)
    if not running:
        left.caption(f"Expected: {expected.text()} on this machine (its parts timed here, for the load now).")
    if job is not None and not running:
        right.button("Discard the model", key=f"{panel.prefix}_reset", on_click=_discard, args=(job, panel.key))


def _discard(job: TrainingJob, key: str) -> None:
    """Drop the visitor's model, from this page and from the other pages' lists (ui.jobs.session_runs)."""
    if job.run is not None:
        session_runs.forget(job.run)
    training.set_job(None, key)


def show_training(job: TrainingJob | None, panel: TrainingPanel) -> None:
    """Live panel while the job runs, its outcome and curves once it has stopped."""
    if job is None:
        return
    if job.running:
        place = job.snapshot().place
        _queued_panel(panel) if place is not None and place.position > 0 else _live_panel(panel)
    else:
        snap = job.snapshot()
        _outcome(snap, job.config, panel)
        _curves(snap, job.config, panel, live=False)


def _progress_line(job: TrainingJob, snap: Snapshot, text: str, panel: TrainingPanel) -> None:
    left, right = st.columns([5, 1])
    left.progress(snap.progress, text=text)
    right.button("Stop", key=f"{panel.prefix}_stop", icon=":material/stop:", on_click=job.stop,
                 help="Stops after the current step (or leaves the queue); the model keeps what it learned")


@st.fragment(run_every=QUEUE_REFRESH_S)
def _queued_panel(panel: TrainingPanel) -> None:
    """The job's place in the server's queue, until it gets a slot (then the page redraws with the live panel)."""
    job = training.current_job(panel.key)
    snap = job.snapshot() if job is not None else None
    if snap is None or not snap.running or snap.place is None or snap.place.position == 0:
        st.rerun()
    _progress_line(job, snap, f"Queued, {snap.place.describe()}", panel)


@st.fragment(run_every=REFRESH_S)
def _live_panel(panel: TrainingPanel) -> None:
    job = training.current_job(panel.key)
    snap = job.snapshot() if job is not None else None
    if snap is None or not snap.running:
        st.rerun()          # once: the whole page redraws with the finished model
    left = f" · {timing.progress_text(snap.progress, snap.wall, snap.expected)}" if snap.expected else ""
    _progress_line(job, snap, f"Training: step {snap.step:,} · {snap.rate:.0f} steps/s{left}", panel)
    _curves(snap, job.config, panel, live=True)


def _curves(snap: Snapshot, config: RunConfig, panel: TrainingPanel, live: bool) -> None:
    loss = explore2d.loss_frame(snap.steps, snap.loss)
    log_y = charts.spans_decades(loss["loss"])
    if live:
        charts.live_chart(charts.loss_curve, loss, options={"log_y": log_y}, width="stretch")
    else:
        charts.show(charts.loss_curve(loss, log_y))
    metric_chart = panel.metric_chart(snap, config)
    if metric_chart is not None:
        builder, df = metric_chart
        charts.panels(builder, df, live=live)
    panel.preview(snap)
    if snap.metric_note:
        st.warning(f"Some measurements have no value: {snap.metric_note}", icon=":material/warning:")


def too_short(row: dict | None) -> str | None:
    """A sentence when a run's last measurement (a metrics row) is still so far above its floor (FAR floors: the
    whole interval beyond) that the run says little yet about its settings; None otherwise."""
    for metric, factor in FAR.items():
        if row and pd.notna(row.get(metric)) and pd.notna(row.get(f"{metric}_floor")):
            value, floor = row_interval(row, metric), row_interval(row, metric, floor=True)
            if value.low > factor * floor.value:
                return (f"Too short to judge: at step {row['step']:,} {metric.upper()} is {value.value:.3g}, "
                        f"{value.value / floor.value:.1f}x its floor ({floor.value:.3g}): the model has not learned the "
                        "data yet.")
    return None


def _outcome(snap: Snapshot, config: RunConfig, panel: TrainingPanel) -> None:
    result = snap.result
    if snap.error:
        error_box("Training failed", f"{snap.error}. The model of step {snap.step:,} is kept.")
    elif result is not None and result.reason == "diverged":
        error_box("Training diverged", result.message)
    elif result is not None and result.reason == "callback":
        st.info(f"Stopped at step {snap.step:,}: the model keeps what it learned.", icon=":material/stop:")
    elif result is not None and result.reason == "time" and snap.capped:
        st.warning(f"Stopped at this server's time budget for one job ({budget.budget().job_seconds:,} s), at step "
                   f"{snap.step:,}; the model keeps what it learned, and Continue training queues another job.",
                   icon=":material/timer:")
    elif result is not None:
        st.success(f"Done: {result.steps:,} steps in this run, {snap.step:,} in all, {snap.elapsed:.1f} s of "
                   f"training ({snap.rate:.0f} steps/s).", icon=":material/check:")
    verdict = too_short(snap.metrics[-1] if snap.metrics else None)
    if verdict and not snap.running:
        st.warning(f"{verdict} Continue training adds steps to this model (the button above).", icon=":material/schedule:")
    summary = panel.summary(snap, config)
    if summary:
        st.caption(summary)
