"""Diffusion and flow matching side by side, for the pages, the study and benchmarks/bench_flow.py: paired configs
(same network, data, budget and seed), paths from the same initial noises in flow time, velocity fields (learned and
exact), quality against NFE, Liu et al.'s straightness, one reflow step, and density maps by the ODE likelihood.

Every function is seeded and returns numpy arrays or DataFrames; a diffusion run is read in flow time through
Run.flow_denoiser / Run.velocity (core.flow: sigma = t / (1 - t)), so both families are drawn in one space.
"""

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from diffusion.config import RunConfig
from diffusion.core.edm import EDM_SIGMA_MIN
from diffusion.core.flow_matching import time_of_sigma, uniform_flow_times
from diffusion.core.oracles import flow_denoiser, flow_velocity
from diffusion.data.toy_datasets import density_mixture
from diffusion.explore.nfe_study import NFE_TARGETS, study
from diffusion.explore.toy2d_experiments import FIELD_EXTENT, grid_points
from diffusion.metrics.likelihood import end_of, run_log_likelihood
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.flow_samplers import flow_euler_sample
from diffusion.sampling.run import SEED_STRIDE, Run, Trajectory
from diffusion.sampling.vp import SeededNoise
from diffusion.training.trainer import Trainer

SIDE_BY_SIDE_SAMPLERS = ("flow_euler", "flow_midpoint", "ddim", "heun", "dpmpp2m")
STRAIGHTNESS_STEPS = 100      # Euler steps of the path straightness is measured along
PATH_GRID = "flow"       # paths are drawn uniform in flow time t, as Liu et al. 2022 integrate them
COUPLING_SAMPLER = SamplerConfig("flow_euler", steps=100, grid=PATH_GRID)   # how reflow pairs a noise with its sample


def paired_configs(config: RunConfig, diffusion_objective: str = "eps") -> dict[str, RunConfig]:
    """{"diffusion": config trained on `diffusion_objective`, "flow": the flow objective}, all else equal (data,
    network, schedule, budget, seed, label dropout): the fair pair to train and compare."""
    train = replace(config.train, time_sampling="uniform", logit_mean=0.0, logit_std=1.0)
    return {"diffusion": replace(config, train=replace(train, objective=diffusion_objective)),
            "flow": replace(config, train=replace(train, objective="flow", weighting="none"))}


@dataclass(frozen=True)
class FlowPaths:
    """Paths in flow time from shared initial noises: times (K + 1,) from t_max to 0, x (K + 1, n, ...) the point
    at each time (x[-1] the samples), x0_hat (K, n, ...) the prediction made at each step."""

    times: np.ndarray
    x: np.ndarray
    x0_hat: np.ndarray


def flow_paths(run: Run, n: int, steps: int = 50, seed: int = 0, y: Tensor | None = None) -> FlowPaths:
    """The flow_euler paths of samples 0..n-1 of `seed` (x_{t_max} = t_max z, the same z for every run)."""
    traj = Trajectory()
    out = run.sample(n, SamplerConfig("flow_euler", steps=steps, grid=PATH_GRID), seed=seed, y=y, trajectory=traj, batch_size=n)
    return FlowPaths(np.array(traj.times + [0.0]), torch.stack(traj.x_t + [out]).numpy(),
                     torch.stack(traj.x0_hat).numpy())


def exact_flow_paths(dataset: str, n: int, steps: int = 50, seed: int = 0) -> FlowPaths | None:
    """The exact flow's Euler paths (core.oracles.flow_denoiser of data.toy2d.density_mixture) from the same noises
    as flow_paths(run, n, steps, seed) of a flow run on `dataset`; None for checkerboard (no known density)."""
    mixture = density_mixture(dataset)
    if mixture is None:
        return None
    traj = Trajectory(space="flow")
    times = uniform_flow_times(steps, 1.0, time_of_sigma(EDM_SIGMA_MIN))       # a flow run's flow grid
    z = _unit_noise((mixture.dim,), n, seed)
    out = flow_euler_sample(flow_denoiser(mixture), z, times, callback=traj.record)
    return FlowPaths(times.numpy(), torch.stack(traj.x_t + [out]).numpy(), torch.stack(traj.x0_hat).numpy())


