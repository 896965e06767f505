"""The computations behind the image pages: sample grids, denoising filmstrips, FID while training (page_protocol:
interval, floor at the same n), memorisation pairs, diversity, guidance sweeps, class histograms and the cost of a training step.

Images leave this module as uint8 numpy grids (H, W, 3) ready to show, or as pandas frames; every function is a
function of its arguments (seeded), so the pages can cache results by their inputs.
"""

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torchvision.utils import make_grid

from diffusion.config import DataConfig, RunConfig
from diffusion.data import TrainingData, load_data
from diffusion.data.image_datasets import load_images, to_uint8
from diffusion.metrics.classifier import load_classifier
from diffusion.metrics.evaluation import Result, measure_run, rows_frame
from diffusion.metrics.image_metrics import class_histogram, memorisation_ratio, pairwise_distance_sd
from diffusion.metrics.intervals import Interval, normal, wilson
from diffusion.metrics.protocol import Protocol, image_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run, Trajectory
from diffusion.training.cost import dummy_trainer, seconds_per_step

LIVE_N = 100          # samples per FID measurement while training on a CPU (reference and floor: the same n)
LIVE_STEPS = 20       # DDIM steps of those samples
PREVIEW_N = 16        # images in the grid refreshed while training
PAIR_GAP = 12         # pixels between two (sample | nearest image) pairs; 2 inside a pair


@lru_cache(maxsize=4)
def training_set(data: DataConfig) -> TrainingData:
    """The run's training set, loaded once per process (shapes takes seconds to render)."""
    return load_data(data)


def image_grid(images: Tensor, nrow: int | None = None, scale: int = 1, padding: int = 2, pad_value: int = 255
               ) -> np.ndarray:
    """(H, W, 3) uint8 grid of images (N, C, H, W) (float in [-1, 1] or uint8), enlarged scale times (nearest),
    `padding` pixels of pad_value between them."""
    x = images if images.dtype == torch.uint8 else to_uint8(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"image_grid needs (N >= 1, 1|3, H, W) images, got {tuple(x.shape)}")
    x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    grid = make_grid(x, nrow=nrow or math.ceil(math.sqrt(len(x))), padding=padding, pad_value=pad_value)
    return grid.permute(1, 2, 0).numpy()                                                      # (H', W', 3)


