"""The analytic denoisers beside a trained image network (core.analytic_denoisers): each as a Run on the network's own
training set and schedule, so any registered sampler draws from it; samples of all from the same initial noises with
their distance to the nearest training image; and how closely the network's x0_hat follows each one, noise level by
noise level, on noised held-out images (x_t ~ p_t).

Class-conditional runs get each denoiser per class (core.analytic_denoisers.ClassConditional): label y, the denoiser
of the class-y training images; the null label, the whole set's, so the network's guidance w applies to both sides
alike. Both sides sample the run's balanced labels (Run.balanced_labels) from the same noises.

The memorisation measure is the project's (metrics.images.memorisation_ratio): d1, the L2 distance (pixels in
[-1, 1]) from a sample to its nearest training image, and d1 over the median d1 of held-out real images (~0: a copy
of a training image, ~1: as far from the training set as fresh data). For conditional runs the nearest image is
sought in the whole training set, as the pages' memorisation section does: a copy is a copy whatever its class.
"""

import math
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor, nn

from diffusion.core.analytic_denoisers import ClassConditional, EmpiricalDenoiser, GaussianDenoiser, PatchDenoiser
from diffusion.core.forward import q_sample
from diffusion.explore.image_experiments import holdout_set, training_set
from diffusion.metrics.image_metrics import COPY_THRESHOLD, memorisation_ratio
from diffusion.metrics.intervals import Interval, median_interval, normal, t_interval, wilson
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

ANALYTIC = ("empirical", "gaussian", "patch")
LABELS = {"network": "trained U-Net", "empirical": "optimal (empirical) denoiser", "gaussian": "Gaussian denoiser",
          "patch": "local equivariant patch denoiser (ELS)"}
PATCH_SIZE = 11             # of 3 to 13 on the shipped digit-0 run, the closest to the network's samples without copies
MAX_PATCHES = 8192          # patches drawn from the training set's N x H x W for the ELS machine (cost: linear)
LARGE_PATCH_SIZE, LARGE_MAX_PATCHES = 7, 2048   # above 16x16 (4x the pixels; RGB: 3x the patch): 2-35 MB a class,
#   the most a public server holds for a run; at 32x32 the network is closer to larger patches (9+ for the shapes, 19+
#   for MNIST: 0.1-0.8 GB a class; docs/analytic-denoisers.md, "The patch size at 32x32")
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


def patch_settings(image_size: int) -> tuple[int, int]:
    """(patch size, patches per position group) of the ELS machine at this image size."""
    return (PATCH_SIZE, MAX_PATCHES) if image_size <= 16 else (LARGE_PATCH_SIZE, LARGE_MAX_PATCHES)


def analytic_run(run: Run, kind: str, patch_size: int | None = None, max_patches: int | None = None) -> Run:
    """A Run whose "network" is the analytic denoiser `kind` of `run`'s training set, on `run`'s schedule: every
    registered sampler (and the image pages' clipping of x0_hat to [-1, 1]) applies to it unchanged. A conditional
    run's is the class-conditional one (ClassConditional), guided as the network is. patch_size and max_patches
    default to patch_settings of the run's image size."""
    if not run.is_image:
        raise ValueError("analytic denoisers are built for image runs; this one is 2D (see explore.exact)")
    default_size, default_max = patch_settings(run.config.model.image_size)
    patch_size = default_size if patch_size is None else patch_size
    max_patches = default_max if max_patches is None else max_patches
    data = training_set(run.config.data)

    def build(images: Tensor) -> nn.Module:
        return analytic_net(kind, images, run.schedule.alpha_bar, patch_size, max_patches)
    net = ClassConditional(build, data.x, data.y, run.num_classes) if run.num_classes else build(data.x)
    config = replace(run.config, train=replace(run.config.train, objective="x0"))
    size = f", {patch_size}x{patch_size} patches" if kind == "patch" else ""
    per_class = ", per class" if run.num_classes else ""
    return Run(config, run.schedule, net.eval(), 0, [],
               f"{LABELS[kind]} of {len(data.x):,} training images{per_class}{size}")


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

    def columns(self) -> dict[str, float]:
        """n and the memorisation measure as flat columns, each with its _low and _high: median d1 and median d1 /
        typical (order-statistic intervals), copies (Wilson)."""
        return {"n": len(self.ratio), **median_interval(self.distance).columns("median d1"),
                **median_interval(self.ratio).columns("median d1 / typical"), **self.copies().columns("copies")}

    def part(self, rows: slice) -> "SampleSet":
        return SampleSet(self.samples[rows], self.nearest[rows], self.distance[rows], self.ratio[rows])


def memorisation(samples: Tensor, train: Tensor, holdout: Tensor) -> SampleSet:
    memo = memorisation_ratio(samples, train, holdout)
    return SampleSet(samples, memo.nearest, memo.distance, memo.ratio)


def analytic_runs(run: Run, kinds: tuple[str, ...] = ANALYTIC, patch_size: int | None = None) -> dict[str, Run]:
    """analytic_run of each kind, by kind."""
    return {k: analytic_run(run, k, patch_size) for k in kinds}


def side_by_side(run: Run, n: int, sampler: SamplerConfig, seed: int = 0, others: dict[str, Run] | None = None
                 ) -> dict[str, SampleSet]:
    """n samples of the network and of each analytic denoiser (others: analytic_runs by default), all from the same
    n initial noises (Run.sample's seed bank) and, for a conditional run, the same balanced labels under the
    sampler's guidance, each measured against the network's (whole) training set."""
    data, labels = run.config.data, run.balanced_labels(n)
    runs = {"network": run} | (analytic_runs(run) if others is None else others)
    samples = [r.sample(n, sampler, seed=seed, y=labels) for r in runs.values()]
    every = memorisation(torch.cat(samples), training_set(data).x, holdout_set(data).x)   # held-out search: once
    return {name: every.part(slice(i * n, (i + 1) * n)) for i, name in enumerate(runs)}


