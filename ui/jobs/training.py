"""A visitor's live training job: a background thread doing torch work only (no st.* calls), a lock-protected
copy of the history for the page to draw, and a stop event. The job lives in st.session_state, per visitor and
per page (its key). What it measures while training is a Measurement: the 2D metrics, or FID for images.

A job joins the server's queue when it is started (ui.jobs.scheduler: a full queue, or a visitor who already has a job,
is refused there, on the page's thread). Its thread then waits for a slot (the snapshot says where it stands in
line), builds the trainer of a new model only then (a waiting job holds no network, EMA or optimiser), and runs below
the pages' priority for at most the server's job budget (ui.jobs.budget): the clock starts when the slot is taken and
counts the first measurement (the floor) and the last one, which is why training stops early enough to leave room
for it. It stops earlier when its visitor has gone (ui.jobs.visitor: the page closed) or asks it to. The slot is given
back on every path.
"""

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import streamlit as st
import torch

from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.data import TrainingData
from diffusion.explore import toy2d_experiments as explore2d
from diffusion.metrics import evaluation
from diffusion.metrics.protocol import points_protocol
from diffusion.models.model_config import MLPConfig
from diffusion.sampling.run import Run
from diffusion.training.defaults import MODEL_DEFAULTS, UNBOUNDED_STEPS
from diffusion.training.threads import set_threads
from diffusion.training.trainer import RunResult, StepInfo, Trainer

from ui.jobs import timing, visitor
from ui.jobs.budget import budget, check_config
from ui.jobs.checkpoint_io import zip_trainer
from ui.jobs.scheduler import Place, Ticket, lower_priority, scheduler

JOB_KEY = "toy2d_job"


class Measurement(Protocol):
    """What a job measures every few steps, on its own thread: a row of metrics and an optional preview."""

    names: tuple[str, ...]           # the metrics a measurement returns (its row also holds intervals, protocol)

    def prepare(self, config: RunConfig) -> None:
        """One-off work before training (e.g. the floor), timed outside the training clock."""

    def __call__(self, run: Run) -> tuple[dict[str, float | str], Any]:
        """(evaluation.Result.row(), preview or None) of the current EMA model; ValueError when it has no value."""


class Metrics2D:
    """W1, W2 and KL of DDIM samples under evaluation.live_protocol, with intervals and floors."""

    names = explore2d.METRICS

    def prepare(self, config: RunConfig) -> None:
        evaluation.prepare_floor(points_protocol(evaluation.LIVE_2D_N), config)   # the floor: once per process

    def __call__(self, run: Run) -> tuple[dict[str, float | str], Any]:
        return evaluation.measure_run(run, evaluation.live_protocol(run))[0].row(), None


