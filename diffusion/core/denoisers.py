"""Adapters that turn a network into the one contract every sampler sees: a Denoiser (x_t, t, y) -> x0_hat.

Parameterisation, clipping and classifier-free guidance are wrappers, so samplers never branch on them.
"""

from typing import Callable

import torch
from torch import Tensor, nn

from diffusion.core.forward import Objective, at, predict_x0
from diffusion.core.schedules import NoiseSchedule

Denoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (x_t (B, ...), t (B,) long, y (B,) | None) -> x0_hat


def model_denoiser(net: nn.Module, schedule: NoiseSchedule, objective: Objective) -> Denoiser:
    """x0_hat -> f_theta(x_t, t) (DDIM eq. 9), whatever the network predicts."""
    def denoise(x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        out = net(x_t, t, y).to(x_t.dtype)
        return predict_x0(objective, x_t, out, at(schedule.alpha_bar, t, x_t))
    return denoise


def clipped(denoise: Denoiser, low: float = -1.0, high: float = 1.0) -> Denoiser:
    """Clip x0_hat to the data range (Clip "clamp": images to [-1, 1]; 2D data are projected instead)."""
    return lambda x_t, t, y: denoise(x_t, t, y).clamp(low, high)


X0Observer = Callable[[Tensor, Tensor], None]  # (raw x0_hat (B, ...), moved (B,) bool) before a projection


def projected(denoise: Denoiser, radius: float, observe: X0Observer | None = None) -> Denoiser:
    """x0_hat projected onto the ball |x0| <= radius: rows outside are scaled onto its edge. observe sees the raw x0_hat.

    The exact E[x0 | x_t] lies in the convex hull of the data (it is an average of data points), so when the data
    lie in the ball the projection never moves x0_hat farther from it (projection onto a convex set holding the
    target is non-expansive); it only bites where the network is wrong. Sampling returns the last x0_hat, so every
    sample then lies in the ball too. The 2D analogue of clipping images to [-1, 1].
    """
    if not radius > 0:
        raise ValueError(f"projection radius={radius!r} is out of range; allowed: a number > 0")

    def denoise_projected(x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        x0 = denoise(x_t, t, y)
        norm = x0.reshape(x0.shape[0], -1).norm(dim=1)                                  # (B,)
        moved = norm > radius
        if observe is not None:
            observe(x0, moved)
        scale = torch.where(moved, radius / norm.clamp(min=1e-30), torch.ones_like(norm))
        return x0 * scale.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    return denoise_projected


def guided(denoise: Denoiser, scale: float, null_label: int) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + w (cond - uncond); w=1 is plain conditional.

    Linear in the prediction, so guiding x0_hat equals guiding eps at fixed (x_t, t). One batched call.
    """
    def denoise_guided(x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("guidance needs labels y; got y=None")
        null = torch.full_like(y, null_label)
        both = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))
        cond, uncond = both.chunk(2)
        return uncond + scale * (cond - uncond)
    return denoise_guided
