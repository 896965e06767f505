"""diffusion.metrics.intervals: Wilson's interval against scipy and its exact coverage, normal intervals cut at their
bound and never narrower than the floor's spread, the bootstrap of a mean, and the one wording of a number against
its floor (never "below the floor" while the intervals overlap)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binom, binomtest, expon
from scipy.stats import t as student_t
from torch_fidelity.metric_prc import prc_features_to_metric

from diffusion.metrics.intervals import (
    ABOVE,
    AT,
    BELOW,
    Z,
    Interval,
    bootstrap_sd,
    median_interval,
    normal,
    prediction_factor,
    reading,
    sentence,
    spread,
    t_interval,
    wilson,
)
from diffusion.metrics.prc import precision_recall


@pytest.mark.parametrize("k, n", [(0, 10), (5, 10), (10, 10), (96, 100), (3, 200)])
def test_wilson_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(0.95, method="wilson")
    got = wilson(k, n)
    assert (got.value, got.low, got.high) == pytest.approx((k / n, expected.low, expected.high), abs=1e-12)


@pytest.mark.parametrize("p, n", [(0.5, 20), (0.9, 50), (0.97, 200)])
def test_wilson_covers_the_true_share_about_95_percent_of_the_time(p, n):
    """Exact coverage: the binomial probability of every count whose interval holds p (no Monte Carlo)."""
    coverage = sum(binom.pmf(k, n, p) for k in range(n + 1) if wilson(k, n).contains(p))
    assert 0.92 < coverage < 0.99


@pytest.mark.parametrize("n, ranks, coverage", [(8, (1, 8), 0.992), (10, (2, 9), 0.979), (16, (4, 13), 0.979)])
def test_the_median_interval_takes_the_order_statistics_that_cover_95_percent(n, ranks, coverage):
    """Distribution-free: x_(j) < median < x_(n+1-j) has probability 1 - 2 P(Bin(n, 1/2) < j) for any continuous law;
    the ranks are the narrowest that keep it >= 95%, and 4,000 samples of a skewed law (exponential, median ln 2)
    land on that coverage."""
    x = np.arange(1.0, n + 1)[::-1]
    got = median_interval(x)
    assert (got.value, got.low, got.high) == (float((n + 1) // 2), *map(float, ranks))    # the lower middle value
    assert 1 - 2 * binom.cdf(ranks[0] - 1, n, 0.5) == pytest.approx(coverage, abs=5e-4)
    assert 1 - 2 * binom.cdf(ranks[0], n, 0.5) < 0.95                           # one rank in would not cover
    draws = expon.rvs(size=(4000, n), random_state=0)
    held = np.mean([median_interval(row).contains(math.log(2)) for row in draws])
    assert abs(held - coverage) < 3 * math.sqrt(coverage * (1 - coverage) / 4000) + 1e-3, held
    assert median_interval([3.0, 1.0, 2.0]).method == "order statistics, 75% at n = 3"    # too few: said


def test_the_t_interval_is_students():
    x = np.array([0.2, 0.5, 0.1, 0.9, 0.4])
    low, high = student_t.interval(0.95, len(x) - 1, loc=x.mean(), scale=x.std(ddof=1) / math.sqrt(len(x)))
    got = t_interval(x, lowest=0.0)
    assert (got.value, got.low, got.high) == pytest.approx((x.mean(), max(0.0, low), high), abs=1e-12)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        t_interval([1.0])


def test_normal_intervals_are_cut_at_their_bound_and_never_narrower_than_the_floor():
    assert normal(0.1, 0.1, "m", lowest=0.0) == Interval(0.1, 0.0, 0.1 + Z * 0.1, "m")
    wide = normal(1.0, 0.01, "m", floor_sd=0.2)
    assert (wide.low, wide.high) == pytest.approx((1 - Z * 0.2, 1 + Z * 0.2))


def test_spread_of_repeated_draws_and_its_finite_population_correction():
    values = [1.0, 2.0, 3.0, 4.0]
    interval, sd = spread(values, "draws")
    assert interval.value == 2.5 and sd == pytest.approx(np.std(values, ddof=1))
    assert interval.high - interval.value == pytest.approx(prediction_factor(4) * sd)
    assert spread(values, "draws", finite_population=0.5)[1] == pytest.approx(2 * sd)
    with pytest.raises(ValueError, match="at least 2"):
        spread([1.0], "draws")


def test_the_bootstrap_sd_of_a_mean_is_its_plug_in_standard_error():
    """Var*(mean of a resample) = (1/n) (1/n) sum (x - mean)^2 exactly; B replicates know it to 1/sqrt(2B)."""
    x = np.random.default_rng(0).normal(size=400)
    replicates = 4000
    sd = bootstrap_sd(lambda idx: x[idx].mean(axis=1), len(x), replicates)
    assert sd == pytest.approx(x.std() / math.sqrt(len(x)), rel=4 / math.sqrt(2 * replicates))


def test_reading_against_the_floor():
    floor = Interval(1.0, 0.8, 1.2)
    assert reading(Interval(1.1, 0.9, 1.3), floor) == AT                   # inside the floor's interval
    assert reading(Interval(1.3, 1.21, 1.4), floor) == ABOVE
    assert reading(Interval(1.3, 1.0, 1.6), floor) == ABOVE                # over it, even if the intervals overlap
    assert reading(Interval(0.6, 0.4, 0.85), floor) == AT                  # under it, intervals overlapping: never
    assert reading(Interval(0.6, 0.5, 0.7), floor) == BELOW                # "below" unless they are apart
    assert sentence("W1", Interval(1.1, 0.9, 1.3), floor) == "W1 1.1 [0.9, 1.3], floor 1 [0.8, 1.2]: at the floor"


def test_an_interval_holds_its_value():
    with pytest.raises(ValueError, match="does not hold"):
        Interval(2.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson(11, 10)


def test_the_floor_interval_holds_one_more_draw_95_percent_of_the_time():
    """10 floor draws and an 11th (a perfect model's number), 10,000 times: the prediction interval (t, 9 df) holds
    the 11th 95% of the time (mean +- 1.96 sd held it about 91% of the time, 4.7% above)."""
    draws = np.random.default_rng(1).normal(3.0, 0.5, size=(10_000, 11))
    held = [spread(d[:10], "draws")[0].contains(d[10]) for d in draws]
    assert 0.94 < np.mean(held) < 0.96
    assert prediction_factor(10) == pytest.approx(2.262157 * math.sqrt(1.1), rel=1e-6)


def test_precision_recall_equal_torch_fidelitys_and_their_bootstrap_sd_is_their_spread():
    """On Gaussian features: the values equal torch-fidelity's (k = 3); with the real set held fixed, the bootstrap sd
    of one generated set is near the spread of the values over 60 fresh generated sets for precision (ratio 0.75-1.3)
    and wider, never narrower, for recall (1-2: the resampled balls are coarser, metrics.prc)."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(150, 6, generator=g, dtype=torch.float64)
    fake = 1.2 * torch.randn(150, 6, generator=g, dtype=torch.float64)
    ours = precision_recall(fake, real, replicates=50)
    theirs = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10_000, verbose=False)
    assert (ours["precision"][0], ours["recall"][0]) == pytest.approx((theirs["precision"], theirs["recall"]))
    values, sds = [], []
    for _ in range(60):
        out = precision_recall(1.2 * torch.randn(150, 6, generator=g, dtype=torch.float64), real, replicates=50)
        values.append([out["precision"][0], out["recall"][0]])
        sds.append([out["precision"][1], out["recall"][1]])
    ratio = np.mean(sds, axis=0) / np.std(values, axis=0, ddof=1)
    assert 0.75 < ratio[0] < 1.3 and 1.0 < ratio[1] < 2.0, ratio
    with pytest.raises(ValueError, match="two feature sets"):
        precision_recall(fake[:3], real)
