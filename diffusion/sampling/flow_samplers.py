"""Samplers in flow time: the fixed-step Euler and midpoint integrators of dx_t/dt = v = (x_t - x0_hat) / t that
flow-matching papers use (Liu et al. 2022; Lipman et al. 2023; Esser et al. 2024), from t = t_max to t = 0.

Same conventions as sampling.sigma: pure functions of a FlowDenoiser (core.flow), x_T (already scaled: t_max z), an
explicit decreasing grid `times` ending with 0, and an optional callback (i, t, x_t, x0_hat) at each step's first
evaluation. Deterministic: `noise` is accepted for a uniform signature and never drawn.
"""

import math
from typing import Callable

import torch
from torch import Tensor

from diffusion.core.flow_matching import FlowDenoiser
from diffusion.core.time import FlowTime
from diffusion.sampling.vp import Noise

FlowCallback = Callable[[int, FlowTime, Tensor, Tensor], None]  # (i, t, x_t, x0_hat)


def _check(times: Tensor) -> list[float]:
    """times as floats; ValueError unless strictly decreasing within [0, 1], at least 2 values, ending with 0."""
    s = torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()
    if len(s) < 2 or s[-1] != 0 or s[0] > 1 or any(b >= a for a, b in zip(s, s[1:])) or not all(map(math.isfinite, s)):
        raise ValueError(f"flow times must be strictly decreasing within [0, 1], at least 2 values, and end with 0; "
                         f"got {[round(v, 4) for v in s[:4]]}...{s[-1:]} ({len(s)} values)")
    return s


def _rows(x: Tensor, t: float) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _velocity(denoise: FlowDenoiser, x: Tensor, t: float, y: Tensor | None) -> tuple[Tensor, Tensor]:
    """(v, x0_hat) at (x, t): v = (x - x0_hat) / t, t > 0."""
    x0 = denoise(x, _rows(x, t), y)
    return (x - x0) / t, x0


def _flow_sample(denoise: FlowDenoiser, x_T: Tensor, times: Tensor, second_order: bool, y: Tensor | None,
                 callback: FlowCallback | None) -> Tensor:
    """Euler (x_next = x + (t_next - t) v(x, t)) or explicit midpoint (v taken at the half step instead); the last
    step, to t = 0, is Euler and lands on x0_hat (as EDM's Heun: no evaluation below the grid's smallest t), so a
    projected or clipped denoiser's bound holds for the output."""
    s = _check(times)
    x = x_T
    for i, (t, t_next) in enumerate(zip(s, s[1:])):
        v, x0 = _velocity(denoise, x, t, y)
        if callback is not None:
            callback(i, t, x, x0)
        if t_next == 0:
            return x0
        if second_order:
            t_mid = (t + t_next) / 2
            v, _ = _velocity(denoise, x + (t_mid - t) * v, t_mid, y)
        x = x + (t_next - t) * v
    return x


@torch.no_grad()
def flow_euler_sample(denoise: FlowDenoiser, x_T: Tensor, times: Tensor, *, y: Tensor | None = None,
                      noise: Noise | None = None, callback: FlowCallback | None = None) -> Tensor:
    """Euler in t: x_next = x + (t_next - t) v(x, t) (Liu et al. 2022, sec. 2.1); one evaluation per step. The last
    step, to t = 0, lands on x0_hat. The same map as DDIM and as EDM's Euler at the matching noise levels."""
    return _flow_sample(denoise, x_T, times, False, y, callback)


@torch.no_grad()
def flow_midpoint_sample(denoise: FlowDenoiser, x_T: Tensor, times: Tensor, *, y: Tensor | None = None,
                         noise: Noise | None = None, callback: FlowCallback | None = None) -> Tensor:
    """Explicit midpoint (2nd-order Runge-Kutta) in t: a half Euler step to t_mid = (t + t_next) / 2, then the full
    step with the velocity there: x_next = x + (t_next - t) v(x_mid, t_mid); two evaluations per step, but the last
    step to t = 0 is Euler (lands on x0_hat): 2N - 1 evaluations."""
    return _flow_sample(denoise, x_T, times, True, y, callback)