def pair_grid(first: Tensor, second: Tensor, per_row: int = 4, scale: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 grid of pairs (first[i] | second[i]), each pair framed in grey and set apart from the next by
    a wide white gap, so that a pair reads as one: first, second (N, C, H, W)."""
    tiles = torch.stack([torch.from_numpy(image_grid(torch.stack([a, b]), nrow=2, scale=scale, pad_value=128))
                         .permute(2, 0, 1) for a, b in zip(to_uint8(first), to_uint8(second))])
    return make_grid(tiles, nrow=per_row, padding=PAIR_GAP, pad_value=255).permute(1, 2, 0).numpy()


def class_grid(run: Run, per_class: int, sampler: SamplerConfig, seed: int = 0) -> Tensor:
    """(num_classes * per_class, C, H, W): per_class samples of each class, row c = class c; every row starts
    from the same per_class noises (sample i of every class uses seed (seed, i))."""
    if not run.num_classes:
        raise ValueError("a per-class grid needs a class-conditional run (this one is unconditional)")
    rows = [run.sample(per_class, sampler, seed=seed, y=torch.full((per_class,), c)) for c in range(run.num_classes)]
    return torch.cat(rows)


@dataclass(frozen=True)
class Filmstrip:
    """x_t before chosen sampler steps and the x0_hat predicted there: grids with one column per frame."""

    timesteps: list[int]       # paper t of each column (t = 0 is the output)
    x_t: np.ndarray
    x0_hat: np.ndarray


def even_frames(steps: int, frames: int) -> tuple[int, ...]:
    """`frames` evenly spaced step indices of a `steps`-step sampling run, from its start (0) to its output (steps)."""
    return tuple(sorted(set(np.linspace(0, steps, frames).round().astype(int).tolist())))


def filmstrip(run: Run, sampler: SamplerConfig, n: int, picks: Sequence[int], seed: int = 0, y: Tensor | None = None,
              scale: int = 2) -> Filmstrip:
    """n samples (rows) at the chosen step indices of one sampling run (columns): index i is x_t before step i and
    its x0_hat, index sampler.steps the output."""
    picks = sorted(set(picks))
    if not picks or picks[0] < 0 or picks[-1] > sampler.steps:
        raise ValueError(f"filmstrip steps {picks} are out of range; allowed: 0 to {sampler.steps} (the output), "
                         f"at least one")
    traj = Trajectory()
    out = run.sample(n, sampler, seed=seed, y=y, trajectory=traj)
    x_t = [traj.x_t[i] if i < len(traj.x_t) else out for i in picks]
    x0 = [traj.x0_hat[i] if i < len(traj.x0_hat) else out for i in picks]
    times = traj.paper_timesteps()
    paper_t = [times[i] if i < len(times) else 0 for i in picks]

    def grid(columns: list[Tensor]) -> np.ndarray:
        stacked = torch.stack(columns, dim=1).flatten(0, 1)          # (n * frames, C, H, W), row-major
        return image_grid(stacked, nrow=len(picks), scale=scale)
    return Filmstrip(paper_t, grid(x_t), grid(x0))


def page_protocol(data: DataConfig, n: int = LIVE_N, steps: int = LIVE_STEPS, guidance: float = 1.0,
                  seed: int = 0) -> Protocol:
    """The image pages' protocol: FID of n DDIM samples (balanced labels) on the shipped classifier's features
    against n held-out images, the floor n training images (diffusion.metrics.protocol)."""
    return image_protocol(data, n, SamplerConfig("ddim", steps=steps, guidance=guidance), seed)


def fid_measure(run: Run, n: int = LIVE_N, steps: int = LIVE_STEPS, guidance: float = 1.0, seed: int = 0
                ) -> tuple[Result, Tensor]:
    """FID (with its interval and floor at the same n) and, for conditional runs, label accuracy of n samples under
    page_protocol; returns (result, the samples in [-1, 1])."""
    return measure_run(run, page_protocol(run.config.data, n, steps, guidance, seed))


def fid_extractor(data: DataConfig) -> str:
    """The feature extractor FID uses here, in words."""
    return f"the shipped {data.dataset}-{data.image_size} classifier's penultimate features"


@dataclass(frozen=True)
class MemorisationPairs:
    """Each sample beside its nearest training image, and the distance ratios (1 fresh, 0 copy)."""

    pairs: np.ndarray          # grid: sample, its nearest training image, next sample, ...
    ratio: list[float]
    copies: int
    copy_floor: float          # fraction of held-out real images flagged as copies


@lru_cache(maxsize=4)
def holdout_set(data: DataConfig) -> TrainingData:
    """The held-out split of the run's classes (images and labels), loaded once per process."""
    images = load_images(data.dataset, data.image_size, classes=data.classes, split="test", seed=data.seed)
    return TrainingData(images.x, images.y, images.num_classes, images.source, images.notice)


def holdout_images(data: DataConfig) -> Tensor:
    """The held-out images (N, C, H, W) in [-1, 1] that memorisation_pairs compares samples with."""
    return holdout_set(data).x


def memorisation_pairs(samples: Tensor, data: DataConfig, scale: int = 2) -> MemorisationPairs:
    """Nearest training image (L2 in pixels) of each sample (N, C, H, W) in [-1, 1], against held-out images."""
    train = training_set(data).x
    memo = memorisation_ratio(samples, train, holdout_images(data))
    return MemorisationPairs(pair_grid(samples, train[memo.nearest], scale=scale), memo.ratio.tolist(),
                             int(memo.copies.sum()), memo.copy_floor)


def diversity(samples: Tensor, data: DataConfig, seed: int = 0) -> dict[str, Interval]:
    """Mean pairwise L2 distance (pixels in [-1, 1]) of the samples and of as many real training images, each with
    its 95% interval (a U-statistic's sd)."""
    real = training_set(data).x
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:len(samples)]
    return {name: normal(*pairwise_distance_sd(x), "U-statistic", lowest=0.0)
            for name, x in (("samples", samples), ("real", real[pick]))}


