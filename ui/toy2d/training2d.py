"""The 2D page's training panel: the 2D training data, the live W1/W2/KL measurement, its chart and caption, and the
promise of a 2D training from a step and a measurement timed here."""

from collections.abc import Callable
from dataclasses import replace

import streamlit as st

from diffusion.config import RunConfig, TrainConfig
from diffusion.explore import toy2d_experiments as explore2d
from diffusion.metrics.evaluation import row_sentences
from diffusion.training.cost import dummy_trainer
from diffusion.training.threads import torch_threads

from ui.jobs import scheduler, timing, training
from ui.jobs.training import Snapshot
from ui.toy2d import data2d
from ui.views import charts
from ui.views.training_view import TrainingPanel


def _curves_2d(snap: Snapshot, config: RunConfig) -> tuple[Callable, object] | None:
    """The 2D metric chart (builder, frame): each number with its interval, the floor as a band, or None before any
    measurement."""
    if not snap.metrics:
        return None
    return charts.metric_curves, charts.label_metrics(explore2d.metrics_frame(snap.metrics))


def _summary_2d(snap: Snapshot, config: RunConfig) -> str | None:
    rows = [r for r in snap.metrics if isinstance(r.get("protocol"), str) and "w1_low" in r]
    if not rows:
        return None
    last = rows[-1]
    return (f"Last measurement (step {last['step']:,}; {int(last['n']):,} samples, {last['protocol']}; 95% intervals): "
            + row_sentences(last, {m: charts.METRIC_LABELS[m] for m in explore2d.METRICS}))


def panel_2d(prefix: str, curves: bool = True) -> TrainingPanel:
    """A 2D training panel (the job lives under PREFIX_job); curves: the metric chart and caption of its
    measurements (the guidance and twin panels show neither)."""
    none = lambda snap, config: None  # noqa: E731
    return TrainingPanel(prefix, data2d.training_data, lambda config: training.METRICS_2D,
                         _curves_2d if curves else none, _summary_2d if curves else none, promise=expected_2d)


@st.cache_data(show_spinner="Timing a few training steps and one measurement...", max_entries=32)
def costs_2d(config: RunConfig) -> tuple[timing.Cost, timing.Cost]:
    """(one training step, one W1/W2/KL measurement) of a 2D config, timed on one thread as its job runs them (the
    measurement on the untrained network's samples, once the floor is drawn)."""
    with torch_threads(1):
        trainer = dummy_trainer(config)
        step = timing.measure(trainer.train_step, repeats=5, warmup=2)
        training.METRICS_2D.prepare(config)
        run = trainer.as_run()
        measurement = timing.measure(lambda: training.METRICS_2D(run), warmup=1, repeats=1)
    return step, measurement


def expected_2d(config: RunConfig, steps: int | None, seconds: float | None, every: int) -> timing.Estimate:
    """The promise of a 2D training: its steps and measurements at their measured costs, or the visitor's seconds
    when the budget is time (then the first and last measurements, which the job's clock counts too)."""
    step, measurement = costs_2d(_cost_key(config))
    if seconds is not None:
        return timing.expect("training mlp (time budget)", (measurement, 1 if every else 0), fixed=float(seconds),
                             nice=scheduler.job_nice())
    measurements = steps // every + 1 if every else 0
    return timing.expect("training mlp", (step, steps), (measurement, measurements), nice=scheduler.job_nice())


def _cost_key(config: RunConfig) -> RunConfig:
    """config with what does not change a step's cost (learning rate, budget, seed) at fixed values: one timing
    serves every setting of those."""
    return replace(config, train=replace(config.train, lr=TrainConfig.lr, steps=TrainConfig.steps,
                                         seed=TrainConfig.seed))


TOY2D = panel_2d("toy2d")   # the page's main panel
