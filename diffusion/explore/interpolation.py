"""Interpolation through a trained run: between two initial noises (slerp), or between two class labels (mixing
the two conditional predictions), each decoded by deterministic DDIM (eta = 0), so a path is a smooth map."""

from collections.abc import Sequence

import torch
from torch import Tensor

from diffusion.core.denoisers import Denoiser
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import SEED_STRIDE, Run
from diffusion.sampling.vp import SeededNoise, ddim_sample

PARALLEL_COS = 0.9995  # above this cosine, slerp's 1 / sin(theta) is ill-conditioned: use lerp


def slerp(z0: Tensor, z1: Tensor, alphas: Sequence[float] | Tensor) -> Tensor:
    """Spherical interpolation (Shoemake 1985), (K, *z0.shape): sin((1-a) theta) / sin(theta) z0 +
    sin(a theta) / sin(theta) z1 with theta the angle between z0 and z1; lerp when they are nearly parallel."""
    if z0.shape != z1.shape:
        raise ValueError(f"slerp needs two tensors of one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}")
    u, v = z0.double(), z1.double()
    a = torch.as_tensor(alphas, dtype=torch.float64, device=z0.device).reshape(-1, *[1] * z0.ndim)  # (K, 1, ...)
    norms = u.norm() * v.norm()
    if norms == 0:
        raise ValueError("slerp is undefined for a zero vector")
    cos = float((u * v).sum() / norms)
    if cos > PARALLEL_COS:
        out = (1 - a) * u + a * v
    elif cos < -PARALLEL_COS:
        raise ValueError(f"slerp is undefined for opposite vectors (cosine {cos:.6f}): no unique great circle")
    else:
        theta = torch.tensor(cos, dtype=torch.float64).acos()
        out = (torch.sin((1 - a) * theta) * u + torch.sin(a * theta) * v) / torch.sin(theta)
    return out.to(z0.dtype)


def initial_noise(run: Run, seed: int) -> Tensor:
    """The x_T (*sample_shape) that run.sample(1, seed=seed) starts from."""
    return SeededNoise([seed * SEED_STRIDE], run.sample_shape)()[0]


def _check_points(n_points: int) -> None:
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points={n_points!r} is out of range; allowed: integers >= 2")


def _decode(run: Run, denoise: Denoiser, sampler: SamplerConfig, x_T: Tensor, y: Tensor | None) -> Tensor:
    """Deterministic DDIM (Song et al. 2021, eq. 12 with eta = 0) from x_T (K, ...) on the run's device."""
    device = next(run.net.parameters()).device
    y = None if y is None else y.to(device)
    return ddim_sample(denoise, run.schedule, x_T.to(device), run.timesteps(sampler), eta=0.0, y=y).cpu()


def interpolate_noise(run: Run, n_points: int, seed_a: int, seed_b: int, steps: int = 50, y: int | None = None,
                      guidance: float = 1.0) -> Tensor:
    """Samples (n_points, *sample_shape) along the slerp from seed_a's x_T to seed_b's; the endpoints are
    run.sample(1, ddim, seed=seed_a / seed_b). y: one class label for the whole path (conditional runs)."""
    _check_points(n_points)
    sampler = SamplerConfig("ddim", steps=steps, eta=0.0, guidance=guidance)
    x_T = slerp(initial_noise(run, seed_a), initial_noise(run, seed_b), torch.linspace(0, 1, n_points))
    labels = None if y is None else torch.full((n_points,), y, dtype=torch.long)
    return _decode(run, run.denoiser(sampler), sampler, x_T, labels)


def interpolate_labels(run: Run, label_a: int, label_b: int, n_points: int, seed: int, steps: int = 50,
                       guidance: float = 1.0) -> Tensor:
    """Samples (n_points, *sample_shape) from one x_T with the label moving from label_a to label_b.

    The network takes integer labels, so the label is not embedded fractionally: at weight a the sampler sees
    x0_hat = (1 - a) D(x_t, t, label_a) + a D(x_t, t, label_b), which (x0_hat and eps being affine in each other
    at fixed x_t) equals mixing the two eps predictions. a = 0 and a = 1 are the plain conditional samples.
    """
    _check_points(n_points)
    num_classes = getattr(run.config.model, "num_classes", 0)
    if num_classes == 0:
        raise ValueError("label interpolation needs a class-conditional run (num_classes > 0)")
    for label in (label_a, label_b):
        if not 0 <= label < num_classes:
            raise ValueError(f"label {label!r} is out of range; allowed: 0..{num_classes - 1}")
    sampler = SamplerConfig("ddim", steps=steps, eta=0.0, guidance=guidance)
    denoise = run.denoiser(sampler)
    weights = torch.linspace(0, 1, n_points)

    def mixed(x_t: Tensor, t: Tensor, _y: Tensor | None) -> Tensor:
        y = torch.tensor([label_a, label_b], device=x_t.device).repeat_interleave(len(x_t))
        x0_a, x0_b = denoise(torch.cat([x_t, x_t]), torch.cat([t, t]), y).chunk(2)   # one batched call
        w = weights.to(x_t.device, x_t.dtype).reshape(-1, *[1] * (x_t.ndim - 1))
        return (1 - w) * x0_a + w * x0_b                                                # exact at w = 0 and 1

    x_T = initial_noise(run, seed).expand(n_points, *run.sample_shape)
    return _decode(run, mixed, sampler, x_T, None)
