"""A visitor's live training job: a background thread doing torch work only (no st.* calls), a lock-protected
copy of the history for the page to draw, and a stop event. The job lives in st.session_state, per visitor.
"""

import math
import threading
import uuid
from dataclasses import dataclass, replace

import streamlit as st
import torch

from diffusion import explore2d
from diffusion.cli import MODEL_DEFAULTS, UNBOUNDED_STEPS
from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.data import TrainingData
from diffusion.models.mlp import MLPConfig
from diffusion.runs import Run
from diffusion.train import RunResult, StepInfo, Trainer

JOB_KEY = "toy2d_job"


@dataclass(frozen=True)
class Snapshot:
    """What the page draws, copied under the job's lock."""

    steps: list[int]
    loss: list[float]
    metrics: list[dict]
    step: int
    elapsed: float
    progress: float              # of the current budget, 0..1
    rate: float                  # steps per second in the current budget (measurements included)
    running: bool
    result: RunResult | None
    error: str | None
    metric_note: str | None      # why a measurement is missing (e.g. NaN samples)


def run_config(dataset: str, schedule: str, timesteps: int, width: int, depth: int, lr: float,
               batch_size: int, steps: int) -> RunConfig:
    """The RunConfig the page's widgets describe (MLP defaults otherwise)."""
    return RunConfig(data=DataConfig(dataset=dataset), schedule=ScheduleConfig(schedule, timesteps),
                     model=MLPConfig(width=width, depth=depth),
                     train=TrainConfig(steps=steps, batch_size=batch_size, lr=lr))


def same_model(a: RunConfig, b: RunConfig) -> bool:
    """True when b only changes a's step budget: training a with b's settings continues it."""
    return replace(b, train=replace(b.train, steps=a.train.steps)) == a


class TrainingJob:
    """One model and the thread that trains it; the trainer is touched by that thread only while it runs."""

    def __init__(self, trainer: Trainer):
        self.id = uuid.uuid4().hex[:12]
        self.trainer = trainer
        self._lock = threading.Lock()           # guards everything the page reads
        self._trainer_lock = threading.Lock()   # held while the trainer is training or being saved
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        rows = trainer.history
        self._steps = [int(r["step"]) for r in rows if "loss" in r]
        self._loss = [float(r["loss"]) for r in rows if "loss" in r]
        self._metrics = [{k: r[k] for k in ("step", *explore2d.METRICS) if k in r} for r in rows if "w1" in r]
        self._budget: tuple[int, float, int | None, float | None] = (trainer.step, trainer.elapsed, None, None)
        self._result: RunResult | None = None
        self._error: str | None = None
        self._metric_note: str | None = None
        self.run: Run | None = trainer.as_run() if trainer.step else None
        self.measure_every = 0

    @property
    def config(self) -> RunConfig:
        return self.trainer.config

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def run_key(self) -> str:
        """Identifies the finished model the sections below training use (changes whenever it does)."""
        return f"{self.id}-{self.run.step if self.run else 0}"

    def start(self, steps: int | None, seconds: float | None, measure_every: int) -> None:
        """Train in the background for `steps` more steps or `seconds`, measuring every measure_every steps."""
        if self.running:
            raise RuntimeError("this model is already training")
        self._stop.clear()
        self.measure_every = measure_every
        with self._lock:
            self._result, self._error, self._metric_note = None, None, None
            self._budget = (self.trainer.step, self.trainer.elapsed, steps, seconds)
        self._thread = threading.Thread(target=self._work, args=(steps, seconds), daemon=True,
                                        name=f"train-{self.id}")
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after the current step; what was learned is kept."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread is done (tests, scripts); True if it is."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _work(self, steps: int | None, seconds: float | None) -> None:
        torch.set_num_threads(MODEL_DEFAULTS["mlp"]["threads"])  # 1: the small MLP loses time to OpenMP sync
        result, error = None, None
        with self._trainer_lock:
            try:
                if self.measure_every:
                    explore2d.metric_floor(self.config.data.dataset)   # once per process; the charts draw it
                result = self.trainer.run(steps=steps if steps is not None else UNBOUNDED_STEPS, seconds=seconds,
                                          callback=self._on_step)
                measured = bool(self._metrics) and self._metrics[-1]["step"] == self.trainer.step
                if self.measure_every and self.trainer.step and not measured:
                    self._measure()     # the curves end at the model the sections below use
            except Exception as e:  # noqa: BLE001 - any failure must reach the page as an error box
                error = f"training failed at step {self.trainer.step}: {type(e).__name__}: {e}"
            run = self.trainer.as_run() if self.trainer.step else self.run
        with self._lock:
            self._result, self._error, self.run = result, error, run

    def _on_step(self, trainer: Trainer, info: StepInfo) -> bool:
        with self._lock:
            self._steps.append(info.step)
            self._loss.append(info.loss)
        if self.measure_every and info.step % self.measure_every == 0:
            self._measure()
        return self._stop.is_set()

    def _measure(self) -> None:
        """Sample the current EMA model cheaply and log its metrics (NaN with a note if it has none)."""
        note = None
        try:
            metrics = explore2d.live_metrics(self.trainer.as_run())
        except ValueError as e:
            metrics, note = {m: math.nan for m in explore2d.METRICS}, str(e)
        self.trainer.log(**metrics)
        with self._lock:
            self._metrics.append({"step": self.trainer.step, **metrics})
            self._metric_note = note or self._metric_note

    def snapshot(self) -> Snapshot:
        with self._lock:
            start_step, start_elapsed, steps, seconds = self._budget
            step, elapsed = (self._steps[-1], self.trainer.elapsed) if self._steps else (0, 0.0)
            if steps is not None:
                progress = (step - start_step) / steps
            elif seconds:
                progress = (elapsed - start_elapsed) / seconds
            else:
                progress = 1.0
            running = self.running
            rate = (step - start_step) / max(elapsed - start_elapsed, 1e-9) if step > start_step else 0.0
            return Snapshot(list(self._steps), list(self._loss), list(self._metrics), step, elapsed,
                            min(1.0, max(0.0, progress)) if running else 1.0, rate, running, self._result,
                            self._error, self._metric_note)

    def checkpoint_zip(self) -> bytes:
        """The run folder trainer.save writes, zipped (waits if the model is training)."""
        from .checkpoint_io import zip_trainer
        with self._trainer_lock:
            return zip_trainer(self.trainer)


def current_job() -> TrainingJob | None:
    """This visitor's job (st.session_state is per browser session)."""
    return st.session_state.get(JOB_KEY)


def set_job(job: TrainingJob | None) -> None:
    st.session_state[JOB_KEY] = job


def start_training(config: RunConfig, data: TrainingData, steps: int | None, seconds: float | None,
                   measure_every: int) -> TrainingJob:
    """Continue the current model when config only changes the budget, else start a new one; returns the job."""
    job = current_job()
    if job is None or not same_model(job.config, config):
        job = TrainingJob(Trainer(config, data.x, data_source=data.source))
        set_job(job)
    job.start(steps, seconds, measure_every)
    return job


def current_run() -> tuple[str, Run] | None:
    """(run_key, Run) of this visitor's last finished model, or None."""
    job = current_job()
    if job is None or job.run is None:
        return None
    return job.run_key, job.run
