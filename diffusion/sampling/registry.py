"""The one registry of samplers: per name, how it runs, in which space, how many network evaluations it makes, and
which SamplerConfig settings it reads. Adding a sampler is one function (in vp.py, sigma.py or a new module) and one
entry in REGISTRY; the tests iterate SAMPLERS, so a sampler is put through the oracle suite by being registered.

An entry's `run(model, config, x_T_unit, *, y, noise, callback)` gets a standard normal x_T_unit and a model that
offers what samplers of its space need (sampling.run.Run does): `denoiser(config)`, `schedule` and
`timesteps(config)` in the discrete "timesteps" space; `sigma_denoiser(config)` and `sigmas(config)` in the EDM
"sigmas" space (x = x0 + sigma n); `flow_denoiser(config)` and `flow_times(config)` in the "flow" space
(x_t = (1 - t) x0 + t eps, t from t_max to 0).
"""

import math
from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from diffusion.core.time import Space  # noqa: F401 (re-exported: a sampler's space)
from diffusion.sampling.flow_samplers import flow_euler_sample, flow_midpoint_sample
from diffusion.sampling.sigma import Churn, dpmpp_2m_sample, euler_sample, heun_sample
from diffusion.sampling.vp import ddim_sample, ddpm_sample

SIGMA_GRID_SETTINGS = ("grid", "rho", "sigma_min", "sigma_max")
CHURN_SETTINGS = ("S_churn", "S_min", "S_max", "S_noise")


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler: `settings` are the SamplerConfig fields it reads besides steps, clip and guidance;
    any other field must keep its default (SamplerConfig refuses it otherwise)."""

    name: str
    space: Space
    settings: tuple[str, ...]
    run: Callable[..., Tensor]
    default_steps: int           # with the exact denoiser, as good as ddpm-1000 (docs/samplers.md)
    order: int = 1               # of convergence to the ODE solution as steps grow (0: stochastic, no ODE solution)
    evaluations_per_step: int = 1
    saves_last: int = 0          # evaluations saved on the last step (Heun: no correction at sigma = 0)
    shown: tuple[str, ...] = ()  # settings that name a variant in tables (study), default or not
    description: str = ""

    def nfe(self, steps: int) -> int:
        """Network evaluations over `steps` steps (len(timesteps), or len(sigmas) - 1)."""
        if not (isinstance(steps, int) and steps >= 1):
            raise ValueError(f"number of steps {steps!r} is invalid; allowed: an integer >= 1")
        return self.evaluations_per_step * steps - self.saves_last

    def steps_for_nfe(self, budget: int) -> int:
        """The most steps whose nfe fits in `budget` evaluations (at least one step)."""
        self.nfe(budget)  # validates the budget
        return max(1, (budget + self.saves_last) // self.evaluations_per_step)


def churn(config) -> Churn:
    """EDM's stochastic churn settings of a SamplerConfig (S_max None = no upper bound)."""
    return Churn(config.S_churn, config.S_min, math.inf if config.S_max is None else config.S_max, config.S_noise)


def _ddpm(model, config, x_T, *, y, noise, callback) -> Tensor:
    return ddpm_sample(model.denoiser(config), model.schedule, x_T, model.timesteps(config), noise=noise, y=y,
                       variance=config.variance, callback=callback)


def _ddim(model, config, x_T, *, y, noise, callback) -> Tensor:
    return ddim_sample(model.denoiser(config), model.schedule, x_T, model.timesteps(config), eta=config.eta,
                       noise=noise, y=y, callback=callback)


def _edm(second_order: bool):
    sampler = heun_sample if second_order else euler_sample

    def run(model, config, x_T, *, y, noise, callback) -> Tensor:
        sigmas = model.sigmas(config)
        return sampler(model.sigma_denoiser(config), x_T * float(sigmas[0]), sigmas, y=y, noise=noise,
                       callback=callback, churn=churn(config))   # x_T = sigma_max z (EDM Algorithm 2, line 1)
    return run


def _dpmpp2m(model, config, x_T, *, y, noise, callback) -> Tensor:
    sigmas = model.sigmas(config)
    return dpmpp_2m_sample(model.sigma_denoiser(config), x_T * float(sigmas[0]), sigmas, y=y, noise=noise,
                           callback=callback)


def _flow(second_order: bool):
    sampler = flow_midpoint_sample if second_order else flow_euler_sample

    def run(model, config, x_T, *, y, noise, callback) -> Tensor:
        times = model.flow_times(config)
        return sampler(model.flow_denoiser(config), x_T * float(times[0]), times, y=y, noise=noise,
                       callback=callback)   # x_{t_max} = t_max z: pure noise at t_max = 1
    return run


REGISTRY: dict[str, SamplerSpec] = {spec.name: spec for spec in (
    SamplerSpec("ddpm", "timesteps", ("spacing", "variance"), _ddpm, 1000, order=0, shown=("variance",),
                description="ancestral sampling, Ho et al. 2020 Algorithm 2"),
    SamplerSpec("ddim", "timesteps", ("spacing", "eta"), _ddim, 100, shown=("eta",),
                description="DDIM, Song et al. 2021 eq. 12"),
    SamplerSpec("euler", "sigmas", SIGMA_GRID_SETTINGS + CHURN_SETTINGS, _edm(False), 100, shown=("grid", "rho"),
                description="Euler on the probability-flow ODE, Karras et al. 2022"),
    SamplerSpec("heun", "sigmas", SIGMA_GRID_SETTINGS + CHURN_SETTINGS, _edm(True), 25, order=2,
                evaluations_per_step=2, saves_last=1, shown=("grid", "rho"),
                description="EDM Algorithm 2 (Heun, 2nd order), Karras et al. 2022"),
    SamplerSpec("dpmpp2m", "sigmas", SIGMA_GRID_SETTINGS, _dpmpp2m, 50, order=2, shown=("grid",),
                description="DPM-Solver++(2M), Lu et al. 2022"),
    SamplerSpec("flow_euler", "flow", SIGMA_GRID_SETTINGS, _flow(False), 100,
                description="Euler in flow time t (rectified flow, Liu et al. 2022)"),
    SamplerSpec("flow_midpoint", "flow", SIGMA_GRID_SETTINGS, _flow(True), 25, order=2, evaluations_per_step=2,
                saves_last=1, description="explicit midpoint in flow time t, uniform steps (2nd order)"),
)}
SAMPLERS: tuple[str, ...] = tuple(REGISTRY)


def sampler_spec(name: str) -> SamplerSpec:
    """The registered sampler called name."""
    if name not in REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    return REGISTRY[name]


def nfe(name: str, steps: int) -> int:
    """Network evaluations of sampler `name` over `steps` steps (Heun: 2N - 1, EDM sec. 3: 18 steps = 35 NFE)."""
    return sampler_spec(name).nfe(steps)


def steps_for_nfe(name: str, budget: int) -> int:
    """The most steps of sampler `name` whose evaluations fit in `budget` (Heun: (budget + 1) // 2)."""
    return sampler_spec(name).steps_for_nfe(budget)
