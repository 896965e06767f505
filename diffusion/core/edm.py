"""Karras et al. 2022 (EDM) in its sigma parameterisation: x = x0 + sigma n (VE space), the Karras sigma grid,
the preconditioned denoiser D(x; sigma) (Table 1), its training loss, and adapters to and from our VP models.

Notation: VP x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps is VE x = x_t / sqrt(alpha_bar) with
sigma = sqrt((1 - alpha_bar) / alpha_bar), i.e. alpha_bar = 1 / (1 + sigma^2) (EDM Table 1, VP column:
s = 1 / sqrt(1 + sigma^2)). x0 is the same in both spaces: a denoiser's output needs no conversion, its input does.
"""

import math
from typing import Callable

import torch
from torch import Tensor, nn

from diffusion.core.denoisers import Denoiser
from diffusion.core.flow_matching import uniform_flow_times
from diffusion.core.forward import Objective, at, predict_x0
from diffusion.core.schedules import NoiseSchedule, log_sigmas

SigmaDenoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (x (B, ...), sigma (B,), y) -> x0_hat
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO = 0.002, 80.0, 7.0            # EDM sec. 3 / Table 1, "Sampling"
EDM_SIGMA_DATA, EDM_P_MEAN, EDM_P_STD = 0.5, -1.2, 1.2              # EDM Table 1, "Network and preconditioning"
# Our networks embed a float "time" sinusoidally with max period 10,000, built for DDPM's 0..999 range. EDM's
# c_noise = ln(sigma) / 4 spans only [-1.55, 1.10] over [0.002, 80]: times 250 (= 1000 / 4, i.e. 62.5 ln sigma)
# it spans [-388, 274], a width like DDPM's, so the embedding's low frequencies still tell noise levels apart.
C_NOISE_SCALE = 250.0


def alpha_bar_of_sigma(sigma: Tensor) -> Tensor:
    """alpha_bar = 1 / (1 + sigma^2): the VP noise level of the same signal-to-noise ratio (EDM Table 1, s(t))."""
    return 1.0 / (1.0 + sigma.square())


def _rows(v: Tensor, x: Tensor) -> Tensor:
    """A (B,) tensor shaped (B, 1, ..., 1) to broadcast against x, in x's dtype."""
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def fractional_timestep(sigma: Tensor, schedule: NoiseSchedule) -> Tensor:
    """The code timestep (B,) float64 where the schedule's ln sigma, linear between timesteps, equals ln sigma;
    clamped to [0, T-1]. Integer on the schedule's own sigmas; the inverse of schedules.alpha_bar_at (k-diffusion's
    DiscreteSchedule sigma_to_t)."""
    log_grid = log_sigmas(schedule.alpha_bar).to(sigma.device)           # (T,) increasing in t
    log_sigma = sigma.double().log().clamp(log_grid[0], log_grid[-1])
    upper = torch.searchsorted(log_grid, log_sigma).clamp(1, schedule.T - 1)
    lower = upper - 1
    return lower + (log_sigma - log_grid[lower]) / (log_grid[upper] - log_grid[lower])


def continuous_vp_denoiser(net: nn.Module, schedule: NoiseSchedule, objective: Objective) -> SigmaDenoiser:
    """A network trained on a discrete schedule, read in continuous time as D(x; sigma): x_t = x sqrt(alpha_bar),
    alpha_bar = 1 / (1 + sigma^2) exactly, the network told fractional_timestep(sigma) (its sinusoidal embedding
    takes any real t), as k-diffusion's DiscreteEpsDDPMDenoiser. Smooth in sigma, as adaptive ODE solvers need;
    equal to model_denoiser at the schedule's own sigmas."""
    def denoise_sigma(x: Tensor, sigma: Tensor, y: Tensor | None) -> Tensor:
        alpha_bar = _rows(alpha_bar_of_sigma(sigma.double()), x)
        x_t = x * alpha_bar.sqrt()
        out = net(x_t, fractional_timestep(sigma, schedule).to(x.dtype), y).to(x.dtype)
        return predict_x0(objective, x_t, out, alpha_bar)
    return denoise_sigma


