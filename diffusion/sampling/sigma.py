"""Samplers over a sigma grid (VE space x = x0 + sigma n): Euler and Heun with EDM's stochastic churn
(Karras et al. 2022, Algorithm 2) and DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2).

Same conventions as sampling.vp: pure functions of a SigmaDenoiser, x_T (already scaled: sigma_max z), an explicit
decreasing grid `sigmas` ending with 0 (see edm.karras_sigmas), per-sample noise through a `Noise` callable, and
an optional callback (i, sigma, x, x0_hat) at each point where the step evaluates the denoiser first.
"""

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from diffusion.core.edm import SigmaDenoiser
from diffusion.core.time import Sigma
from diffusion.sampling.vp import Noise

SigmaCallback = Callable[[int, Sigma, Tensor, Tensor], None]  # (i, sigma, x, x0_hat)


@dataclass(frozen=True)
class Churn:
    """EDM Algorithm 2, lines 4-6: before step i, raise sigma_i to sigma_hat = (1 + gamma_i) sigma_i by adding
    noise of std S_noise sqrt(sigma_hat^2 - sigma_i^2), gamma_i = min(S_churn / N, sqrt(2) - 1) for sigma_i in
    [S_min, S_max], else 0. S_churn = 0 (the default) is the deterministic sampler. EDM Table 5."""

    S_churn: float = 0.0
    S_min: float = 0.0
    S_max: float = math.inf
    S_noise: float = 1.0

    def __post_init__(self):
        if not (self.S_churn >= 0 and 0 <= self.S_min <= self.S_max and self.S_noise >= 0):
            raise ValueError(f"churn S_churn={self.S_churn!r}, S_min={self.S_min!r}, S_max={self.S_max!r}, "
                             f"S_noise={self.S_noise!r}; allowed: S_churn >= 0, 0 <= S_min <= S_max, S_noise >= 0")

    @property
    def stochastic(self) -> bool:
        return self.S_churn > 0

    def gamma(self, sigma: float, n_steps: int) -> float:
        return min(self.S_churn / n_steps, math.sqrt(2) - 1) if self.S_min <= sigma <= self.S_max else 0.0

    def apply(self, x: Tensor, sigma: float, n_steps: int, noise: Noise | None) -> tuple[Tensor, float]:
        """(x_hat, sigma_hat): x moved up to the noise level sigma_hat (lines 5-6); unchanged when gamma = 0."""
        gamma = self.gamma(sigma, n_steps)
        if gamma == 0:
            return x, sigma
        sigma_hat = sigma * (1 + gamma)
        return x + self.S_noise * math.sqrt(sigma_hat**2 - sigma**2) * noise(), sigma_hat


def _check(sigmas: Tensor, churn: Churn, noise: Noise | None) -> list[float]:
    """sigmas as floats; ValueError unless it is strictly decreasing, positive, and ends with exactly 0."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).tolist()
    if len(s) < 2 or s[-1] != 0 or any(b >= a for a, b in zip(s, s[1:])) or not all(map(math.isfinite, s)):
        raise ValueError(f"sigmas must be finite, strictly decreasing, at least 2 values, and end with 0; "
                         f"got {[round(v, 4) for v in s[:4]]}...{s[-1:]} ({len(s)} values)")
    if churn.stochastic and noise is None:
        raise ValueError(f"S_churn={churn.S_churn!r} > 0 is stochastic: pass noise")
    return s


def _sigma_rows(x: Tensor, sigma: float) -> Tensor:
    return torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)


def _edm_sample(denoise: SigmaDenoiser, x_T: Tensor, sigmas: Tensor, second_order: bool, y: Tensor | None,
                noise: Noise | None, callback: SigmaCallback | None, churn: Churn) -> Tensor:
    """EDM Algorithm 2 (second_order=True: Heun) or its first-order truncation (Euler), with churn."""
    s = _check(sigmas, churn, noise)
    x, n_steps = x_T, len(s) - 1
    for i, (sigma, sigma_next) in enumerate(zip(s, s[1:])):
        x_hat, sigma_hat = churn.apply(x, sigma, n_steps, noise)              # lines 4-6
        x0 = denoise(x_hat, _sigma_rows(x, sigma_hat), y)
        if callback is not None:
            callback(i, sigma_hat, x_hat, x0)
        d = (x_hat - x0) / sigma_hat                                           # line 7: dx/dsigma, eq. 3
        x = x_hat + (sigma_next - sigma_hat) * d                               # line 8: Euler step
        if second_order and sigma_next > 0:                                    # lines 9-11: Heun correction
            d_next = (x - denoise(x, _sigma_rows(x, sigma_next), y)) / sigma_next
            x = x_hat + (sigma_next - sigma_hat) * (d + d_next) / 2
    return x


@torch.no_grad()
def euler_sample(denoise: SigmaDenoiser, x_T: Tensor, sigmas: Tensor, *, y: Tensor | None = None,
                 noise: Noise | None = None, callback: SigmaCallback | None = None, churn: Churn = Churn()) -> Tensor:
    """Euler on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 3 with sigma(t) = t),
    with optional churn; one evaluation per step. On a grid of schedule sigmas it equals DDIM (EDM sec. 3)."""
    return _edm_sample(denoise, x_T, sigmas, False, y, noise, callback, churn)


@torch.no_grad()
def heun_sample(denoise: SigmaDenoiser, x_T: Tensor, sigmas: Tensor, *, y: Tensor | None = None,
                noise: Noise | None = None, callback: SigmaCallback | None = None, churn: Churn = Churn()) -> Tensor:
    """EDM Algorithm 2: Heun's 2nd-order method, Euler on the last step to sigma = 0; 2N - 1 evaluations."""
    return _edm_sample(denoise, x_T, sigmas, True, y, noise, callback, churn)


@torch.no_grad()
def dpmpp_2m_sample(denoise: SigmaDenoiser, x_T: Tensor, sigmas: Tensor, *, y: Tensor | None = None,
                    noise: Noise | None = None, callback: SigmaCallback | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in data prediction with lambda = -ln sigma (alpha = 1 in VE
    space): x_next = (sigma_next / sigma) x + (1 - sigma_next / sigma) D, D = (1 + 1/2r) x0_hat - 1/2r x0_prev,
    r = h_prev / h. The first step (no history) is first order, i.e. DDIM; the last, to sigma = 0 (h = inf),
    returns x0_hat. Deterministic: `noise` is accepted for a uniform signature and never drawn."""
    s = _check(sigmas, Churn(), noise)
    x, x0_prev, h_prev = x_T, None, None
    for i, (sigma, sigma_next) in enumerate(zip(s, s[1:])):
        x0 = denoise(x, _sigma_rows(x, sigma), y)
        if callback is not None:
            callback(i, sigma, x, x0)
        if sigma_next == 0:
            x = x0
            break
        h = math.log(sigma / sigma_next)                                       # lambda_next - lambda
        d = x0 if x0_prev is None else (1 + h / (2 * h_prev)) * x0 - h / (2 * h_prev) * x0_prev
        x = (sigma_next / sigma) * x + (1 - sigma_next / sigma) * d            # -expm1(-h) = 1 - sigma_next/sigma
        x0_prev, h_prev = x0, h
    return x
