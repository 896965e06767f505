"""Distances between a generated 2D sample and the truth: Wasserstein (exact or sliced), histogram KL, NLL.

Inputs are numpy arrays or torch tensors of shape (N, 2). A sample with NaN or inf rows raises ValueError
(naming how many): a diverging sampler must show, not be averaged away. Read every number against the
sampling floor, the same metrics between an independent true sample of the same size and the reference
(floor_2d): a finite sample never reaches 0.
"""

from collections.abc import Callable
from typing import Literal

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist
from scipy.special import rel_entr
from torch import Tensor

from diffusion.core.oracles import GaussianMixture

Points = np.ndarray | Tensor
MAX_EXACT = 5000              # exact optimal transport up to this many points per side (O(n m) memory)
EMD_MAX_ITER = 10_000_000     # POT's default (100k) stops early at ~5k points with a wrong value
SLICED_PROJECTIONS = 200
KL_BINS, KL_PAD, KL_PSEUDO_COUNT = 20, 0.1, 1.0


def _points(x: Points, name: str) -> np.ndarray:
    """x as a float64 (N, 2) array; ValueError if the shape is wrong or any row is NaN/inf."""
    arr = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} has shape {arr.shape}; allowed: (N, 2) with N >= 2")
    bad = int((~np.isfinite(arr).all(axis=1)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite rows (NaN or inf) out of {arr.shape[0]}: "
                         "the sampler diverged; metrics are undefined")
    return arr


def data_scale(x: Points) -> float:
    """Per-coordinate std of the sample, sqrt(trace(Cov(x)) / 2)."""
    arr = _points(x, "x")
    return float(np.sqrt(arr.var(axis=0, ddof=1).sum() / 2))


def wasserstein_method(n_a: int, n_b: int) -> Literal["exact", "sliced"]:
    """Which estimate wasserstein() uses for samples of n_a and n_b points."""
    return "exact" if max(n_a, n_b) <= MAX_EXACT else "sliced"


def _exact_wasserstein(a: np.ndarray, b: np.ndarray, p: int) -> float:
    """W_p between the two empirical measures by network simplex (POT emd2)."""
    M = cdist(a, b, metric="euclidean" if p == 1 else "sqeuclidean")
    wa, wb = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    cost, log = ot.emd2(wa, wb, M, numItermax=EMD_MAX_ITER, log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"exact optimal transport did not converge: {log['warning']}")
    return float(cost) ** (1.0 / p)


def _sliced_wasserstein(a: np.ndarray, b: np.ndarray, p: int) -> float:
    """Sliced W_p (Bonneel 2015) over evenly spaced directions, rescaled to equal W_p on any translation.

    Evenly spaced angles in [0, pi) are a deterministic quadrature over directions (no seed, no projection
    noise). Slicing a translation by m gives |m| (mean_k |cos theta_k|^p)^(1/p); dividing by that factor
    makes the estimate exact for translations; for p = 2 it is a lower bound of W_2 in general.
    """
    angles = np.pi * np.arange(SLICED_PROJECTIONS) / SLICED_PROJECTIONS
    projections = np.stack([np.cos(angles), np.sin(angles)])                          # (2, L)
    rescale = np.mean(np.abs(np.cos(angles)) ** p) ** (-1.0 / p)
    return float(ot.sliced_wasserstein_distance(a, b, projections=projections, p=p)) * rescale


def wasserstein(a: Points, b: Points, p: Literal[1, 2] = 1) -> float:
    """W_p between two samples: exact up to MAX_EXACT points per side, else rescaled sliced W_p.

    wasserstein_method(len(a), len(b)) says which one was used.
    """
    if p not in (1, 2):
        raise ValueError(f"Wasserstein order p={p!r} is not supported; allowed: 1, 2")
    a, b = _points(a, "a"), _points(b, "b")
    if wasserstein_method(len(a), len(b)) == "exact":
        return _exact_wasserstein(a, b, p)
    return _sliced_wasserstein(a, b, p)


def _histogram(x: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """Cell frequencies (bins, bins); points outside the window are clipped into edge cells, not dropped."""
    x = np.clip(x, low, high)  # np.histogram2d would silently drop them
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins, range=list(zip(low, high)))
    return counts / len(x)


def kl_divergences(samples: Points, reference: Points, *, bins: int = KL_BINS, pad: float = KL_PAD,
                   pseudo_count: float = KL_PSEUDO_COUNT) -> tuple[float, float]:
    """(KL(model || true), KL(true || model)) in nats, by a smoothed 2D histogram estimator.

    KL(model || true) punishes samples off the true support; KL(true || model) punishes dropped modes.
    Window: the reference's bounding box padded by pad (10%) of its extent on each side, cut into
    bins x bins cells (20 x 20: at n = 2000, 40 x 40 cells hold ~1 point each, which doubles the
    same-law floor and halves the sensitivity). Points outside are clipped into the edge cells.
    Smoothing: both histograms are mixed with the uniform law on the cells with the same weight
    lam = a C / (n_min + a C), a = pseudo_count, C = bins^2, n_min the smaller sample size: a pseudo-counts
    per cell at the smaller size, applied alike to both, so unequal sizes are not smoothed unequally.
    No cell is empty, so both KLs are finite; smoothing biases them toward 0, more cells bias them up.
    """
    if not (isinstance(bins, int) and bins >= 1) or pad < 0 or pseudo_count <= 0:
        raise ValueError(f"bins={bins!r}, pad={pad!r}, pseudo_count={pseudo_count!r}; "
                         "allowed: an integer bins >= 1, pad >= 0, pseudo_count > 0")
    x, ref = _points(samples, "samples"), _points(reference, "reference")
    low, high = ref.min(axis=0), ref.max(axis=0)
    low, high = low - pad * (high - low), high + pad * (high - low)
    cells = bins**2
    lam = pseudo_count * cells / (min(len(x), len(ref)) + pseudo_count * cells)
    p_model = (1 - lam) * _histogram(x, low, high, bins) + lam / cells
    p_true = (1 - lam) * _histogram(ref, low, high, bins) + lam / cells
    return float(rel_entr(p_model, p_true).sum()), float(rel_entr(p_true, p_model).sum())


def nll(samples: Points, mixture: GaussianMixture) -> float:
    """Mean negative log-likelihood (nats) under the true mixture; its floor is the entropy of the law.

    Not a divergence: samples collapsed onto the modes score below the floor; read it with KL and W.
    """
    x = torch.from_numpy(_points(samples, "samples"))
    return -float(mixture.log_prob(x).double().mean())


def evaluate_2d(samples: Points, reference: Points, *,
                mixture: GaussianMixture | None = None) -> dict[str, float]:
    """w1, w2 (in units of data_scale(reference)), kl_model_true, kl_true_model, and nll given the mixture."""
    x, ref = _points(samples, "samples"), _points(reference, "reference")
    scale = data_scale(ref)
    kl_model_true, kl_true_model = kl_divergences(x, ref)
    metrics = {"w1": wasserstein(x, ref, 1) / scale, "w2": wasserstein(x, ref, 2) / scale,
               "kl_model_true": kl_model_true, "kl_true_model": kl_true_model}
    if mixture is not None:
        metrics["nll"] = nll(x, mixture)
    return metrics


def floor_2d(sample_fn: Callable[[int, torch.Generator], Tensor], n: int, reference: Points, seed: int,
             *, mixture: GaussianMixture | None = None) -> dict[str, float]:
    """evaluate_2d of a fresh true sample of size n against the reference: the best a perfect model scores.

    seed must differ from the one that drew the reference (an identical sample would score 0).
    """
    return evaluate_2d(sample_fn(n, torch.Generator().manual_seed(seed)), reference, mixture=mixture)
