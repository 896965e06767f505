"""The image pages' training section: U-Net preset, steps, learning rate, batch, schedule and T, the expected time
from a measured step, then the live job (ui.jobs.training) with FID measured every N steps on the shipped classifier's
features (n samples with a 95% interval, the floor at the same n) and a sample grid refreshed at each measurement."""

import math

import pandas as pd
import streamlit as st

from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.core.schedules import SCHEDULES
from diffusion.explore import image_experiments as ei
from diffusion.metrics.classifier import classifier_dir
from diffusion.metrics.evaluation import prepare_floor, row_sentences
from diffusion.models.model_config import UNET_PRESETS, unet_preset
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

from ui.jobs import budget, run_costs, scheduler, session_runs, timing, training
from ui.views import charts, training_view
from ui.images import image_cache
from ui.images.image_ondemand import run_parts
from ui.views.layout import error_box
from ui.jobs.roots import confine, data_roots, describe
from ui.jobs.training import Snapshot

T_OPTIONS = (100, 200, 500, 1000)
LRS = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3)
BATCHES = (16, 32, 64, 128, 256)
MEASURE_EVERY = (0, 50, 100, 200, 500, 1000, 5000)
FID_NS = (50, 100, 200, 500, 1000)
MAX_STEPS = {"cpu": 3000, "cuda": 100_000}     # a CPU visitor is steered to runs of minutes, not hours
# The default training: the tiny U-Net, 2,500 steps at lr 2e-3 with cosine decay. Measured on MNIST 16x16 (offline
# subset), DDIM-50, n = 100 held-out (digit) or 500 (all digits): digit 3, FID 6.1 [0.9, 11.3] against a floor of 3.4,
# 96% read as a 3; conditional, FID 5.9 [3.0, 8.8] against 2.7, 90.8% [87.9, 93.0] the requested digit (w = 1). 300
# steps at 1e-3 gave noise (FID 426); 1,500 steps at 2e-3 still 3.4x its floor.
# At 32x32 a step costs about 3.5x more (0.30 s on 2 cores): 1,000 steps, so that the default fits a CPU server's
# job budget (600 s; 2,500 steps were promised 999 s there and refused).
DEFAULT_STEPS, DEFAULT_LR = {16: 2500, 32: 1000}, 2e-3
FEWEST_STEPS = 50      # the steps slider's smallest value and its increment
COST_TABLE_STEPS = 3    # training steps of each model cost_table runs (ei.step_cost: one with memory hooks, two timed)
METRIC_LABELS = {"fid": "FID (classifier features)", "accuracy": "label accuracy"}


class ImageMeasurement:
    """FID of n DDIM samples under the pages' protocol (interval, floor at the same n) and a grid of the first
    PREVIEW_N; with n = 0 (no classifier for the dataset, or FID off) only the grid."""

    names = ("fid", "accuracy")

    def __init__(self, n: int, scale: int):
        self.n, self.scale = n, scale

    def prepare(self, config: RunConfig) -> None:
        if self.n:
            prepare_floor(ei.page_protocol(config.data, self.n), config)   # the floor, before the clock runs

    def __call__(self, run: Run) -> tuple[dict[str, float | str], object]:
        if self.n:
            result, images = ei.fid_measure(run, self.n)
            metrics = result.row()
        else:
            y = run.balanced_labels(ei.PREVIEW_N)
            metrics, images = {}, run.sample(ei.PREVIEW_N, SamplerConfig("ddim", ei.LIVE_STEPS), y=y)
        return metrics, ei.image_grid(images[:ei.PREVIEW_N], scale=self.scale)


FOLDER_HELP = ("A folder on this server, under the data folder it allows (data/ or $DIFFUSION_DATA_DIR): one "
               "subfolder of images per class.")


def folder_dataset(typed: str) -> str:
    """'folder:PATH' for a typed image folder inside the allowed data roots (ui.jobs.roots); "" with an info or an error
    box when none is typed or it is refused."""
    if not typed.strip():
        st.info(f"Type a folder to train on your images ({describe(data_roots())} on this server).",
                icon=":material/info:")
        return ""
    try:
        return f"folder:{confine(typed, data_roots(), 'image folder')}"
    except ValueError as e:
        error_box("Cannot use this folder", e)
        return ""


def has_classifier(data: DataConfig) -> bool:
    return classifier_dir(data.dataset, data.image_size).is_dir()


def _metric_chart(snap: Snapshot, config: RunConfig):
    df = ei.metrics_frame(snap.metrics)
    if df.empty:
        return None
    return charts.metric_curves, df.assign(metric=df["metric"].map(METRIC_LABELS))


