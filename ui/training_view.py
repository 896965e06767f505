"""The training section's controls and display: the Train button, live progress and charts while the job runs
(a fragment redrawn every REFRESH_S seconds from a snapshot), and the outcome once it stops."""

import streamlit as st

from diffusion import explore2d
from diffusion.config import RunConfig

from . import charts, data2d, training
from .layout import error_box
from .training import Snapshot, TrainingJob

REFRESH_S = 0.5


def _start(config: RunConfig, steps: int | None, seconds: float | None, measure_every: int) -> None:
    job = training.current_job()
    if job is not None and job.running:
        return
    try:
        training.start_training(config, data2d.training_data(config.data), steps, seconds, measure_every)
    except ValueError as e:
        error_box("Could not start training", e)


def train_buttons(config: RunConfig, steps: int | None, seconds: float | None, measure_every: int) -> None:
    """Train (continuing the current model when only the budget changed) and Discard.

    A click is handled before the button is drawn (its value is already in session_state), with this run's
    widget values, so the button is drawn disabled in the same run."""
    if st.session_state.get("toy2d_train"):
        _start(config, steps, seconds, measure_every)
    job = training.current_job()
    running = job is not None and job.running
    if running:
        label = "Training..."
    elif job is None:
        label = "Train"
    elif training.same_model(job.config, config):
        label = f"Continue training from step {job.trainer.step:,}"
    else:
        label = "Train a new model (settings changed; replaces the current one)"
    left, right = st.columns([3, 2])
    left.button(label, key="toy2d_train", type="primary", icon=":material/play_arrow:", disabled=running)
    if job is not None and not running:
        right.button("Discard the model", key="toy2d_reset", on_click=training.set_job, args=(None,))


def show_training(job: TrainingJob | None) -> None:
    """Live panel while the job runs, its outcome and curves once it has stopped."""
    if job is None:
        return
    if job.running:
        _live_panel()
    else:
        snap = job.snapshot()
        _outcome(snap, job.config.data.dataset)
        _curves(snap, job.config.data.dataset, live=False)


@st.fragment(run_every=REFRESH_S)
def _live_panel() -> None:
    job = training.current_job()
    snap = job.snapshot() if job is not None else None
    if snap is None or not snap.running:
        st.rerun()          # once: the whole page redraws with the finished model
    text = f"Training: step {snap.step:,} · {snap.elapsed:.1f} s · {snap.rate:.0f} steps/s"
    left, right = st.columns([5, 1])
    left.progress(snap.progress, text=text)
    right.button("Stop", key="toy2d_stop", icon=":material/stop:", on_click=job.stop,
                 help="Stops after the current step; the model keeps what it learned")
    _curves(snap, job.config.data.dataset, live=True)


def _curves(snap: Snapshot, dataset: str, live: bool) -> None:
    draw = charts.live_chart if live else (lambda builder, df, **kw: st.altair_chart(builder(df), **kw))
    draw(charts.loss_curve, explore2d.loss_frame(snap.steps, snap.loss), width="stretch")
    if snap.metrics:
        df = explore2d.metrics_frame(snap.metrics, data2d.floor(dataset))
        draw(charts.metric_curves, charts.label_metrics(df))
    if snap.metric_note:
        st.warning(f"Some measurements have no value: {snap.metric_note}", icon=":material/warning:")


def _outcome(snap: Snapshot, dataset: str) -> None:
    result = snap.result
    if snap.error:
        error_box("Training failed", f"{snap.error}. The model of step {snap.step:,} is kept.")
    elif result is not None and result.reason == "diverged":
        error_box("Training diverged", result.message)
    elif result is not None and result.reason == "callback":
        st.info(f"Stopped at step {snap.step:,}: the model keeps what it learned.", icon=":material/stop:")
    elif result is not None:
        st.success(f"Done: {result.steps:,} steps in this run, {snap.step:,} in all, {snap.elapsed:.1f} s of "
                   f"training ({snap.rate:.0f} steps/s).", icon=":material/check:")
    if snap.metrics:
        last, floor = snap.metrics[-1], data2d.floor(dataset)
        st.caption(f"Last measurement (step {last['step']:,}; floor in brackets): " + " · ".join(
            f"{charts.METRIC_LABELS[m]} {last[m]:.3f} ({floor[m]:.3f})" for m in explore2d.METRICS if m in last))
