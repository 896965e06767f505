"""The 2D page's training settings: widget keys, options and defaults, the dataset's recipe, and the RunConfig the
widgets describe.

The widgets start from the dataset's recipe (training.defaults.recipe_2d) and take it again whenever the visitor
picks another dataset. Streamlit forgets a widget's value when its page is left; the model is kept
(st.session_state), so on return the widgets are refilled from the model's settings and Train still continues it.
"""

from dataclasses import replace

import streamlit as st

from diffusion.config import RunConfig, ScheduleConfig
from diffusion.training.defaults import recipe_2d, run_config_2d

from ui.toy2d import data2d
from ui.jobs.training import current_job

T_OPTIONS = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)
WIDTHS = (32, 64, 128, 256, 512)
DEPTHS = (1, 6)
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 5e-3, 1e-2)
BATCHES = (32, 64, 128, 256, 512, 1024, 2048)
OBJECTIVES = {"v": "v (Salimans & Ho 2022)", "eps": "ε (Ho et al. 2020)", "x0": "x_0",
              "flow": "flow matching (Lipman et al. 2023)"}
DECAYS = {"cosine": "cosine to 10%", "none": "constant"}
MEASURE_EVERY = (0, 100, 250, 500, 1000)
FIRST_DATASET = "moons"
PAGE_DEFAULTS = {"toy2d_dataset": FIRST_DATASET, "toy2d_schedule": "linear", "toy2d_T": 1000,
                 "toy2d_budget": "steps", "toy2d_seconds": 10, "toy2d_every": 500}


def recipe_settings(dataset: str) -> dict:
    """The widget values of a dataset's recipe (width, depth, learning rate, batch, objective, decay, steps)."""
    r = recipe_2d(dataset)
    return {"toy2d_width": r.width, "toy2d_depth": r.depth, "toy2d_lr": r.lr, "toy2d_batch": r.batch_size,
            "toy2d_objective": r.objective, "toy2d_decay": r.decay, "toy2d_steps": r.steps}


def model_settings(config: RunConfig) -> dict:
    """The widget values describing config's model, for the values the widgets offer."""
    values = {"toy2d_dataset": config.data.dataset, "toy2d_schedule": config.schedule.name,
              "toy2d_T": config.schedule.timesteps, "toy2d_width": config.model.width,
              "toy2d_depth": config.model.depth, "toy2d_lr": config.train.lr, "toy2d_batch": config.train.batch_size,
              "toy2d_objective": config.train.objective, "toy2d_decay": config.train.decay}
    offered = {"toy2d_T": T_OPTIONS, "toy2d_width": WIDTHS, "toy2d_lr": LRS, "toy2d_batch": BATCHES,
               "toy2d_depth": range(DEPTHS[0], DEPTHS[1] + 1), "toy2d_objective": OBJECTIVES,
               "toy2d_decay": DECAYS}
    return {k: v for k, v in values.items() if k not in offered or v in offered[k]}


def restore() -> None:
    """Give each settings widget without a value the visitor's model's setting (else the page default and the first
    dataset's recipe); call before drawing them."""
    job = current_job()
    dataset = st.session_state.get("toy2d_dataset", FIRST_DATASET)
    defaults = {**PAGE_DEFAULTS, **recipe_settings(job.config.data.dataset if job else dataset)}
    for key, value in {**defaults, **(model_settings(job.config) if job is not None else {})}.items():
        st.session_state.setdefault(key, value)


def take_recipe() -> None:
    """on_change of the dataset: the training widgets take the new dataset's recipe."""
    st.session_state.update(recipe_settings(st.session_state["toy2d_dataset"]))


def apply(config: RunConfig) -> None:
    """Set the widgets to config's model (from a callback, before they are drawn): after loading a checkpoint."""
    st.session_state.update(model_settings(config))


def run_config(dataset: str, schedule: str, T: int, width: int, depth: int, lr: float, batch: int, objective: str,
               decay: str, steps: int) -> RunConfig:
    """The RunConfig the widgets describe: the dataset's recipe (input scale, warm-up, EMA) with these settings."""
    config = run_config_2d(data2d.data_config(dataset), schedule=ScheduleConfig(schedule, T), steps=steps,
                           batch_size=batch, lr=lr,
                           objective=objective, decay=decay)
    return replace(config, model=replace(config.model, width=width, depth=depth))