def _summary(snap: Snapshot, config: RunConfig) -> str | None:
    rows = [r for r in snap.metrics if not math.isnan(r.get("fid", math.nan))]
    if not rows:
        return None
    last = rows[-1]
    n = int(last["n"])
    return (f"Last measurement (step {last['step']:,}; 95% intervals): "
            f"{row_sentences(last, {'fid': 'FID', 'accuracy': 'label accuracy'})}. FID on "
            f"{ei.fid_extractor(config.data)}: {n:,} samples (DDIM {ei.LIVE_STEPS} steps) against {n:,} held-out "
            f"images; the floor is {n:,} training images against the same ones ({last['protocol']}).")


def _preview(snap: Snapshot) -> None:
    if snap.preview is not None:
        st.image(snap.preview, caption=f"{ei.PREVIEW_N} samples (DDIM {ei.LIVE_STEPS} steps, EMA weights) at the "
                                       "last measurement")


def panel(prefix: str, fid_n: int, scale: int) -> training_view.TrainingPanel:
    """The training panel of an image page (the job lives under PREFIX_job)."""
    return training_view.TrainingPanel(prefix, ei.training_set, lambda config: ImageMeasurement(fid_n, scale),
                                       _metric_chart, _summary, _preview, fewest_steps=FEWEST_STEPS)


def run_config(data: DataConfig, channels: int, num_classes: int, conditioning: str, preset: str, schedule: str,
               T: int, lr: float, batch: int, steps: int) -> RunConfig:
    """The RunConfig the training widgets describe."""
    model = unet_preset(preset, image_size=data.image_size, channels=channels, num_classes=num_classes,
                        conditioning=conditioning)
    return RunConfig(data=data, schedule=ScheduleConfig(schedule, T), model=model,
                     train=TrainConfig(steps=steps, batch_size=batch, lr=lr, decay="cosine"))


def training_promise(config: RunConfig, device: str, steps: int, every: int, fid_n: int
                     ) -> tuple[timing.Estimate, float, int]:
    """(the promise, seconds per step now, parameters) of an image training: its steps, and at each measurement
    DDIM-LIVE_STEPS sampling of its images (fid_n, or the preview's) and, with FID, scoring fid_n of them."""
    step, sample_step, parameters = image_cache.training_costs(config, device, training.job_threads(config),
                                                               fid_n or ei.PREVIEW_N)
    measurements = steps // every + 1 if every else 0
    work = [(step, steps), (sample_step, measurements * ei.LIVE_STEPS)]
    if fid_n and measurements:
        work.append((run_costs.measurement_cost(config, fid_n), measurements))
    return timing.expect("training unet", *work, nice=scheduler.job_nice()), step.now(), parameters


def _widgets(prefix: str, default_preset: str, device: str, image_size: int) -> dict:
    cols = st.columns(4)
    presets = [p for p in UNET_PRESETS]
    w = {"preset": cols[0].selectbox("U-Net preset", presets, index=presets.index(default_preset),
                                     key=f"{prefix}_preset", help="tiny: 177 k parameters (fast on a CPU); "
                                     "small-16: 1.9 M; small-32: 2.8 M (meant for 32x32)"),
         "steps": cols[1].slider("Steps", FEWEST_STEPS, MAX_STEPS[device], DEFAULT_STEPS[image_size], FEWEST_STEPS,
                                 key=f"{prefix}_steps"),
         "lr": cols[2].select_slider("Learning rate", LRS, DEFAULT_LR, format_func="{:.0e}".format, key=f"{prefix}_lr",
                                     help="peak rate, after 100 warm-up steps; it decays (cosine) to a tenth of it "
                                          "at the last step"),
         "batch": cols[3].select_slider("Batch size", BATCHES, 64, key=f"{prefix}_batch")}
    cols = st.columns(4)
    w["schedule"] = cols[0].selectbox("Noise schedule", SCHEDULES, key=f"{prefix}_schedule")
    w["T"] = cols[1].select_slider("T", T_OPTIONS, 1000, key=f"{prefix}_T")
    w["every"] = cols[2].select_slider("Samples and FID every", MEASURE_EVERY, 500, key=f"{prefix}_every",
                                       format_func=lambda n: f"{n} steps" if n else "never")
    w["fid_n"] = cols[3].select_slider("FID samples n", FID_NS, 100, key=f"{prefix}_fid_n",
                                       help="n samples against n held-out images; the floor: n training images "
                                            "against the same ones (n is capped when the data hold fewer)")
    return w


def train_toggle(prefix: str, required: bool) -> bool:
    """Whether to show the training section: always when there is no shipped run to look at (required), else when
    the visitor asks (loading the data and timing a step cost ~1 s, so a first render skips them)."""
    if required:
        return True
    return st.toggle("Train a model yourself (the shipped run below needs no training)", key=f"{prefix}_train_open")


