"""Cached loaders for the 2D page: datasets and schedules (shared by every visitor), and per-model results
keyed by the model's run_key (unique to one visitor's model, so nothing leaks between sessions).
"""


import numpy as np
import pandas as pd
import streamlit as st

from diffusion.config import CUSTOM_PREFIX, DataConfig
from diffusion.core.schedules import NoiseSchedule, make_schedule, spaced_timesteps
from diffusion.data import TrainingData, load_data, toy_for
from diffusion.data.toy_datasets import TOY_DATASETS, toy_dataset
from diffusion.explore import densities
from diffusion.explore import toy2d_experiments as explore2d
from diffusion.metrics import evaluation
from diffusion.metrics.points2d import POINT_METRICS
from diffusion.metrics.protocol import points_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run
from diffusion.training.threads import torch_threads

from ui.toy2d import animate2d
from ui.views import charts
from ui.jobs import run_costs, timing, training
from ui.views.charts import DOMAIN

DENSITY_GRID = 60                 # density grids: 60 x 60 over the plots' window (exact mixtures: milliseconds)
FORWARD_FRAMES, FORWARD_GRID = 24, 30   # the forward-process animation: frames, density grid per frame (a kernel
                                        # estimate costs ~0.2 s a grid on a loaded 2-core machine)
PER_MODEL = 8                     # cached results kept per function, across models and visitors
SAMPLERS = ("ddpm", "ddim")       # the discrete-time samplers whose trajectories this page draws against t
CUSTOM_KEY = "toy2d_custom_sets"  # this visitor's own 2D sets (ui.toy2d.custom2d): dataset name -> DataConfig
MAX_CUSTOM_SETS = 8               # per visitor; the oldest is forgotten first (its trained models keep their points)


def custom_sets() -> dict[str, DataConfig]:
    """This visitor's custom sets, and the custom set of the page's model (e.g. from an uploaded checkpoint)."""
    sets = st.session_state.setdefault(CUSTOM_KEY, {})
    job = training.current_job()
    if job is not None and job.config.data.dataset.startswith(CUSTOM_PREFIX):
        sets.setdefault(job.config.data.dataset, job.config.data)
    return sets


def add_custom_set(config: DataConfig) -> None:
    """Offer a custom set (data.custom.custom_data) to this visitor wherever a preset is offered."""
    sets = custom_sets()
    sets.pop(config.dataset, None)
    sets[config.dataset] = config
    while len(sets) > MAX_CUSTOM_SETS:
        sets.pop(next(iter(sets)))


def data_config(dataset: str) -> DataConfig:
    """The DataConfig of a preset or of one of this visitor's custom sets (registered in this process, so that
    everything keyed by the name finds its points)."""
    if not dataset.startswith(CUSTOM_PREFIX):
        return DataConfig(dataset=dataset)
    config = custom_sets()[dataset]
    toy_for(config)
    return config


def one_thread():
    """PyTorch on one thread while the block (or decorated function) runs: the 2D work is small tensors, and on a
    loaded 2-core machine a second OpenMP thread made an ODE likelihood 15-20x slower (measured side by side);
    the 2D training thread sets the same (ui.jobs.training)."""
    return torch_threads(1)


def dataset_names() -> list[str]:
    """The presets, then this visitor's custom sets (registered in this process: everything keyed by a name finds
    its points)."""
    customs = [data_config(name).dataset for name in custom_sets()]
    return [*TOY_DATASETS, *customs]


def describe(dataset: str) -> str:
    """A set's name and description (works outside a script run: AppTest formats options with it)."""
    if dataset.startswith(CUSTOM_PREFIX):
        try:
            toy = toy_dataset(dataset)
        except ValueError:
            return f"{custom_name(dataset)} (yours)"
        classes = f", {toy.num_classes} classes" if toy.num_classes else ""
        return f"{custom_name(dataset)} (yours): {len(toy.mixture.weights):,} points{classes}"
    return f"{dataset}: {TOY_DATASETS[dataset].description}"


def custom_name(dataset: str) -> str:
    """The name a visitor gave a custom set ("custom:NAME:HASH" -> NAME); a preset's own name."""
    return dataset.split(":")[1] if dataset.startswith(CUSTOM_PREFIX) else dataset


