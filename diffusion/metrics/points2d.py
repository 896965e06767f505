"""Distances between a generated 2D sample and the truth: Wasserstein (exact or sliced), histogram KL, NLL, each
with the standard deviation of its sampling (diffusion.metrics.intervals says how).

Inputs are numpy arrays or torch tensors of shape (N, 2). A sample with NaN or inf rows raises ValueError
(naming how many): a diverging sampler must show, not be averaged away. POINT_METRICS registers each metric once
(name, label, interval method, signed, how it is computed): score_2d, the protocol, the study and the charts read it.
Read every number against its floor (diffusion.metrics.protocol): a finite sample never reaches 0.
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Literal

import numpy as np
import ot
import torch
from scipy.spatial.distance import cdist
from scipy.special import rel_entr
from torch import Tensor

from diffusion.core.oracles import GaussianMixture
from diffusion.metrics.intervals import BOOTSTRAP_REPLICATES, bootstrap_sd

Points = np.ndarray | Tensor
MAX_EXACT = 5000              # exact optimal transport up to this many points per side (O(n m) memory)
EMD_MAX_ITER = 10_000_000     # POT's default (100k) stops early at ~5k points with a wrong value
SLICED_PROJECTIONS = 200
KL_BINS, KL_PAD, KL_PSEUDO_COUNT = 20, 0.1, 1.0
SLICED_REPLICATES = 20       # bootstrap of the sliced estimate (the delta method needs exact potentials)
ValueSD = tuple[float, float]  # (value, standard deviation)


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


def _exact_wasserstein(a: np.ndarray, b: np.ndarray, p: int) -> ValueSD:
    """W_p between the two empirical measures by network simplex (POT emd2), and its delta-method sd over a's
    sampling: W_p^p = sum_i u_i / n + sum_j v_j / m at the optimal potentials, so sd(W_p^p) = std(u) / sqrt(n)
    (del Barrio & Loubes 2019), and sd(W_p) = sd(W_p^p) / (p W_p^(p-1))."""
    M = cdist(a, b, metric="euclidean" if p == 1 else "sqeuclidean")
    wa, wb = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    cost, log = ot.emd2(wa, wb, M, numItermax=EMD_MAX_ITER, log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"exact optimal transport did not converge: {log['warning']}")
    cost = max(float(cost), 0.0)
    w = cost ** (1.0 / p)
    sd_cost = float(np.std(log["u"], ddof=1)) / np.sqrt(len(a))
    return w, sd_cost / (p * w ** (p - 1)) if w > 0 else 0.0


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


def wasserstein_sd(a: Points, b: Points, p: Literal[1, 2] = 1) -> ValueSD:
    """(W_p(a, b), its sd over the sampling of a, b held fixed): exact transport and the delta method up to
    MAX_EXACT points per side; beyond, rescaled sliced W_p and a bootstrap of SLICED_REPLICATES resamples of a."""
    if p not in (1, 2):
        raise ValueError(f"Wasserstein order p={p!r} is not supported; allowed: 1, 2")
    a, b = _points(a, "a"), _points(b, "b")
    if wasserstein_method(len(a), len(b)) == "exact":
        return _exact_wasserstein(a, b, p)
    sd = bootstrap_sd(lambda idx: [_sliced_wasserstein(a[i], b, p) for i in idx], len(a), SLICED_REPLICATES)
    return _sliced_wasserstein(a, b, p), float(sd)


def wasserstein(a: Points, b: Points, p: Literal[1, 2] = 1) -> float:
    """W_p between two samples: exact up to MAX_EXACT points per side, else rescaled sliced W_p.

    wasserstein_method(len(a), len(b)) says which one was used.
    """
    if p not in (1, 2):
        raise ValueError(f"Wasserstein order p={p!r} is not supported; allowed: 1, 2")
    a, b = _points(a, "a"), _points(b, "b")
    if wasserstein_method(len(a), len(b)) == "exact":
        return _exact_wasserstein(a, b, p)[0]
    return _sliced_wasserstein(a, b, p)


def _cells(x: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """Flat cell index (N,) of each point; points outside the window are clipped into edge cells, not dropped."""
    ij = np.clip(np.floor((x - low) / (high - low) * bins), 0, bins - 1).astype(np.int64)
    return ij[:, 0] * bins + ij[:, 1]


def _kl_pair(counts: np.ndarray, n: int, p_true: np.ndarray, lam: float) -> np.ndarray:
    """(..., 2): KL(model || true) and KL(true || model) of smoothed cell counts (..., C) of n points."""
    cells = p_true.shape[-1]
    p_model = (1 - lam) * (counts / n) + lam / cells
    return np.stack([rel_entr(p_model, p_true).sum(-1), rel_entr(p_true, p_model).sum(-1)], axis=-1)


def _kl_setup(samples: Points, reference: Points, bins: int, pad: float, pseudo_count: float
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """(cell of each sample, smoothed reference cell law, smoothing weight lam)."""
    if not (isinstance(bins, int) and bins >= 1) or pad < 0 or pseudo_count <= 0:
        raise ValueError(f"bins={bins!r}, pad={pad!r}, pseudo_count={pseudo_count!r}; "
                         "allowed: an integer bins >= 1, pad >= 0, pseudo_count > 0")
    x, ref = _points(samples, "samples"), _points(reference, "reference")
    low, high = ref.min(axis=0), ref.max(axis=0)
    low, high = low - pad * (high - low), high + pad * (high - low)
    cells = bins**2
    lam = pseudo_count * cells / (min(len(x), len(ref)) + pseudo_count * cells)
    ref_counts = np.bincount(_cells(ref, low, high, bins), minlength=cells)
    return _cells(x, low, high, bins), (1 - lam) * (ref_counts / len(ref)) + lam / cells, lam


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
    cells, p_true, lam = _kl_setup(samples, reference, bins, pad, pseudo_count)
    kl = _kl_pair(np.bincount(cells, minlength=bins**2), len(cells), p_true, lam)
    return float(kl[0]), float(kl[1])


def kl_divergences_sd(samples: Points, reference: Points, replicates: int = BOOTSTRAP_REPLICATES,
                      seed: int = 0) -> tuple[ValueSD, ValueSD]:
    """kl_divergences with the bootstrap sd of each over the samples (the reference histogram held fixed)."""
    cells, p_true, lam = _kl_setup(samples, reference, KL_BINS, KL_PAD, KL_PSEUDO_COUNT)
    n, c = len(cells), KL_BINS**2

    def statistic(idx: np.ndarray) -> np.ndarray:
        flat = (cells[idx] + c * np.arange(len(idx))[:, None]).ravel()
        return _kl_pair(np.bincount(flat, minlength=len(idx) * c).reshape(len(idx), c), n, p_true, lam)
    kl = _kl_pair(np.bincount(cells, minlength=c), n, p_true, lam)
    sd = bootstrap_sd(statistic, n, replicates, seed)
    return (float(kl[0]), float(sd[0])), (float(kl[1]), float(sd[1]))


def nll(samples: Points, mixture: GaussianMixture) -> ValueSD:
    """Mean negative log-likelihood (nats) under the true mixture, and its sd (std / sqrt(n)); its floor is the
    entropy of the law. Not a divergence: samples collapsed onto the modes score below the floor; read it with
    KL and W."""
    x = torch.from_numpy(_points(samples, "samples"))
    values = -mixture.log_prob(x).double().numpy()
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


@dataclass
class Pair:
    """A generated sample beside its reference, as the registry's metrics read them: float64 (N, 2) arrays, the unit
    of the Wasserstein distances, the true law when it is a mixture; the two KLs share one bootstrap."""

    samples: np.ndarray
    reference: np.ndarray
    scale: float
    mixture: GaussianMixture | None = None

    @cached_property
    def kl(self) -> tuple[ValueSD, ValueSD]:
        return kl_divergences_sd(self.samples, self.reference)

    def wasserstein(self, p: Literal[1, 2]) -> ValueSD:
        w, sd = wasserstein_sd(self.samples, self.reference, p)
        return w / self.scale, sd / self.scale


@dataclass(frozen=True)
class Metric2D:
    """One 2D metric: everything the protocol, the study, the charts and the benchmarks know about it."""

    name: str                                  # its column in every table, e.g. "w1"
    label: str                                 # its name on charts and in sentences, e.g. "W1"
    method: str                                # how its sd is estimated (the interval's method, the floor's too)
    compute: Callable[[Pair], ValueSD]         # (value, sd) of one sample against the reference
    signed: bool = False                       # not a distance: may be negative, and under its floor
    needs_mixture: bool = False                # defined only for sets whose law is a Gaussian mixture
    study: bool = True                         # a column of the quality-vs-steps study (explore.nfe_study)


POINT_METRICS: dict[str, Metric2D] = {m.name: m for m in (      # a new 2D metric: one entry here (docs/extending.md)
    Metric2D("w1", "W1", "delta method", lambda pair: pair.wasserstein(1)),
    Metric2D("w2", "W2", "delta method", lambda pair: pair.wasserstein(2), study=False),
    Metric2D("kl_model_true", "KL(model‖true)", "bootstrap", lambda pair: pair.kl[0]),
    Metric2D("kl_true_model", "KL(true‖model)", "bootstrap", lambda pair: pair.kl[1]),
    Metric2D("nll", "NLL (true mixture)", "std / sqrt(n)", lambda pair: nll(pair.samples, pair.mixture),
             signed=True, needs_mixture=True, study=False),
)}


def score_2d(samples: Points, reference: Points, *, mixture: GaussianMixture | None = None,
             scale: float | None = None) -> dict[str, ValueSD]:
    """(value, sd) of every metric of POINT_METRICS: w1, w2 (in units of `scale`, default data_scale(reference)),
    kl_model_true, kl_true_model, and those that need it (nll) given the mixture."""
    x, ref = _points(samples, "samples"), _points(reference, "reference")
    pair = Pair(x, ref, data_scale(ref) if scale is None else scale, mixture)
    return {m.name: m.compute(pair) for m in POINT_METRICS.values() if mixture is not None or not m.needs_mixture}
