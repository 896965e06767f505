"""A trained run (config, schedule, EMA network) and how to draw samples from it with any registered sampler.

Every run offers the three spaces samplers walk, whatever its objective: discrete timesteps (ddpm, ddim), EDM
sigmas (euler, heun, dpmpp2m) and flow times (flow_euler, flow_midpoint); core.flow holds the conversions.
"""

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from diffusion.config import RunConfig
from diffusion.core.denoisers import Denoiser, X0Observer, clipped, guided, model_denoiser, projected
from diffusion.core.edm import (
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    EDMPrecond,
    SigmaDenoiser,
    continuous_vp_denoiser,
    equal_error_sigmas,
    flow_sigmas,
    karras_sigmas,
    logsnr_sigmas,
    schedule_sigma_range,
    to_vp_denoiser,
)
from diffusion.core.flow_matching import (
    FlowDenoiser,
    Velocity,
    denoiser_of_velocity,
    flow_from_sigma,
    network_velocity,
    sigma_from_flow,
    time_of_sigma,
    uniform_flow_times,
    velocity_of_denoiser,
    vp_from_flow,
)
from diffusion.core.schedules import NoiseSchedule, spaced_timesteps
from diffusion.core.time import TIME_OF_SPACE, Clip, FlowTime, Sigma, Timestep
from diffusion.data import data_radius, toy_for
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import Space, sampler_spec
from diffusion.sampling.vp import SeededNoise, StepCallback

SEED_STRIDE = 1_000_000  # sample i of seed s draws from seed s * SEED_STRIDE + i


