"""The 2D page's current model: the visitor's own trained model, or a shipped run they chose (the runs of page toy2d
in checkpoints/shipped.json), whichever came last, so that the sections after training work before any training.

A shipped run is loaded once per process and shared read-only (ui.jobs.shipped_runs); choosing it records the
visitor's trained model of that moment, so a model trained afterwards takes over again.
"""

import streamlit as st

from diffusion.sampling.run import Run

from ui.jobs import shipped_runs, training

CHOICE_KEY = "toy2d_shipped"       # (shipped name, run_key of the visitor's trained model when it was chosen)


def _trained_key() -> str | None:
    trained = training.current_run()
    return trained[0] if trained else None


def use_shipped(name: str | None) -> None:
    """Button callback: make the shipped run `name` this visitor's current model (None: back to their own)."""
    st.session_state[CHOICE_KEY] = None if name is None else (name, _trained_key())


def current_model() -> tuple[str, Run] | None:
    """(run_key, Run) of this visitor's current model: the shipped run they chose, unless they trained since."""
    choice = st.session_state.get(CHOICE_KEY)
    trained = training.current_run()
    if choice and (trained is None or trained[0] == choice[1]) and shipped_runs.has_shipped(choice[0]):
        return shipped_runs.shipped_key(choice[0]), shipped_runs.shipped_run(choice[0])
    return trained


def is_shipped(run_key: str) -> bool:
    return run_key.startswith(shipped_runs.KEY_PREFIX)


def shipped_buttons(model: tuple[str, Run] | None) -> None:
    """One button per shipped 2D run in this copy, and one back to the visitor's own model when they have one."""
    available = [name for name in shipped_runs.on_page("toy2d") if shipped_runs.has_shipped(name)]
    trained = training.current_run()
    cols = st.columns(len(available) + 1)
    for col, name in zip(cols, available):
        about = shipped_runs.SHIPPED[name].about
        col.button(f"Use {about.split(' (')[0]}", key=f"toy2d_use_{name}", on_click=use_shipped,
                   args=(name,), icon=":material/inventory_2:", help=f"Sections 4 on use {about}")
    if trained is not None and model is not None and is_shipped(model[0]):
        cols[-1].button("Back to my trained model", key="toy2d_use_mine", on_click=use_shipped, args=(None,))


def describe(run_key: str, run: Run) -> str:
    """Where the current model comes from, for its caption."""
    if is_shipped(run_key):
        folder = run_key[len(shipped_runs.KEY_PREFIX):].rsplit("-", 1)[0]
        return next((r.about for r in shipped_runs.SHIPPED.values() if r.folder == folder), folder).capitalize()
    return "Your model"
