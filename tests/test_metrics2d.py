"""2D metrics: exact identities of optimal transport, KL directions, input checks, and standard deviations that
match the spread of repeated samples."""

import math

import numpy as np
import pytest
import torch

from diffusion.core.oracles import GaussianMixture
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics import points2d as metrics2d
from diffusion.metrics.points2d import (
    data_scale,
    kl_divergences,
    kl_divergences_sd,
    nll,
    score_2d,
    wasserstein,
    wasserstein_method,
    wasserstein_sd,
)

K_SE = 5.0


def _normal(n: int, seed: int, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2)) + np.array(shift)


def test_w1_of_the_same_law_is_small_and_shrinks_with_n():
    small = wasserstein(_normal(200, 0), _normal(200, 1))
    large = wasserstein(_normal(2000, 2), _normal(2000, 3))
    assert large < 0.15 and large < small / 2  # the 2D rate is about sqrt(log n / n)


@pytest.mark.parametrize("p", [1, 2])
def test_a_translation_costs_exactly_its_length(p):
    """W_p(a, a + m) = |m|: the identity coupling costs |m| and W_p >= |E a - E b| = |m| (Jensen)."""
    a, m = _normal(500, 4), np.array([0.3, -0.4])
    assert wasserstein(a, a + m, p) == pytest.approx(0.5, rel=1e-9)


def test_w2_splits_into_means_and_centred_parts_and_matches_the_gaussian_shift():
    """W2^2(a, b) = |mean a - mean b|^2 + W2^2(a - mean a, b - mean b); W2(N(m1, I), N(m2, I)) = |m1 - m2|."""
    n = 1500
    a, b = _normal(n, 5), _normal(n, 6, shift=(3.0, 0.0))
    w2, mean_gap = wasserstein(a, b, 2), np.linalg.norm(a.mean(0) - b.mean(0))
    centred = wasserstein(a - a.mean(0), b - b.mean(0), 2)
    assert w2**2 == pytest.approx(mean_gap**2 + centred**2, rel=1e-9)
    # MC error: the mean gap has SE sqrt(2 / n) per coordinate; the centred part adds centred^2 / (2 * 3).
    assert abs(w2 - 3.0) < K_SE * math.sqrt(2 / n) + centred**2 / 6


@pytest.mark.parametrize("p", [1, 2])
def test_sliced_agrees_with_exact_on_isotropic_shifts(monkeypatch, p):
    a, b = _normal(1000, 7), _normal(1000, 8, shift=(1.0, 1.0))
    exact = wasserstein(a, b, p)
    monkeypatch.setattr(metrics2d, "MAX_EXACT", 500)
    assert wasserstein_method(len(a), len(b)) == "sliced"
    sliced = wasserstein(a, b, p)
    assert sliced == pytest.approx(exact, rel=0.1)
    assert wasserstein(a, a + np.array([0.6, 0.8]), p) == pytest.approx(1.0, rel=1e-4)  # a translation
    if p == 2:  # projecting the optimal coupling: mean_k (theta_k . v)^2 = |v|^2 / 2 on the even grid
        assert sliced <= exact * (1 + 1e-12)


def test_method_switches_above_max_exact():
    assert wasserstein_method(2000, metrics2d.MAX_EXACT) == "exact"
    assert wasserstein_method(2000, metrics2d.MAX_EXACT + 1) == "sliced"


def test_kl_against_the_same_law_is_near_zero_and_against_a_shifted_law_large():
    moons = toy_dataset("moons")
    reference = moons.sample(5000, torch.Generator().manual_seed(0))
    same = kl_divergences(moons.sample(2000, torch.Generator().manual_seed(1)), reference)
    shifted = kl_divergences(moons.sample(2000, torch.Generator().manual_seed(1)) + 1.0, reference)
    assert max(same) < 0.3
    assert min(shifted) > 10 * max(same)


def test_dropping_a_mode_is_punished_by_kl_true_model():
    """KL(true || model) punishes dropped modes; KL(model || true) barely sees them (log 8/7 at most)."""
    ring = toy_dataset("8gaussians")
    reference = ring.sample(5000, torch.Generator().manual_seed(0))
    seven = GaussianMixture.isotropic(ring.mixture.means[1:], ring.mixture.covs[0, 0, 0].sqrt().item())
    floor = kl_divergences(ring.sample(5000, torch.Generator().manual_seed(1)), reference)
    model = seven.sample(5000, torch.Generator().manual_seed(1))
    kl_model_true, kl_true_model = kl_divergences(model, reference)
    assert kl_model_true < math.log(8 / 7) + floor[0]
    assert kl_true_model > 2.5 * kl_model_true and kl_true_model > 10 * floor[1]


