"""Cached results for the image pages, keyed by the model's run_key (a shipped run's folder and step, or one
visitor's trained model) and the inputs: grids, filmstrips, memorisation, diversity, interpolation, guidance.
The shipped runs are loaded by ui.jobs.shipped_runs."""

import time
from dataclasses import dataclass, replace

import numpy as np
import streamlit as st
import torch

from diffusion.config import RunConfig
from diffusion.explore import image_experiments as ei
from diffusion.metrics.image_metrics import nearest_neighbours
from diffusion.metrics.intervals import Interval
from diffusion.explore.interpolation import interpolate_labels, interpolate_noise
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run
from diffusion.training.cost import dummy_trainer
from diffusion.training.threads import set_threads

from ui.jobs import timing, training

PER_MODEL = 8          # cached results kept per function, across models and visitors
SCALE = {16: 3, 32: 2}  # grid enlargement per image size (nearest neighbour), so 16 px digits are legible
SEARCH_SIZES = (16, 256)  # images the memorisation search is timed at: far enough apart for a slope (at 1 and 16
                          # the two medians differed by their noise; the shapes page's promise read 1.9x low)
SMALL_BATCHES = (2, 8)   # batches a training step is timed at to promise the cost table (a straight line to 64)


def scale_for(run: Run) -> int:
    return SCALE.get(run.config.data.image_size, 1)


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



@st.cache_data(show_spinner=False, max_entries=PER_MODEL)
def search_costs(run_key: str, _run: Run, threads: int) -> tuple[timing.Cost, timing.Cost, int]:
    """(per search, per image searched, held-out images) of the memorisation check on this run's data: each
    sample's nearest training image, and each held-out image's for the typical distance (two searches); timed on
    training images at two sizes (repeated when the set holds fewer)."""
    data = _run.config.data
    train = ei.training_set(data).x
    fixed, per_image = timing.measure_fit(lambda n: nearest_neighbours(train[torch.arange(n) % len(train)], train),
                                          SEARCH_SIZES, threads=threads)
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


@st.cache_data(show_spinner="Timing a few training steps and one sampling step...", max_entries=32)
def training_costs(config: RunConfig, device: str, threads: int, sample_n: int) -> tuple[timing.Cost, timing.Cost, int]:
    """(one training step, one DDIM step of sample_n images, parameters) of config on device, timed on a trainer fed
    zeros, on `threads` torch threads of a thread of its own, as its job runs them (ui.jobs.training.job_threads,
    on_a_new_thread)."""
    def timed() -> tuple[timing.Cost, timing.Cost, int]:
        set_threads(threads)
        trainer = dummy_trainer(config, device)
        step = timing.measure(trainer.train_step, repeats=2, threads=threads)
        run = trainer.as_run()
        y = run.balanced_labels(sample_n)
        sample = timing.measure(lambda: run.sample(sample_n, SamplerConfig("ddim", steps=1), y=y), repeats=2,
                                threads=threads)
        return step, sample, sum(p.numel() for p in trainer.model.parameters())
    return training.on_a_new_thread(timed)


@st.cache_data(show_spinner="Timing a training step at two small batches...", max_entries=32)
def small_batch_costs(config: RunConfig, device: str) -> tuple[timing.Cost, timing.Cost, timing.Cost]:
    """(building its trainer, a training step's fixed cost, its cost per image) of config, from steps timed at
    SMALL_BATCHES on this machine's torch threads: what ei.step_cost at the config's batch will take, for a few
    percent of it."""
    threads = torch.get_num_threads()
    start = time.perf_counter()
    trainers = {n: dummy_trainer(replace(config, train=replace(config.train, batch_size=n)), device)
                for n in SMALL_BATCHES}
    build = timing.Cost((time.perf_counter() - start) / len(trainers), timing.load(), threads)
    return (build, *timing.measure_fit(lambda n: trainers[n].train_step(), SMALL_BATCHES, repeats=1, threads=threads))


@st.cache_data(show_spinner="Timing a few training steps...", max_entries=32)
def step_cost(config: RunConfig, device: str) -> dict[str, float]:
    """Seconds per training step, parameters and memory of a config (measured on this machine, cached)."""
    return ei.step_cost(config, steps=2, device=device)