METRICS_2D = Metrics2D()


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
    preview: Any = None          # what the last measurement showed (image pages: a sample grid)
    place: Place | None = None   # where the job stands in the server's queue (position 0: training)
    capped: bool = False         # the server's job budget, not the visitor's, set the time limit
    wall: float = 0.0            # seconds since the job got its slot (measurements included)
    expected: float | None = None    # the promised seconds of this job (ui.jobs.timing), for the time left


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
    """One model and the thread that trains it; the trainer is touched by that thread only while it runs. Given a
    trainer (a loaded checkpoint) it continues it; given a config and a build function (`TrainingJob.new`), the
    trainer is built by the job's thread once it has a slot."""

    def __init__(self, trainer: Trainer | None, measurement: Measurement = METRICS_2D,
                 build: tuple[RunConfig, Callable[[], Trainer]] | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.trainer = trainer
        self._build = build
        self.measurement = measurement
        self._lock = threading.Lock()           # guards everything the page reads
        self._trainer_lock = threading.Lock()   # held while the trainer is training or being saved
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        rows = trainer.history if trainer is not None else []
        self._steps = [int(r["step"]) for r in rows if "loss" in r]
        self._loss = [float(r["loss"]) for r in rows if "loss" in r]
        names = measurement.names
        self._metrics = [{k: v for k, v in r.items() if k not in ("time", "loss", "lr")} for r in rows
                         if names and names[0] in r]
        self._budget: tuple[int, float, int | None, float | None] = (self.step, self.elapsed, None, None)
        self._result: RunResult | None = None
        self._error: str | None = None
        self._metric_note: str | None = None
        self._preview: Any = None
        self.run: Run | None = trainer.as_run() if trainer is not None and trainer.step else None
        self.measure_every = 0
        self.unhealthy = ""                       # why the trainer's weights failed the last check (guard.health)
        self._ticket: Ticket | None = None
        self._presence = visitor.Presence(None)
        self._capped = False
        self._promise: timing.Estimate | None = None
        self._started: float | None = None        # time.monotonic() when the job got its slot
        self._ended: float | None = None          # and when it gave the slot back
        self._deadline = math.inf                 # time.monotonic() by which the job must have given it back
        self._measure_s = 0.0                     # the longest measurement so far (room kept for the last one)

    @classmethod
    def new(cls, config: RunConfig, build: Callable[[], Trainer], measurement: Measurement = METRICS_2D
            ) -> "TrainingJob":
        """A job for a new model of config; build() makes its trainer when the job gets a slot."""
        return cls(None, measurement, (config, build))

    @property
    def config(self) -> RunConfig:
        return self.trainer.config if self.trainer is not None else self._build[0]

    @property
    def step(self) -> int:
        return self.trainer.step if self.trainer is not None else 0

    @property
    def elapsed(self) -> float:
        return self.trainer.elapsed if self.trainer is not None else 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def run_key(self) -> str:
        """Identifies the finished model the sections below training use (changes whenever it does)."""
        return f"{self.id}-{self.run.step if self.run else 0}"

    def start(self, steps: int | None, seconds: float | None, measure_every: int,
              expected: timing.Estimate | None = None) -> None:
        """Train in the background for `steps` more steps or `seconds` (at most the server's job budget), measuring
        every measure_every steps, once the server's scheduler gives a slot; expected: the promise (ui.jobs.timing), which
        the server's record compares with the time the job took when it ran the budget it was given."""
        if self.running:
            raise RuntimeError("this model is already training")
        limit = budget().job_seconds
        capped = seconds is None or seconds > limit
        seconds = limit if capped else seconds
        ticket = Ticket(f"training ({self.config.model.kind})", min(expected.seconds if expected else seconds,
                                                                     seconds), visitor.visitor_key())
        scheduler().queue(ticket)          # ValueError when the queue is full or the visitor already has a job
        self._ticket, self._capped, self.measure_every, self._promise = ticket, capped, measure_every, expected
        self._stop.clear()
        self._presence = visitor.Presence(visitor.session_id())
        with self._lock:
            self._result, self._error, self._metric_note, self._started, self._ended = None, None, None, None, None
            self._budget = (self.step, self.elapsed, steps, seconds if not self._capped else None)
        self._thread = threading.Thread(target=self._work, args=(steps, seconds), daemon=True,
                                        name=f"train-{self.id}")
        self._thread.start()

    def _cancelled(self) -> bool:
        """Stop asked by the visitor, or the visitor has gone (their page closed)."""
        return self._stop.is_set() or self._presence.gone()

    def stop(self) -> None:
        """Ask the thread to stop after the current step; what was learned is kept."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread is done (tests, scripts); True if it is."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _work(self, steps: int | None, seconds: float) -> None:
        """Wait for a slot (below the pages' priority), train within `seconds` of taking it, give the slot back."""
        lower_priority()
        slots = scheduler()
        try:
            if not slots.acquire(self._ticket, self._cancelled):
                with self._lock:
                    self._result = RunResult("callback", 0)
                return
            with self._lock:
                self._started = time.monotonic()
                self._deadline = self._started + seconds
            threads = job_threads(self.config)
            with timing.busy(threads):             # every promise made meanwhile, in any session, counts this job
                result = self._train(steps, threads)
        finally:
            slots.release(self._ticket)
            with self._lock:
                self._ended = time.monotonic()
        planned = "steps" if steps is not None else "time"
        if self._promise is not None and result is not None and result.reason == planned and not (
                planned == "time" and self._capped):       # ran the budget it was promised for: the record learns
            timing.RECORD.observe(self._promise.kind, self._promise.base, self._ended - self._started)

    def _train(self, steps: int | None, threads: int) -> RunResult | None:
        """Build the trainer of a new model, measure the floor, train until the steps, the deadline less the last
        measurement, or a stop, on `threads` torch threads; then measure the last model."""
        set_threads(threads)
        result, error = None, None
        with self._trainer_lock:
            try:
                if self.trainer is None:
                    self.trainer = self._build[1]()
                if self.measure_every:
                    self.measurement.prepare(self.config)
                result = self.trainer.run(steps=steps if steps is not None else UNBOUNDED_STEPS,
                                          seconds=max(0.0, self._deadline - time.monotonic()), callback=self._on_step)
                if result.reason == "callback" and not self._cancelled():   # stopped to leave room: the budget
                    result = replace(result, reason="time")
                measured = bool(self._metrics) and self._metrics[-1]["step"] == self.trainer.step
                if (self.measure_every and self.trainer.step and not measured and result.reason != "diverged"
                        and not self._presence.gone()):     # nobody to show it to: the slot is freed at once
                    self._measure()     # the curves end at the model the sections below use
            except Exception as e:  # noqa: BLE001 - any failure must reach the page as an error box
                error = f"training failed at step {self.step}: {type(e).__name__}: {e}"
            unhealthy = self.trainer.health() if result is not None and result.reason == "diverged" else ""
            run = self.trainer.as_run() if self.step and not unhealthy else self.run  # the last good model
        with self._lock:
            self._result, self._error, self.run, self.unhealthy = result, error, run, unhealthy
        return result if error is None else None

    def _on_step(self, trainer: Trainer, info: StepInfo) -> bool:
        """Log the step, measure every measure_every steps; stop when asked, or when the last measurement would no
        longer fit before the deadline."""
        with self._lock:
            self._steps.append(info.step)
            self._loss.append(info.loss)
        if self.measure_every and info.step % self.measure_every == 0:
            self._measure()
        return self._cancelled() or time.monotonic() + self._measure_s >= self._deadline

    def _measure(self) -> None:
        """Measure the current EMA model cheaply and log its metrics (NaN with a note if it has none)."""
        note, preview, start = None, None, time.monotonic()
        try:
            metrics, preview = self.measurement(self.trainer.as_run())
        except ValueError as e:
            metrics, note = {m: math.nan for m in self.measurement.names}, str(e)
        self._measure_s = max(self._measure_s, time.monotonic() - start)
        if metrics:
            self.trainer.log(**metrics)
        with self._lock:
            if metrics:
                self._metrics.append({"step": self.trainer.step, **metrics})
            self._metric_note = note or self._metric_note
            self._preview = preview if preview is not None else self._preview

    def snapshot(self) -> Snapshot:
        with self._lock:
            start_step, start_elapsed, steps, seconds = self._budget
            step, elapsed = (self._steps[-1], self.elapsed) if self._steps else (0, 0.0)
            if steps is not None:
                progress = (step - start_step) / steps
            elif seconds:
                progress = (elapsed - start_elapsed) / seconds
            else:
                progress = 1.0
            running = self.running
            rate = (step - start_step) / max(elapsed - start_elapsed, 1e-9) if step > start_step else 0.0
            place = scheduler().place(self._ticket) if running and self._ticket is not None else None
            wall = (self._ended or time.monotonic()) - self._started if self._started is not None else 0.0
            return Snapshot(list(self._steps), list(self._loss), list(self._metrics), step, elapsed,
                            min(1.0, max(0.0, progress)) if running else 1.0, rate, running, self._result,
                            self._error, self._metric_note, self._preview, place, self._capped, wall,
                            self._promise.seconds if self._promise else None)

    def checkpoint_zip(self) -> bytes:
        """The run folder trainer.save writes, zipped (waits if the model is training); ValueError before the
        trainer is built."""
        with self._trainer_lock:
            if self.trainer is None:
                raise ValueError("this model has not started training yet: nothing to export")
            return zip_trainer(self.trainer)


def current_job(key: str = JOB_KEY) -> TrainingJob | None:
    """This visitor's job on one page (st.session_state is per browser session)."""
    return st.session_state.get(key)


def set_job(job: TrainingJob | None, key: str = JOB_KEY) -> None:
    st.session_state[key] = job


def on_a_new_thread(work: Callable[[], Any]) -> Any:
    """work() on a thread of its own, as a job runs, and its result (or its exception): on 2 torch threads a tiny
    U-Net's training step took 0.085 s on the process's main thread (where AppTest and the CLI run a page) and
    0.110 s on a new one, so a cost timed on the main thread is not the job's."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:          # noqa: BLE001 - handed back to the caller's thread
            out["error"] = e
    thread = threading.Thread(target=run, name="timing")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def job_threads(config: RunConfig) -> int:
    """Torch threads a training job of config uses: the small MLP 1 (it loses time to OpenMP sync), a U-Net the
    cores the load leaves free (ui.jobs.timing.free_threads)."""
    return MODEL_DEFAULTS[config.model.kind]["threads"] or timing.free_threads()


def device_for(config: RunConfig) -> str:
    """Where a model trains: U-Nets on the GPU when there is one; the small 2D MLP always on the CPU."""
    return "cuda" if config.model.kind == "unet" and torch.cuda.is_available() else "cpu"


def start_training(config: RunConfig, data: TrainingData, steps: int | None, seconds: float | None,
                   measure_every: int, key: str = JOB_KEY, measurement: Measurement = METRICS_2D,
                   expected: timing.Estimate | None = None) -> TrainingJob:
    """Continue the current model when config only changes the budget, else start a new one (checked against the
    server's budget; its trainer is built when the job gets a slot); returns the job. ValueError when the budget or
    the queue refuses it (the visitor's current model is then kept)."""
    check_config(config)
    job = current_job(key)
    if job is None or not same_model(job.config, config):
        y = data.y if getattr(config.model, "num_classes", 0) else None
        job = TrainingJob.new(config, lambda: Trainer(config, data.x, y, device=device_for(config),
                                                      data_source=data.source), measurement)
    job.measurement = measurement
    job.start(steps, seconds, measure_every, expected)
    set_job(job, key)
    return job


def current_run(key: str = JOB_KEY) -> tuple[str, Run] | None:
    """(run_key, Run) of this visitor's last finished model on one page, or None."""
    job = current_job(key)
    if job is None or job.run is None:
        return None
    return job.run_key, job.run
