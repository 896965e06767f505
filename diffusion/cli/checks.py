"""The CLI's checks of its arguments and outputs, made before any work: a bad value, an output that cannot be
written or a disk too full for one checkpoint is a one-line ValueError naming the flag, its value and what is
allowed (the CLI prints it and exits with code 2), never a traceback after minutes of training."""

import os
import shutil
import uuid
from pathlib import Path

import torch

from diffusion.config import MAX_SEED
from diffusion.training.checkpoints import checkpoint_bytes

MAX_N = 1_000_000


def check_int(flag: str, value: int | None, low: int, high: int, why: str = "") -> None:
    """ValueError unless value (when given) is an integer in [low, high]."""
    if value is not None and not low <= value <= high:
        raise ValueError(f"{flag} {value} is out of range; allowed: {low} to {high}{why}")


def check_seed(value: int | None) -> None:
    check_int("--seed", value, 0, MAX_SEED)


def check_threads(value: int | None) -> None:
    cores = os.cpu_count() or 1
    check_int("--threads", value, 1, 4 * cores, f" (this machine has {cores} cores)")


def check_device(device: str) -> None:
    """cpu, cuda or cuda:N for a device PyTorch sees."""
    if device == "cpu":
        return
    index = device.partition(":")[2] if device.startswith("cuda:") else "0" if device == "cuda" else None
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index is None or not index.isdigit():
        raise ValueError(f"--device {device!r} is unknown; allowed: cpu, cuda, cuda:N")
    if int(index) >= count:
        seen = f"cuda:0 to cuda:{count - 1}" if count else "no CUDA device here"
        raise ValueError(f"--device {device!r}: PyTorch sees {seen}; allowed: cpu" + (", cuda" if count else ""))


def _probe_writable(folder: Path, flag: str, value: str) -> None:
    """ValueError unless a file can be created in folder (created itself if needed)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise ValueError(f"{flag} {value!r}: cannot write in {str(folder)!r} ({e.strerror or e})") from None


def check_output_file(value: str, suffixes: tuple[str, ...], what: str) -> Path:
    """The --out path of a file of `what`, ending in one of suffixes, whose folder can be written."""
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"--out {value!r}: {what} are written as {' or '.join(suffixes)}")
    if path.is_dir():
        raise ValueError(f"--out {value!r} is a folder; allowed: a file path ending in {' or '.join(suffixes)}")
    _probe_writable(path.parent, "--out", value)
    return path


def check_run_folder(value: str) -> Path:
    """The --out run folder of train: a folder (new, or a run to resume) that can be written."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {value!r} is a file; allowed: a run folder (a new one, or a run to resume)")
    _probe_writable(path, "--out", value)
    return path


def check_free_space(folder: Path, parameters: int) -> None:
    """ValueError when folder's disk has no room for one checkpoint of a network with this many parameters."""
    need, free = checkpoint_bytes(parameters), shutil.disk_usage(folder).free
    if free < need:
        raise ValueError(f"--out {str(folder)!r}: {free / 2**20:.0f} MB free on its disk; one checkpoint of this "
                         f"model needs {need / 2**20:.0f} MB")