@torch.no_grad()
def velocity_field(run: Run, t: float, size: int = 17, extent: float = FIELD_EXTENT) -> dict[str, np.ndarray]:
    """On a size x size grid of x_t over [-extent, extent]^2 at flow time t: {"x": (size^2, 2), "learned": the run's
    v (size^2, 2), and "exact": E[eps - x0 | x_t] where the set's law is known (data.toy2d.density_mixture: the
    Gaussian sets exactly, the curve sets by quadrature)}. t must lie in the run's flow_range, t > 0."""
    t_min, t_max = run.flow_range()
    if run.is_image or not (0 < t <= 1 and t_min <= t <= t_max):
        raise ValueError(f"t={t!r} is out of range; allowed: 2D runs, flow times in ({t_min:.4g}, {t_max:.4g}]")
    x = torch.from_numpy(grid_points(size, extent))
    times = torch.full((x.shape[0],), float(t))
    out = {"x": x.numpy(), "learned": run.velocity()(x, times, None).numpy()}
    mixture = density_mixture(run.config.data.dataset)
    if mixture is not None:
        out["exact"] = flow_velocity(mixture)(x, times, None).numpy()
    return out


@dataclass(frozen=True)
class Straightness:
    """Liu et al. 2022's straightness S = int_0^1 E ||(x_1 - x_0) - v(x_t, t)||^2 dt per dimension (0: straight
    paths), its standard error over the n paths, and the protocol (n, Euler steps)."""

    value: float
    se: float
    n: int
    steps: int


def straightness(run: Run, n: int = 1000, steps: int = STRAIGHTNESS_STEPS, seed: int = 0,
                 y: Tensor | None = None) -> Straightness:
    """S along the run's own flow_euler paths (Liu et al. 2022, sec. 2.2), in flow time for every run: the velocity
    (x_t - x0_hat) / t at each step against the straight line from x_{t_max} to the sample, each step weighted by
    its length (Riemann sum over the Euler grid), averaged over dimensions."""
    traj = Trajectory()
    out = run.sample(n, SamplerConfig("flow_euler", steps=steps, grid=PATH_GRID), seed=seed, y=y, trajectory=traj, batch_size=n)
    times = torch.tensor(traj.times + [0.0], dtype=torch.float64)
    straight = (traj.x_t[0] - out).double() / times[0]                                  # (n, ...)
    per_path = torch.zeros(n, dtype=torch.float64)
    for i, (x_t, x0) in enumerate(zip(traj.x_t, traj.x0_hat)):
        v = (x_t - x0).double() / times[i]
        per_path += (times[i] - times[i + 1]) / times[0] * (straight - v).square().reshape(n, -1).mean(1)
    return Straightness(float(per_path.mean()), float(per_path.std() / math.sqrt(n)), n, steps)


def unit_noise(run: Run, n: int, seed: int = 0) -> Tensor:
    """The standard normal z (n, *sample_shape) that samples 0..n-1 of `seed` start from (Run.sample's streams)."""
    return _unit_noise(run.sample_shape, n, seed)


def _unit_noise(shape: tuple[int, ...], n: int, seed: int) -> Tensor:
    return SeededNoise([seed * SEED_STRIDE + i for i in range(n)], shape)()


