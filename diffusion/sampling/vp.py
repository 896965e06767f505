"""Samplers: pure functions of a Denoiser, a schedule, x_T and an explicit decreasing list of timesteps.

They keep no state between calls. Randomness comes in as a `Noise` (a callable returning the next standard
normal draw shaped like x), so the same noise can drive two samplers (DDIM eta=1 == DDPM path by path).
"""

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from diffusion.core.denoisers import Denoiser
from diffusion.core.forward import posterior, x0_to_eps
from diffusion.core.schedules import NoiseSchedule
from diffusion.core.time import Timestep

Noise = Callable[[], Tensor]
StepCallback = Callable[[int, Timestep, Tensor, Tensor], None]  # (i, t, x_t, x0_hat)
Variance = Literal["beta_tilde", "beta"]
VARIANCES: tuple[str, ...] = ("beta_tilde", "beta")


class SeededNoise:
    """Per-sample noise streams: row i draws only from a generator seeded with seeds[i], so a sample depends
    on its seed and not on the batch it is in (as EDM's StackedRandomGenerator). Draws are made `chunk`
    steps at a time per generator, a constant, so the stream does not depend on the batch size either."""

    def __init__(self, seeds: Sequence[int], shape: Sequence[int], device: torch.device | str = "cpu",
                 chunk: int = 32):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.shape, self.device, self.chunk = tuple(shape), torch.device(device), chunk
        self._buffer: Tensor | None = None
        self._used = chunk

    def __call__(self) -> Tensor:
        if self._used == self.chunk:
            draws = [torch.randn((self.chunk, *self.shape), generator=g) for g in self.generators]
            self._buffer = torch.stack(draws, dim=1).to(self.device)   # (chunk, B, *shape)
            self._used = 0
        self._used += 1
        return self._buffer[self._used - 1]


def _alpha_bar_pairs(schedule: NoiseSchedule, timesteps: Sequence[int]) -> list[tuple[int, Tensor, Tensor]]:
    """(t, alpha_bar_t, alpha_bar_prev) for each visited t; the step after the last one is x_0 (alpha_bar = 1)."""
    ab = schedule.alpha_bar.double()
    prev = [ab[s] for s in timesteps[1:]] + [ab.new_tensor(1.0)]
    return [(t, ab[t], p) for t, p in zip(timesteps, prev)]


def _check_timesteps(schedule: NoiseSchedule, timesteps: Sequence[int]) -> None:
    ts = list(timesteps)
    if not ts or any(b >= a for a, b in zip(ts, ts[1:])) or ts[0] >= schedule.T or ts[-1] < 0:
        raise ValueError(f"timesteps must be strictly decreasing within 0..{schedule.T - 1}; got {ts[:5]}...")


def _predict_x0(denoise: Denoiser, x: Tensor, t: int, y: Tensor | None, i: int,
                callback: StepCallback | None) -> Tensor:
    """x0_hat at (x_t, t), shown to the callback."""
    x0 = denoise(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long), y)
    if callback is not None:
        callback(i, t, x, x0)
    return x0


@torch.no_grad()
def ddpm_sample(denoise: Denoiser, schedule: NoiseSchedule, x_T: Tensor, timesteps: Sequence[int], *,
                noise: Noise, y: Tensor | None = None, variance: Variance = "beta_tilde",
                callback: StepCallback | None = None) -> Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), x_{t-1} ~ N(mu_theta, sigma_t^2 I) with mu_theta the
    posterior mean at x0_hat (eq. 7, equal to eq. 11) and sigma_t^2 = beta_tilde_t or beta_t. Over a subsequence
    of timesteps the step's beta is the respaced 1 - alpha_bar_t / alpha_bar_prev (Nichol & Dhariwal 2021)."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown DDPM variance {variance!r}; allowed: {', '.join(VARIANCES)}")
    _check_timesteps(schedule, timesteps)
    x = x_T
    for i, (t, ab_t, ab_prev) in enumerate(_alpha_bar_pairs(schedule, timesteps)):
        x0 = _predict_x0(denoise, x, t, y, i, callback)
        mean, var = posterior(x0, x, ab_t, ab_prev)   # float64 0-dim coefficients keep x's dtype
        if variance == "beta":
            var = 1 - ab_t / ab_prev
        x = mean if i == len(timesteps) - 1 else mean + var.sqrt() * noise()
    return x


@torch.no_grad()
def ddim_sample(denoise: Denoiser, schedule: NoiseSchedule, x_T: Tensor, timesteps: Sequence[int], *,
                eta: float = 0.0, noise: Noise | None = None, y: Tensor | None = None,
                callback: StepCallback | None = None) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12 and 16). eta=0 is deterministic; eta=1 over every step is DDPM ancestral
    sampling with the beta_tilde variance."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta={eta!r} is out of range; allowed: 0 to 1")
    if eta > 0 and noise is None:
        raise ValueError("DDIM with eta > 0 is stochastic: pass noise")
    _check_timesteps(schedule, timesteps)
    x = x_T
    for i, (t, ab_t, ab_prev) in enumerate(_alpha_bar_pairs(schedule, timesteps)):
        x0 = _predict_x0(denoise, x, t, y, i, callback)
        eps = x0_to_eps(x, x0, ab_t)                   # float64 0-dim coefficients keep x's dtype
        sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and i < len(timesteps) - 1:
            x = x + sigma * noise()
    return x
