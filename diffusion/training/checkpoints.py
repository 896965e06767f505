"""A run folder on disk: config.json, model.safetensors, ema.safetensors, optimizer.safetensors, metrics.csv.

A checkpoint is saved by two-phase commit: every file is first written in full beside its final name
(`NAME.pending`, fsynced), then `commit.json` is written atomically (the commit point), then the files are
renamed into place and the marker removed. A run killed at any moment, even by kill -9, is found either before
the commit point (the pending files are discarded: the previous checkpoint stands) or after it (the renames
are finished on the next load). `commit.json` may only name files of RUN_FILES (never paths). A writer holds the
folder's lock (training.runlock) throughout; a reader that finds a commit under way waits for it, and finishes it
itself only when no writer is alive. Files are stamped with their step. Loading rebuilds the model from
config.json; nothing is unpickled.
"""

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from diffusion import __version__
from diffusion.config import RunConfig
from diffusion.models import build_model, memory_format
from diffusion.sampling.run import Run
from diffusion.training import bounded_json, distributed, runlock


class TrainerState(Protocol):
    """What a checkpoint holds of a trainer (training.trainer.Trainer has it all; this module does not import it)."""

    config: RunConfig
    model: torch.nn.Module
    ema: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int
    elapsed: float
    loss_avg: float
    history: list[dict]
    data_source: str
    device: str

CONFIG, MODEL, EMA, OPTIMIZER, METRICS = "config.json", "model.safetensors", "ema.safetensors", \
    "optimizer.safetensors", "metrics.csv"
LIKELIHOOD = "likelihood.json"   # the model's held-out likelihood at one step (metrics.measure.measure_likelihood)
RUN_FILES = (CONFIG, OPTIMIZER, EMA, MODEL, METRICS)   # the only names a run folder's commit may rename
COMMIT, PENDING = "commit.json", ".pending"
COMMIT_WAIT_S = 10.0   # how long a reader waits for a live writer's commit to finish


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permission denied); the previous one is intact."""
CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"   # the repository's shipped runs and classifiers


def atomic_write(path: Path, write) -> None:
    """write(tmp) then fsync and rename onto path: readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_tensors(path: Path, tensors: dict, step: int, **meta: str) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"step": str(step), **meta}))


def _optimizer_tensors(trainer: TrainerState) -> tuple[dict, str]:
    sd = trainer.optimizer.state_dict()
    tensors = {f"state.{i}.{k}": v for i, s in sd["state"].items() for k, v in s.items()}
    tensors["rng"] = trainer.generator.get_state()
    meta = {"param_groups": sd["param_groups"], "elapsed": trainer.elapsed, "loss_avg": trainer.loss_avg}
    return tensors, json.dumps(meta)


def checkpoint_bytes(parameters: int) -> int:
    """Disk space of one checkpoint of a network with this many parameters: weights, EMA and AdamW's two moments
    in float32, plus headers and the history (a generous megabyte)."""
    return 4 * 4 * parameters + 2**20


def save(run_dir: str | Path, trainer: TrainerState) -> None:
    """Write the trainer's checkpoint into run_dir (created if needed), all files or none. CheckpointWriteError
    (one line) when the disk is full or the folder unwritable; runlock.RunFolderBusy when another process writes."""
    run_dir = Path(run_dir)
    try:
        with runlock.hold(run_dir):
            _save(run_dir, trainer)
    except (OSError, SafetensorError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CheckpointWriteError(f"cannot write a checkpoint in {str(run_dir)!r}: {reason}; the previous "
                                   "checkpoint, if any, is intact") from None


def _save(run_dir: Path, trainer: TrainerState) -> None:
    _finish(run_dir, discard_uncommitted=True)
    world = distributed.world_size()   # the device, so that a training time says CPU or GPU seconds
    device = torch.device(trainer.device).type + (f" x{world}" if world > 1 else "")
    config = {"version": __version__, "data_source": trainer.data_source, "device": device,
              **trainer.config.to_dict()}
    staged = lambda name: run_dir / (name + PENDING)  # noqa: E731
    atomic_write(staged(CONFIG), lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
    opt, meta = _optimizer_tensors(trainer)
    _save_tensors(staged(OPTIMIZER), opt, trainer.step, trainer=meta)
    _save_tensors(staged(EMA), trainer.ema.state_dict(), trainer.step)
    _save_tensors(staged(MODEL), trainer.model.state_dict(), trainer.step)
    atomic_write(staged(METRICS), lambda tmp: pd.DataFrame(trainer.history).to_csv(tmp, index=False))
    atomic_write(run_dir / COMMIT, lambda tmp: tmp.write_text(json.dumps({"step": trainer.step,
                                                                          "files": list(RUN_FILES)})))
    _finish(run_dir)


def _committed_names(run_dir: Path) -> list[str] | None:
    """The files commit.json names (None when there is no commit); ValueError unless it is {"step": int,
    "files": [names from RUN_FILES]}: a name is never a path, so a commit renames nothing outside its folder."""
    try:
        raw = json.loads((run_dir / COMMIT).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {COMMIT} is unreadable ({e})") from None
    files = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) and f in RUN_FILES for f in files):
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {COMMIT} must list files among "
                         f"{', '.join(RUN_FILES)}; got {str(raw)[:200]}")
    return files


