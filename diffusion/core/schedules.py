"""Noise schedules (beta_t and everything derived from it) and the timestep grids samplers walk.

Notation (Ho et al. 2020): alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s. The design document's
sigma_t is alpha_t here; sigma below is the EDM noise level sqrt((1 - alpha_bar) / alpha_bar) (Karras 2022).
Code index t in 0..T-1 is the paper's timestep t+1 (so alpha_bar[0] = alpha_1 = 1 - beta_1).
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

ScheduleName = Literal["linear", "linear_unscaled", "cosine", "sigmoid"]
Spacing = Literal["cubic", "quadratic", "trailing", "linspace", "leading", "flow"]
SCHEDULES: tuple[str, ...] = ("linear", "linear_unscaled", "cosine", "sigmoid")
SPACINGS: tuple[str, ...] = ("cubic", "quadratic", "trailing", "linspace", "leading", "flow")
POWERS = {"quadratic": 2, "cubic": 3}
MIN_T, MAX_T = 2, 4000
MAX_BETA = 0.999  # Nichol & Dhariwal 2021 clip beta below 1 to avoid singularities near t = T


def _linear_betas(T: int, scaled: bool) -> np.ndarray:
    """DDPM: beta from 1e-4 to 0.02 at T=1000; scaled by 1000/T so alpha_bar_T stays near 0 (iDDPM)."""
    scale = 1000.0 / T if scaled else 1.0
    return np.linspace(1e-4 * scale, 0.02 * scale, T, dtype=np.float64)


def _betas_from_alpha_bar(alpha_bar_fn, T: int) -> np.ndarray:
    """beta_t = 1 - alpha_bar(t/T) / alpha_bar((t-1)/T) for a continuous alpha_bar on [0, 1]."""
    grid = np.linspace(0.0, 1.0, T + 1, dtype=np.float64)
    ab = alpha_bar_fn(grid)
    return 1.0 - ab[1:] / ab[:-1]


def _cosine_alpha_bar(u: np.ndarray, s: float = 0.008) -> np.ndarray:
    """Nichol & Dhariwal 2021, eq. 17 (normalised so that alpha_bar(0) = 1)."""
    f = np.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def _sigmoid_alpha_bar(u: np.ndarray, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> np.ndarray:
    """Chen 2023 ("On the importance of noise scheduling"), Algorithm 1, sigmoid variant."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    v_start, v_end = sig(start / tau), sig(end / tau)
    return (v_end - sig((u * (end - start) + start) / tau)) / (v_end - v_start)


def _zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Lin et al. 2024, Algorithm 1: shift and scale sqrt(alpha_bar) so that alpha_bar_T = 0 exactly."""
    sqrt_ab = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_ab[0], sqrt_ab[-1]
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    ab = sqrt_ab**2
    return 1.0 - np.concatenate([ab[:1], ab[1:] / ab[:-1]])


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Every per-timestep quantity of a discrete schedule, computed in float64 and stored as float32 (T,)."""

    name: str
    beta: Tensor
    alpha: Tensor
    alpha_bar: Tensor
    alpha_bar_prev: Tensor   # alpha_bar_{t-1}, with alpha_bar_0 = 1
    beta_tilde: Tensor       # posterior variance (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, Ho eq. 7
    snr: Tensor              # alpha_bar / (1 - alpha_bar)
    sigma: Tensor            # EDM noise level sqrt((1 - alpha_bar) / alpha_bar) = 1 / sqrt(snr)

    @property
    def T(self) -> int:
        return self.beta.shape[0]

    @property
    def log_snr(self) -> Tensor:
        return self.snr.log()