def balanced_labels(config: RunConfig, n: int) -> Tensor | None:
    """n labels cycling through the classes a run of config is trained on (None for unconditional runs): how
    conditional runs are sampled, and so how their floors are drawn (metrics.protocol.stratify)."""
    num_classes = getattr(config.model, "num_classes", 0)
    if not num_classes:
        return None
    classes = config.data.classes or tuple(range(num_classes))
    return torch.tensor(classes, dtype=torch.long).repeat(n // len(classes) + 1)[:n]


@dataclass
class Trajectory:
    """What a sampler visited, one entry per network evaluation it showed. `times` holds one kind of time, the one
    of its space (core.time): Timestep ints (code index t) for "timesteps" (ddpm, ddim), Sigma floats for "sigmas"
    (euler, heun, dpmpp2m), FlowTime floats in [0, 1] for "flow" (flow_euler, flow_midpoint); `time_name` says which.
    x_t (K, B, ...) before each step, in the sampler's own space, and x0_hat (K, B, ...)."""

    space: Space = "timesteps"
    times: list[Timestep] | list[Sigma] | list[FlowTime] = field(default_factory=list)
    x_t: list[Tensor] = field(default_factory=list)
    x0_hat: list[Tensor] = field(default_factory=list)

    @property
    def time_name(self) -> str:
        return TIME_OF_SPACE[self.space]

    def record(self, i: int, time: Timestep | Sigma | FlowTime, x_t: Tensor, x0_hat: Tensor) -> None:
        self.times.append(int(time) if self.space == "timesteps" else float(time))
        self.x_t.append(x_t.detach().cpu())
        self.x0_hat.append(x0_hat.detach().cpu())

    def paper_timesteps(self) -> list[int]:
        """The paper timestep t + 1 of each entry (discrete samplers only)."""
        if self.space != "timesteps":
            raise ValueError(f"a trajectory in the {self.space!r} space has noise levels, not timesteps")
        return [int(t) + 1 for t in self.times]


@dataclass
class Run:
    config: RunConfig
    schedule: NoiseSchedule
    net: nn.Module          # the EMA weights, in eval mode
    step: int
    history: list[dict]
    data_source: str = ""
    observe_x0: X0Observer | None = None   # sees each raw 2D x0_hat before its projection (explore.study.Extremes)

    def __post_init__(self):
        if not self.is_image:
            toy_for(self.config.data)    # a custom 2D set becomes known by name (metrics, densities) in this process

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
        return balanced_labels(self.config, n)

    @property
    def is_edm(self) -> bool:
        return self.config.train.objective == "edm"

    @property
    def is_flow(self) -> bool:
        return self.config.train.objective == "flow"

    @property
    def x0_radius(self) -> float:
        """2D runs: the radius of their training set (data.data_radius), the ball x0_hat is projected onto."""
        if self.is_image:
            raise ValueError("an image run has no data radius: its x0_hat is clipped to [-1, 1]")
        return data_radius(self.config.data)

    def clip_mode(self, sampler: SamplerConfig) -> Clip:
        """The sampler's Clip mode on this run: auto is clamp for images and ball for 2D; ValueError for a mode the
        data cannot take (a ball for images, which have no data radius; [-1, 1] for 2D sets, which are not in it)."""
        own = Clip.CLAMP if self.is_image else Clip.BALL
        if sampler.clip == Clip.AUTO:
            return own
        if sampler.clip not in (own, Clip.NONE):
            kind = "an image" if self.is_image else "a 2D"
            raise ValueError(f"clip={sampler.clip.value!r} does not apply to {kind} run; "
                             f"allowed: auto, {own.value}, none")
        return sampler.clip

    def _wrap(self, denoise, sampler: SamplerConfig):
        """Guidance, then the Clip mode: images to [-1, 1], 2D x0_hat onto the ball of the training set's radius,
        or none. They work alike on (x_t, t, y), (x, sigma, y) and flow (x_t, t, y) denoisers."""
        if sampler.guidance != 1.0:
            denoise = guided(denoise, sampler.guidance, self.net.null_label)
        mode = self.clip_mode(sampler)
        if mode == Clip.NONE:
            return denoise
        return clipped(denoise) if mode == Clip.CLAMP else projected(denoise, self.x0_radius, self.observe_x0)

    def denoiser(self, sampler: SamplerConfig) -> Denoiser:
        """The network as a Denoiser over the discrete timesteps, with the sampler's clipping and guidance (a flow
        run at the flow point of each timestep's alpha_bar: exact, no rounding)."""
        if self.is_flow:
            return vp_from_flow(self.flow_denoiser(sampler), self.schedule.alpha_bar)
        if self.is_edm:
            denoise = to_vp_denoiser(EDMPrecond(self.net, self.config.train.sigma_data), self.schedule)
        else:
            denoise = model_denoiser(self.net, self.schedule, self.config.train.objective)
        return self._wrap(denoise, sampler)

    def sigma_denoiser(self, sampler: SamplerConfig) -> SigmaDenoiser:
        """The network as an EDM denoiser D(x; sigma), with the sampler's clipping and guidance; a discrete model at
        the fractional timestep of sigma (core.edm.continuous_vp_denoiser), as k-diffusion's discrete wrappers."""
        if self.is_flow:
            return sigma_from_flow(self.flow_denoiser(sampler))
        return self._wrap(self._continuous_sigma_denoiser(), sampler)

    def _continuous_sigma_denoiser(self) -> SigmaDenoiser:
        """A diffusion run's D(x; sigma), smooth in sigma (a discrete model at fractional timesteps)."""
        if self.is_edm:
            return EDMPrecond(self.net, self.config.train.sigma_data)
        return continuous_vp_denoiser(self.net, self.schedule, self.config.train.objective)

    def flow_denoiser(self, sampler: SamplerConfig) -> FlowDenoiser:
        """The network as a flow denoiser (x_t, t, y) -> x0_hat on x_t = (1 - t) x0 + t eps, with the sampler's
        clipping and guidance; a diffusion run through its continuous-time D(x; sigma) at sigma = t / (1 - t)."""
        if self.is_flow:
            return self._wrap(denoiser_of_velocity(network_velocity(self.net)), sampler)
        return self._wrap(flow_from_sigma(self._continuous_sigma_denoiser()), sampler)

    def velocity(self) -> Velocity:
        """dx_t/dt of the probability-flow ODE in flow time, unguided and unclipped (what the likelihood integrates
        over flow_range()): a flow network's own output; (x_t - x0_hat) / t for a diffusion run."""
        if self.is_flow:
            return network_velocity(self.net)
        return velocity_of_denoiser(flow_from_sigma(self._continuous_sigma_denoiser()))

    def _sigma_range(self) -> tuple[float, float]:
        if self.is_flow or self.is_edm:
            return EDM_SIGMA_MIN, EDM_SIGMA_MAX
        return schedule_sigma_range(self.schedule)

    def flow_range(self) -> tuple[float, float]:
        """(t_min, t_max) in flow time where the model is defined: (0, 1) for a flow run; a diffusion run's sigma
        range (EDM's 0.002 to 80, or its schedule's, see schedule_sigma_range) at t = sigma / (1 + sigma)."""
        if self.is_flow:
            return 0.0, 1.0
        low, high = self._sigma_range()
        return time_of_sigma(low), time_of_sigma(high)

    def flow_times(self, sampler: SamplerConfig) -> Tensor:
        """The flow times (steps + 1,) float64 a flow sampler visits: those of sigmas(sampler); on the flow grid of a
        flow run, uniform from t = 1 (pure noise) down to its smallest noise level, then 0."""
        if self.is_flow and sampler.sigma_grid == "flow" and sampler.sigma_max is None:
            return uniform_flow_times(sampler.steps, 1.0, time_of_sigma(sampler.sigma_min or self._sigma_range()[0]))
        return time_of_sigma(self.sigmas(sampler))

    def sigmas(self, sampler: SamplerConfig) -> Tensor:
        """The decreasing noise levels (steps + 1,) an EDM sampler visits: steps levels from the model's largest to its
        smallest (EDM's 0.002 to 80, cut to a discrete schedule's own range), then 0, the step that lands on x0_hat."""
        low, high = self._sigma_range()
        low, high = sampler.sigma_min or low, sampler.sigma_max or high
        if sampler.sigma_grid == "logsnr":
            return logsnr_sigmas(sampler.steps, low, high)
        if sampler.sigma_grid == "flow":
            return flow_sigmas(sampler.steps, low, high)
        if sampler.sigma_grid == "equal_error":
            return equal_error_sigmas(sampler.steps, low, high)
        return karras_sigmas(sampler.steps, low, high, sampler.rho)

    def timesteps(self, sampler: SamplerConfig) -> list[int]:
        return spaced_timesteps(self.schedule.T, sampler.steps, sampler.timestep_spacing, self.schedule.sigma)

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
        if trajectory is not None:
            trajectory.space, callback = sampler.space, trajectory.record
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
        return sampler_spec(sampler.name).run(self, sampler, noise(), y=y, noise=noise, callback=callback)
