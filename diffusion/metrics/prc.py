"""Precision and recall of generated features against real ones by k-nearest-neighbour balls (Kynkaanniemi et al.
2019, k = 3, as torch-fidelity computes them), with their bootstrap standard deviations.

precision: the share of generated points inside some real point's ball (radius: its k-th nearest real neighbour);
recall: the share of real points inside some generated point's ball. The indicators share the balls, so they are not
independent and a binomial (Wilson) interval is too narrow; the bootstrap resamples the generated points (the
reference held fixed, as for FID) and recomputes the generated balls in every resample: a point drawn several times
is one point for its own ball (its copies are not its neighbours), and counts once per copy for the others'.
Nearest-neighbour statistics are where the bootstrap is known to be rough: on Gaussian features (tests/
test_intervals.py) precision's bootstrap sd matches its spread over fresh generated sets, recall's is about 1.5x that
spread (conservative; counting copies as neighbours at distance 0 made it 2x).
"""

import numpy as np
import torch
from torch import Tensor

from diffusion.metrics.intervals import BOOTSTRAP_REPLICATES

NEIGHBOURHOOD = 3               # k of Kynkaanniemi et al. 2019 (torch-fidelity's prc_neighborhood)
ValueSD = tuple[float, float]


def _kth_radius(d: np.ndarray, k: int) -> np.ndarray:
    """Distance (n,) of each point to its k-th nearest other point, from the (n, n) distances within one set."""
    return np.partition(d + np.diag(np.full(len(d), np.inf)), k - 1, axis=1)[:, k - 1]


def precision_recall(generated: Tensor, real: Tensor, k: int = NEIGHBOURHOOD, replicates: int = BOOTSTRAP_REPLICATES,
                     seed: int = 0) -> dict[str, ValueSD]:
    """{"precision": (value, bootstrap sd), "recall": (value, bootstrap sd)} of generated features (n, d) against
    real features (m, d); replicates = 0: the values alone (sd 0)."""
    if generated.ndim != 2 or real.ndim != 2 or generated.shape[1] != real.shape[1] or min(len(generated),
                                                                                       len(real)) <= k:
        raise ValueError(f"precision/recall need two feature sets (n > {k}, d) of one width, got "
                         f"{tuple(generated.shape)} and {tuple(real.shape)}")
    g, r = generated.double(), real.double()
    d_gg, d_rr, d_rg = (torch.cdist(a, b).numpy() for a, b in ((g, g), (r, r), (r, g)))
    real_radius, fake_radius = _kth_radius(d_rr, k), _kth_radius(d_gg, k)
    in_real = (d_rg <= real_radius[:, None]).any(0)              # (n,) generated point inside some real ball
    precision, recall = float(in_real.mean()), float((d_rg <= fake_radius[None]).any(1).mean())
    if replicates == 0:
        return {"precision": (precision, 0.0), "recall": (recall, 0.0)}
    n, apart = len(g), d_gg + np.diag(np.full(len(g), np.inf))     # a point is not its own neighbour
    rng, order = np.random.default_rng(seed), np.argsort(apart, axis=1)
    sorted_d = np.take_along_axis(apart, order, axis=1)
    precisions, recalls = np.empty(replicates), np.empty(replicates)
    for b in range(replicates):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        precisions[b] = (counts * in_real).sum() / n
        reached = np.cumsum(counts[order], axis=1) >= k          # (n, n): k drawn others within this distance
        kth = np.where(reached.any(1), sorted_d[np.arange(n), reached.argmax(1)], np.inf)
        drawn = counts > 0
        recalls[b] = (d_rg[:, drawn] <= kth[drawn][None]).any(1).mean()
    return {"precision": (precision, float(precisions.std(ddof=1))), "recall": (recall, float(recalls.std(ddof=1)))}
