"""The app's pages, in menu order: adding a page is one line here (the overview links every phase listed)."""

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageInfo:
    path: str
    title: str
    icon: str
    summary: str       # one line for the overview; empty for the overview itself


PAGES: tuple[PageInfo, ...] = (
    PageInfo("app_pages/overview.py", "Overview", ":material/home:", ""),
    PageInfo("app_pages/toy2d.py", "Phase 1 · 2D toy data", ":material/scatter_plot:",
             "Train a small MLP on 2D points live: forward process, training curves, denoising trajectories and "
             "vector fields against the exact ones, DDPM vs DDIM, export."),
)


def navigation_pages() -> list[st.Page]:
    return [st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)]


def phases() -> tuple[PageInfo, ...]:
    """The pages the overview links to (all but itself)."""
    return tuple(p for p in PAGES if p.summary)
