"""The folders a visitor may name on this server. Every typed path (a run folder on the compare page, an image
folder on Phase 4) is resolved, links followed, and must lie inside one of the configured roots:

- runs: $DIFFUSION_RUNS_DIRS (folders separated by ':'), else the project's checkpoints/ and runs/;
- image folders: $DIFFUSION_DATA_DIR, else the project's data/ (the package's data folder).

A relative path is read from the project folder, then from each root. Anything but an existing folder inside the
roots (outside them, through a link that leads out, missing, a file) gets one message naming the typed value and the
roots: nothing tells a visitor what exists outside, and no message shows a path the server made up.
"""

import os
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def _configured(variable: str, defaults: tuple[str, ...]) -> tuple[Path, ...]:
    value = os.environ.get(variable, "")
    folders = [Path(p) for p in value.split(os.pathsep) if p] or [PROJECT / d for d in defaults]
    return tuple(p if p.is_absolute() else PROJECT / p for p in folders)


def run_roots() -> tuple[Path, ...]:
    return _configured("DIFFUSION_RUNS_DIRS", ("checkpoints", "runs"))


def data_roots() -> tuple[Path, ...]:
    return _configured("DIFFUSION_DATA_DIR", ("data",))


def describe(roots: tuple[Path, ...]) -> str:
    """The roots as a visitor reads them: relative to the project when inside it."""
    shown = [f"{p.relative_to(PROJECT)}/" if p.is_relative_to(PROJECT) else f"{p}/" for p in roots]
    return ", ".join(shown)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root.resolve()) for root in roots)


def confine(typed: str, roots: tuple[Path, ...], what: str) -> Path:
    """The existing folder `typed` names, resolved, if it lies inside one of roots; else ValueError naming typed and
    the roots (one message for every refusal: outside, a link out, missing, not a folder)."""
    text = typed.strip()
    candidates = [Path(text)] if Path(text).is_absolute() else [PROJECT / text, *(root / text for root in roots)]
    for candidate in candidates if text else ():
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):        # a link loop
            continue
        if _inside(resolved, roots) and resolved.is_dir():
            return resolved
    raise ValueError(f"{what} {typed!r} is not a folder inside the folders this server allows; allowed: folders "
                     f"under {describe(roots)}")