def to_vp_denoiser(denoise: SigmaDenoiser, schedule: NoiseSchedule) -> Denoiser:
    """Run D(x; sigma) (e.g. an EDMPrecond) as a Denoiser on a discrete schedule: x = x_t / sqrt(alpha_bar_t)."""
    def denoise_vp(x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        x = x_t / at(schedule.alpha_bar.double(), t, x_t).sqrt()
        return denoise(x, schedule.sigma.to(x_t.device)[t].to(x_t.dtype), y)
    return denoise_vp


def _check_grid(n: int, sigma_min: float, sigma_max: float) -> None:
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"number of steps n={n!r} is invalid; allowed: an integer >= 1")
    if not 0.0 < sigma_min < sigma_max < float("inf"):
        raise ValueError(f"sigma_min={sigma_min!r}, sigma_max={sigma_max!r}; allowed: 0 < sigma_min < sigma_max, "
                         "both finite")


def _with_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def karras_sigmas(n: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = EDM_SIGMA_MAX,
                  rho: float = EDM_RHO) -> Tensor:
    """EDM eq. 5: sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for
    i < n, then sigma_n = 0; (n+1,) float64, strictly decreasing. n = 1 gives [sigma_max, 0]."""
    _check_grid(n, sigma_min, sigma_max)
    if not rho > 0:
        raise ValueError(f"rho={rho!r} is out of range; allowed: rho > 0")
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)                 # n = 1: [0], i.e. sigma_max
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return _with_zero((hi + u * (lo - hi)) ** rho)


def logsnr_sigmas(n: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = EDM_SIGMA_MAX) -> Tensor:
    """n noise levels uniform in lambda = -ln sigma (half the log-SNR), then 0; (n+1,) float64. DPM-Solver's
    "logSNR" step spacing (Lu et al. 2022, sec. 3.3); the rho -> inf limit of karras_sigmas."""
    _check_grid(n, sigma_min, sigma_max)
    u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)                 # n = 1: [0], i.e. sigma_max
    return _with_zero(torch.exp(math.log(sigma_max) + u * (math.log(sigma_min) - math.log(sigma_max))))


def flow_sigmas(n: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = EDM_SIGMA_MAX) -> Tensor:
    """n noise levels uniform in flow time t = sigma / (1 + sigma) (the rectified-flow grid, Liu et al. 2022), then
    0; (n+1,) float64. Most steps fall where sigma is near 1, the scale of standardised data."""
    _check_grid(n, sigma_min, sigma_max)
    t = uniform_flow_times(n, sigma_max / (1 + sigma_max), sigma_min / (1 + sigma_min))
    return t / (1 - t)


EQUAL_ERROR_STDS = (0.1, 3.0)     # the data scales (per-axis std) equal_error_sigmas balances Heun's error over


def heun_gaussian_factor(a, b, s2):
    """What one step of EDM's Heun from sigma a to b > 0 multiplies x by on dx/dsigma = x sigma / (s2 + sigma^2), the
    probability-flow ODE of N(0, s2) in x = x0 + sigma n (floats or broadcasting tensors): its Euler predictor, then
    the trapezoid of the two slopes."""
    slope_a, slope_b = a / (s2 + a * a), b / (s2 + b * b)
    return 1 + (b - a) / 2 * (slope_a + slope_b * (1 + (b - a) * slope_a))


def _heun_local_error(sigma: Tensor, dlog: float, stds: Tensor) -> Tensor:
    """|Heun's factor / the exact factor - 1| of one step from each sigma down by dlog in ln sigma, on the
    probability-flow ODE of N(0, s^2), per (sigma, s)."""
    a, s2 = sigma[:, None], stds[None, :] ** 2
    b = a * math.exp(-dlog)
    return (heun_gaussian_factor(a, b, s2) / ((s2 + b * b) / (s2 + a * a)).sqrt() - 1).abs()


