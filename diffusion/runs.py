"""A trained run (config, schedule, EMA network) and how to draw samples from it with any sampler."""

from dataclasses import dataclass, field
import torch
from torch import Tensor, nn

import math

from .config import RunConfig
from .denoisers import Denoiser, clipped, guided, model_denoiser
from .edm import (EDM_SIGMA_MAX, EDM_SIGMA_MIN, EDMPrecond, SigmaDenoiser, from_vp_denoiser, karras_sigmas,
                  logsnr_sigmas, schedule_sigma_range, to_vp_denoiser)
from .samplers import SeededNoise, StepCallback, ddim_sample, ddpm_sample
from .schedules import NoiseSchedule, spaced_timesteps
from .solvers import SIGMA_SAMPLERS, Churn, sample_sigma

SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", *SIGMA_SAMPLERS)
GRIDS: tuple[str, ...] = ("karras", "logsnr")
SEED_STRIDE = 1_000_000  # sample i of seed s draws from seed s * SEED_STRIDE + i


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: which sampler, how many network evaluations, on which timestep grid."""

    name: str = "ddim"
    steps: int = 50
    eta: float = 0.0                 # DDIM only
    spacing: str = "trailing"
    variance: str = "beta_tilde"     # DDPM only
    clip: bool | None = None         # None: on for images, off for 2D data
    guidance: float = 1.0            # classifier-free guidance scale w; 1 = plain conditional
    grid: str | None = None          # euler/heun/dpmpp2m sigma grid; None: karras (rho), logsnr for dpmpp2m
    rho: float = 7.0                 # Karras et al. eq. 5
    sigma_min: float | None = None   # None: EDM's 0.002 and 80, clamped to the schedule's range
    sigma_max: float | None = None
    S_churn: float = 0.0             # EDM Algorithm 2 stochasticity (euler, heun)
    S_min: float = 0.0
    S_max: float | None = None      # None: no upper bound
    S_noise: float = 1.0

    def __post_init__(self):
        if self.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.name!r}; allowed: {', '.join(SAMPLERS)}")
        if self.grid is not None and self.grid not in GRIDS:
            raise ValueError(f"unknown sigma grid {self.grid!r}; allowed: {', '.join(GRIDS)}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta={self.eta!r} is out of range; allowed: 0 to 1")
        if not 0.0 <= self.guidance <= 50.0:
            raise ValueError(f"guidance={self.guidance!r} is out of range; allowed: 0 to 50")


@dataclass
class Trajectory:
    """What a sampler visited: its timesteps (code t for ddpm/ddim, the noise level sigma for the EDM samplers),
    x_t (K, B, ...) before each step and x0_hat (K, B, ...)."""

    timesteps: list[int] = field(default_factory=list)
    x_t: list[Tensor] = field(default_factory=list)
    x0_hat: list[Tensor] = field(default_factory=list)

    def record(self, i: int, t: int, x_t: Tensor, x0_hat: Tensor) -> None:
        self.timesteps.append(t)
        self.x_t.append(x_t.detach().cpu())
        self.x0_hat.append(x0_hat.detach().cpu())


@dataclass
class Run:
    config: RunConfig
    schedule: NoiseSchedule
    net: nn.Module          # the EMA weights, in eval mode
    step: int
    history: list[dict]
    data_source: str = ""

    @property
    def is_image(self) -> bool:
        return self.config.model.kind == "unet"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        m = self.config.model
        return (m.channels, m.image_size, m.image_size) if self.is_image else (m.dim,)

    @property
    def num_classes(self) -> int:
        return getattr(self.config.model, "num_classes", 0)

    def balanced_labels(self, n: int) -> Tensor | None:
        """Labels cycling through the classes the run was trained on (None for unconditional runs)."""
        if not self.num_classes:
            return None
        classes = self.config.data.classes or tuple(range(self.num_classes))
        return torch.tensor(classes, dtype=torch.long).repeat(n // len(classes) + 1)[:n]

    @property
    def is_edm(self) -> bool:
        return self.config.train.objective == "edm"

    def _wrap(self, denoise, sampler: SamplerConfig):
        """Guidance and clipping: they work alike on (x_t, t, y) and (x, sigma, y) denoisers."""
        if sampler.guidance != 1.0:
            denoise = guided(denoise, sampler.guidance, self.net.null_label)
        clip = self.is_image if sampler.clip is None else sampler.clip
        return clipped(denoise) if clip else denoise

    def denoiser(self, sampler: SamplerConfig) -> Denoiser:
        """The network as a Denoiser over the discrete timesteps, with the sampler's clipping and guidance."""
        if self.is_edm:
            denoise = to_vp_denoiser(EDMPrecond(self.net, self.config.train.sigma_data), self.schedule)
        else:
            denoise = model_denoiser(self.net, self.schedule, self.config.train.objective)
        return self._wrap(denoise, sampler)

    def sigma_denoiser(self, sampler: SamplerConfig) -> SigmaDenoiser:
        """The network as an EDM denoiser D(x; sigma); a discrete model is rounded to its nearest timestep."""
        if self.is_edm:
            return self._wrap(EDMPrecond(self.net, self.config.train.sigma_data), sampler)
        return from_vp_denoiser(self.denoiser(sampler), self.schedule)

    def sigmas(self, sampler: SamplerConfig) -> Tensor:
        """The decreasing noise levels (ending with 0) an EDM sampler visits."""
        low, high = (EDM_SIGMA_MIN, EDM_SIGMA_MAX) if self.is_edm else schedule_sigma_range(self.schedule)
        low, high = sampler.sigma_min or low, sampler.sigma_max or high
        grid = sampler.grid or ("logsnr" if sampler.name == "dpmpp2m" else "karras")
        if grid == "logsnr":
            return logsnr_sigmas(sampler.steps, low, high)
        return karras_sigmas(sampler.steps, low, high, sampler.rho)

    def timesteps(self, sampler: SamplerConfig) -> list[int]:
        return spaced_timesteps(self.schedule.T, sampler.steps, sampler.spacing)

    def sample(self, n: int, sampler: SamplerConfig = SamplerConfig(), *, seed: int = 0, y: Tensor | None = None,
               batch_size: int = 4096, trajectory: Trajectory | None = None,
               callback: StepCallback | None = None) -> Tensor:
        """n samples (n, *sample_shape) on CPU; sample i depends only on (seed, i), not on n or batch_size.
        callback(i, t or sigma, x_t, x0_hat) sees every step of every batch (a light observer; trajectory stores)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"number of samples n={n!r} is out of range; allowed: integers >= 1")
        if trajectory is not None and n > batch_size:
            raise ValueError(f"a trajectory is recorded for one batch: n={n} must be <= batch_size={batch_size}")
        if trajectory is not None and callback is not None:
            raise ValueError("pass a trajectory or a callback, not both")
        callback = trajectory.record if trajectory is not None else callback
        device = next(self.net.parameters()).device
        out = []
        for start in range(0, n, batch_size):
            seeds = [seed * SEED_STRIDE + i for i in range(start, min(n, start + batch_size))]
            y_batch = None if y is None else y[start:start + len(seeds)].to(device)
            out.append(self._sample_batch(seeds, sampler, y_batch, callback, device).cpu())
        return torch.cat(out)

    def _sample_batch(self, seeds: list[int], sampler: SamplerConfig, y: Tensor | None,
                      callback: StepCallback | None, device: torch.device) -> Tensor:
        noise = SeededNoise(seeds, self.sample_shape, device)
        x_T = noise()
        if sampler.name in SIGMA_SAMPLERS:
            churn = Churn(sampler.S_churn, sampler.S_min, math.inf if sampler.S_max is None else sampler.S_max,
                          sampler.S_noise)
            return sample_sigma(sampler.name, self.sigma_denoiser(sampler), x_T, self.sigmas(sampler), y=y,
                                noise=noise, callback=callback, churn=churn)
        denoise, ts = self.denoiser(sampler), self.timesteps(sampler)
        if sampler.name == "ddpm":
            return ddpm_sample(denoise, self.schedule, x_T, ts, noise=noise, y=y, variance=sampler.variance,
                               callback=callback)
        return ddim_sample(denoise, self.schedule, x_T, ts, eta=sampler.eta, noise=noise, y=y, callback=callback)
