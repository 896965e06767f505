"""Densities under the 2D plots, on a grid for contours: the exact law of Gaussian-mixture sets (presets and custom
sets) and of the noised x_t at any alpha_bar (each component N(sqrt(ab) m_k, ab C_k + (1 - ab) I), Ho et al. eq. 4),
a kernel density estimate for the other sets (its noised law is exact for the estimate: a kernel mixture is a
Gaussian mixture too), and the guided density p_t(x)^(1 - w) p_t(x | y)^w that guidance follows (labelled mixtures).
"""

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from diffusion.core.oracles import GaussianMixture, _class_mask
from diffusion.core.schedules import NoiseSchedule
from diffusion.data.toy_datasets import toy_dataset

KDE_POINTS, KDE_HELD_OUT, KDE_SEED = 1000, 1000, 20_001
BANDWIDTHS: tuple[float, ...] = tuple(np.geomspace(0.02, 0.5, 15).round(4))   # in data-scale units
GRID_EXTENT, MIN_GRID, MAX_GRID = 3.0, 8, 300


@dataclass(frozen=True)
class DensityGrid:
    """density[i, j] at (x[j], y[i]) (rows follow y, as contour plots expect); exact: the law itself, not a kernel
    estimate; label says which (for a legend)."""

    x: np.ndarray         # (size,)
    y: np.ndarray         # (size,)
    density: np.ndarray   # (size, size)
    exact: bool
    label: str


def kde_mixture(points: torch.Tensor, bandwidth: float) -> GaussianMixture:
    """The kernel density estimate (1/n) sum_i N(points[i], bandwidth^2 I) as a GaussianMixture."""
    return GaussianMixture.isotropic(torch.as_tensor(points, dtype=torch.float64), bandwidth)


def kde_bandwidth(points: torch.Tensor, held_out: torch.Tensor) -> float:
    """The bandwidth in BANDWIDTHS maximising the held-out log-likelihood (likelihood cross-validation) of the 2D
    kernel estimate: mean_j log (1/n) sum_i N(held_out[j]; points[i], h^2 I)."""
    d2 = torch.cdist(held_out.double(), points.double()).square()                   # (m, n)
    log_n = math.log(points.shape[0])
    scores = [float((torch.logsumexp(-d2 / (2 * h * h), dim=1) - log_n - math.log(2 * math.pi * h * h)).mean())
              for h in BANDWIDTHS]
    return BANDWIDTHS[int(np.argmax(scores))]


@lru_cache(maxsize=32)
def density_law(dataset: str) -> tuple[GaussianMixture, bool]:
    """(law, exact): the set's mixture when it has one, else a kernel estimate from KDE_POINTS fresh true points
    with a cross-validated bandwidth."""
    toy = toy_dataset(dataset)
    if toy.mixture is not None:
        return toy.mixture, True
    generator = torch.Generator().manual_seed(KDE_SEED)
    points, held_out = toy.sample(KDE_POINTS, generator), toy.sample(KDE_HELD_OUT, generator)
    return kde_mixture(points, kde_bandwidth(points, held_out)), False


def grid_ticks(size: int, extent: float = GRID_EXTENT) -> np.ndarray:
    """size evenly spaced ticks over [-extent, extent]; ValueError outside MIN_GRID..MAX_GRID or extent <= 0."""
    if not (isinstance(size, int) and MIN_GRID <= size <= MAX_GRID and 0 < extent <= 100):
        raise ValueError(f"grid size={size!r}, extent={extent!r}; allowed: an integer size from {MIN_GRID} to "
                         f"{MAX_GRID} and 0 < extent <= 100")
    return np.linspace(-extent, extent, size)


def _on_grid(log_density, size: int, extent: float, exact: bool, label: str, normalise: bool = False
             ) -> DensityGrid:
    """log_density evaluated on the grid and exponentiated; normalise: divided by its Riemann sum on the grid."""
    ticks = grid_ticks(size, extent)
    gx, gy = np.meshgrid(ticks, ticks)                                     # rows follow y
    points = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    log_density = log_density(points).double().numpy().reshape(size, size)
    if not normalise:
        return DensityGrid(ticks, ticks.copy(), np.exp(log_density), exact, label)
    density = np.exp(log_density - log_density.max())                    # no overflow at large w
    return DensityGrid(ticks, ticks.copy(), density / (density.sum() * (ticks[1] - ticks[0]) ** 2), exact, label)


def density_grid(dataset: str, alpha_bar: float = 1.0, size: int = 100, extent: float = GRID_EXTENT) -> DensityGrid:
    """The density of x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps on a size x size grid (alpha_bar = 1: the
    data): exact for mixtures (GaussianMixture.noised), else the noised kernel estimate."""
    law, exact = density_law(dataset)
    noised = law.noised(float(alpha_bar))
    label = f"{'exact' if exact else 'kernel estimate of the'} density" + ("" if alpha_bar == 1.0 else " of x_t")
    return _on_grid(noised.log_prob, size, extent, exact, label)


def noised_density_grid(dataset: str, schedule: NoiseSchedule, paper_t: int, size: int = 100,
                        extent: float = GRID_EXTENT) -> DensityGrid:
    """density_grid at the schedule's alpha_bar of paper timestep paper_t (0: the data)."""
    if not (isinstance(paper_t, int) and 0 <= paper_t <= schedule.T):
        raise ValueError(f"paper_t={paper_t!r} is out of range; allowed: integers from 0 to T={schedule.T}")
    alpha_bar = 1.0 if paper_t == 0 else float(schedule.alpha_bar.double()[paper_t - 1])
    return density_grid(dataset, alpha_bar, size, extent)


def guided_density_grid(dataset: str, label: int, w: float, alpha_bar: float = 1.0, size: int = 100,
                        extent: float = GRID_EXTENT) -> DensityGrid:
    """p_t(x)^(1 - w) p_t(x | y)^w normalised on the grid, for a labelled mixture: the density whose score guided
    sampling follows at this noise level (core.oracles.guided_posterior_mean); w = 1 is p_t(x | y)."""
    toy = toy_dataset(dataset)
    if toy.mixture is None or toy.component_labels is None:
        raise ValueError(f"dataset {dataset!r} is not a labelled Gaussian mixture; the guided density is exact for "
                         "those only")
    noised = toy.mixture.noised(float(alpha_bar))
    weights = noised.weights * _class_mask(toy.component_labels, torch.tensor([label]), len(noised.weights))[0]
    given_y = GaussianMixture(weights / weights.sum(), noised.means, noised.covs)

    def log_tilted(x: torch.Tensor) -> torch.Tensor:
        return (1 - w) * noised.log_prob(x).double() + w * given_y.log_prob(x).double()
    return _on_grid(log_tilted, size, extent, True, f"guided density, class {label}, w = {w:g}", normalise=True)
