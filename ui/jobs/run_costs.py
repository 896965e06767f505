"""What sampling and measuring a run costs on this machine, timed here once per run and thread count: the image
sections', the 2D page's and the study's promises (its sweep and its error budget) multiply these unit costs by their
work (ui.jobs.timing)."""

import streamlit as st
import torch

from diffusion.config import RunConfig
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore import image_experiments as ei
from diffusion.explore.error_budget import RAW, exact_model
from diffusion.metrics.evaluation import measure_samples, prepare_floor
from diffusion.metrics.protocol import points_protocol, reference_for
from diffusion.sampling.registry import nfe
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run, balanced_labels
from diffusion.training.threads import set_threads

from ui.jobs import timing

PER_MODEL = 8           # cached timings kept, across models and visitors
COST_BATCHES = (2, 32)  # batch sizes a sampling step is timed at
COST_STEPS = (1, 8)     # steps a 2D run's sampling is timed at, at the n it will sample


def script_threads() -> int:
    """Set this script thread's torch threads to the cores the load leaves free (ui.jobs.timing.free_threads), so that
    the sections sample at the thread count their costs were timed at; returns it."""
    threads = timing.free_threads()
    set_threads(threads)
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


@st.cache_data(show_spinner="Timing the exact denoiser...", max_entries=PER_MODEL)
def exact_denoiser_cost(run_key: str, _run: Run, n: int, threads: int) -> timing.Cost:
    """One call of a 2D run's exact denoiser (explore.error_budget.exact_model: the posterior mean of its law's
    mixture) on n points, on `threads` threads: the error budget's extra sweep is these calls."""
    exact, _ = exact_model(_run)
    denoise = exact.denoiser(RAW)
    x, t = torch.randn(n, 2), torch.full((n,), _run.schedule.T // 2)
    return timing.measure(lambda: denoise(x, t, None), repeats=2, threads=threads)


@st.cache_data(show_spinner="Timing one measurement...", max_entries=32)
def measurement_cost(config: RunConfig, n: int) -> timing.Cost:
    """What scoring n samples of a run of config under the pages' protocol costs on this machine, timed on real data
    once the protocol's reference and floor are built (for a conditional run, the floor stratified by its balanced
    labels, the one its measurements use: built later, inside a section's clock, it had made the conditioning FID
    1.46x its promise): images, classifier features, FID with its bootstrap and label accuracy (on n real images);
    2D points, W1, W2 and both KLs against n fresh true points (on n other true points)."""
    data = config.data
    if data.image_size is None:
        protocol = points_protocol(n, SamplerConfig("ddim", steps=1))
        reference_for(protocol, data)
        points = toy_dataset(data.dataset).sample(n, torch.Generator().manual_seed(0))
        return timing.measure(lambda: measure_samples(points, protocol, data), warmup=0, repeats=1)
    protocol = ei.page_protocol(data, n)
    reference = prepare_floor(protocol, config)
    y = balanced_labels(config, reference.n)
    images = reference.floor_images
    return timing.measure(lambda: measure_samples(images, protocol, data, y=y), warmup=0, repeats=1)


def sweep_promise(kind: str, run_key: str, run: Run, configs: list[SamplerConfig], n: int, threads: int,
                  precisions: int = 1, nice: int = 0) -> timing.Estimate:
    """How long drawing n samples with each sampler configuration (in each of `precisions` network precisions) and
    scoring each set takes on this server: the network calls at the run's sampling costs (per call and per image
    for images, per sampling run and per step at n for 2D), plus one measurement per set at n (measurement_cost),
    all timed here on `threads` threads, for work that will run at `nice` (timing.expect)."""
    calls = sum(nfe(c.name, c.steps) for c in configs) * precisions
    runs = len(configs) * precisions
    if run.is_image:
        call, image = sampling_costs(run_key, run, threads)
        sampling = ((call, calls), (image, calls * n))
    else:
        setup, step = points_sampling_costs(run_key, run, n, configs[0].name, threads)
        sampling = ((setup, runs), (step, calls))
    return timing.expect(kind, *sampling, (measurement_cost(run.config, n), runs), nice=nice)
