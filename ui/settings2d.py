"""The 2D page's training settings: widget keys, options and defaults, restored from the visitor's model.

Streamlit forgets a widget's value when its page is left; the model is kept (st.session_state), so on return
the widgets are refilled from the model's settings and Train still continues it.
"""

import streamlit as st

from diffusion.config import RunConfig

from .training import current_job

T_OPTIONS = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)
WIDTHS = (32, 64, 128, 256, 512)
DEPTHS = (1, 6)
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
BATCHES = (32, 64, 128, 256, 512, 1024, 2048)
MEASURE_EVERY = (0, 100, 250, 500, 1000)
DEFAULTS = {"toy2d_dataset": "moons", "toy2d_schedule": "linear", "toy2d_T": 1000, "toy2d_width": 128,
            "toy2d_depth": 3, "toy2d_lr": 1e-3, "toy2d_batch": 256, "toy2d_budget": "steps", "toy2d_steps": 4000,
            "toy2d_seconds": 20, "toy2d_every": 500}


def model_settings(config: RunConfig) -> dict:
    """The widget values describing config's model, for the values the widgets offer."""
    values = {"toy2d_dataset": config.data.dataset, "toy2d_schedule": config.schedule.name,
              "toy2d_T": config.schedule.timesteps, "toy2d_width": config.model.width,
              "toy2d_depth": config.model.depth, "toy2d_lr": config.train.lr, "toy2d_batch": config.train.batch_size}
    offered = {"toy2d_T": T_OPTIONS, "toy2d_width": WIDTHS, "toy2d_lr": LRS, "toy2d_batch": BATCHES,
               "toy2d_depth": range(DEPTHS[0], DEPTHS[1] + 1)}
    return {k: v for k, v in values.items() if k not in offered or v in offered[k]}


def restore() -> None:
    """Give each settings widget without a value the visitor's model's setting (else the default); call before
    drawing them."""
    job = current_job()
    for key, value in {**DEFAULTS, **(model_settings(job.config) if job is not None else {})}.items():
        st.session_state.setdefault(key, value)


def apply(config: RunConfig) -> None:
    """Set the widgets to config's model (from a callback, before they are drawn): after loading a checkpoint."""
    st.session_state.update(model_settings(config))
