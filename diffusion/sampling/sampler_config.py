"""SamplerConfig: which registered sampler, how many steps, and its settings, every one validated on construction.

A value out of range, or a setting the chosen sampler does not read (eta for heun, say), raises ValueError naming
the value and what is allowed, before anything is sampled.
"""

import math
from dataclasses import dataclass, fields
from typing import Any, Callable

from diffusion.core.schedules import SPACINGS
from diffusion.core.time import Clip
from diffusion.sampling.registry import REGISTRY, sampler_spec
from diffusion.sampling.vp import VARIANCES

GRIDS: tuple[str, ...] = ("karras", "logsnr", "flow", "equal_error")
DEFAULT_GRIDS = {"euler": "flow", "heun": "equal_error", "dpmpp2m": "logsnr", "flow_euler": "flow",
                 "flow_midpoint": "flow"}      # the best measured for each (docs/samplers.md)
MAX_STEPS = 10_000               # sampling steps (a discrete sampler is also capped by its schedule's T)
MAX_GUIDANCE, MAX_RHO, MAX_SIGMA, MAX_CHURN, MAX_S_NOISE = 50.0, 100.0, 1e5, 1000.0, 2.0
COMMON = ("name", "steps", "clip", "guidance")   # read by every sampler


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _in(low: float, high: float, what: str = "a number") -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _number(v) and low <= v <= high), f"{what} from {low:g} to {high:g}"


def _optional(check: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is None or check[0](v)), f"None or {check[1]}"


def _one_of(options: tuple[str, ...], optional: bool = False) -> tuple[Callable[[Any], bool], str]:
    allowed = ", ".join(options)
    return (lambda v: (optional and v is None) or v in options), f"{'None, ' if optional else ''}{allowed}"


CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "steps": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_STEPS),
              f"an integer from 1 to {MAX_STEPS}"),
    "eta": _in(0.0, 1.0),
    "spacing": _one_of(SPACINGS, optional=True),
    "variance": _one_of(VARIANCES),
    "guidance": _in(0.0, MAX_GUIDANCE),
    "grid": _one_of(GRIDS, optional=True),
    "rho": ((lambda v: _number(v) and 0 < v <= MAX_RHO), f"a number above 0, at most {MAX_RHO:g}"),
    "sigma_min": _optional(((lambda v: _number(v) and 0 < v <= MAX_SIGMA), f"a number above 0, at most {MAX_SIGMA:g}")),
    "sigma_max": _optional(((lambda v: _number(v) and 0 < v <= MAX_SIGMA), f"a number above 0, at most {MAX_SIGMA:g}")),
    "S_churn": _in(0.0, MAX_CHURN),
    "S_min": _in(0.0, MAX_SIGMA),
    "S_max": _optional(_in(0.0, MAX_SIGMA)),
    "S_noise": _in(0.0, MAX_S_NOISE),
}


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: which sampler (sampling.registry), how many steps, and the settings that sampler reads."""

    name: str = "ddim"
    steps: int = 50
    eta: float = 0.0                 # ddim: stochasticity, 0 (deterministic) to 1 (= ddpm)
    spacing: str | None = None       # ddpm, ddim timesteps (spaced_timesteps); None: ddim cubic, ddpm trailing
    variance: str = "beta_tilde"     # ddpm: the posterior variance
    clip: Clip = Clip.AUTO           # x0_hat: auto (images clamp, 2D ball), clamp, ball, none (core.time.Clip)
    guidance: float = 1.0            # classifier-free guidance scale w; 1 = plain conditional
    grid: str | None = None          # sigma/flow samplers' grid (GRIDS); None: DEFAULT_GRIDS
    rho: float = 7.0                 # Karras et al. eq. 5 (karras grid)
    sigma_min: float | None = None   # None: EDM's 0.002 and 80, clamped to the schedule's range
    sigma_max: float | None = None
    S_churn: float = 0.0             # EDM Algorithm 2 stochasticity (euler, heun)
    S_min: float = 0.0
    S_max: float | None = None       # None: no upper bound
    S_noise: float = 1.0

    def __post_init__(self):
        spec = sampler_spec(self.name)
        object.__setattr__(self, "clip", Clip.of(self.clip))   # old None/True/False values still load
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in CHECKS and not CHECKS[f.name][0](value):
                raise ValueError(f"sampler setting {f.name}={value!r} is out of range; allowed: {CHECKS[f.name][1]}")
            if f.name not in COMMON and f.name not in spec.settings and value != f.default:
                readers = [name for name, other in REGISTRY.items() if f.name in other.settings]
                raise ValueError(f"sampler setting {f.name}={value!r} does not apply to {self.name!r}; it is read by "
                                 f"{', '.join(readers) or 'no sampler'} (leave it at {f.default!r})")
        if self.sigma_min is not None and self.sigma_max is not None and not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min={self.sigma_min!r} must be below sigma_max={self.sigma_max!r}")
        if self.S_max is not None and self.S_max < self.S_min:
            raise ValueError(f"S_max={self.S_max!r} must be at least S_min={self.S_min!r}")
        if self.rho != 7.0 and self.sigma_grid not in (None, "karras"):
            raise ValueError(f"rho={self.rho!r} shapes the karras grid; this sampler uses the {self.sigma_grid} grid "
                             "(set grid='karras' or leave rho at 7)")

    @property
    def space(self) -> str:
        return sampler_spec(self.name).space

    @property
    def timestep_spacing(self) -> str | None:
        """The timestep spacing a discrete sampler walks (None for the others): cubic for ddim, whose last steps need
        the low noise levels (docs/samplers.md); trailing for ddpm, unchanged."""
        if self.space != "timesteps":
            return None
        return self.spacing or ("trailing" if self.name == "ddpm" else "cubic")

    @property
    def sigma_grid(self) -> str | None:
        """The noise-level grid the sampler walks (None for the discrete samplers): karras (rho), logsnr, flow
        (uniform in flow time) or equal_error (Heun's local error equal at every step); by default the one measured
        best for it (docs/samplers.md)."""
        if self.space == "timesteps":
            return None
        return self.grid or DEFAULT_GRIDS[self.name]

    @property
    def nfe(self) -> int:
        """Network evaluations per sample (twice as many images through the network under guidance w != 1)."""
        return sampler_spec(self.name).nfe(self.steps)