def equal_error_sigmas(n: int, sigma_min: float = EDM_SIGMA_MIN, sigma_max: float = EDM_SIGMA_MAX,
                       stds: tuple[float, float] = EQUAL_ERROR_STDS) -> Tensor:
    """n noise levels that give each of Heun's steps the same local error on Gaussian data, then 0; (n+1,) float64.
    The equidistribution principle for a method of order 2: the density of steps in ln sigma is proportional to the
    cube root of Heun's local error coefficient (error / step^3), averaged over data stds s log-uniform in `stds`
    (where d ln x / d ln sigma = sigma^2 / (s^2 + sigma^2) bends, the steps are short). Heun at 25 steps (49 NFE) keeps
    a Gaussian's std within 1% for s from 0.1 to 1.3 here, against 1.9% on logsnr or karras grids (docs/samplers.md)."""
    _check_grid(n, sigma_min, sigma_max)
    u = torch.linspace(math.log(sigma_max), math.log(sigma_min), 4001, dtype=torch.float64)
    dlog = 1e-3
    scales = torch.logspace(math.log10(stds[0]), math.log10(stds[1]), 9, dtype=torch.float64)
    density = (_heun_local_error(u.exp(), dlog, scales).mean(1) / dlog ** 3) ** (1 / 3)
    density = torch.nan_to_num(density / density.max()).clamp_min(1e-6)   # far from every s: no step of 0 width
    cdf = torch.cat([density.new_zeros(1), ((density[1:] + density[:-1]) / 2).cumsum(0)])
    q = torch.linspace(0.0, 1.0, n, dtype=torch.float64) * cdf[-1]      # n = 1: [0], i.e. sigma_max
    index = torch.searchsorted(cdf, q).clamp(1, len(cdf) - 1)
    w = (q - cdf[index - 1]) / (cdf[index] - cdf[index - 1])
    return _with_zero((u[index - 1] + w * (u[index] - u[index - 1])).exp())


def schedule_sigma_range(schedule: NoiseSchedule, sigma_min: float = EDM_SIGMA_MIN,
                         sigma_max: float = EDM_SIGMA_MAX) -> tuple[float, float]:
    """(sigma_min, sigma_max) for sampling a model trained on `schedule`: EDM's range cut to the schedule's own
    [sigma_1, sigma_T] (as EDM's generate.py clamps to the net's range). For linear T=1000 that is
    [0.0100, 80]: the schedule's sigma_T = 157 (cosine: ~2e4) would spend steps where x is pure noise."""
    sigmas = schedule.sigma.double()
    return max(sigma_min, float(sigmas[0])), min(sigma_max, float(sigmas[-1]))


def edm_scalings(sigma: Tensor, sigma_data: float = EDM_SIGMA_DATA) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(c_skip, c_out, c_in, c_noise) of EDM Table 1, each shaped like sigma."""
    total = sigma.square() + sigma_data**2
    c_skip = sigma_data**2 / total
    c_out = sigma * sigma_data / total.sqrt()
    c_in = 1.0 / total.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: Tensor, sigma_data: float = EDM_SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2 (EDM Table 1, eq. 8)."""
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


class EDMPrecond(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x, C_NOISE_SCALE c_noise, y) (EDM eq. 7) around any of our networks.

    Stateless besides `net`: it adds no parameters, so wrapping a network (for the loss or for sampling)
    leaves its state_dict and checkpoints unchanged.
    """

    def __init__(self, net: nn.Module, sigma_data: float = EDM_SIGMA_DATA):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data={sigma_data!r} is out of range; allowed: sigma_data > 0")
        self.net, self.sigma_data = net, float(sigma_data)

    @property
    def null_label(self) -> int | None:
        return self.net.null_label

    def forward(self, x: Tensor, sigma: Tensor, y: Tensor | None = None) -> Tensor:
        """x (B, ...), sigma (B,) -> x0_hat (B, ...)."""
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        F_x = self.net(x * _rows(c_in, x), C_NOISE_SCALE * c_noise, y).to(x.dtype)
        return x * _rows(c_skip, x) + F_x * _rows(c_out, x)


def edm_loss(precond: EDMPrecond, x0: Tensor, y: Tensor | None, generator: torch.Generator, *,
             P_mean: float = EDM_P_MEAN, P_std: float = EDM_P_STD) -> Tensor:
    """Per-example EDM loss (B,) (eq. 2 with Table 1): ln sigma ~ N(P_mean, P_std^2), n ~ N(0, I),
    lambda(sigma) ||D(x0 + sigma n; sigma) - x0||^2 averaged over dims; sigma_data is precond's."""
    if not P_std > 0:
        raise ValueError(f"P_std={P_std!r} is out of range; allowed: P_std > 0")
    sigma = (torch.randn(x0.shape[0], generator=generator, device=x0.device) * P_std + P_mean).exp()   # (B,)
    n = torch.randn(x0.shape, generator=generator, device=x0.device)
    x0_hat = precond(x0 + n * _rows(sigma, x0), sigma, y)
    err = (x0_hat - x0).square().reshape(x0.shape[0], -1).mean(dim=1)
    return edm_loss_weight(sigma, precond.sigma_data) * err
