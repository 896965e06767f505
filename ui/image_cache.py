"""Cached results for the image pages, keyed by the model's run_key (a shipped run's folder and step, or one
visitor's trained model) and the inputs: grids, filmstrips, memorisation, diversity, interpolation, guidance.
The shipped runs' folders are named here once (DIFFUSION_CHECKPOINTS overrides their root, e.g. in tests)."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from diffusion.config import DataConfig, RunConfig
from diffusion.explore import images as ei
from diffusion.training.checkpoints import CHECKPOINTS_DIR
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.images import nearest_neighbours
from diffusion.metrics.intervals import Interval
from diffusion.data.toy2d import toy_dataset
from diffusion.metrics.protocol import points_protocol, reference_for
from diffusion.explore.interpolation import interpolate_labels, interpolate_noise
from diffusion.sampling.config import SamplerConfig
from diffusion.sampling.registry import nfe
from diffusion.sampling.run import Run
from diffusion.training.checkpoints import load_run
from diffusion.training.cost import dummy_trainer

from . import timing, training

SHIPPED_ROOT = Path(os.environ.get("DIFFUSION_CHECKPOINTS", CHECKPOINTS_DIR))
SHIPPED = {"digit0": "mnist16-digit0", "cond": "mnist16-cond", "cross": "mnist16-cond-cross",
           "mnist32": "mnist32-cond", "shapes32": "shapes32-cond", "moons": "moons",
           "digit0-flow": "mnist16-digit0-flow", "moons-flow": "moons-flow"}   # name -> run folder
PER_MODEL = 8          # cached results kept per function, across models and visitors
SCALE = {16: 3, 32: 2}  # grid enlargement per image size (nearest neighbour), so 16 px digits are legible
COST_BATCHES = (2, 32)  # batch sizes a sampling step is timed at
COST_STEPS = (1, 8)     # steps a 2D run's sampling is timed at, at the n it will sample
SEARCH_SIZES = (1, 16)  # images the memorisation search is timed at


def scale_for(run: Run) -> int:
    return SCALE.get(run.config.data.image_size, 1)


@st.cache_resource(show_spinner="Loading the shipped run...")
def shipped_run(name: str) -> Run | None:
    """The shipped run SHIPPED[name] (EMA weights, shared read-only by every visitor), or None if absent."""
    path = SHIPPED_ROOT / SHIPPED[name]
    return load_run(path) if (path / "config.json").is_file() else None


def has_shipped(name: str) -> bool:
    """Whether the shipped run SHIPPED[name] is in this copy (checked without loading it)."""
    return (SHIPPED_ROOT / SHIPPED[name] / "config.json").is_file()


def shipped_key(name: str) -> str:
    run = shipped_run(name)
    return f"shipped-{SHIPPED[name]}-{run.step if run else 0}"


@st.cache_data(show_spinner="Sampling...", max_entries=PER_MODEL)
def samples(run_key: str, _run: Run, n: int, sampler: SamplerConfig, seed: int = 0) -> torch.Tensor:
    """n samples (float, [-1, 1]) of the run, labels balanced."""
    return _run.sample(n, sampler, seed=seed, y=_run.balanced_labels(n))


@dataclass(frozen=True)
class Grid:
    """A grid image of samples and what drawing them cost on this machine (measured when first computed)."""

    image: np.ndarray
    seconds: float
    evaluations: int          # images through the network (ei.network_evaluations)



def script_threads() -> int:
    """Set this script thread's torch threads to the cores the load leaves free (ui.timing.free_threads), so that
    the sections sample at the thread count their costs were timed at; returns it."""
    threads = timing.free_threads()
    torch.set_num_threads(threads)
    return threads


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
def sampling_costs(run_key: str, _run: Run, threads: int) -> tuple[timing.Cost, timing.Cost]:
    """(per network call, per image through the network) of sampling this run on this machine: one DDIM step timed
    at two batch sizes (a call's fixed cost dominates the small batches of the filmstrip and the class rows), on
    `threads` torch threads (script_threads)."""
    return timing.measure_fit(lambda n: _run.sample(n, SamplerConfig("ddim", steps=1), y=_run.balanced_labels(n)),
                              COST_BATCHES, threads=threads)


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
def points_sampling_costs(run_key: str, _run: Run, n: int, sampler: str, threads: int
                          ) -> tuple[timing.Cost, timing.Cost]:
    """(per sampling run, per step) of drawing n samples of a 2D run with `sampler`, timed here at two step counts:
    a 2D network call costs microseconds, so drawing each sample's own initial noise weighs as much as the steps."""
    return timing.measure_fit(lambda k: _run.sample(n, SamplerConfig(sampler, steps=k)), COST_STEPS, repeats=3,
                              threads=threads)


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
def search_costs(run_key: str, _run: Run, threads: int) -> tuple[timing.Cost, timing.Cost, int]:
    """(per search, per image searched, held-out images) of the memorisation check on this run's data: each
    sample's nearest training image, and each held-out image's for the typical distance (two searches); timed on
    training images at two sizes."""
    data = _run.config.data
    train = ei.training_set(data).x
    fixed, per_image = timing.measure_fit(lambda n: nearest_neighbours(train[:n], train), SEARCH_SIZES,
                                          threads=threads)
    return fixed, per_image, len(ei.holdout_images(data))


@st.cache_data(show_spinner="Sampling...", max_entries=PER_MODEL)
def grid(run_key: str, _run: Run, n: int, sampler: SamplerConfig, seed: int = 0) -> Grid:
    """A grid of n samples (labels balanced for conditional runs), timed."""
    start = time.perf_counter()
    x = _run.sample(n, sampler, seed=seed, y=_run.balanced_labels(n))
    seconds = time.perf_counter() - start
    return Grid(ei.image_grid(x, scale=scale_for(_run)), seconds, ei.network_evaluations(n, sampler))


@st.cache_data(show_spinner="Sampling one row per class...", max_entries=PER_MODEL)
def class_grid(run_key: str, _run: Run, per_class: int, sampler: SamplerConfig, seed: int = 0) -> Grid:
    """Row c: class c, the same per_class initial noises in every row; timed."""
    start = time.perf_counter()
    x = ei.class_grid(_run, per_class, sampler, seed)
    return Grid(ei.image_grid(x, nrow=per_class, scale=scale_for(_run)), time.perf_counter() - start,
                ei.network_evaluations(len(x), sampler))


@st.cache_data(show_spinner="Recording the denoising steps...", max_entries=PER_MODEL)
def filmstrip(run_key: str, _run: Run, sampler: SamplerConfig, n: int, picks: tuple[int, ...], seed: int = 0
              ) -> ei.Filmstrip:
    """n samples (labels balanced) at the chosen steps of one sampling run."""
    return ei.filmstrip(_run, sampler, n, picks, seed, _run.balanced_labels(n), scale=scale_for(_run))


@st.cache_data(show_spinner="Searching the training set for each sample's nearest image...", max_entries=PER_MODEL)
def memorisation(run_key: str, _run: Run, n: int, sampler: SamplerConfig, seed: int = 0) -> ei.MemorisationPairs:
    return ei.memorisation_pairs(samples(run_key, _run, n, sampler, seed), _run.config.data, scale=scale_for(_run))


@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
def diversity(run_key: str, _run: Run, n: int, sampler: SamplerConfig, seed: int = 0) -> dict[str, Interval]:
    return ei.diversity(samples(run_key, _run, n, sampler, seed), _run.config.data)


@st.cache_data(show_spinner="Interpolating...", max_entries=PER_MODEL)
def noise_path(run_key: str, _run: Run, n_points: int, seed_a: int, seed_b: int, steps: int,
               label: int | None = None, guidance: float = 1.0) -> np.ndarray:
    """Samples along the slerp between two seeds' noises (deterministic DDIM), as one row."""
    x = interpolate_noise(_run, n_points, seed_a, seed_b, steps, label, guidance)
    return ei.image_grid(x, nrow=n_points, scale=scale_for(_run))


@st.cache_data(show_spinner="Interpolating...", max_entries=PER_MODEL)
def label_path(run_key: str, _run: Run, label_a: int, label_b: int, n_points: int, seed: int, steps: int,
               guidance: float) -> np.ndarray:
    x = interpolate_labels(_run, label_a, label_b, n_points, seed, steps, guidance)
    return ei.image_grid(x, nrow=n_points, scale=scale_for(_run))


@st.cache_data(show_spinner=False, max_entries=64)
def guidance_point(run_key: str, _run: Run, guidance: float, n: int, steps: int) -> dict[str, float]:
    """Accuracy, within-class diversity and FID (intervals, floor, protocol) at one guidance scale."""
    return ei.guidance_point(_run, guidance, n, steps)


@st.cache_data(show_spinner=False, max_entries=64)
def unguided_class_counts(run_key: str, _run: Run, n: int, steps: int, seed: int) -> np.ndarray:
    """Classified counts of n unguided samples (one chunk of a histogram: seed picks the chunk's noises)."""
    return ei.unguided_class_counts(_run, n, steps, seed)


@st.cache_data(show_spinner="Measuring FID (classifier features)...", max_entries=PER_MODEL)
def fid(run_key: str, _run: Run, n: int, steps: int, guidance: float = 1.0) -> dict[str, float | str]:
    """The Result.row() of FID (and label accuracy) under the pages' protocol."""
    return ei.fid_measure(_run, n, steps, guidance)[0].row()


@st.cache_data(show_spinner="Timing one measurement...", max_entries=32)
def measurement_cost(data: DataConfig, n: int) -> timing.Cost:
    """What scoring n samples under the pages' protocol costs on this machine, timed on real data once the
    protocol's reference and floor are built: images, classifier features, FID with its bootstrap and label accuracy
    (on n real images); 2D points, W1, W2 and both KLs against n fresh true points (on n other true points)."""
    if data.image_size is None:
        protocol = points_protocol(n, SamplerConfig("ddim", steps=1))
        reference_for(protocol, data)
        points = toy_dataset(data.dataset).sample(n, torch.Generator().manual_seed(0))
        return timing.measure(lambda: measure_samples(points, protocol, data), warmup=0, repeats=1)
    protocol = ei.page_protocol(data, n)
    reference = reference_for(protocol, data)
    images = reference.floor_images
    return timing.measure(lambda: measure_samples(images, protocol, data), warmup=0, repeats=1)


def sweep_promise(kind: str, run_key: str, run: Run, configs: list[SamplerConfig], n: int, threads: int,
                  precisions: int = 1) -> timing.Estimate:
    """How long drawing n samples with each sampler configuration (in each of `precisions` network precisions) and
    scoring each set takes on this server: the network calls at the run's sampling costs (per call and per image
    for images, per sampling run and per step at n for 2D), plus one measurement per set at n (measurement_cost),
    all timed here on `threads` threads."""
    calls = sum(nfe(c.name, c.steps) for c in configs) * precisions
    runs = len(configs) * precisions
    if run.is_image:
        call, image = sampling_costs(run_key, run, threads)
        sampling = ((call, calls), (image, calls * n))
    else:
        setup, step = points_sampling_costs(run_key, run, n, configs[0].name, threads)
        sampling = ((setup, runs), (step, calls))
    return timing.expect(kind, *sampling, (measurement_cost(run.config.data, n), runs))


@st.cache_data(show_spinner="Timing a few training steps and one sampling step...", max_entries=32)
def training_costs(config: RunConfig, device: str, threads: int, sample_n: int) -> tuple[timing.Cost, timing.Cost, int]:
    """(one training step, one DDIM step of sample_n images, parameters) of config on device, timed on a trainer fed
    zeros, on `threads` torch threads as its job runs them (ui.training.job_threads)."""
    with training.torch_threads(threads):
        trainer = dummy_trainer(config, device)
        step = timing.measure(trainer.train_step, repeats=2, threads=threads)
        run = trainer.as_run()
        y = run.balanced_labels(sample_n)
        sample = timing.measure(lambda: run.sample(sample_n, SamplerConfig("ddim", steps=1), y=y), repeats=2,
                                threads=threads)
    return step, sample, sum(p.numel() for p in trainer.model.parameters())


@st.cache_data(show_spinner="Timing a few training steps...", max_entries=32)
def step_cost(config: RunConfig, device: str) -> dict[str, float]:
    """Seconds per training step, parameters and memory of a config (measured on this machine, cached)."""
    return ei.step_cost(config, steps=2, device=device)
