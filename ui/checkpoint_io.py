"""Checkpoints as zip files: export a trainer's run folder, and load an uploaded zip back into a trainer.

Anything wrong with an upload raises ValueError with a message for an error box; nothing in it is executed
or unpickled (diffusion.checkpoints reads JSON and safetensors only).
"""

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

import streamlit as st

from diffusion.checkpoints import CONFIG, load_run
from diffusion.data import is_toy
from diffusion.train import Trainer

from .layout import error_box

MAX_UNZIPPED = 256 * 2**20   # bytes: a 2D checkpoint is well under 10 MB; refuse zip bombs


def zip_trainer(trainer: Trainer) -> bytes:
    """trainer.save's run folder as zip bytes (files at the top level)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save(tmp)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(Path(tmp).iterdir()):
                zf.write(path, path.name)
        return buffer.getvalue()


def _extract(data: bytes, into: Path) -> Path:
    """Unzip safely into `into`; the folder holding config.json (top level or one folder down)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("the uploaded file is not a zip archive; upload the .zip the Export section gives") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if sum(i.file_size for i in infos) > MAX_UNZIPPED:
            raise ValueError(f"the zip unpacks to more than {MAX_UNZIPPED // 2**20} MB; a 2D checkpoint is far smaller")
        for info in infos:
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or len(parts) > 2:
                raise ValueError(f"unexpected path {info.filename!r} in the zip; expected a run folder's files")
            try:
                zf.extract(info, into)
            except (zipfile.BadZipFile, OSError, EOFError) as e:   # CRC error, truncated member
                raise ValueError(f"the zip is damaged: {info.filename!r} cannot be read ({e})") from None
    configs = sorted(into.rglob(CONFIG))
    if not configs:
        raise ValueError(f"no {CONFIG} in the zip: it is not a checkpoint of this app")
    return configs[0].parent


def load_trainer_zip(data: bytes, training_data) -> Trainer:
    """A Trainer resumed from checkpoint zip bytes; training_data(DataConfig) -> TrainingData gives its points.

    ValueError when the zip is not a complete, readable 2D checkpoint.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _extract(data, Path(tmp))
        try:
            run = load_run(run_dir)        # validates config.json and the EMA weights
            if run.is_image or not is_toy(run.config.data.dataset):
                raise ValueError(f"this checkpoint is a model of {run.config.data.dataset!r}; this page loads "
                                 "2D toy-data checkpoints only")
            return Trainer.resume(run_dir, training_data(run.config.data).x)
        except ValueError as e:            # name the zip, not the temporary folder it was unpacked into
            raise ValueError(str(e).replace(f"{str(run_dir)!r}", "the zip")) from None


def load_uploaded(upload_key: str, message_key: str) -> None:
    """on_click of Load: resume the uploaded zip as this visitor's model, or leave an error message to show.

    Any failure is reported, never raised: the current model stays as it was."""
    from . import data2d, settings2d, training
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
