"""95% intervals for every quality number, and the one wording that reads a number against its floor.

How each interval is made (README, "How every number is measured"):
- W1, W2 (exact transport): the delta method, sd = std of the Kantorovich potentials on the samples / sqrt(n)
  (the influence function of W_p^p; del Barrio & Loubes 2019); free, one transport solve.
- KL both ways, FID: bootstrap over the generated samples (the reference held fixed), BOOTSTRAP_REPLICATES
  resamples of the histogram cells or of the features computed once.
- NLL (a mean): std / sqrt(n). Accuracies and class shares: Wilson's score interval (Wilson 1927).
- Precision and recall (k-NN balls, Kynkaanniemi et al. 2019): bootstrap over the generated samples, their k-NN
  balls recomputed in every resample (metrics.prc); the indicators are not independent, so no Wilson interval.
- Floors: FLOOR_DRAWS independent draws of the floor's real set against the same reference; the interval is the
  prediction interval of one more draw, mean +- t_{k-1} sd sqrt(1 + 1/k) (Student's t with k - 1 = 9 degrees of
  freedom for 10 draws), where a perfect model's number lands 95% of the time (mean +- 1.96 sd of 10 draws held it
  only about 91% of the time: 4.7% above).
A model's sd is never taken below its floor's: at the floor the first-order term of W and FID vanishes and the
spread of a number is the floor's own (the delta method alone reads W too narrow there).
"""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binom
from scipy.stats import t as student_t

LEVEL = 0.95
Z = 1.959963984540054           # the normal quantile of (1 + LEVEL) / 2
BOOTSTRAP_REPLICATES = 200
AT, ABOVE, BELOW = "at the floor", "above the floor", "below the floor"
CONCENTRATED = "below the floor: samples more concentrated than the data"   # NLL, which is not a distance


@dataclass(frozen=True)
class Interval:
    """A number and its 95% interval [low, high]; method says how the interval was made."""

    value: float
    low: float
    high: float
    method: str = ""

    def __post_init__(self):
        if not (self.low <= self.value <= self.high) and all(map(math.isfinite, (self.value, self.low, self.high))):
            raise ValueError(f"interval [{self.low!r}, {self.high!r}] does not hold its value {self.value!r}")

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def as_dict(self) -> dict:
        return asdict(self)

    def columns(self, name: str) -> dict[str, float]:
        """{name: value, name_low: low, name_high: high}: the flat columns of a results row or table."""
        return {name: self.value, f"{name}_low": self.low, f"{name}_high": self.high}

    def text(self, digits: int = 3) -> str:
        """'4.7 [4.1, 5.3]' with `digits` significant digits."""
        return f"{self.value:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def normal(value: float, sd: float, method: str, floor_sd: float = 0.0, lowest: float = -math.inf,
           highest: float = math.inf) -> Interval:
    """value +- Z max(sd, floor_sd), cut at `lowest` (0 for distances, which cannot be negative) and `highest` (1 for
    shares)."""
    value, sd = float(value), max(float(sd), floor_sd)
    return Interval(value, max(lowest, value - Z * sd), min(highest, value + Z * sd), method)


def prediction_factor(draws: int) -> float:
    """t_{(1 + LEVEL) / 2, draws - 1} sqrt(1 + 1 / draws): one more draw lies within mean +- this factor times the
    draws' sd with probability LEVEL (normal draws; 2.37 for 10 draws, against Z = 1.96 for a known sd)."""
    return float(student_t.ppf((1 + LEVEL) / 2, draws - 1)) * math.sqrt(1 + 1 / draws)


