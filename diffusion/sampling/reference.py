"""The reference solution of the probability-flow ODE a deterministic sampler discretises, for any run: from the
sampler's own starting point (the same noise as Run.sample) to its grid's smallest noise level, integrated by an
adaptive Runge-Kutta (torchdiffeq's dopri5, tight tolerances, float64) in flow time (core.flow_matching), then the sampler's
own last step to 0 (x0_hat). A sampler converges to it as its steps grow, at the rate of its order (docs/samplers.md).
"""

import math

import numpy as np
import torch
from torch import Tensor

from diffusion.core.edm import heun_gaussian_factor
from diffusion.core.flow_matching import time_of_sigma
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import sampler_spec
from diffusion.sampling.run import SEED_STRIDE, Run
from diffusion.sampling.vp import SeededNoise

RTOL = ATOL = 1e-8
FIRST_STEP = 1e-3      # of the span


def ode_span(run: Run, sampler: SamplerConfig) -> tuple[float, float, float]:
    """(t_start, scale, t_end) in flow time: the sampler starts at x_{t_start} = scale z (z its standard normal x_T)
    and makes its last step to 0 from t_end. ValueError for a stochastic sampler (ddpm, eta > 0, churn)."""
    if sampler.name == "ddpm" or sampler.eta > 0 or sampler.S_churn > 0:
        raise ValueError(f"sampler {sampler.name!r} (eta={sampler.eta!r}, S_churn={sampler.S_churn!r}) is stochastic; "
                         "a reference ODE solution exists for deterministic samplers only (eta = 0, S_churn = 0)")
    if sampler.space == "timesteps":                   # x_VP = z at alpha_bar: the flow point x_VP / (a + b)
        ab = run.schedule.alpha_bar.double()[run.timesteps(sampler)]
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return float(b[0] / (a[0] + b[0])), float(1 / (a[0] + b[0])), float(b[-1] / (a[-1] + b[-1]))
    times = run.flow_times(sampler) if sampler.space == "flow" else time_of_sigma(run.sigmas(sampler))
    return float(times[0]), float(times[0]), float(times[-2])   # x_VE = sigma z is x_t = t z


@torch.no_grad()
def reference_sample(run: Run, n: int, sampler: SamplerConfig, *, seed: int = 0, y: Tensor | None = None,
                     rtol: float = RTOL, atol: float = ATOL) -> Tensor:
    """What `sampler` on `run` returns for samples 0..n-1 of `seed` as its steps go to infinity: (n, *sample_shape)
    float64, the ODE dx_t/dt = (x_t - x0_hat(x_t, t)) / t solved from t_start to t_end, then x0_hat at t_end."""
    from torchdiffeq import odeint      # only when asked
    t_start, scale, t_end = ode_span(run, sampler)
    device = next(run.net.parameters()).device
    z = SeededNoise([seed * SEED_STRIDE + i for i in range(n)], run.sample_shape, device)().double()
    denoise = run.flow_denoiser(sampler)
    rows = lambda t, x: torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)   # noqa: E731
    velocity = lambda t, x: (x - denoise(x, rows(t, x), y)) / t                                 # noqa: E731
    span = torch.tensor([t_start, t_end], dtype=torch.float64, device=device)
    # Steps land on t_end and start small: torchdiffeq otherwise probes past either end, where no noise level exists
    options = {"step_t": span[1:], "first_step": (t_start - t_end) * FIRST_STEP}
    x = odeint(velocity, scale * z, span, rtol=rtol, atol=atol, method="dopri5", options=options)[-1]
    return denoise(x, rows(t_end, x), y).cpu()


@torch.no_grad()
def linear_output_std(run: Run, sampler: SamplerConfig) -> Tensor:
    """The output standard deviation per axis (D,) float64 of a deterministic sampler on a zero-mean Gaussian run with
    diagonal covariance (explore.exact.gaussian_run): its map of x_T is then linear and diagonal, so the output std
    along axis i is |f(e_i) - f(0)| for x_T ~ N(0, I). Exact, no sampling noise."""
    ode_span(run, sampler)                                      # refuses a stochastic sampler
    dim = run.sample_shape[0]
    x_T = torch.cat([torch.zeros(1, dim), torch.eye(dim)])
    out = sampler_spec(sampler.name).run(run, sampler, x_T, y=None, noise=None, callback=None).double()
    return (out[1:] - out[:1]).diagonal().abs()


def heun_on_a_gaussian(sigmas: list[float], s: float) -> float:
    """EDM's Heun (Algorithm 1, its last step Euler) on dx/dsigma = x sigma / (s^2 + sigma^2), the probability-flow
    ODE of N(0, s^2) in x = x0 + sigma n, from x = sqrt(s^2 + sigma_0^2) (the law's std there): the output std. The
    sampler's exact output std on the same grid (linear_output_std; tests/test_registry.py), as a scalar recursion
    cheap enough to search grids with (benchmarks/bench_samplers.py --parts heungrid)."""
    x = math.sqrt(s * s + sigmas[0] ** 2)
    for a, b in zip(sigmas[:-1], sigmas[1:]):                   # the last step, to 0, is Euler's: x0_hat
        x *= s * s / (s * s + a * a) if b == 0 else heun_gaussian_factor(a, b, s * s)
    return x


def fitted_order(nfe: list[int], errors: list[float]) -> float:
    """The convergence order p of error ~ C NFE^-p: minus the least-squares slope of log error against log NFE."""
    if len(nfe) != len(errors) or len(nfe) < 2 or min(errors) <= 0:
        raise ValueError(f"nfe {nfe} and errors {errors}: allowed: two or more pairs, errors > 0")
    return -float(np.polyfit(np.log(nfe), np.log(errors), 1)[0])


def reference_error(run: Run, sampler: SamplerConfig, n: int, reference: Tensor, seed: int = 0) -> float:
    """Mean distance per sample between `sampler`'s samples and the reference solution from the same noises."""
    x = run.sample(n, sampler, seed=seed).double()
    return float((x - reference).norm(dim=1).mean())