def coupling(run: Run, n: int, seed: int = 0, y: Tensor | None = None,
             sampler: SamplerConfig = COUPLING_SAMPLER) -> tuple[Tensor, Tensor]:
    """(z, x): n unit noises and the samples the run's deterministic sampler makes of them: Liu et al.'s coupling
    (Z_0, ODE(Z_0)) in our direction (t = 1 noise, t = 0 data)."""
    if sampler.name == "ddpm" or sampler.eta > 0 or sampler.S_churn > 0:
        raise ValueError(f"sampler {sampler.name!r} with its settings is stochastic; reflow needs a deterministic "
                         "ODE sampler (flow_euler, flow_midpoint, ddim with eta 0, euler, heun, dpmpp2m)")
    return unit_noise(run, n, seed), run.sample(n, sampler, seed=seed, y=y)


def reflow(run: Run, n_pairs: int, *, steps: int | None = None, seconds: float | None = None, seed: int = 0,
           sampler: SamplerConfig = COUPLING_SAMPLER, train_seed: int | None = None) -> Run:
    """One reflow step (Liu et al. 2022, Algorithm 1, k = 1): draw n_pairs (z, x) from the run's ODE (coupling),
    then train a flow model on those pairs, x_t = (1 - t) x + t z with target z - x, starting from the run's EMA
    weights (a diffusion teacher's too: the network is the same, only its target changes) and with its training
    settings, for `steps` steps or `seconds`. Conditional runs are paired per label (balanced over their classes)."""
    if steps is None and seconds is None:
        raise ValueError("reflow needs a budget: steps or seconds")
    y = run.balanced_labels(n_pairs)
    z, x = coupling(run, n_pairs, seed, y, sampler)
    train = replace(run.config.train, objective="flow", weighting="none", steps=steps or run.config.train.steps,
                    seed=run.config.train.seed if train_seed is None else train_seed)
    trainer = Trainer(replace(run.config, train=train), x, y, noise=z,
                      data_source=f"reflow: {n_pairs} (noise, sample) pairs of a {run.config.train.objective} run "
                                  f"at step {run.step} ({sampler.name}, {sampler.steps} steps)")
    state = run.net.state_dict()
    trainer.model.load_state_dict(state)
    trainer.ema.load_state_dict(state)
    trainer.run(steps=steps, seconds=seconds)
    return trainer.as_run()


def quality_vs_nfe(runs: Mapping[str, Run], samplers: Sequence[str] = SIDE_BY_SIDE_SAMPLERS,
                   nfe_targets: Sequence[int] = NFE_TARGETS[:4], n: int = 500, seed: int = 0) -> pd.DataFrame:
    """study() of each run over the same samplers, NFE targets and initial noises (seed), one frame with a `run`
    column first: quality (2D: W1, KL both ways; images: FID) against NFE for diffusion and flow side by side."""
    frames = [study(run, samplers, nfe_targets, n=n, seed=seed, reference=False).assign(run=name)
              for name, run in runs.items()]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["run", *[c for c in frame.columns if c != "run"]]]


def density_map(run: Run, size: int = 41, extent: float = FIELD_EXTENT) -> dict[str, np.ndarray]:
    """The model's density exp(log p) on a size x size grid over [-extent, extent]^2 by the ODE likelihood (exact
    divergence), at the same end as every reported likelihood (metrics.likelihood.end_of), beside the true density
    blurred to that end where the set's law is known: {"x": (size^2, 2), "model": (size^2,), "true": (size^2,) or
    absent, "nfe": the solver's evaluations}. 2D runs; cost ~size^2 likelihoods (41 x 41: seconds on a CPU)."""
    if run.is_image:
        raise ValueError("density maps are for 2D runs; image runs have bits/dim (metrics.likelihood.bits_per_dim)")
    x, end = torch.from_numpy(grid_points(size, extent)), end_of(run)
    likelihood = run_log_likelihood(run, x, t_min=end["t_min"])
    out = {"x": x.numpy(), "model": likelihood.log_prob.exp().numpy(), "nfe": likelihood.nfe}
    mixture = density_mixture(run.config.data.dataset)
    if mixture is not None:
        out["true"] = mixture.blurred(end["sigma_min"]).log_prob(x).exp().numpy()
    return out
