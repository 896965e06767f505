"""Seeded 2D toy distributions at one documented scale: mean 0 and per-coordinate std 1 overall.

Each set is built in raw units, then centred by its exact mean and divided by its exact scale
sqrt(trace(Cov) / 2), both in closed form for the law itself (not estimated from a sample), so E[x] = 0 and
sqrt(trace(Cov) / 2) = 1 hold exactly for every set. Noise is added in raw units. Raw laws, with their raw
mean and trace(Cov) / 2:
- gaussian: N(0, [[1, 0.8], [0.8, 1]]), correlation 0.8; already mean 0, scale 1.
- 8gaussians: 8 equal N(4 (cos, sin)(2 pi k / 8), 0.5^2 I) as in FFJORD; 0, 4^2 / 2 + 0.5^2 = 8.25.
- 25gaussians: 25 equal N((i, j), 0.1^2 I) for i, j in {-2, ..., 2}; 0, 2 + 0.1^2 = 2.01.
- moons (sklearn make_moons, noise 0.05): theta ~ U[0, pi], upper (cos, sin) or lower (1 - cos, 1/2 - sin)
  with probability 1/2 each, + N(0, 0.05^2 I); (1/2, 1/4), (1.3125 - 1/pi) / 2 + 0.05^2.
- swissroll (sklearn's x, z): s ~ U[1.5 pi, 4.5 pi], s (cos s, sin s) + N(0, 0.5^2 I);
  (2, 2 / (3 pi)), (9.75 pi^2 - 4 - 4 / (9 pi^2)) / 2 + 0.5^2. Uniform in s, so denser near the centre.
- circles: radius 1 or 0.5 with probability 1/2, uniform angle, + N(0, 0.05^2 I); 0, 1.25 / 4 + 0.05^2.
- spirals (FFJORD 2spirals): r = 3 pi sqrt(u), u ~ U[0, 1], +-(-r cos r, r sin r) with probability 1/2,
  + N(0, 0.3^2 I); 0, E[r^2] / 2 + 0.3^2 = 2.25 pi^2 + 0.09.
- checkerboard: uniform on the 8 dark unit squares of a 4x4 board on [-2, 2]^2 (each marginal U[-2, 2]);
  0, 4 / 3.
The Gaussian sets carry their exact (rescaled) law as a GaussianMixture and sample from exactly it.
Labelled sets (for class-conditional models and guidance) draw a class with each point: the component of
8gaussians (8) and 25gaussians (25), the moon (upper 0, lower 1), the circle (outer 0, inner 1), the spiral arm
(2) and the checkerboard square (8, numbered 2 col + row // 2); gaussian and swissroll have no classes.
"""

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from diffusion.core.oracles import GaussianMixture
from diffusion.data.toy_recipes import BASE_RECIPE, EASY, THIN, Recipe2D

Draw = Callable[[int, torch.Generator], tuple[Tensor, Tensor]]   # n, generator -> points (n, 2), classes (n,)
MOONS_NOISE, CIRCLES_NOISE, SWISSROLL_NOISE, SPIRALS_NOISE = 0.05, 0.05, 0.5, 0.3
RING_RADIUS, RING_STD = 4.0, 0.5
GRID_STD = 0.1
INNER_RADIUS = 0.5
SWISSROLL_START, SWISSROLL_END = 1.5 * math.pi, 4.5 * math.pi
SPIRAL_TURN = 3 * math.pi
MAX_DRAWS = 64     # rejection rounds when drawing one class of a labelled set


@dataclass(frozen=True, eq=False)
class Toy2D:
    """A named 2D toy distribution; mixture is its exact law when it is a Gaussian mixture, and for labelled
    mixtures component_labels (K,) gives each component's class (class y's law: the components labelled y)."""

    name: str
    description: str
    draw: Draw
    num_classes: int = 0                     # 0: unlabelled (draw's classes are all 0)
    mixture: GaussianMixture | None = None
    component_labels: Tensor | None = None
    recipe: Recipe2D = BASE_RECIPE           # how it is trained by default (training.defaults.recipe_2d)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n iid points, (n, 2) float32, a function of the generator's state only."""
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n iid points (n, 2) float32 and their classes (n,) long (all 0 for an unlabelled set)."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"number of samples n={n!r} is invalid; allowed: an integer >= 1")
        x, y = self.draw(n, generator)
        return x, y.long()

    def sample_class(self, n: int, generator: torch.Generator, label: int) -> Tensor:
        """n iid points (n, 2) of class `label` only (its law: the set's law given that class), by rejection."""
        if not self.num_classes or not (isinstance(label, int) and 0 <= label < self.num_classes):
            raise ValueError(f"class {label!r} is not one of {self.name!r}'s {self.num_classes} classes")
        kept, count = [], 0
        for _ in range(MAX_DRAWS):
            x, y = self.sample_labelled(max(n, 256) * self.num_classes, generator)
            kept.append(x[y == label])
            count += len(kept[-1])
            if count >= n:
                return torch.cat(kept)[:n]
        raise ValueError(f"class {label} of {self.name!r} is too rare to draw {n} points")