def within_class_diversity(samples: Tensor, y: Tensor) -> Interval:
    """Mean over classes of the mean pairwise distance among samples generated for that class, with its 95%
    interval (the classes' sds combined as independent)."""
    values = [pairwise_distance_sd(samples[y == c]) for c in y.unique() if int((y == c).sum()) > 1]
    if not values:
        raise ValueError("within-class diversity needs at least 2 samples of some class")
    means, sds = np.array(values).T
    return normal(float(means.mean()), float(np.sqrt((sds**2).sum())) / len(values), "U-statistic", lowest=0.0)


def guidance_point(run: Run, guidance: float, n: int, steps: int = LIVE_STEPS, seed: int = 0) -> dict[str, float]:
    """One point of the guidance trade-off: label accuracy, within-class diversity and FID (with intervals, the
    floor and the protocol: Result.row) of n samples with balanced labels at scale w (uncond + w (cond - uncond))."""
    result, samples = fid_measure(run, n, steps, guidance, seed)
    spread = within_class_diversity(samples, run.balanced_labels(len(samples)))
    return {"guidance": guidance, **result.row(), "diversity": spread.value, "diversity_low": spread.low,
            "diversity_high": spread.high}


def unguided_class_counts(run: Run, n: int, steps: int = LIVE_STEPS, seed: int = 0) -> np.ndarray:
    """(num_classes,) counts of the classes the shipped classifier reads in n unguided samples: the model's p(x).
    w = 0 leaves only the unconditional prediction, so sampling with the null label gives guided(w = 0) at half
    the cost (one network evaluation per step instead of two)."""
    data = run.config.data
    y = torch.full((n,), run.net.null_label, dtype=torch.long)
    samples = to_uint8(run.sample(n, SamplerConfig("ddim", steps=steps), seed=seed, y=y))
    clf = load_classifier(data.dataset, data.image_size)[0]
    return class_histogram(samples, clf, run.num_classes).numpy()


def class_shares(generated: np.ndarray, data: DataConfig) -> pd.DataFrame:
    """Class shares of generated counts (num_classes,) beside the training set's: columns class, source, share, low,
    high (Wilson intervals of the generated shares; the training set's are exact)."""
    train = torch.bincount(training_set(data).y, minlength=len(generated)).double().numpy()
    n = int(np.sum(generated))
    shares = [wilson(int(c), n) for c in generated]
    model = pd.DataFrame({"class": range(len(generated)), "source": "generated (w = 0)",
                          "share": [s.value for s in shares], "low": [s.low for s in shares],
                          "high": [s.high for s in shares]})
    real = pd.DataFrame({"class": range(len(train)), "source": "training set", "share": train / train.sum()})
    return pd.concat([model, real.assign(low=real["share"], high=real["share"])], ignore_index=True)


def network_evaluations(n: int, sampler: SamplerConfig) -> int:
    """Images through the network to draw n samples with DDIM or DDPM: n per step, twice under guidance (w != 1)."""
    return n * sampler.steps * (1 if sampler.guidance == 1.0 else 2)


def step_cost(config: RunConfig, steps: int = 3, device: str = "cpu") -> dict[str, float]:
    """Time per training step (median of `steps`, after one warm-up), parameters, and memory: weights with
    gradients, AdamW moments and the EMA copy (5 float32 copies), plus the tensors autograd saves for one batch."""
    trainer = dummy_trainer(config, device)
    saved: list[int] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t.numel() * t.element_size())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        trainer.train_step()
    seconds = seconds_per_step(trainer, steps)
    params = sum(p.numel() for p in trainer.model.parameters())
    return {"seconds_per_step": seconds, "parameters": float(params),
            "weights_mb": 5 * 4 * params / 2**20, "activations_mb": sum(saved) / 2**20}


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Long form of measurements taken while training (evaluation.rows_frame): FID with its interval and floor,
    label accuracy with its interval."""
    return rows_frame(rows, ("fid", "accuracy"))
