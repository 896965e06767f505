"""GaussianMixture: exact density, exact noised law, exact denoiser E[x0 | x_t] against independent truths."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from diffusion.core.oracles import GaussianMixture
from diffusion.core.schedules import make_schedule

K_SE = 5.0  # tolerance in Monte Carlo standard errors
WEIGHTS = [0.5, 0.3, 0.2]
MEANS = [[1.0, 0.5], [-1.5, 1.0], [0.5, -2.0]]
COVS = [[[0.3, 0.1], [0.1, 0.2]], [[0.5, -0.2], [-0.2, 0.4]], [[0.1, 0.0], [0.0, 0.6]]]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def gm() -> GaussianMixture:
    """Three anisotropic, unequally weighted, overlapping components with a nonzero overall mean."""
    return GaussianMixture(torch.tensor(WEIGHTS), torch.tensor(MEANS), torch.tensor(COVS))


def _scipy_density(x: np.ndarray) -> np.ndarray:
    return sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(WEIGHTS, MEANS, COVS))


def test_log_prob_matches_scipy(gm):
    x = torch.randn(200, 2, generator=_gen(0)) * 2
    assert gm.log_prob(x).dtype == torch.float32
    expected = np.log(_scipy_density(x.numpy()))
    np.testing.assert_allclose(gm.log_prob(x).numpy(), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("alpha_bar", [1.0, 0.3])
def test_log_prob_integrates_to_one_on_a_grid(gm, alpha_bar):
    h = 0.02  # far below the smallest std (0.32): the Riemann sum of a Gaussian is exact to ~1e-12
    ticks = torch.arange(-8.0, 8.0, h, dtype=torch.float64)
    grid = torch.cartesian_prod(ticks, ticks)
    mass = gm.noised(alpha_bar).log_prob(grid).double().exp().sum().item() * h * h
    assert mass == pytest.approx(1.0, abs=1e-5)


def test_noised_matches_monte_carlo_of_the_forward_process(gm):
    n, ab = 200_000, 0.3
    x0 = gm.sample(n, _gen(1)).double()
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(n, 2, generator=_gen(2), dtype=torch.float64)
    law = gm.noised(ab)
    assert ((x_t.mean(0) - law.mean()).abs() < K_SE * x_t.std(0) / math.sqrt(n)).all()
    xc = x_t - law.mean()
    products = xc[:, :, None] * xc[:, None, :]
    assert ((products.mean(0) - law.covariance()).abs() < K_SE * products.std(0) / math.sqrt(n)).all()


@pytest.mark.parametrize("dim", [2, 3])
def test_sample_matches_exact_mean_and_covariance(gm, dim):
    if dim == 3:  # eigh's 2x2 eigenvector matrices can be symmetric: D = 3 catches a transposed U
        cov = torch.tensor([[2.0, 0.9, 0.2], [0.9, 0.6, -0.1], [0.2, -0.1, 0.5]])
        gm = GaussianMixture(torch.tensor([0.4, 0.6]), torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]]),
                             torch.stack([cov, 2 * cov]))
    n = 200_000
    assert gm.sample(5, _gen(3)).dtype == torch.float32
    x = gm.sample(n, _gen(3)).double()
    xc = x - gm.mean()
    products = xc[:, :, None] * xc[:, None, :]
    assert ((x.mean(0) - gm.mean()).abs() < K_SE * x.std(0) / math.sqrt(n)).all()
    assert ((products.mean(0) - gm.covariance()).abs() < K_SE * products.std(0) / math.sqrt(n)).all()


@pytest.mark.parametrize("m, C", [
    ([0.7, -1.2], [[2.0, 0.9], [0.9, 0.6]]),
    ([0.7, -1.2, 0.3], [[2.0, 0.9, 0.2], [0.9, 0.6, -0.1], [0.2, -0.1, 0.5]]),  # D = 3 too
])
def test_posterior_mean_of_a_single_gaussian_is_the_closed_form(m, C):
    """x0 ~ N(m, C): E[x0 | x_t] = m + sqrt(ab) C (ab C + (1 - ab) I)^-1 (x_t - sqrt(ab) m)."""
    m, C, D = np.array(m), np.array(C), len(m)
    single = GaussianMixture(torch.ones(1), torch.tensor(m[None]), torch.tensor(C[None]))
    ab = np.array([1e-5, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1.0])
    x_t = np.random.default_rng(0).normal(size=(len(ab), D)) * 2
    expected = np.stack([m + np.sqrt(a) * C @ np.linalg.solve(a * C + (1 - a) * np.eye(D), x - np.sqrt(a) * m)
                         for a, x in zip(ab, x_t)])
    got = single.posterior_mean(torch.tensor(x_t, dtype=torch.float32), torch.tensor(ab))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha_bar", [0.05, 0.5, 0.95])
def test_posterior_mean_of_a_mixture_matches_brute_force_quadrature(gm, alpha_bar):
    """E[x0 | x_t] = int x0 p(x0) N(x_t; sqrt(ab) x0, (1 - ab) I) dx0 / int p(x0) N(...) dx0 on a grid."""
    h = 0.04  # the integrands are Gaussian-smooth with std >= 0.23: the Riemann sum is exact to ~1e-12
    ticks = np.arange(-7.0, 7.0, h)
    x0 = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)          # (G, 2)
    prior = _scipy_density(x0)
    x_t = np.array([[0.0, 0.0], [1.5, -0.5], [-1.0, 1.0], [0.3, -1.8]])
    got = gm.posterior_mean(torch.tensor(x_t, dtype=torch.float32), torch.full((len(x_t),), alpha_bar))
    for row, x in zip(got.numpy(), x_t):
        like = np.exp(-((x - np.sqrt(alpha_bar) * x0) ** 2).sum(1) / (2 * (1 - alpha_bar)))
        weights = prior * like
        np.testing.assert_allclose(row, weights @ x0 / weights.sum(), atol=1e-5)


def test_alpha_bar_is_per_row(gm):
    x_t = torch.randn(6, 2, generator=_gen(4))
    ab = torch.tensor([1e-5, 0.01, 0.2, 0.6, 0.99, 1 - 1e-6])
    together = gm.posterior_mean(x_t, ab)
    for i in range(len(ab)):
        alone = gm.posterior_mean(x_t[i:i + 1], ab[i:i + 1])
        torch.testing.assert_close(together[i:i + 1], alone)


def test_limits_of_alpha_bar(gm):
    x_t = torch.randn(500, 2, generator=_gen(5)) * 3
    ones = torch.ones(len(x_t), dtype=torch.float64)
    torch.testing.assert_close(gm.posterior_mean(x_t, ones), x_t, rtol=0, atol=1e-6)
    ab = 1 - 1e-6  # no noise: x0 = x_t / sqrt(ab), up to (1 - ab) / smallest variance
    torch.testing.assert_close(gm.posterior_mean(x_t, ab * ones), x_t / math.sqrt(ab), rtol=0, atol=1e-4)
    mean = gm.mean().float().expand_as(x_t)
    torch.testing.assert_close(gm.posterior_mean(x_t, 0 * ones), mean, rtol=0, atol=1e-6)
    # All signal gone: E[x0 | x_t] - E[x0] = sqrt(ab) Cov[x0] x_t + O(ab).
    ab = 1e-5
    bound = 2 * math.sqrt(ab) * torch.linalg.matrix_norm(gm.covariance(), 2).item() * (1 + x_t.norm(dim=1))
    assert ((gm.posterior_mean(x_t, ab * ones) - mean).norm(dim=1) < bound).all()


def test_far_points_stay_finite_at_extreme_noise_levels(gm):
    x_t = torch.tensor([[40.0, -40.0], [-60.0, 5.0], [0.0, 100.0]])
    for ab in (1e-5, 0.5, 1 - 1e-6):
        assert torch.isfinite(gm.posterior_mean(x_t, torch.full((3,), ab))).all()


def test_tower_property_and_orthogonality_by_monte_carlo(gm):
    """E[E[x0|x_t]] = E[x0], and the error x0 - E[x0|x_t] is uncorrelated with x_t (L2 projection)."""
    n = 100_000
    x0 = gm.sample(n, _gen(6)).double()
    ab = 0.05 + 0.9 * torch.rand(n, generator=_gen(7), dtype=torch.float64)              # one per row
    x_t = ab.sqrt()[:, None] * x0 + (1 - ab).sqrt()[:, None] * torch.randn(n, 2, generator=_gen(8),
                                                                                 dtype=torch.float64)
    x0_hat = gm.posterior_mean(x_t.float(), ab).double()
    assert ((x0_hat.mean(0) - gm.mean()).abs() < K_SE * x0_hat.std(0) / math.sqrt(n)).all()
    products = (x0 - x0_hat)[:, :, None] * x_t[:, None, :]                               # (n, 2, 2)
    assert (products.mean(0).abs() < K_SE * products.std(0) / math.sqrt(n)).all()


def test_denoiser_looks_up_alpha_bar_at_code_timesteps(gm):
    alpha_bar = make_schedule("cosine", 100).alpha_bar
    denoise = gm.denoiser(alpha_bar)
    x_t = torch.randn(32, 2, generator=_gen(9))
    t = torch.randint(0, 100, (32,), generator=_gen(10))
    expected = gm.posterior_mean(x_t, alpha_bar[t])
    assert torch.equal(denoise(x_t, t, None), expected)
    assert torch.equal(denoise(x_t, t, torch.zeros(32, dtype=torch.long)), expected)


@pytest.mark.parametrize("weights, means, covs, match", [
    ([0.5, 0.6], [[0.0, 0.0], [1.0, 1.0]], [np.eye(2)] * 2, "sum to 1"),
    ([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "positive definite"),
    ([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]], "symmetric"),
    ([0.5, 0.5], [[0.0, 0.0]], [np.eye(2)] * 2, "inconsistent"),
    ([1.0], [[0.0, 0.0]], [np.eye(3)], "does not match"),
])
def test_invalid_mixtures_raise(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(torch.tensor(weights), torch.tensor(means), torch.tensor(np.array(covs)))


def test_invalid_alpha_bar_raises(gm):
    with pytest.raises(ValueError, match="alpha_bar must lie in"):
        gm.posterior_mean(torch.zeros(2, 2), torch.tensor([0.5, 1.5]))
    with pytest.raises(ValueError, match="one per row"):
        gm.posterior_mean(torch.zeros(2, 2), torch.tensor(0.5))
    with pytest.raises(ValueError, match="out of range"):
        gm.noised(-0.1)


def test_isotropic_kernel_mixtures_take_the_matrix_product_path_with_the_same_answer():
    """One shared s^2 I: the fast posterior mean equals the general eigendecomposition path (masks included)."""
    means = torch.randn(300, 2, generator=_gen(3), dtype=torch.float64)
    fast = GaussianMixture.isotropic(means, 0.2)
    general = GaussianMixture(fast.weights, means, fast.covs + torch.tensor([[1e-12, 0.0], [0.0, 0.0]]))
    assert fast._shared_isotropic_variance() == pytest.approx(0.04) and general._shared_isotropic_variance() is None
    x = 2 * torch.randn(500, 2, generator=_gen(4))
    alpha_bar = torch.rand(500, generator=_gen(5), dtype=torch.float64)
    mask = torch.rand(500, 300, generator=_gen(6)) > 0.5
    for keep in (None, mask):
        torch.testing.assert_close(fast.posterior_mean(x, alpha_bar, keep), general.posterior_mean(x, alpha_bar, keep),
                                   rtol=0, atol=1e-6)