def spread(values: np.ndarray | list[float], method: str, lowest: float = -math.inf,
           finite_population: float = 1.0, highest: float = math.inf) -> tuple[Interval, float]:
    """(the prediction interval of one more draw, mean +- prediction_factor sd, and sd): where a perfect model's number
    lands 95% of the time; sd is divided by finite_population (sqrt(1 - n/N) when the draws take n of a finite pool of
    N, which spreads them less than fresh data)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError(f"a spread needs at least 2 draws, got {len(values)}")
    sd, mean = float(values.std(ddof=1)) / finite_population, float(values.mean())
    half = prediction_factor(len(values)) * sd
    return Interval(mean, max(lowest, mean - half), min(highest, mean + half), f"{method}, prediction interval"), sd


def bootstrap_sd(statistic: Callable[[np.ndarray], np.ndarray], n: int, replicates: int = BOOTSTRAP_REPLICATES,
                 seed: int = 0) -> np.ndarray:
    """Bootstrap standard deviation(s): statistic maps resampled indices (replicates, n) to values (replicates, k)."""
    idx = np.random.default_rng(seed).integers(0, n, size=(replicates, n))
    return np.asarray(statistic(idx), dtype=np.float64).std(axis=0, ddof=1)


def wilson(successes: int, n: int, method: str = "Wilson") -> Interval:
    """Wilson's score interval of a proportion successes / n (Wilson 1927; good at 0 and 1, unlike p +- z se)."""
    if not (isinstance(n, int) and n >= 1 and 0 <= successes <= n):
        raise ValueError(f"a proportion needs 0 <= successes <= n and n >= 1, got {successes!r} of {n!r}")
    p, z2 = successes / n, Z * Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Interval(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), method)


def median_interval(values: np.ndarray | list[float], method: str = "order statistics") -> Interval:
    """The median (the lower middle value for an even n, as torch.median) and a distribution-free interval for the
    population's median: the order statistics x_(j) and x_(n+1-j), j the largest rank with P(Bin(n, 1/2) < j) <=
    (1 - LEVEL) / 2, so that it covers at least LEVEL whatever the law (n = 8: the extremes, 99.2%; n = 10: the 2nd and
    9th, 97.9%). Below n = 6 the extremes cover only 1 - 2^(1-n): method says so."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n < 1:
        raise ValueError("a median needs at least one value")
    tail = binom.cdf(np.arange(n), n, 0.5)                      # P(Bin(n, 1/2) <= k), k = 0 .. n-1
    j = max(1, int((tail <= (1 - LEVEL) / 2).sum()))            # ranks 1-based: x_(j) = x[j - 1]
    covered = 1 - 2 * float(binom.cdf(j - 1, n, 0.5))
    note = "" if covered >= LEVEL else f", {covered:.0%} at n = {n}"
    return Interval(float(x[(n - 1) // 2]), float(x[j - 1]), float(x[n - j]), method + note)


def t_interval(values: np.ndarray | list[float], method: str = "t interval", lowest: float = -math.inf) -> Interval:
    """The mean of n >= 2 values and its interval mean +- t_{n-1} sd / sqrt(n) (Student: small n, unknown sd), cut
    at `lowest`."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {len(x)}")
    mean = float(x.mean())
    half = float(student_t.ppf((1 + LEVEL) / 2, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return Interval(mean, max(lowest, mean - half), mean + half, method)


def reading(result: Interval, floor: Interval, distance: bool = True) -> str:
    """How a number reads against its floor: 'at the floor' when its value lies inside the floor's interval, or
    under it while the two intervals overlap (never 'below the floor' then); 'above the floor' over it; 'below the
    floor' only when the whole interval is under the floor's: for a distance (lower is better) a measurement bug until
    proven otherwise, for an NLL under the true density (distance=False) samples more concentrated than the data."""
    if result.value > floor.high:
        return ABOVE
    if result.value >= floor.low or result.overlaps(floor):
        return AT
    return BELOW if distance else CONCENTRATED


def sentence(name: str, result: Interval, floor: Interval, digits: int = 3, distance: bool = True) -> str:
    """'FID 4.7 [4.1, 5.3], floor 5.2 [4.0, 6.4]: at the floor' (one wording for the CLI and the pages)."""
    return f"{name} {result.text(digits)}, floor {floor.text(digits)}: {reading(result, floor, distance)}"
