"""The visitor's own 2D model beside its twin of the other family (diffusion or flow matching): the same data,
network, schedule, budget and seed (explore.flow.paired_configs), trained on this page as a second job of this
visitor (key toy2d_twin_job) with the training section's buttons and live panel."""

from dataclasses import replace

import streamlit as st

from diffusion.config import RunConfig
from diffusion.explore import flow_experiments as flow
from diffusion.sampling.run import Run

from ui.jobs import training
from ui.toy2d.training2d import panel_2d
from ui.views import training_view

PANEL = panel_2d("toy2d_twin", curves=False)


def family(run: Run) -> str:
    return "flow" if run.config.train.objective == "flow" else "diffusion"


def twin_config(run: Run) -> RunConfig:
    """The other family's config for a trained run: the same everything, for the steps the run was trained; a
    flow run's diffusion twin predicts v (the 2D recipes' objective)."""
    base = replace(run.config, train=replace(run.config.train, steps=run.step))
    objective = "v" if family(run) == "flow" else run.config.train.objective
    return flow.paired_configs(base, objective)["diffusion" if family(run) == "flow" else "flow"]


def own_pair(model: tuple[str, Run]) -> dict[str, tuple[str, Run]] | None:
    """Train buttons for the twin of the visitor's model; family -> (run key, Run) of both once the twin is
    trained for as many steps with these settings, else None."""
    run_key, run = model
    config = twin_config(run)
    other = "flow" if family(run) == "diffusion" else "diffusion"
    st.caption(f"Your model is a {family(run)} model ({run.config.train.objective}, {run.step:,} steps). Its {other} "
               f"twin: the same data, MLP, schedule, seed and {run.step:,} steps, objective "
               f"{config.train.objective}.")
    training_view.train_buttons(config, run.step, None, 0, panel=PANEL)
    job = training.current_job(PANEL.key)
    training_view.show_training(job, PANEL)
    twin = training.current_run(PANEL.key)
    if twin is None or job.running or job.config != config:
        return None
    return {family(run): (run_key, run), other: twin}
