"""The runs a visitor trained in this session, by name, for every page to list (the compare page, the study
page). A page registers its run whenever the run changes; nothing here is shared between visitors."""

import streamlit as st

from diffusion.sampling.run import Run

KEY = "session_runs"


def register(name: str, run: Run) -> None:
    """Make run visible to the other pages under name (replacing an older run of that name)."""
    st.session_state.setdefault(KEY, {})[name] = run


def session_runs() -> dict[str, Run]:
    """name -> Run of everything this visitor trained, in the order first registered."""
    return dict(st.session_state.get(KEY, {}))


def forget(run: Run) -> None:
    """Take run off the list (its visitor discarded it): no page offers a model that is gone."""
    st.session_state[KEY] = {name: r for name, r in st.session_state.get(KEY, {}).items() if r is not run}
