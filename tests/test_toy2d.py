"""Toy 2D sets: shape, determinism, the documented scale (mean 0, per-coordinate std 1) and exact mixtures."""

import math

import pytest
import torch

from diffusion.data.toy_datasets import TOY_DATASETS, toy_dataset

NAMES = ("gaussian", "8gaussians", "25gaussians", "moons", "swissroll", "circles", "spirals", "checkerboard")
MIXTURE_SETS = ("gaussian", "8gaussians", "25gaussians")
N = 40_000
K_SE = 5.0  # tolerance in Monte Carlo standard errors


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_registry_lists_the_public_names_with_one_line_descriptions():
    assert tuple(TOY_DATASETS) == NAMES
    for name, toy in TOY_DATASETS.items():
        assert toy.name == name and toy.description and "\n" not in toy.description
        assert (toy.mixture is not None) == (name in MIXTURE_SETS)


def test_unknown_name_raises_and_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'rings'.*8gaussians.*checkerboard"):
        toy_dataset("rings")


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_invalid_sample_size_raises(n):
    with pytest.raises(ValueError, match="number of samples"):
        toy_dataset("moons").sample(n, _gen(0))


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_determinism_by_seed(name):
    toy = toy_dataset(name)
    a, b, c = toy.sample(1000, _gen(0)), toy.sample(1000, _gen(0)), toy.sample(1000, _gen(1))
    assert a.shape == (1000, 2) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.1


@pytest.mark.parametrize("name", NAMES)
def test_mean_is_zero_and_scale_is_one_within_monte_carlo_error(name):
    x = toy_dataset(name).sample(N, _gen(2)).double()
    assert (x.mean(0).abs() < K_SE * x.std(0) / math.sqrt(N)).all()
    # With the exact mean 0, mean(|x|^2 / 2) is an unbiased estimate of trace(Cov) / 2 = 1.
    q = (x**2).sum(1) / 2
    assert abs(q.mean().item() - 1.0) < K_SE * q.std().item() / math.sqrt(N)


@pytest.mark.parametrize("name", MIXTURE_SETS)
def test_mixture_sets_match_the_moments_of_their_mixture(name):
    toy = toy_dataset(name)
    x = toy.sample(N, _gen(3)).double()
    mean, cov = toy.mixture.mean(), toy.mixture.covariance()
    assert ((x.mean(0) - mean).abs() < K_SE * x.std(0) / math.sqrt(N)).all()
    xc = x - mean
    products = xc[:, :, None] * xc[:, None, :]                                         # (N, 2, 2)
    se = products.std(0) / math.sqrt(N)
    assert ((products.mean(0) - cov).abs() < K_SE * se).all()


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_sets_hit_every_component_with_its_weight(name):
    mixture = toy_dataset(name).mixture
    x = toy_dataset(name).sample(N, _gen(4)).double()
    nearest = torch.cdist(x, mixture.means).argmin(1)  # components are >= 6 std apart
    freq = torch.bincount(nearest, minlength=len(mixture.weights)).double() / N
    se = (mixture.weights * (1 - mixture.weights) / N).sqrt()
    assert ((freq - mixture.weights).abs() < K_SE * se).all()


def test_gaussian_log_prob_matches_its_entropy():
    """E[-log p(x)] = 0.5 log det(2 pi e C) for x ~ N(m, C): samples and log_prob agree on the same law."""
    toy = toy_dataset("gaussian")
    nll = -toy.mixture.log_prob(toy.sample(N, _gen(5))).double()
    entropy = 0.5 * torch.logdet(2 * math.pi * math.e * toy.mixture.covs[0]).item()
    assert abs(nll.mean().item() - entropy) < K_SE * nll.std().item() / math.sqrt(N)
