"""The forward process q(x_t | x_0), its posterior q(x_s | x_t, x_0), and eps <-> x0 <-> v conversions.

Every function takes alpha_bar values already broadcast to x's shape (see `at`), so the same formulas serve
the training loss (one t per example) and samplers that jump between any two timesteps s < t.
"""

from typing import Literal

import torch
from torch import Tensor

Objective = Literal["eps", "x0", "v"]
OBJECTIVES: tuple[str, ...] = ("eps", "x0", "v")
Weighting = Literal["none", "min_snr"]
WEIGHTINGS: tuple[str, ...] = ("none", "min_snr")


def at(values: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """values[t] for a (B,) index tensor t, shaped (B, 1, ..., 1) to broadcast against x."""
    return values.to(x.device)[t].reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


def q_sample(x0: Tensor, alpha_bar: Tensor, eps: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)."""
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def posterior(x0: Tensor, x_t: Tensor, alpha_bar_t: Tensor, alpha_bar_s: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_s | x_t, x0) for s < t (Ho et al. eq. 6-7; s = t-1 is the DDPM step).

    With alpha = alpha_bar_t / alpha_bar_s and beta = 1 - alpha (the step's beta, respaced when s < t-1):
    mean = sqrt(alpha_bar_s) beta / (1 - alpha_bar_t) x0 + sqrt(alpha) (1 - alpha_bar_s) / (1 - alpha_bar_t) x_t,
    var  = (1 - alpha_bar_s) / (1 - alpha_bar_t) beta  (= beta_tilde).
    """
    alpha = alpha_bar_t / alpha_bar_s
    beta = 1 - alpha
    mean = (alpha_bar_s.sqrt() * beta * x0 + alpha.sqrt() * (1 - alpha_bar_s) * x_t) / (1 - alpha_bar_t)
    return mean, (1 - alpha_bar_s) / (1 - alpha_bar_t) * beta


def eps_to_x0(x_t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) (Ho et al. eq. 15)."""
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def x0_to_eps(x_t: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)."""
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def v_target(x0: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022, sec. 4)."""
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


def v_to_x0(x_t: Tensor, v: Tensor, alpha_bar: Tensor) -> Tensor:
    """x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v."""
    return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * v


def target(objective: Objective, x0: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """What a network trained with `objective` regresses onto."""
    if objective == "eps":
        return eps
    if objective == "x0":
        return x0
    if objective == "v":
        return v_target(x0, eps, alpha_bar)
    raise ValueError(f"unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")


def predict_x0(objective: Objective, x_t: Tensor, output: Tensor, alpha_bar: Tensor) -> Tensor:
    """The x0_hat implied by a network output under `objective`."""
    if objective == "eps":
        return eps_to_x0(x_t, output, alpha_bar)
    if objective == "x0":
        return output
    if objective == "v":
        return v_to_x0(x_t, output, alpha_bar)
    raise ValueError(f"unknown objective {objective!r}; allowed: {', '.join(OBJECTIVES)}")


def snr_weight(objective: Objective, snr: Tensor, gamma: float) -> Tensor:
    """Min-SNR-gamma loss weight (Hang et al. 2023, eq. 8-9), expressed for each objective's regression target."""
    clipped = torch.clamp(snr, max=gamma)
    if objective == "eps":
        return clipped / snr
    if objective == "x0":
        return clipped
    return clipped / (snr + 1)
