"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2022): the linear path x_t = (1 - t) x0 + t eps,
its velocity target v = eps - x0, the training times (uniform, or SD3's logit-normal, Esser et al. 2024), and the
conversions that make a flow model a denoiser of the EDM family and a diffusion model a flow.

Notation: t in [0, 1], t = 0 the data, t = 1 pure noise. Any point a x0 + b eps of a Gaussian path (VP: a =
sqrt(alpha_bar), b = sqrt(1 - alpha_bar); VE/EDM: a = 1, b = sigma) is the flow point x / (a + b) at t = b / (a + b):
so sigma = t / (1 - t), x_VE = x_t / (1 - t), and x0_hat = x_t - t v is the same in every space.
Our networks embed time sinusoidally with a max period of 10,000, made for DDPM's 0..999: they see FLOW_TIME_SCALE t.
"""

from typing import Callable, Literal

import torch
from torch import Tensor, nn

FlowDenoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (x_t (B, ...), t (B,) float in [0, 1], y) -> x0_hat
Velocity = Callable[[Tensor, Tensor, Tensor | None], Tensor]      # (x_t, t (B,), y) -> v = dx_t/dt
SigmaDenoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (x_VE, sigma (B,), y) -> x0_hat (core.edm's)
Denoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]       # (x_VP, code timestep t (B,) long, y) -> x0_hat
TimeSampling = Literal["uniform", "logit_normal"]
TIME_SAMPLINGS: tuple[str, ...] = ("uniform", "logit_normal")
FLOW_TIME_SCALE = 1000.0


def _rows(v: Tensor, x: Tensor) -> Tensor:
    return v.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def flow_path(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """x_t = (1 - t) x0 + t eps (Liu et al. 2022, eq. 1; Lipman et al. 2023's optimal-transport path, sigma_min = 0),
    t (B,)."""
    t = _rows(t, x0)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: Tensor, eps: Tensor) -> Tensor:
    """v = d x_t / dt = eps - x0: what a flow network regresses onto (conditional flow matching)."""
    return eps - x0


def sample_time(n: int, generator: torch.Generator, device: torch.device | str, sampling: TimeSampling = "uniform",
                mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Training times (n,): U[0, 1], or logit-normal t = sigmoid(m + s z), z ~ N(0, 1) (Esser et al. 2024, eq. 19)."""
    if sampling == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if sampling == "logit_normal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    raise ValueError(f"unknown time sampling {sampling!r}; allowed: {', '.join(TIME_SAMPLINGS)}")


def network_velocity(net: nn.Module) -> Velocity:
    """A flow network as a Velocity: net(x_t, FLOW_TIME_SCALE t, y) -> v."""
    return lambda x_t, t, y: net(x_t, FLOW_TIME_SCALE * t, y).to(x_t.dtype)


def denoiser_of_velocity(velocity: Velocity) -> FlowDenoiser:
    """x0_hat = x_t - t v: a velocity as the one contract every sampler sees."""
    return lambda x_t, t, y: x_t - _rows(t, x_t) * velocity(x_t, t, y)


def velocity_of_denoiser(denoise: FlowDenoiser) -> Velocity:
    """v = (x_t - x0_hat) / t (defined for t > 0)."""
    return lambda x_t, t, y: (x_t - denoise(x_t, t, y)) / _rows(t, x_t)


def sigma_of_time(t: Tensor) -> Tensor:
    """The EDM noise level of flow time t: sigma = t / (1 - t)."""
    return t / (1 - t)


def time_of_sigma(sigma: Tensor | float) -> Tensor | float:
    """t = sigma / (1 + sigma): the flow time of an EDM noise level."""
    return sigma / (1 + sigma)


def uniform_flow_times(steps: int, t_max: float, t_min: float) -> Tensor:
    """steps flow times uniform from t_max down to t_min, then 0 (the step that lands on x0_hat); (steps + 1,)
    float64, the "flow" grid (Liu et al. 2022's uniform steps, stopping at the model's smallest noise level)."""
    if not (isinstance(steps, int) and steps >= 1 and 0 < t_min < t_max <= 1):
        raise ValueError(f"flow grid steps={steps!r}, t_max={t_max!r}, t_min={t_min!r}; allowed: steps >= 1, "
                         "0 < t_min < t_max <= 1")
    times = torch.linspace(t_max, t_min, steps, dtype=torch.float64)
    return torch.cat([times, times.new_zeros(1)])


def vp_point(t: Tensor) -> tuple[Tensor, Tensor]:
    """(c, alpha_bar) with x_VP = x_t / c the VP point of the flow point x_t: c = sqrt((1 - t)^2 + t^2),
    alpha_bar = (1 - t)^2 / c^2."""
    c2 = (1 - t).square() + t.square()
    return c2.sqrt(), (1 - t).square() / c2


def sigma_from_flow(denoise: FlowDenoiser) -> SigmaDenoiser:
    """A flow denoiser as D(x; sigma) (EDM's VE space): x_t = x / (1 + sigma) at t = sigma / (1 + sigma)."""
    return lambda x, sigma, y: denoise(x / _rows(1 + sigma, x), time_of_sigma(sigma), y)


def flow_from_sigma(denoise: SigmaDenoiser) -> FlowDenoiser:
    """D(x; sigma) as a flow denoiser (t < 1): x_VE = x_t / (1 - t) at sigma = t / (1 - t)."""
    return lambda x_t, t, y: denoise(x_t / _rows(1 - t, x_t), sigma_of_time(t), y)


def vp_from_flow(denoise: FlowDenoiser, alpha_bar: Tensor) -> Denoiser:
    """A flow denoiser on a discrete VP schedule (alpha_bar (T,)): x_t = x_VP / (a + b), t = b / (a + b), exact for
    every timestep, alpha_bar = 0 (zero terminal SNR) included."""
    def denoise_vp(x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        ab = alpha_bar.double().to(x.device)[t]
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return denoise(x / _rows(a + b, x), (b / (a + b)).to(x.dtype), y)
    return denoise_vp