def _finish(run_dir: Path, discard_uncommitted: bool = False) -> None:
    """Complete a committed save (rename its pending files into place); optionally drop an uncommitted one."""
    names = _committed_names(run_dir)
    for name in names or ():
        try:
            os.replace(run_dir / (name + PENDING), run_dir / name)
        except FileNotFoundError:  # renamed already, before an interruption
            pass
    if names is not None:
        (run_dir / COMMIT).unlink(missing_ok=True)
    if discard_uncommitted:
        for stray in [*run_dir.glob("*" + PENDING), *run_dir.glob(".*.tmp*")]:
            stray.unlink(missing_ok=True)


def _settle(run_dir: Path) -> None:
    """Make run_dir readable when a commit is under way: wait for a live writer to finish it, or finish it when
    its writer died (no one holds the lock)."""
    deadline = time.monotonic() + COMMIT_WAIT_S
    while (run_dir / COMMIT).exists():
        try:
            with runlock.hold(run_dir, wait=0.0):
                _finish(run_dir)
            return
        except runlock.RunFolderBusy:
            if time.monotonic() > deadline:
                raise ValueError(f"checkpoint {str(run_dir)!r} is being written; try again in a moment") from None
            time.sleep(0.02)
        except OSError as e:          # a read-only folder: the commit cannot be finished here
            raise ValueError(f"incomplete checkpoint {str(run_dir)!r}: its last save was interrupted and the "
                             f"folder is read-only ({e.strerror})") from None


def _read_config(run_dir: Path) -> tuple[RunConfig, dict]:
    _settle(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ValueError(f"no checkpoint in {str(run_dir)!r}: {CONFIG} is missing")
    try:
        raw = bounded_json.read(run_dir / CONFIG, f"{CONFIG} of {str(run_dir)!r}")   # bounded before it is built
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {CONFIG} is unreadable ({e})") from None
    try:
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON object expected, got {type(raw).__name__}")
        return RunConfig.from_dict({k: raw.get(k) for k in ("data", "schedule", "model", "train")}), raw
    except ValueError as e:
        raise ValueError(f"invalid {CONFIG} in {str(run_dir)!r}: {e}") from None


def _read_history(run_dir: Path, step: int) -> list[dict]:
    path = run_dir / METRICS
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        df = pd.read_csv(path)
        rows = df[pd.to_numeric(df["step"], errors="raise") <= step].to_dict("records")
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as e:
        what = "has no step column" if isinstance(e, KeyError) else f"cannot be read ({type(e).__name__}: {e})"
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {METRICS} {what}") from None
    return [{k: v for k, v in row.items() if not pd.isna(v)} for row in rows]


def _read_tensors(run_dir: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of one safetensors file, from a single open: a file replaced meanwhile by a newer save
    cannot mix steps. ValueError naming the file when it is missing or damaged."""
    try:
        with safe_open(str(run_dir / name), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
    except FileNotFoundError:
        raise ValueError(f"incomplete checkpoint {str(run_dir)!r}: {name} is missing") from None
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types on a damaged file
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {name} cannot be read ({e})") from None


def _step_of(path: Path) -> int:
    with safe_open(str(path), framework="pt") as f:
        return int(f.metadata()["step"])


def _load_weights(run_dir: Path, name: str, module: torch.nn.Module) -> int:
    tensors, meta = _read_tensors(run_dir, name)
    try:
        module.load_state_dict(tensors)
        return int(meta["step"])
    except (KeyError, ValueError, RuntimeError) as e:   # missing or mis-shaped tensors, no step stamp
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {name} does not fit {CONFIG} "
                         f"({' '.join(str(e).split())[:300]})") from None


def read_config(run_dir: str | Path) -> RunConfig:
    """The run's config alone (no network is built); ValueError when it is missing or invalid."""
    return _read_config(Path(run_dir))[0]


def load_run(run_dir: str | Path, device: str = "cpu") -> Run:
    """The run's config, schedule and EMA network, ready for sampling."""
    run_dir = Path(run_dir)
    config, raw = _read_config(run_dir)
    net = build_model(config.model)
    step = _load_weights(run_dir, EMA, net)
    net = net.to(device, memory_format=memory_format(config.model, device))
    return Run(config, config.schedule.build(), net.eval(), step, _read_history(run_dir, step),
               raw.get("data_source", ""))


def load_trainer(cls, run_dir: str | Path, x: torch.Tensor, y: torch.Tensor | None, device: str) -> TrainerState:
    """Rebuild a Trainer from run_dir exactly as it was at its last checkpoint."""
    run_dir = Path(run_dir)
    config, raw = _read_config(run_dir)
    trainer = cls(config, x, y, device=device, data_source=raw.get("data_source", ""))
    steps = {_load_weights(run_dir, MODEL, trainer.model), _load_weights(run_dir, EMA, trainer.ema)}
    opt, header = _read_tensors(run_dir, OPTIMIZER)
    try:
        steps.add(int(header["step"]))
        meta: dict[str, Any] = bounded_json.loads(header["trainer"], f"the trainer state in {OPTIMIZER}")
    except (KeyError, ValueError) as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {OPTIMIZER} has no trainer state ({e})") from None
    if len(steps) != 1:
        raise ValueError(f"inconsistent checkpoint {str(run_dir)!r}: files are from steps {sorted(steps)}")
    try:
        state: dict = {}
        for key, value in opt.items():
            if key.startswith("state."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        trainer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        trainer.generator.set_state(opt["rng"])
        trainer.elapsed, trainer.loss_avg = float(meta["elapsed"]), float(meta["loss_avg"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {OPTIMIZER} does not fit {CONFIG} "
                         f"({' '.join(str(e).split())[:300]})") from None
    trainer.step = trainer.saved_step = steps.pop()
    trainer.history = _read_history(run_dir, trainer.step)
    return trainer