@st.cache_data(show_spinner=False, max_entries=64)     # bounded: visitors add their own sets
def points(dataset: str, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """n points of a toy set as a frame (x, y)."""
    return pd.DataFrame(explore2d.toy_points(dataset, n, seed), columns=["x", "y"])


@st.cache_resource(show_spinner="Drawing the training set...", max_entries=32)   # 0.8 MB each; custom sets add more
def _training_data(dataset: str, n: int | None, seed: int, _cfg: DataConfig) -> TrainingData:
    return load_data(_cfg)     # a custom set's name holds the hash of its points: the name keys the cache


def training_data(cfg: DataConfig) -> TrainingData:
    """The training set of a DataConfig, drawn once per process and shared read-only (trainers only index it)."""
    return _training_data(cfg.dataset, cfg.n, cfg.seed, cfg)


@st.cache_resource(show_spinner=False)
def schedule(name: str, T: int) -> NoiseSchedule:
    """A noise schedule (immutable, shared)."""
    return make_schedule(name, T)


@st.cache_data(show_spinner=False)
def schedule_curves(name: str, T: int) -> pd.DataFrame:
    return explore2d.schedule_frame(schedule(name, T))


def terminal(name: str, T: int) -> explore2d.TerminalNoise:
    return explore2d.terminal_noise(schedule(name, T))


@st.cache_data(show_spinner=False, max_entries=64)
def noised(dataset: str, name: str, T: int, paper_t: int, n: int = 2000) -> pd.DataFrame:
    """The dataset's points noised to paper timestep paper_t (the same eps at every t)."""
    x0 = points(dataset, n)[["x", "y"]].to_numpy(dtype=np.float32)
    return pd.DataFrame(explore2d.noised_points(x0, schedule(name, T), paper_t, seed=1), columns=["x", "y"])


@st.cache_data(show_spinner=False, max_entries=64)
@one_thread()
def density(dataset: str, name: str | None = None, T: int = 0, paper_t: int = 0, size: int = DENSITY_GRID
            ) -> densities.DensityGrid:
    """The density of x_t at paper timestep paper_t of schedule (name, T) (0 or no schedule: the data's), exact
    for mixtures, else the (noised) kernel estimate, on a size x size grid over the plots' window."""
    if name is None or paper_t == 0:
        return densities.density_grid(dataset, 1.0, size, DOMAIN)
    return densities.noised_density_grid(dataset, schedule(name, T), paper_t, size, DOMAIN)


@st.cache_data(show_spinner="Noising the data, frame by frame...", max_entries=16)
@one_thread()
def forward_frames(dataset: str, name: str, T: int, n: int = 600) -> tuple[pd.DataFrame, list]:
    """The forward process as FORWARD_FRAMES + 1 frames of n points, and the density of x_t at each frame's t."""
    x0 = points(dataset, n)[["x", "y"]].to_numpy(dtype=np.float32)
    frames = explore2d.forward_frame(x0, schedule(name, T), min(FORWARD_FRAMES, T), seed=1)
    ts = frames.drop_duplicates("frame")["t"].tolist()
    return frames, [density(dataset, name, T, int(t), FORWARD_GRID) for t in ts]


@st.cache_data(show_spinner=False, max_entries=16)
def forward_animation(dataset: str, name: str, T: int, duration: int):
    """The forward-process animation (ui.toy2d.animate2d.forward) of forward_frames, built once per setting (a rerun
    only ships it)."""
    return animate2d.forward(*forward_frames(dataset, name, T), duration)


def timesteps_used(T: int, steps: int) -> list[int]:
    """The paper timesteps DDIM with `steps` steps visits (its default spacing, as Run.sample uses)."""
    return [t + 1 for t in spaced_timesteps(T, steps, SamplerConfig("ddim").timestep_spacing)]


@st.cache_data(show_spinner="Sampling...", max_entries=PER_MODEL)
@one_thread()
def samples(run_key: str, _run: Run, sampler: SamplerConfig, n: int = explore2d.METRIC_N) -> pd.DataFrame:
    """n samples as a frame (x, y); seed 0: the same x_T for every sampler choice."""
    return pd.DataFrame(_run.sample(n, sampler, seed=0).numpy(), columns=["x", "y"])


@st.cache_data(show_spinner="Measuring...", max_entries=PER_MODEL)
@one_thread()
def metrics(run_key: str, _run: Run, sampler: SamplerConfig) -> evaluation.Result:
    """The measurement of samples(run_key, sampler) under the page's protocol with this sampler (intervals,
    floor); ValueError if the samples are not finite."""
    protocol = points_protocol(explore2d.METRIC_N, sampler)
    return evaluation.measure_samples(samples(run_key, _run, sampler).to_numpy(), protocol, _run.config.data)


def metrics_table(result: evaluation.Result) -> pd.DataFrame:
    """A sampler's metrics beside the floor, each with its 95% interval and how it reads, rows labelled."""
    labels = {m.name: m.label for m in POINT_METRICS.values()}
    rows = {labels.get(m, m): {"this sampler": v.text(), "floor (true samples)": result.floor[m].text(),
                               "reading": result.reading(m)} for m, v in result.metrics.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
@one_thread()
def sweep(run_key: str, _run: Run, name: str, eta: float) -> pd.DataFrame:
    return explore2d.sampler_sweep(_run, name, eta)


def sweep_promise(run_key: str, run: Run, name: str, eta: float) -> timing.Estimate:
    """How long the step sweep takes on this server: sampling and measuring at each of its step counts, at the
    run's costs timed here on one thread (ui.jobs.run_costs.sweep_promise)."""
    steps = sorted({min(s, run.schedule.T) for s in explore2d.SWEEP_STEPS})
    configs = [SamplerConfig(name, steps=s, eta=eta) for s in steps]
    with one_thread():
        return run_costs.sweep_promise("step sweep", run_key, run, configs, explore2d.METRIC_N, threads=1)


@st.cache_data(show_spinner="Recording the trajectory...", max_entries=PER_MODEL)
@one_thread()
def trajectory(run_key: str, _run: Run, sampler: SamplerConfig, n: int = 300) -> pd.DataFrame:
    return explore2d.trajectory_frame(_run, sampler, n)


@st.cache_data(show_spinner=False, max_entries=4 * PER_MODEL)
@one_thread()
def _fields(run_key: str, _run: Run, t: int, kind: str, size: int) -> pd.DataFrame:
    return explore2d.denoising_fields(_run, t, size, kind=kind)


def fields(run_key: str, run: Run, paper_t: int, kind: str, size: int = 17
           ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The learned and (mixture data) exact fields at paper timestep paper_t on a size x size grid; exact is None
    without a closed form."""
    df = _fields(run_key, run, paper_t - 1, kind, size)
    exact = df[df["field"] == "exact"]
    return df[df["field"] == "learned"], exact if len(exact) else None


def step_options(T: int, choices: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000)) -> list[int]:
    """Sampling step counts offered for a schedule of T steps: the choices up to T, and T itself."""
    return sorted({c for c in choices if c < T} | {T})


def describe_timesteps(T: int, steps: int, shown: int = 12) -> str:
    """The paper timesteps visited, abbreviated in the middle when there are many."""
    ts = timesteps_used(T, steps)
    if len(ts) <= shown:
        return ", ".join(map(str, ts))
    return ", ".join(map(str, ts[: shown - 3])) + ", …, " + ", ".join(map(str, ts[-3:]))


def frame_points(traj: pd.DataFrame, frame: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """x_t and x0_hat at one frame of a trajectory (frames (x, y)), and the paper t of that x_t."""
    rows = traj[traj["frame"] == frame]
    x0 = rows[["x0_x", "x0_y"]].rename(columns={"x0_x": "x", "x0_y": "y"})
    return rows[["x", "y"]], x0, int(rows["t"].iloc[0])


def paths(traj: pd.DataFrame, n_points: int = 24) -> pd.DataFrame:
    return explore2d.trajectory_paths(traj, n_points)


def sweep_curves(table: pd.DataFrame) -> pd.DataFrame:
    """A sampler sweep in the long form charts.metric_curves draws (step = number of sampling steps)."""
    return explore2d.metrics_frame(table.rename(columns={"steps": "step"}).to_dict("records"))


def sweep_table(table: pd.DataFrame) -> pd.DataFrame:
    """The sweep for display: each metric as 'value [95% interval]' and the row's protocol (the floor is drawn)."""
    shown = table[["steps"]].copy()
    for m in explore2d.METRICS:
        if f"{m}_low" in table:
            shown[charts.METRIC_LABELS[m]] = [evaluation.row_interval(r, m).text() if pd.notna(r[m]) else ""
                                               for r in table.to_dict("records")]
    return shown.assign(protocol=table["protocol"], error=table["error"])