def trained_model(prefix: str) -> tuple[str, Run] | None:
    """The model this visitor trained on the page, while the training section is closed."""
    return training.current_run(f"{prefix}_job")


def train_or_trained(prefix: str, required: bool, data: DataConfig, conditional: bool, name: str
                     ) -> tuple[str, Run] | None:
    """The training section when it is open (train_toggle), else the model the visitor trained on this page."""
    if train_toggle(prefix, required):
        return training_section(prefix, data, conditional=conditional, name=name)
    return trained_model(prefix)


def training_section(prefix: str, data: DataConfig, conditional: bool, conditioning: str = "add",
                     default_preset: str = "tiny", name: str = "") -> tuple[str, Run] | None:
    """Widgets, expected time, the Train button and the live job; returns this visitor's (run_key, Run), which is
    also registered for the other pages under name."""
    try:
        train_set = ei.training_set(data)
    except (ValueError, OSError) as e:
        error_box(f"Cannot load {data.dataset!r}", e)
        return None
    if train_set.notice:
        st.info(train_set.notice, icon=":material/info:")
    device = training.device_for(RunConfig(model=unet_preset(default_preset)))
    w = _widgets(prefix, default_preset, device, data.image_size)
    fid_n = w["fid_n"] if has_classifier(data) else 0
    if not fid_n:
        st.warning(f"No shipped classifier for {data.dataset} at {data.image_size}x{data.image_size}: training "
                   "shows samples, not FID.", icon=":material/warning:")
    try:
        config = run_config(data, train_set.x.shape[1], train_set.num_classes if conditional else 0, conditioning,
                            w["preset"], w["schedule"], w["T"], w["lr"], w["batch"], w["steps"])
        budget.check_config(config)
    except ValueError as e:
        error_box("These settings do not make a model", e)
        return None
    promise, per_step, parameters = training_promise(config, device, w["steps"], w["every"], fid_n)
    st.caption(f"{train_set.source}: {len(train_set.x):,} images. On this {device.upper()}: {per_step:.2f} s per "
               f"step (measured), so **{promise.text()}** for {w['steps']:,} steps with measurements. "
               f"{parameters:,} parameters.")
    job_panel = panel(prefix, fid_n, image_cache.SCALE.get(data.image_size, 1))
    training_view.train_buttons(config, w["steps"], None, w["every"], job_panel, expected=promise)
    training_view.show_training(training.current_job(job_panel.key), job_panel)
    model = training.current_run(job_panel.key)
    if model is not None and name:
        session_runs.register(name, model[1])
    return model


def cost_configs(batch: int = 64) -> dict[str, RunConfig]:
    """The models compared for cost: conditional MNIST 16x16 (small-16), 32x32 grayscale and RGB (small-32)."""
    mnist16, mnist32 = DataConfig("mnist", image_size=16), DataConfig("mnist", image_size=32)
    shapes32 = DataConfig("shapes", image_size=32)
    return {"16x16x1, small-16": run_config(mnist16, 1, 10, "add", "small-16", "linear", 1000, 1e-3, batch, 1),
            "32x32x1, small-32": run_config(mnist32, 1, 10, "add", "small-32", "linear", 1000, 1e-3, batch, 1),
            "32x32x3, small-32": run_config(shapes32, 3, 10, "add", "small-32", "linear", 1000, 1e-3, batch, 1)}


def cost_table_promise(configs: dict[str, RunConfig]) -> timing.Estimate:
    """How long cost_table takes: for each config, its trainer built and ei.step_cost's training steps (one with the
    memory hooks, two timed) at its batch, each step's cost from steps timed at two small batches."""
    device = training.device_for(next(iter(configs.values())))
    work = []
    for config in configs.values():
        build, per_step, per_image = image_cache.small_batch_costs(config, device)
        work += [(build, 1), (per_step, COST_TABLE_STEPS), (per_image, COST_TABLE_STEPS * config.train.batch_size)]
    return timing.expect("cost table", *work)


def cost_table(configs: dict[str, RunConfig], promise: timing.Estimate) -> pd.DataFrame:
    """Measured cost of each config (label -> config) on this machine: time per step, parameters, memory."""
    device = training.device_for(next(iter(configs.values())))
    costs = run_parts("Timing training steps:", [(label, lambda config=config: image_cache.step_cost(config, device))
                                                 for label, config in configs.items()], promise)
    rows = []
    for (label, config), c in zip(configs.items(), costs):
        rows.append({"model": label, "seconds per step": round(c["seconds_per_step"], 3),
                     "images per second": round(config.train.batch_size / c["seconds_per_step"]),
                     "parameters": int(c["parameters"]), "weights + Adam + EMA (MB)": round(c["weights_mb"], 1),
                     "activations, one batch (MB)": round(c["activations_mb"], 1)})
    return pd.DataFrame(rows)
