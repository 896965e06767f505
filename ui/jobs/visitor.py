"""Whether a visitor is still there: the Streamlit session a job belongs to, watched from the job's own thread.

The session id is read on the script thread when the job starts; the worker then asks the runtime whether that
session is still connected (`Runtime.is_active_session`, thread-safe). A closed tab or a lost network disconnects it
at once; Streamlit keeps the session a while in case the visitor comes back, so a job stops only after
GRACE_S seconds without its visitor. Outside a Streamlit server (tests, scripts) a job has no session and never
stops for this reason.
"""

import hashlib
import time

XSRF_COOKIES = ("_xsrf", "_streamlit_xsrf")   # set once per browser by Streamlit's server (Tornado, Starlette)
GRACE_S = 3.0      # seconds a job waits for its visitor to reconnect (closing a page stops its job within ~5 s)
CHECK_S = 0.5      # seconds between two looks at the runtime


def session_id() -> str | None:
    """The current script's session id, or None outside a Streamlit script run."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else None


def visitor_key() -> str | None:
    """Who is asking, for the one-job-per-visitor cap (ui.scheduler): the browser's XSRF cookie (the same in all
    its tabs), hashed; without one, this tab's session. None outside a Streamlit server (scripts; AppTest, whose
    runtime is a mock and whose sessions all read one id), where nobody is capped."""
    import streamlit as st
    from streamlit import runtime
    if not runtime.exists() or type(runtime.get_instance()) is not runtime.Runtime:
        return None
    cookies = st.context.cookies
    cookie = next((cookies[c] for c in XSRF_COOKIES if c in cookies), None)
    return hashlib.sha256(cookie.encode()).hexdigest()[:16] if cookie else session_id()


def _connected(session: str) -> bool:
    from streamlit import runtime
    if not runtime.exists():
        return True                      # AppTest and plain Python: no server, nobody to lose
    return runtime.get_instance().is_active_session(session)


class Presence:
    """Watches one session from a worker thread: gone() is True once it has been disconnected for GRACE_S."""

    def __init__(self, session: str | None):
        self.session = session
        self._last_seen = time.monotonic()
        self._last_check = 0.0

    def gone(self) -> bool:
        if self.session is None:
            return False
        now = time.monotonic()
        if now - self._last_check >= CHECK_S:
            self._last_check = now
            if _connected(self.session):
                self._last_seen = now
        return now - self._last_seen >= GRACE_S