def test_points_outside_the_window_are_clipped_into_the_corner_cell_not_dropped():
    """Far points count exactly as points in the top-right cell (in the padding, empty in the reference)."""
    reference, far = _normal(1000, 9), _normal(1000, 10) + 100.0
    top_right = reference.max(0) + 0.1 * (reference.max(0) - reference.min(0))
    in_corner = np.tile(top_right - 1e-9, (len(far), 1))
    assert kl_divergences(far, reference) == kl_divergences(in_corner, reference)
    assert kl_divergences(far, reference)[0] > 3.0


def test_equal_cell_frequencies_score_zero_whatever_the_sample_sizes():
    """Both histograms get the same smoothing weight, so only frequencies matter, not sample sizes."""
    x = _normal(700, 11)
    assert kl_divergences(np.tile(x, (3, 1)), x) == (0.0, 0.0)
    assert kl_divergences(x, np.tile(x, (3, 1))) == (0.0, 0.0)


def test_inputs_may_be_numpy_or_torch():
    a, b = _normal(300, 11), _normal(400, 12)
    assert wasserstein(a, b) == wasserstein(torch.from_numpy(a), torch.from_numpy(b))
    assert kl_divergences(a, b) == kl_divergences(torch.from_numpy(a), torch.from_numpy(b))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_raise_and_are_counted(bad):
    x = _normal(100, 13)
    x[[3, 50, 77], 1] = bad
    other = _normal(100, 14)
    for metric in (data_scale, lambda s: wasserstein(s, other), lambda s: kl_divergences(s, other),
                   lambda s: score_2d(s, other)):
        with pytest.raises(ValueError, match="3 non-finite rows"):
            metric(x)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match=r"shape \(10, 3\)"):
        data_scale(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="p=3"):
        wasserstein(_normal(10, 0), _normal(10, 1), 3)
    with pytest.raises(ValueError, match="pseudo_count=0"):
        kl_divergences(_normal(10, 0), _normal(10, 1), pseudo_count=0)


def test_data_scale_is_the_per_coordinate_std():
    x = _normal(4000, 15) * np.array([2.0, 1.0])
    assert data_scale(x) == pytest.approx(math.sqrt((4 + 1) / 2), rel=K_SE * math.sqrt(2 / 4000))
    assert data_scale(3 * x + 7) == pytest.approx(3 * data_scale(x), rel=1e-12)


def test_score_2d_is_scale_free_and_gives_nll_for_mixtures_only():
    toy = toy_dataset("gaussian")
    reference, x = (toy.sample(500, torch.Generator().manual_seed(k)) for k in (0, 1))
    scores, doubled = score_2d(x, reference, mixture=toy.mixture), score_2d(2 * x, 2 * reference)
    assert set(scores) == {"w1", "w2", "kl_model_true", "kl_true_model", "nll"} and "nll" not in doubled
    for m in ("w1", "w2"):
        assert doubled[m] == pytest.approx(scores[m], rel=1e-9)            # (value, sd) in units of the data scale
    assert scores["w1"][0] == wasserstein(x, reference) / data_scale(reference)


DRAWS = 40      # repeated samples: their sd is known to within 1 / sqrt(2 (DRAWS - 1)) = 11% (one standard error)


@pytest.mark.parametrize("p", [1, 2])
def test_the_delta_method_sd_of_w_matches_the_spread_of_repeated_samples(p):
    """Away from the reference's law (a shifted normal), sd(W_p) = std(potentials) / sqrt(n) is the spread of W_p
    over fresh samples (measured ratio 0.97 for W1, 0.95 for W2 at n = 500)."""
    reference = _normal(500, 0)
    values, sds = zip(*(wasserstein_sd(_normal(500, 100 + k, shift=(0.5, 0.0)), reference, p) for k in range(DRAWS)))
    assert np.mean(sds) == pytest.approx(np.std(values, ddof=1), rel=3 / math.sqrt(2 * (DRAWS - 1)))
    assert values[0] == wasserstein(_normal(500, 100, shift=(0.5, 0.0)), reference, p)


def test_the_bootstrap_sd_of_kl_matches_the_spread_of_repeated_samples():
    reference = _normal(500, 0)
    pairs = [kl_divergences_sd(1.3 * _normal(500, 100 + k), reference) for k in range(DRAWS)]
    values, sds = np.array([[v for v, _ in pair] for pair in pairs]), np.array([[s for _, s in pair] for pair in pairs])
    assert np.allclose(sds.mean(0), values.std(0, ddof=1), rtol=3 / math.sqrt(2 * (DRAWS - 1)))
    assert tuple(values[0]) == kl_divergences(1.3 * _normal(500, 100), reference)


def test_nll_of_true_samples_is_the_entropy():
    toy = toy_dataset("gaussian")
    n = 20_000
    x = toy.sample(n, torch.Generator().manual_seed(2))
    entropy = 0.5 * math.log(np.linalg.det(2 * math.pi * math.e * toy.mixture.covs[0].numpy()))
    se = toy.mixture.log_prob(x).double().std().item() / math.sqrt(n)
    value, sd = nll(x, toy.mixture)
    assert value == pytest.approx(entropy, abs=K_SE * se) and sd == pytest.approx(se, rel=1e-9)