def denoiser_calls(run: Run, n: int, sampler: SamplerConfig) -> int:
    """Calls of an analytic denoiser per sampler step in side_by_side: one per label present (ClassConditional
    splits a batch by label), the null label's besides under guidance w != 1; one for an unconditional run."""
    labels = run.balanced_labels(n)
    if labels is None:
        return 1
    return len(labels.unique()) + (sampler.guidance != 1.0)


def summary(sets: dict[str, SampleSet]) -> pd.DataFrame:
    """One row per denoiser: median d1 and median ratio with their distribution-free intervals, share of copies
    (Wilson interval) and, when the network is among them, the RMS pixel distance of each sample to the network's
    sample from the same noise (Kamb & Ganguli's test: the square root of the mean per-image MSE and of its t
    interval's ends). Each `x` has its `x_low` and `x_high`."""
    rows = []
    for name, s in sets.items():
        rms = Interval(math.nan, math.nan, math.nan)
        if "network" in sets:
            mse = t_interval(_per_image_mse(s.samples, sets["network"].samples), lowest=0.0)
            rms = Interval(mse.value ** 0.5, mse.low ** 0.5, mse.high ** 0.5, "t interval, rooted")
        rows.append({"denoiser": LABELS.get(name, name), **s.columns(), **rms.columns("RMS to network")})
    return pd.DataFrame(rows)


def summary_text(summary: pd.DataFrame) -> pd.DataFrame:
    """summary() to read, one row per denoiser (the index) and four columns, each number with its 95% interval in its
    cell ('0.88 [0.61, 1.02]'); RMS to the network '—' on the network's own row."""
    def cells(key: str, form: str) -> list[str]:
        return [f"{r[key]:{form}} [{r[f'{key}_low']:{form}}, {r[f'{key}_high']:{form}}]" for _, r in summary.iterrows()]
    rms = cells("RMS to network", ".3g")
    return pd.DataFrame({
        "median d1": cells("median d1", ".3g"), "median d1 / typical": cells("median d1 / typical", ".2f"),
        "copies": cells("copies", ".0%"),
        "RMS to network": ["—" if name == LABELS["network"] or pd.isna(value) else cell
                           for name, value, cell in zip(summary["denoiser"], summary["RMS to network"], rms)]},
        index=pd.Index(summary["denoiser"], name="denoiser"))


def _per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().flatten(1).mean(1).double()                                         # (n,)


@torch.no_grad()
def agreement(run: Run, n: int = 32, timesteps: tuple[int, ...] = AGREEMENT_TIMESTEPS, seed: int = 0,
              others: dict[str, Run] | None = None) -> pd.DataFrame:
    """How far the network's x0_hat is from each analytic denoiser's at each noise level: the mean over x_t ~ p_t
    (n held-out images, noised with a seeded eps) of |D_theta(x_t, t) - D(x_t, t)|^2 per pixel, both clipped to
    [-1, 1] as the samplers see them, with its 95% interval (std / sqrt(n)). The row "truth" is the network's own
    error against the clean image, the scale the others read against. A conditional run's held-out images cycle
    through the classes and both sides are given their true labels, unguided (w = 1: the conditional denoisers).
    Columns: t (paper), sigma, denoiser, value, low, high."""
    x0, y = _held_out(run, n)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    clip = SamplerConfig()
    network = run.denoiser(clip)
    others = {k: r.denoiser(clip) for k, r in (analytic_runs(run) if others is None else others).items()}
    rows = []
    for t in timesteps:
        ab = run.schedule.alpha_bar[t]
        x_t, ts = q_sample(x0, ab, eps), torch.full((len(x0),), t)
        d_theta = network(x_t, ts, y)
        errors = {"truth": _per_image_mse(d_theta, x0)} | {k: _per_image_mse(d_theta, d(x_t, ts, y))
                                                            for k, d in others.items()}
        sigma = float(((1 - ab) / ab).sqrt())
        for name, e in errors.items():
            value = normal(float(e.mean()), float(e.std()) / len(e) ** 0.5, "std / sqrt(n)", lowest=0.0)
            rows.append({"t": t + 1, "sigma": sigma, "denoiser": name, "value": value.value, "low": value.low,
                         "high": value.high})
    return pd.DataFrame(rows)


def _held_out(run: Run, n: int) -> tuple[Tensor, Tensor | None]:
    """n held-out images and their labels (None for an unconditional run); a conditional run's take each class's
    first, then each class's second, and so on: balanced, whatever the split's order."""
    held = holdout_set(run.config.data)
    if not run.num_classes:
        return held.x[:n], None
    rank = torch.empty_like(held.y)
    for c in held.y.unique():
        rank[held.y == c] = torch.arange(int((held.y == c).sum()))
    order = torch.argsort(rank * run.num_classes + held.y)[:n]
    return held.x[order], held.y[order]


def closest_by_noise(frame: pd.DataFrame) -> pd.DataFrame:
    """Per noise level, the analytic denoiser the network is closest to (agreement's frame): t, sigma, closest."""
    analytic = frame[frame["denoiser"] != "truth"]
    best = analytic.loc[analytic.groupby("t")["value"].idxmin()]
    return best[["t", "sigma", "denoiser"]].rename(columns={"denoiser": "closest"}).reset_index(drop=True)
