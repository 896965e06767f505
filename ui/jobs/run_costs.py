"""What sampling a run costs on this machine, timed here once per run and thread count: the image sections' and the
study's promises multiply these unit costs by their work (ui.jobs.timing)."""

import streamlit as st
import torch

from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

from ui.jobs import timing

PER_MODEL = 8           # cached timings kept, across models and visitors
COST_BATCHES = (2, 32)  # batch sizes a sampling step is timed at


def script_threads() -> int:
    """Set this script thread's torch threads to the cores the load leaves free (ui.jobs.timing.free_threads), so that
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
