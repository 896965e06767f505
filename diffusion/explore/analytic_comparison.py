"""The analytic denoisers beside a trained image network (core.analytic_denoisers): each as a Run on the network's own
training set and schedule, so any registered sampler draws from it; samples of all from the same initial noises with
their distance to the nearest training image; and how closely the network's x0_hat follows each one, noise level by
noise level, on noised held-out images (x_t ~ p_t).

The memorisation measure is the project's (metrics.images.memorisation_ratio): d1, the L2 distance (pixels in
[-1, 1]) from a sample to its nearest training image, and d1 over the median d1 of held-out real images (~0: a copy
of a training image, ~1: as far from the training set as fresh data).
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from diffusion.core.analytic_denoisers import EmpiricalDenoiser, GaussianDenoiser, PatchDenoiser
from diffusion.core.forward import q_sample
from diffusion.explore.image_experiments import holdout_images, training_set
from diffusion.metrics.image_metrics import COPY_THRESHOLD, memorisation_ratio
from diffusion.metrics.intervals import Interval, normal, wilson
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

ANALYTIC = ("empirical", "gaussian", "patch")
LABELS = {"network": "trained U-Net", "empirical": "optimal (empirical) denoiser", "gaussian": "Gaussian denoiser",
          "patch": "local equivariant patch denoiser (ELS)"}
PATCH_SIZE = 11             # of 3 to 13 on the shipped digit-0 run, the closest to the network's samples without copies
MAX_PATCHES = 8192          # patches drawn from the training set's N x H x W for the ELS machine (cost: linear)
AGREEMENT_TIMESTEPS = (0, 9, 29, 59, 99, 199, 299, 399, 499, 599, 699, 799, 899, 999)   # code t (paper t + 1)


def analytic_net(kind: str, images: Tensor, alpha_bar: Tensor, patch_size: int = PATCH_SIZE,
                 max_patches: int | None = MAX_PATCHES) -> nn.Module:
    """The analytic x0-prediction network `kind` (one of ANALYTIC) of training images (N, C, H, W) in [-1, 1]."""
    if kind == "empirical":
        return EmpiricalDenoiser(images, alpha_bar)
    if kind == "gaussian":
        return GaussianDenoiser.of_images(images, alpha_bar)
    if kind == "patch":
        return PatchDenoiser(images, alpha_bar, patch_size, max_patches=max_patches)
    raise ValueError(f"unknown analytic denoiser {kind!r}; allowed: {', '.join(ANALYTIC)}")


def analytic_run(run: Run, kind: str, patch_size: int = PATCH_SIZE, max_patches: int | None = MAX_PATCHES) -> Run:
    """A Run whose "network" is the analytic denoiser `kind` of `run`'s training set, on `run`'s schedule: every
    registered sampler (and the image pages' clipping of x0_hat to [-1, 1]) applies to it unchanged."""
    if not run.is_image or run.num_classes:
        raise ValueError("analytic denoisers are built for unconditional image runs (one class or a whole set)")
    images = training_set(run.config.data).x
    net = analytic_net(kind, images, run.schedule.alpha_bar, patch_size, max_patches).eval()
    config = replace(run.config, train=replace(run.config.train, objective="x0"))
    size = f", {patch_size}x{patch_size} patches" if kind == "patch" else ""
    return Run(config, run.schedule, net, 0, [], f"{LABELS[kind]} of {len(images):,} training images{size}")


@dataclass(frozen=True)
class SampleSet:
    """One denoiser's samples and, per sample, its nearest training image, d1 and d1 over the held-out median."""

    samples: Tensor            # (n, C, H, W) in [-1, 1]
    nearest: Tensor            # (n,) index into the training set
    distance: Tensor           # (n,) d1
    ratio: Tensor              # (n,) d1 / median held-out d1

    def copies(self) -> Interval:
        """Share of samples closer to a training image than COPY_THRESHOLD times the typical distance (Wilson)."""
        return wilson(int((self.ratio < COPY_THRESHOLD).sum()), len(self.ratio))


def memorisation(samples: Tensor, train: Tensor, holdout: Tensor) -> SampleSet:
    memo = memorisation_ratio(samples, train, holdout)
    return SampleSet(samples, memo.nearest, memo.distance, memo.ratio)


def analytic_runs(run: Run, kinds: tuple[str, ...] = ANALYTIC, patch_size: int = PATCH_SIZE) -> dict[str, Run]:
    """analytic_run of each kind, by kind."""
    return {k: analytic_run(run, k, patch_size) for k in kinds}


def side_by_side(run: Run, n: int, sampler: SamplerConfig, seed: int = 0, others: dict[str, Run] | None = None
                 ) -> dict[str, SampleSet]:
    """n samples of the network and of each analytic denoiser (others: analytic_runs by default), all from the same
    n initial noises (Run.sample's seed bank), each measured against the network's training set."""
    data = run.config.data
    train, holdout = training_set(data).x, holdout_images(data)
    runs = {"network": run} | (analytic_runs(run) if others is None else others)
    return {name: memorisation(r.sample(n, sampler, seed=seed), train, holdout) for name, r in runs.items()}


def summary(sets: dict[str, SampleSet]) -> pd.DataFrame:
    """One row per denoiser: median d1, median ratio, share of copies (Wilson interval) and, when the network is among
    them, the RMS pixel distance of each sample to the network's sample from the same noise (Kamb & Ganguli's test)."""
    rows = []
    for name, s in sets.items():
        copies = s.copies()
        to_net = float(_per_image_mse(s.samples, sets["network"].samples).mean()) ** 0.5 if "network" in sets \
            else np.nan
        rows.append({"denoiser": LABELS.get(name, name), "n": len(s.ratio), "median d1": float(s.distance.median()),
                     "median d1 / typical": float(s.ratio.median()), "copies": copies.value,
                     "copies_low": copies.low, "copies_high": copies.high, "RMS to network": float(to_net)})
    return pd.DataFrame(rows)


def _per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().flatten(1).mean(1).double()                                         # (n,)


@torch.no_grad()
def agreement(run: Run, n: int = 32, timesteps: tuple[int, ...] = AGREEMENT_TIMESTEPS, seed: int = 0,
              others: dict[str, Run] | None = None) -> pd.DataFrame:
    """How far the network's x0_hat is from each analytic denoiser's at each noise level: the mean over x_t ~ p_t
    (n held-out images, noised with a seeded eps) of |D_theta(x_t, t) - D(x_t, t)|^2 per pixel, both clipped to
    [-1, 1] as the samplers see them, with its 95% interval (std / sqrt(n)). The row "truth" is the network's own
    error against the clean image, the scale the others read against. Columns: t (paper), sigma, denoiser, value,
    low, high."""
    data = run.config.data
    x0 = holdout_images(data)[:n]
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    clip = SamplerConfig()
    network = run.denoiser(clip)
    others = {k: r.denoiser(clip) for k, r in (analytic_runs(run) if others is None else others).items()}
    rows = []
    for t in timesteps:
        ab = run.schedule.alpha_bar[t]
        x_t, ts = q_sample(x0, ab, eps), torch.full((len(x0),), t)
        d_theta = network(x_t, ts, None)
        errors = {"truth": _per_image_mse(d_theta, x0)} | {k: _per_image_mse(d_theta, d(x_t, ts, None))
                                                            for k, d in others.items()}
        sigma = float(((1 - ab) / ab).sqrt())
        for name, e in errors.items():
            value = normal(float(e.mean()), float(e.std()) / len(e) ** 0.5, "std / sqrt(n)", lowest=0.0)
            rows.append({"t": t + 1, "sigma": sigma, "denoiser": name, "value": value.value, "low": value.low,
                         "high": value.high})
    return pd.DataFrame(rows)


def closest_by_noise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per noise level, the analytic denoiser the network is closest to (agreement's frame): t, sigma, closest."""
    analytic = frame[frame["denoiser"] != "truth"]
    best = analytic.loc[analytic.groupby("t")["value"].idxmin()]
    return best[["t", "sigma", "denoiser"]].rename(columns={"denoiser": "closest"}).reset_index(drop=True)
