"""One writer per run folder: an advisory lock (`fcntl.flock`) on `RUN/.lock`, held while a process trains or
saves into the folder. The kernel drops the lock when its process dies, even by kill -9, so a stale lock never
blocks the next run (the file stays, unlocked). Re-entrant within a process: the CLI holds it for a whole run and
each save takes it again. Where `fcntl` does not exist (Windows) nothing is locked.
"""

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK = ".lock"
_held: dict[str, list[int]] = {}    # resolved folder -> [fd, depth] of the locks this process holds
_guard = threading.Lock()


class RunFolderBusy(ValueError):
    """Another process is writing into the run folder."""


def _owner(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def _acquire(key: str, path: Path, wait: float) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise RunFolderBusy(f"run folder {str(path.parent)!r} is in use by another training{_owner(path)}; "
                                    "wait for it to finish or use another --out") from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[key] = [fd, 1]


@contextmanager
def hold(run_dir: str | Path, wait: float = 1.0) -> Iterator[None]:
    """Hold run_dir's lock (the folder is created if needed); RunFolderBusy if another process still holds it
    after `wait` seconds (a reader finishing a commit holds it for milliseconds)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    with _guard:
        if fcntl is None:
            pass
        elif key in _held:
            _held[key][1] += 1
        else:
            _acquire(key, run_dir / LOCK, wait)
    try:
        yield
    finally:
        with _guard:
            entry = _held.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[key]
                    os.close(entry[0])      # closing the descriptor releases the lock
