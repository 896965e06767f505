"""A run folder on disk: config.json, model.safetensors, ema.safetensors, optimizer.safetensors, metrics.csv.

A checkpoint is saved by two-phase commit: every file is first written in full beside its final name
(`NAME.pending`, fsynced), then `commit.json` is written atomically (the commit point), then the files are
renamed into place and the marker removed. A run killed at any moment, even by kill -9, is found either before
the commit point (the pending files are discarded: the previous checkpoint stands) or after it (the renames
are finished on the next load). Files are stamped with their step. Loading rebuilds the model from
config.json; nothing is unpickled.
"""

import json
import os
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from diffusion import __version__
from diffusion.config import RunConfig
from diffusion.models import build_model, memory_format
from diffusion.sampling.run import Run
from diffusion.training import distributed


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
COMMIT, PENDING = "commit.json", ".pending"
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


def save(run_dir: str | Path, trainer: TrainerState) -> None:
    """Write the trainer's checkpoint into run_dir (created if needed), all files or none."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
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
    names = [CONFIG, OPTIMIZER, EMA, MODEL, METRICS]
    atomic_write(run_dir / COMMIT, lambda tmp: tmp.write_text(json.dumps({"step": trainer.step, "files": names})))
    _finish(run_dir)


def _finish(run_dir: Path, discard_uncommitted: bool = False) -> None:
    """Complete a committed save (rename its pending files into place); optionally drop an uncommitted one."""
    commit = run_dir / COMMIT
    if commit.exists():
        for name in json.loads(commit.read_text())["files"]:
            try:
                os.replace(run_dir / (name + PENDING), run_dir / name)
            except FileNotFoundError:  # renamed already, before an interruption
                pass
        commit.unlink(missing_ok=True)
    if discard_uncommitted:
        for stray in [*run_dir.glob("*" + PENDING), *run_dir.glob(".*.tmp*")]:
            stray.unlink(missing_ok=True)


def _step_of(path: Path) -> int:
    with safe_open(str(path), framework="pt") as f:
        return int(f.metadata()["step"])


def _read_config(run_dir: Path) -> tuple[RunConfig, dict]:
    if (run_dir / COMMIT).exists():
        _finish(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ValueError(f"no checkpoint in {str(run_dir)!r}: {CONFIG} is missing")
    try:
        raw = json.loads((run_dir / CONFIG).read_text())
        sections = {k: raw[k] for k in ("data", "schedule", "model", "train")}
        return RunConfig.from_dict(sections), raw
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {CONFIG} is unreadable ({e})") from None


def _read_history(run_dir: Path, step: int) -> list[dict]:
    if not (run_dir / METRICS).is_file() or (run_dir / METRICS).stat().st_size == 0:
        return []
    df = pd.read_csv(run_dir / METRICS)
    rows = df[df["step"] <= step].to_dict("records")
    return [{k: v for k, v in row.items() if not pd.isna(v)} for row in rows]


def _load_weights(run_dir: Path, name: str, module: torch.nn.Module) -> int:
    path = run_dir / name
    try:
        step = _step_of(path)
        module.load_state_dict(load_file(str(path)))
    except FileNotFoundError:
        raise ValueError(f"incomplete checkpoint {str(run_dir)!r}: {name} is missing") from None
    except Exception as e:  # safetensors raises its own error types on a damaged file
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {name} cannot be read ({e})") from None
    return step


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
    try:
        opt = load_file(str(run_dir / OPTIMIZER))
        with safe_open(str(run_dir / OPTIMIZER), framework="pt") as f:
            steps.add(int(f.metadata()["step"]))
            meta = json.loads(f.metadata()["trainer"])
    except Exception as e:
        raise ValueError(f"corrupt checkpoint {str(run_dir)!r}: {OPTIMIZER} cannot be read ({e})") from None
    if len(steps) != 1:
        raise ValueError(f"inconsistent checkpoint {str(run_dir)!r}: files are from steps {sorted(steps)}")
    state: dict = {}
    for key, value in opt.items():
        if key.startswith("state."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    trainer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    trainer.generator.set_state(opt["rng"])
    trainer.step, trainer.elapsed, trainer.loss_avg = steps.pop(), meta["elapsed"], meta["loss_avg"]
    trainer.history = _read_history(run_dir, trainer.step)
    return trainer
