"""The shipped runs, listed once in checkpoints/shipped.json and read here: each run's short name, its folder under
checkpoints/, the app page that offers it, its dataset and method, a label for tables and a sentence saying what it
is. Every page, the study, Compare and the benchmarks take the shipped runs from shipped_runs(); adding one is one
entry in that file and its folder (docs/extending.md)."""

import json
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from diffusion.training.checkpoints import CHECKPOINTS_DIR

CATALOG = CHECKPOINTS_DIR / "shipped.json"
PAGES = ("toy2d", "mnist_digit", "mnist_conditional", "images32")   # app_pages/<page>.py
METHODS = ("diffusion", "flow")                                      # flow: trained by flow matching
ROLES = ("model", "size-sweep")   # model: offered in its page's menus; size-sweep: a point of the training-set-size sweep


@dataclass(frozen=True)
class ShippedRun:
    name: str       # what the pages call it ("digit0")
    folder: str     # its run folder under checkpoints/ ("mnist16-digit0")
    page: str       # the page that offers it (PAGES)
    dataset: str    # its DataConfig.dataset
    method: str     # METHODS
    label: str      # its name in tables and menus
    about: str      # what it is, in words a sentence can hold
    role: str = "model"   # ROLES (may be left out: "model")


def _entry(i: int, raw: object) -> ShippedRun:
    keys = [f.name for f in fields(ShippedRun)]
    strings = isinstance(raw, dict) and all(isinstance(v, str) and v for v in raw.values())
    if not strings or sorted(set(raw) | {"role"}) != sorted(keys):
        raise ValueError(f"shipped run {i} is {raw!r}; allowed: an object with the non-empty strings {keys} "
                         "(role may be left out)")
    run = ShippedRun(**raw)
    for field, value, allowed in (("page", run.page, PAGES), ("method", run.method, METHODS),
                                  ("role", run.role, ROLES)):
        if value not in allowed:
            raise ValueError(f"shipped run {run.name!r} has {field} {value!r}; allowed: {', '.join(allowed)}")
    if Path(run.folder).name != run.folder:
        raise ValueError(f"shipped run {run.name!r} has folder {run.folder!r}; allowed: a folder's name in "
                         "checkpoints/")
    return run


@cache
def _read(path: Path) -> tuple[ShippedRun, ...]:
    runs = tuple(_entry(i, raw) for i, raw in enumerate(json.loads(path.read_text())["runs"]))
    for what in ("name", "folder"):
        seen = [getattr(r, what) for r in runs]
        if len(set(seen)) != len(seen):
            raise ValueError(f"{path}: a shipped run's {what} appears twice in {seen}; allowed: each once")
    return runs


def shipped_runs(path: Path = CATALOG) -> dict[str, ShippedRun]:
    """name -> ShippedRun, in the catalog's order (read once per process; ValueError naming a malformed entry)."""
    return {run.name: run for run in _read(path)}