def _standardised(x: Tensor, mean: tuple[float, float], var: float) -> Tensor:
    """(x - mean) / sqrt(var) as float32, where var = trace(Cov) / 2 of the raw law."""
    return ((x - torch.tensor(mean, dtype=x.dtype)) / math.sqrt(var)).float()


def _noisy(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def _uniform(n: int, generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _coin(n: int, generator: torch.Generator) -> Tensor:
    """n fair Bernoulli draws as a bool tensor."""
    return torch.rand(n, generator=generator, dtype=torch.float64) < 0.5


@dataclass(frozen=True)
class _Curve:
    """A set drawn as a point of a curve at u ~ U[0, 1] (on one of `branches` branches, picked by a fair coin),
    plus isotropic Gaussian noise, then standardised: its law is the noise kernel averaged along the curve, which
    curve_mixture turns into a Gaussian mixture by the midpoint rule."""

    curve: Callable[[Tensor, Tensor], Tensor]   # (u (n,) float64, branch (n,) bool) -> raw points (n, 2)
    branches: int
    noise: float
    mean: tuple[float, float]
    var: float                                  # trace(Cov) / 2 of the raw law, noise included

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n points and their branch as class (n,) long."""
        u = _uniform(n, generator)
        branch = _coin(n, generator) if self.branches == 2 else torch.zeros(n, dtype=torch.bool)
        x = _standardised(_noisy(self.curve(u, branch), self.noise, generator), self.mean, self.var)
        return x, branch.long()


def _moons(u: Tensor, lower: Tensor) -> Tensor:
    theta = math.pi * u
    x = torch.where(lower, 1.0 - theta.cos(), theta.cos())
    y = torch.where(lower, 0.5 - theta.sin(), theta.sin())
    return torch.stack([x, y], 1)


def _swissroll(u: Tensor, branch: Tensor) -> Tensor:
    s = SWISSROLL_START + (SWISSROLL_END - SWISSROLL_START) * u
    return torch.stack([s * s.cos(), s * s.sin()], 1)


def _circles(u: Tensor, inner: Tensor) -> Tensor:
    angle, radius = 2 * math.pi * u, torch.where(inner, INNER_RADIUS, 1.0)
    return radius[:, None] * torch.stack([angle.cos(), angle.sin()], 1)


def _spirals(u: Tensor, second: Tensor) -> Tensor:
    r, sign = SPIRAL_TURN * u.sqrt(), torch.where(second, -1.0, 1.0)[:, None]
    return sign * torch.stack([-r * r.cos(), r * r.sin()], 1)


def _swissroll_moments() -> tuple[tuple[float, float], float]:
    a, b = SWISSROLL_START, SWISSROLL_END
    second_moment = (a * a + a * b + b * b) / 3                    # E[s^2] = E[|x|^2]
    mean = (2.0, 2.0 / (3 * math.pi))                              # E[s cos s], E[s sin s]
    return mean, (second_moment - mean[0] ** 2 - mean[1] ** 2) / 2 + SWISSROLL_NOISE**2


CURVES: dict[str, _Curve] = {
    "moons": _Curve(_moons, 2, MOONS_NOISE, (0.5, 0.25), (1.3125 - 1.0 / math.pi) / 2 + MOONS_NOISE**2),
    "swissroll": _Curve(_swissroll, 1, SWISSROLL_NOISE, *_swissroll_moments()),
    "circles": _Curve(_circles, 2, CIRCLES_NOISE, (0.0, 0.0), (1.0 + INNER_RADIUS**2) / 4 + CIRCLES_NOISE**2),
    "spirals": _Curve(_spirals, 2, SPIRALS_NOISE, (0.0, 0.0), SPIRAL_TURN**2 / 4 + SPIRALS_NOISE**2),  # E[r^2] / 2
}


def _checkerboard(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    col = torch.randint(0, 4, (n,), generator=generator)
    row = 2 * torch.randint(0, 2, (n,), generator=generator) + col % 2      # dark squares: row + col even
    corner = torch.stack([col, row], 1).to(torch.float64) - 2.0
    x = corner + torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return _standardised(x, (0.0, 0.0), 4.0 / 3.0), 2 * col + row // 2


def _ring_mixture() -> GaussianMixture:
    angle = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    scale = math.sqrt(RING_RADIUS**2 / 2 + RING_STD**2)
    means = RING_RADIUS * torch.stack([angle.cos(), angle.sin()], 1)
    return GaussianMixture.isotropic(means / scale, RING_STD / scale)


def _grid_mixture() -> GaussianMixture:
    ticks = torch.arange(-2, 3, dtype=torch.float64)
    scale = math.sqrt(2.0 + GRID_STD**2)  # mean of i^2 over {-2, ..., 2} is 2
    means = torch.cartesian_prod(ticks, ticks)
    return GaussianMixture.isotropic(means / scale, GRID_STD / scale)


def _correlated_gaussian() -> GaussianMixture:
    cov = torch.tensor([[[1.0, 0.8], [0.8, 1.0]]], dtype=torch.float64)
    return GaussianMixture(torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), cov)


def mixture_set(name: str, description: str, mixture: GaussianMixture, component_labels: Tensor | None = None,
                recipe: Recipe2D = BASE_RECIPE) -> Toy2D:
    """A Toy2D whose law is the mixture; with component_labels (K,) its classes are groups of components."""
    if component_labels is None:
        return Toy2D(name, description, lambda n, g: (mixture.sample(n, g), torch.zeros(n, dtype=torch.long)),
                     0, mixture, recipe=recipe)
    labels = torch.as_tensor(component_labels, dtype=torch.long)

    def draw(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        x, k = mixture.sample_components(n, generator)
        return x, labels[k]
    return Toy2D(name, description, draw, int(labels.max()) + 1, mixture, labels, recipe)


TOY_DATASETS: dict[str, Toy2D] = {
    toy.name: toy for toy in (
        mixture_set("gaussian", "One Gaussian, correlation 0.8 (a tilted ellipse)", _correlated_gaussian(),
                    recipe=EASY),
        mixture_set("8gaussians", "Eight Gaussians on a ring", _ring_mixture(), torch.arange(8)),
        mixture_set("25gaussians", "25 small Gaussians on a 5x5 grid", _grid_mixture(), torch.arange(25), EASY),
        Toy2D("moons", "Two interleaving half circles with small noise", CURVES["moons"].draw, 2, recipe=EASY),
        Toy2D("swissroll", "A 2D Swiss roll spiral, denser near the centre", CURVES["swissroll"].draw),
        Toy2D("circles", "Two concentric circles (radii 1 and 0.5)", CURVES["circles"].draw, 2),
        Toy2D("spirals", "Two interleaved spiral arms", CURVES["spirals"].draw, 2, recipe=THIN),
        Toy2D("checkerboard", "Uniform on the dark squares of a 4x4 checkerboard", _checkerboard, 8),
    )
}


CUSTOM_PREFIX = "custom:"
MAX_CUSTOM_SETS = 64                     # custom sets kept in memory per process (least recently used dropped first)
_CUSTOM: OrderedDict[str, Toy2D] = OrderedDict()


def register_custom(toy: Toy2D) -> Toy2D:
    """Make a custom set (name "custom:...", see data.custom) known to toy_dataset in this process; returns it."""
    if not toy.name.startswith(CUSTOM_PREFIX):
        raise ValueError(f"custom set name {toy.name!r} must start with {CUSTOM_PREFIX!r}")
    _CUSTOM[toy.name] = toy
    _CUSTOM.move_to_end(toy.name)
    while len(_CUSTOM) > MAX_CUSTOM_SETS:
        _CUSTOM.popitem(last=False)
    return toy


def toy_dataset(name: str) -> Toy2D:
    """The preset called name, or a custom set registered in this process (data.custom.custom_set registers)."""
    if name in TOY_DATASETS:
        return TOY_DATASETS[name]
    if name in _CUSTOM:
        _CUSTOM.move_to_end(name)
        return _CUSTOM[name]
    if name.startswith(CUSTOM_PREFIX):
        raise ValueError(f"custom set {name!r} is not loaded in this process; load its run (its config carries the "
                         "points) or rebuild it with diffusion.data.custom")
    raise ValueError(f"unknown toy dataset {name!r}; allowed: {', '.join(TOY_DATASETS)}, or a custom set")


CURVE_POINTS = 2000   # quadrature points per branch: spacing along every curve under half its noise's std


@lru_cache(maxsize=16)
def density_mixture(name: str, points: int = CURVE_POINTS) -> GaussianMixture | None:
    """The set's law as a Gaussian mixture: exact for the Gaussian sets; for the curve sets (moons, swissroll,
    circles, spirals) the noise kernel at `points` midpoints of u per branch (midpoint rule, equal weights), whose
    log density is within ~2e-3 nats of the law's at worst (spirals' centre; the error falls as h^2) and ~1e-5 on
    average; None for checkerboard (uniform squares: no smooth density)."""
    toy = toy_dataset(name)
    if toy.mixture is not None or name not in CURVES:
        return toy.mixture
    c = CURVES[name]
    u = ((torch.arange(points, dtype=torch.float64) + 0.5) / points).repeat(c.branches)
    branch = torch.arange(c.branches).repeat_interleave(points).bool()
    scale = math.sqrt(c.var)
    return GaussianMixture.isotropic((c.curve(u, branch) - torch.tensor(c.mean, dtype=torch.float64)) / scale,
                                     c.noise / scale)