def make_schedule(name: ScheduleName, T: int, zero_terminal_snr: bool = False) -> NoiseSchedule:
    """Build a named schedule with T steps (2 <= T <= 4000)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    if not (isinstance(T, int) and MIN_T <= T <= MAX_T):
        raise ValueError(f"timesteps T={T!r} is out of range; allowed: integers from {MIN_T} to {MAX_T}")
    if name in ("linear", "linear_unscaled"):
        betas = _linear_betas(T, scaled=name == "linear")
    elif name == "cosine":
        betas = _betas_from_alpha_bar(_cosine_alpha_bar, T)
    else:
        betas = _betas_from_alpha_bar(_sigmoid_alpha_bar, T)
    betas = np.clip(betas, 0.0, MAX_BETA)
    if zero_terminal_snr:
        betas = _zero_terminal_snr(betas)
    alpha = 1.0 - betas
    ab = np.cumprod(alpha)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    with np.errstate(divide="ignore"):
        snr = ab / (1.0 - ab)
        sigma = np.sqrt((1.0 - ab) / ab)
    f32 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64)).float()  # noqa: E731
    return NoiseSchedule(
        name=name, beta=f32(betas), alpha=f32(alpha), alpha_bar=f32(ab), alpha_bar_prev=f32(ab_prev),
        beta_tilde=f32((1.0 - ab_prev) / (1.0 - ab) * betas), snr=f32(snr), sigma=f32(sigma),
    )


def log_sigmas(alpha_bar: Tensor) -> Tensor:
    """ln sigma_t = ln sqrt((1 - alpha_bar_t) / alpha_bar_t) (T,) float64, increasing in t: the axis along which a
    discrete schedule is read in continuous time (alpha_bar_at, core.edm.fractional_timestep)."""
    ab = alpha_bar.double()
    return 0.5 * ((1 - ab) / ab).log()


def alpha_bar_at(alpha_bar: Tensor, t: Tensor) -> Tensor:
    """alpha_bar (B,) float64 at code timesteps t (B,): exact at integer t (long), and at fractional t (float) the
    noise level whose ln sigma is linear between the two timesteps around it (k-diffusion's DiscreteSchedule
    t_to_sigma), so a discrete model is defined in continuous time; t is clamped to [0, T-1]."""
    ab = alpha_bar.double().to(t.device)
    if not t.is_floating_point():
        return ab[t]
    grid = log_sigmas(ab)
    t = t.double().clamp(0, len(ab) - 1)
    low = t.floor().long().clamp(max=len(ab) - 2)
    w = t - low
    log_sigma = torch.where(w > 0, grid[low] + w * (grid[low + 1] - grid[low]), grid[low])
    return 1 / (1 + (2 * log_sigma).exp())


def spaced_timesteps(T: int, n_steps: int, spacing: Spacing = "cubic", sigmas: Tensor | None = None) -> list[int]:
    """The decreasing code timesteps a sampler visits with n_steps network evaluations.

    quadratic, cubic: round((T-1) (k / (n-1))^p), p = 2 or 3, from T-1 down to 0, each at least one below the one
    before (DDIM's "quadratic" tau_i = floor(c i^2), Song et al. 2021 App. D.2, stretched to reach T-1; cubic denser
    still at low noise, where the last steps of a deterministic sampler shrink sharp components, docs/samplers.md);
    trailing: round(T - k T/n) - 1, always starts at T-1 (Lin et al. 2024, Table 2);
    linspace: round(linspace(0, T-1, n)); leading: k * (T // n), never reaches T-1 (as in DDIM's code);
    flow: the timesteps nearest to flow times sigma / (1 + sigma) uniform between the schedule's ends (the rectified-
    flow grid, Liu et al. 2022; needs the schedule's T noise levels `sigmas`), each at least one apart.
    One step is [T-1] whatever the spacing: the one denoising step must start from x_T (linspace and leading
    would give [0], one step at t = 1 from pure noise).
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    if not (isinstance(n_steps, int) and 1 <= n_steps <= T):
        raise ValueError(f"number of steps {n_steps!r} is out of range; allowed: 1 to T={T}")
    if spacing == "flow" and (sigmas is None or len(sigmas) != T):
        raise ValueError(f"the flow spacing needs the schedule's T={T} noise levels")
    if n_steps == 1:
        return [T - 1]
    if spacing in POWERS:
        ts = np.round((T - 1) * np.linspace(0.0, 1.0, n_steps) ** POWERS[spacing]).astype(np.int64)
        ts = np.maximum(ts, np.arange(n_steps))[::-1]                  # strictly increasing: at least 0, 1, 2, ...
    elif spacing == "flow":
        sigma = np.asarray(sigmas, dtype=np.float64)
        flow_t = sigma / (1 + sigma)
        wanted = np.linspace(flow_t[0], flow_t[-1], n_steps)
        ts = np.abs(flow_t[None, :] - wanted[:, None]).argmin(1)        # increasing; equal where levels are dense
        k = np.arange(n_steps)
        ts = np.minimum(np.maximum.accumulate(ts - k) + k, T - n_steps + k)[::-1]   # strictly, from 0 to T-1
    elif spacing == "trailing":
        ts = np.round(T - np.arange(n_steps) * T / n_steps).astype(np.int64) - 1
    elif spacing == "linspace":
        ts = np.round(np.linspace(0, T - 1, n_steps)).astype(np.int64)[::-1]
    else:
        ts = (np.arange(n_steps) * (T // n_steps)).astype(np.int64)[::-1]
    return [int(t) for t in ts]
