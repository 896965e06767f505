"""Checkpoints as zip files: export a trainer's run folder, and load an uploaded zip back into a trainer (the 2D
page's Load button is ui.toy2d.checkpoint_upload).

Anything wrong with an upload raises ValueError with a message for an error box; nothing in it is executed
or unpickled (diffusion.training.checkpoints reads JSON and safetensors only). A zip may hold only the files of a
run folder (checkpoints.RUN_FILES, at its top or in one folder): never a commit marker, a pending file or a path.
Its config is read within bounds (training.bounded_json), validated, and checked against this server's budget
(ui.jobs.budget) before any network is built; its metrics.csv, the history the charts draw, is bounded in bytes and rows
before pandas reads it (a 36 MB history took a minute and 1.3 GB).
"""

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from diffusion.data import is_toy
from diffusion.training.checkpoints import CONFIG, METRICS, RUN_FILES, load_run, read_config
from diffusion.training.trainer import Trainer

from ui.jobs.budget import check_config

MAX_UNZIPPED = 64 * 2**20    # bytes: a 2D checkpoint is well under 10 MB; refuse zip bombs
MAX_HISTORY_BYTES = 16_000_000   # metrics.csv: a 600 s job on the 2D page logs ~100,000 steps in ~7 MB
MAX_HISTORY_ROWS = 200_000       # its rows (each a dict once read: ~0.5 kB)


def zip_trainer(trainer: Trainer) -> bytes:
    """trainer.save's run folder as zip bytes (files at the top level)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer.save(tmp)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in RUN_FILES:
                zf.write(Path(tmp) / name, name)
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
            if info.filename.startswith("/") or ".." in parts or len(parts) > 2 or parts[-1] not in RUN_FILES:
                raise ValueError(f"unexpected file {info.filename!r} in the zip; allowed: a run folder's files "
                                 f"({', '.join(RUN_FILES)})")
            try:
                zf.extract(info, into)
            except (zipfile.BadZipFile, OSError, EOFError) as e:   # CRC error, truncated member
                raise ValueError(f"the zip is damaged: {info.filename!r} cannot be read ({e})") from None
    configs = sorted(into.rglob(CONFIG))
    if not configs:
        raise ValueError(f"no {CONFIG} in the zip: it is not a checkpoint of this app")
    _check_history(configs[0].parent / METRICS)
    return configs[0].parent


def _check_history(path: Path) -> None:
    """ValueError when the run's metrics.csv passes MAX_HISTORY_BYTES or MAX_HISTORY_ROWS (counted, not parsed)."""
    if not path.is_file():
        return
    size = path.stat().st_size
    if size > MAX_HISTORY_BYTES:
        raise ValueError(f"{METRICS} in the zip has {size:,} bytes; allowed: at most {MAX_HISTORY_BYTES:,}")
    rows = path.read_bytes().count(b"\n")
    if rows > MAX_HISTORY_ROWS:
        raise ValueError(f"{METRICS} in the zip has {rows:,} rows; allowed: at most {MAX_HISTORY_ROWS:,} logged steps")


def load_trainer_zip(data: bytes, training_data) -> Trainer:
    """A Trainer resumed from checkpoint zip bytes; training_data(DataConfig) -> TrainingData gives its points.

    ValueError when the zip is not a complete, readable 2D checkpoint.
    """
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _extract(data, Path(tmp))
        try:
            config = read_config(run_dir)  # validated, nothing built yet
            if not is_toy(config.data.dataset) or config.model.kind != "mlp":
                raise ValueError(f"this checkpoint is a model of {config.data.dataset!r}; this page loads "
                                 "2D toy-data checkpoints only")
            check_config(config)           # this server's limits, counted on the meta device
            load_run(run_dir)              # the EMA weights can be read and fit the config
            return Trainer.resume(run_dir, training_data(config.data).x)
        except ValueError as e:            # name the zip, not the temporary folder it was unpacked into
            raise ValueError(str(e).replace(f"{str(run_dir)!r}", "the zip")) from None
