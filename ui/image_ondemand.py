"""On-demand sections of the image pages. A first render draws only the sample grid; every costlier section waits
behind a button that names its expected time on this machine. Once pressed, the section stays open for that model
(st.session_state) and its results come from caches keyed by their inputs, so an unrelated widget change costs
nothing. "Stop / hide" closes it: clicking it mid-computation interrupts the run at its next progress update."""

from collections.abc import Callable, Sequence
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def expected(seconds: float) -> str:
    """'~N s' or '~N min', never below one second."""
    return f"~{max(1, round(seconds))} s" if seconds < 90 else f"~{seconds / 60:.0f} min"


def _set(state_key: str, value: str | None) -> None:
    st.session_state[state_key] = value


def opened(key: str, identity: str, action: str, seconds: float) -> bool:
    """True while the visitor has this section open for `identity` (a model's run_key); else draws the button
    'action (~N s on this machine)' and returns False."""
    state_key = f"{key}_open"
    if st.session_state.get(state_key) == identity:
        st.button("Stop / hide", key=f"{key}_hide", icon=":material/stop:", on_click=_set, args=(state_key, None))
        return True
    st.button(f"{action} ({expected(seconds)} on this machine)", key=f"{key}_run", icon=":material/play_arrow:",
              on_click=_set, args=(state_key, identity))
    return False


def run_parts(label: str, parts: Sequence[tuple[str, Callable[[], T]]]) -> list[T]:
    """Each (name, part) in turn under a progress bar; parts are cached by their callers, so a stopped run resumes
    where it stopped."""
    bar, out = st.progress(0.0, label), []
    for i, (name, part) in enumerate(parts):
        out.append(part())
        bar.progress((i + 1) / len(parts), f"{label} {name} done")
    bar.empty()
    return out
