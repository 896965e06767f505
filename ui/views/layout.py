"""Page furniture: the sidebar (device, package version), error boxes, and heavy imports done after a page shows.

PyTorch and POT (which pulls in scikit-learn) take seconds to import on a small CPU. The overview needs
neither, so app.py draws the page first and calls `finish` afterwards: the imports happen once per process
while the visitor is already reading, and the sidebar then names the device.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from diffusion import __version__
from ui.jobs import timing

LEARN_SHARE = 0.2     # a block faster than this share of its promise was served from a cache: it teaches nothing


def sidebar() -> DeltaGenerator:
    """The package version, and a slot `finish` fills with the device."""
    with st.sidebar:
        st.caption(f"Diffusion Explorer · package `diffusion` {__version__}")
        return st.empty()


def device_label() -> str:
    """"GPU (name)" when PyTorch sees CUDA, else "CPU (n cores)"."""
    import torch
    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return f"CPU ({os.cpu_count()} cores)"


def finish(device_slot: DeltaGenerator) -> None:
    """After the page: import the heavy modules (a no-op once done) and show the device in the sidebar."""
    import diffusion.metrics.evaluation  # noqa: F401 - warms the POT import the 2D metrics need
    from ui.jobs.scheduler import scheduler
    running, waiting = scheduler().counts()
    device_slot.caption(f"Device: {device_label()} · 2D models train on the CPU, 1 thread each · jobs on this "
                        f"server: {running} of {scheduler().slots} running, {waiting} waiting")


def error_box(what: str, error: BaseException | str) -> None:
    """st.error naming what failed and why; the app goes on."""
    st.error(f"{what}: {error}", icon=":material/error:")


@contextmanager
def working(what: str, promise: timing.Estimate) -> Iterator[None]:
    """A spinner naming the promise beside a live clock while one long call runs; the server's record learns from
    it (ui.jobs.timing.timed)."""
    with st.spinner(f"{what} ({promise.text()} expected)", show_time=True), \
            timing.timed(promise, min_share=LEARN_SHARE):
        yield
