"""On-demand sections of the image pages. A first render draws only the sample grid; every costlier section waits
behind a button that names its expected time on this machine (ui.jobs.timing). Once pressed, the section stays open for
that model (st.session_state) and its results come from caches keyed by their inputs, so an unrelated widget change
costs nothing. When a widget the section depends on changes (the grid's sampling steps, say), it recomputes on its
own only if that takes at most AUTO_S seconds; otherwise it waits behind its button again, which names the new time,
instead of freezing the page. "Stop / hide" closes it: clicking it mid-computation interrupts the run at its next
progress update."""

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import streamlit as st

from ui.jobs import timing
from ui.views.layout import LEARN_SHARE

T = TypeVar("T")
AUTO_S = 3.0          # an open section recomputes for new inputs on its own when that takes at most this long


def _set(state_key: str, value: tuple | None) -> None:
    st.session_state[state_key] = value


def opened(key: str, model_key: str, inputs: Hashable, action: str, promise: timing.Estimate,
           auto_s: float | None = None, closable: bool = True) -> bool:
    """True while the visitor has this section open for this model and these inputs; else draws the button
    'action (about N s on this machine)' and returns False. A section open for the model follows new inputs by
    itself when they take at most auto_s seconds (default AUTO_S). Not closable (the sample grid): open from the
    start whenever it takes at most auto_s seconds, and no Stop / hide button."""
    auto_s = AUTO_S if auto_s is None else auto_s
    state_key, wanted = f"{key}_open", (model_key, inputs)
    state = st.session_state.get(state_key)
    following = not closable or (state is not None and state[0] == model_key)
    if state != wanted and following and promise.seconds <= auto_s:
        st.session_state[state_key] = state = wanted
    if state == wanted:
        if closable:
            st.button("Stop / hide", key=f"{key}_hide", icon=":material/stop:", on_click=_set, args=(state_key, None))
        return True
    if following:
        st.caption(f"With these settings this takes {promise.text()} on this machine, so it waits for you.")
    st.button(f"{action} ({promise.text()} on this machine)", key=f"{key}_run", icon=":material/play_arrow:",
              on_click=_set, args=(state_key, wanted))
    return False


def run_parts(label: str, parts: Sequence[tuple[str, Callable[[], T]]], promise: timing.Estimate) -> list[T]:
    """Each (name, part) in turn under a progress bar that says the time left (the observed rate corrects the
    promise as parts finish); parts are cached by their callers, so a stopped run resumes where it stopped."""
    bar, out = st.progress(0.0, f"{label} {promise.text()}"), []
    with timing.timed(promise, min_share=LEARN_SHARE) as clock:
        for i, (name, part) in enumerate(parts):
            out.append(part())
            done = (i + 1) / len(parts)
            bar.progress(done, f"{label} {name} done · {timing.progress_text(done, clock.elapsed(), promise.seconds)}")
    bar.empty()
    return out
