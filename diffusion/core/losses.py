"""The training objectives: per-example regression on eps (Ho et al. 2020, eq. 14), x0 or v, with optional
min-SNR weighting; flow matching's velocity regression (Lipman et al. 2023); label dropout for classifier-free
guidance (Ho & Salimans 2022)."""

import torch
from torch import Tensor, nn

from diffusion.core.flow_matching import TimeSampling, flow_path, network_velocity, sample_time, velocity_target
from diffusion.core.forward import WEIGHTINGS, Objective, Weighting, at, q_sample, snr_weight, target
from diffusion.core.schedules import NoiseSchedule


def drop_labels(y: Tensor, p: float, null_label: int, generator: torch.Generator) -> Tensor:
    """Replace each label by the null label with probability p (trains the unconditional model too)."""
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null_label), y)


def diffusion_loss(
    net: nn.Module, schedule: NoiseSchedule, x0: Tensor, y: Tensor | None, generator: torch.Generator, *,
    objective: Objective = "eps", weighting: Weighting = "none", min_snr_gamma: float = 5.0,
) -> Tensor:
    """Per-example loss (B,): t ~ U{1..T}, eps ~ N(0, I), || target - net(x_t, t, y) ||^2 averaged over dims."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    alpha_bar = at(schedule.alpha_bar, t, x0)
    x_t = q_sample(x0, alpha_bar, eps)
    err = (net(x_t, t, y) - target(objective, x0, eps, alpha_bar)).square()
    loss = err.reshape(x0.shape[0], -1).mean(dim=1)
    if weighting == "min_snr":
        loss = loss * snr_weight(objective, schedule.snr.to(x0.device)[t], min_snr_gamma)
    elif weighting != "none":
        raise ValueError(f"unknown loss weighting {weighting!r}; allowed: {', '.join(WEIGHTINGS)}")
    return loss


def flow_loss(
    net: nn.Module, x0: Tensor, y: Tensor | None, generator: torch.Generator, *,
    time_sampling: TimeSampling = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0, eps: Tensor | None = None,
) -> Tensor:
    """Per-example conditional flow matching loss (B,) (Lipman et al. 2023, eq. 23; Liu et al. 2022, eq. 1):
    || (eps - x0) - v_theta(x_t, t, y) ||^2 averaged over dims, x_t = (1 - t) x0 + t eps, t uniform or logit-normal.

    eps: the noise coupled with each x0 (reflow trains on a model's own (noise, sample) pairs); None draws it fresh.
    """
    t = sample_time(x0.shape[0], generator, x0.device, time_sampling, logit_mean, logit_std)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    v = network_velocity(net)(flow_path(x0, eps, t), t, y)
    return (v - velocity_target(x0, eps)).square().reshape(x0.shape[0], -1).mean(dim=1)
