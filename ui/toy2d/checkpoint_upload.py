"""The 2D page's checkpoint import: the Load button's callback, and the message it leaves for the page."""

import streamlit as st

from ui.toy2d import data2d, settings2d
from ui.jobs import training
from ui.jobs.checkpoint_io import load_trainer_zip
from ui.views.layout import error_box


def load_uploaded(upload_key: str, message_key: str) -> None:
    """on_click of Load: resume the uploaded zip as this visitor's model, or leave an error message to show.

    Any failure is reported, never raised: the current model stays as it was."""
    upload = st.session_state.get(upload_key)
    if upload is None:
        st.session_state[message_key] = ("error", "choose a .zip file first")
        return
    try:
        trainer = load_trainer_zip(upload.getvalue(), data2d.training_data)
    except Exception as e:  # noqa: BLE001 - a bad upload must show an error box, whatever broke
        st.session_state[message_key] = ("error", f"{upload.name}: {e}")
        return
    training.set_job(training.TrainingJob(trainer))
    settings2d.apply(trainer.config)
    cfg = trainer.config
    st.session_state[message_key] = ("success", f"Loaded {upload.name}: {cfg.data.dataset}, {cfg.schedule.name} "
                                                f"T={cfg.schedule.timesteps}, step {trainer.step:,}.")


def show_load_result(message_key: str) -> None:
    """The outcome load_uploaded left, shown once."""
    if message_key in st.session_state:
        kind, text = st.session_state.pop(message_key)
        if kind == "success":
            st.success(text, icon=":material/check:")
        else:
            error_box("Could not load the checkpoint", text)
