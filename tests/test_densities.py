"""Density grids for the 2D page: the exact noised-mixture density against a Monte Carlo estimate of the forward
process, the kernel estimate, the guided density, grid bounds."""

import math

import numpy as np
import pytest
import torch

from diffusion.core.forward import q_sample
from diffusion.core.schedules import make_schedule
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.densities import density_grid, density_law, guided_density_grid, noised_density_grid

K_SE = 5.0


@pytest.mark.parametrize("dataset, alpha_bar", [("8gaussians", 0.3), ("8gaussians", 0.9), ("gaussian", 0.5)])
def test_noised_mixture_density_matches_monte_carlo_of_the_forward_process(dataset, alpha_bar):
    """Cell masses of x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (x0 from the set, 400k draws) on an 8 x 8 board equal the
    exact noised density integrated over each cell (midpoint rule on 20 x 20 points a cell), within K_SE binomial
    standard errors."""
    n, cells, extent, sub = 400_000, 8, 2.4, 20
    g = torch.Generator().manual_seed(0)
    x0 = toy_dataset(dataset).sample(n, g).double()
    x_t = q_sample(x0, torch.tensor(alpha_bar, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64))
    counts, _, _ = np.histogram2d(x_t[:, 0].numpy(), x_t[:, 1].numpy(), bins=cells, range=[[-extent, extent]] * 2)
    frequency = counts / n
    width = 2 * extent / cells
    mid = -extent + (np.arange(cells * sub) + 0.5) * width / sub                # midpoints of a fine lattice
    law = density_law(dataset)[0].noised(alpha_bar)
    gx, gy = np.meshgrid(mid, mid, indexing="ij")
    density = law.log_prob(torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1))).double().exp().numpy()
    mass = density.reshape(cells, sub, cells, sub).sum(axis=(1, 3)) * (width / sub) ** 2
    se = np.sqrt(mass * (1 - mass) / n)
    assert (np.abs(frequency - mass) < K_SE * se + 1e-4).all()     # 1e-4: the midpoint rule's error
    assert abs(frequency - mass).max() > 0                          # not vacuous


def test_density_grid_is_the_noised_law_on_its_ticks():
    schedule = make_schedule("linear", 1000)
    grid = noised_density_grid("8gaussians", schedule, 300, size=30, extent=2.5)
    assert grid.exact and grid.density.shape == (30, 30) and grid.x[0] == -2.5 and grid.x[-1] == 2.5
    law = toy_dataset("8gaussians").mixture.noised(float(schedule.alpha_bar.double()[299]))
    j, i = 7, 21                                                    # density[i, j] is at (x[j], y[i])
    expected = float(law.log_prob(torch.tensor([[grid.x[j], grid.y[i]]])).exp())
    assert grid.density[i, j] == pytest.approx(expected, rel=1e-5)
    data = noised_density_grid("8gaussians", schedule, 0, size=30, extent=2.5)
    np.testing.assert_allclose(data.density, density_grid("8gaussians", 1.0, 30, 2.5).density)


def test_kernel_estimate_for_sets_without_an_exact_law():
    law, exact = density_law("moons")
    assert not exact and 0.02 <= float(law.covs[0, 0, 0].sqrt()) <= 0.15    # moons' noise is 0.057 of its scale
    grid = density_grid("moons", size=200, extent=3.5)
    assert grid.density.sum() * (grid.x[1] - grid.x[0]) ** 2 == pytest.approx(1.0, abs=1e-3)
    assert "kernel estimate" in grid.label
    # almost all noise: the noised estimate is N(0, I) to within the data's own contribution
    nearly_noise = density_grid("moons", 1e-6, size=21, extent=2.0)
    gx, gy = np.meshgrid(nearly_noise.x, nearly_noise.y)
    np.testing.assert_allclose(nearly_noise.density, np.exp(-(gx**2 + gy**2) / 2) / (2 * math.pi), atol=1e-3)


def test_guided_density_is_normalised_and_sharpens():
    one = guided_density_grid("8gaussians", 2, 1.0, size=80)
    assert one.density.sum() * (one.x[1] - one.x[0]) ** 2 == pytest.approx(1.0)
    mean = toy_dataset("8gaussians").mixture.means[2].numpy()
    gx, gy = np.meshgrid(one.x, one.y)
    centre = (gx * one.density).sum() / one.density.sum(), (gy * one.density).sum() / one.density.sum()
    np.testing.assert_allclose(centre, mean, atol=0.02)              # w = 1: class 2's component
    noisy = [guided_density_grid("8gaussians", 2, w, alpha_bar=0.2, size=80).density.max() for w in (1.0, 4.0)]
    assert noisy[1] > noisy[0]                                       # guidance concentrates the noised density
    with pytest.raises(ValueError, match="not a labelled Gaussian mixture"):
        guided_density_grid("moons", 0, 2.0)


@pytest.mark.parametrize("size, extent", [(7, 3.0), (301, 3.0), (50, 0.0), (50.5, 3.0)])
def test_grid_bounds(size, extent):
    with pytest.raises(ValueError, match="grid size"):
        density_grid("8gaussians", size=size, extent=extent)
