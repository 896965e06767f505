"""The shipped runs as the pages load them (the list: diffusion.training.shipped, checkpoints/shipped.json): each
loaded once per process and shared read-only by every visitor. DIFFUSION_CHECKPOINTS overrides the folders' root
(e.g. in tests)."""

import os
from pathlib import Path

import streamlit as st

from diffusion.sampling.run import Run
from diffusion.training.checkpoints import CHECKPOINTS_DIR, CONFIG, load_run
from diffusion.training.shipped import shipped_runs

SHIPPED_ROOT = Path(os.environ.get("DIFFUSION_CHECKPOINTS", CHECKPOINTS_DIR))
SHIPPED = shipped_runs()         # name -> ShippedRun
KEY_PREFIX = "shipped-"          # a shipped run's run_key: shipped-FOLDER-STEP


def on_page(page: str) -> list[str]:
    """The names of the shipped models that app_pages/<page>.py offers in its menus, in the catalog's order."""
    return [name for name, run in SHIPPED.items() if run.page == page and run.role == "model"]


@st.cache_resource(show_spinner="Loading the shipped run...")
def shipped_run(name: str) -> Run | None:
    """The shipped run SHIPPED[name] (EMA weights, shared read-only by every visitor), or None if absent."""
    path = SHIPPED_ROOT / SHIPPED[name].folder
    return load_run(path) if (path / CONFIG).is_file() else None


def has_shipped(name: str) -> bool:
    """Whether the shipped run SHIPPED[name] is in this copy (checked without loading it)."""
    return (SHIPPED_ROOT / SHIPPED[name].folder / CONFIG).is_file()


def shipped_key(name: str) -> str:
    run = shipped_run(name)
    return f"{KEY_PREFIX}{SHIPPED[name].folder}-{run.step if run else 0}"
