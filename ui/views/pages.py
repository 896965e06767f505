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
    PageInfo("app_pages/mnist_digit.py", "Phase 2 · MNIST, one digit", ":material/filter_1:",
             "Train a U-Net on one MNIST digit at 16x16 with FID live; samples, denoising filmstrip, memorisation, "
             "diversity, interpolation."),
    PageInfo("app_pages/mnist_conditional.py", "Phase 3 · conditional MNIST", ":material/tune:",
             "All ten digits, class-conditional: guidance scale trade-off, class histograms, imbalanced training, "
             "label interpolation, self- vs cross-attention conditioning."),
    PageInfo("app_pages/images32.py", "Phase 4 · 32x32 and RGB", ":material/palette:",
             "The same tools at 32x32 on MNIST, the RGB shapes set, CIFAR-10 or your own image folder, with the "
             "cost of the higher resolution."),
    PageInfo("app_pages/compare.py", "Compare runs", ":material/compare_arrows:",
             "Every run in one table with its configuration and final metrics; overlaid loss and metric curves; "
             "analysis by architecture and hyperparameters."),
    PageInfo("app_pages/study.py", "Quality vs steps", ":material/speed:",
             "For one run and one bank of initial noises: samplers x network evaluations, quality and wall time "
             "against NFE beside the published curves, float16/bfloat16 stability, the 20-NFE goal."),
)


def navigation_pages() -> list[st.Page]:
    return [st.Page(p.path, title=p.title, icon=p.icon, default=i == 0) for i, p in enumerate(PAGES)]


def phases() -> tuple[PageInfo, ...]:
    """The pages the overview links to (all but itself)."""
    return tuple(p for p in PAGES if p.summary)
