"""Measuring a run against the truth: a 2D run's samples against a fixed reference set with the sampling floor
beside; an image run's samples against real images through the dataset's classifier (or Inception), with the FID
floor and, for conditional runs, the accuracy of the requested labels."""

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from diffusion.data.toy2d import toy_dataset
from diffusion.metrics.points2d import evaluate_2d, floor_2d
from diffusion.sampling.config import SamplerConfig
from diffusion.sampling.run import Run

REFERENCE_SIZE, REFERENCE_SEED, FLOOR_SEED = 5000, 10_001, 10_002
METRIC_N = 1000        # live protocol: samples per measurement, and points in the reference they are compared with
LIVE_STEPS = 50        # DDIM steps of the cheap sampler used while training


@lru_cache(maxsize=32)
def reference_2d(dataset: str, n: int = REFERENCE_SIZE) -> Tensor:
    """Fresh true points (never the training set), the same for every run and every call."""
    return toy_dataset(dataset).sample(n, torch.Generator().manual_seed(REFERENCE_SEED))


@lru_cache(maxsize=32)
def floor_metrics_2d(dataset: str, n: int) -> dict[str, float]:
    """The metrics of an independent true sample of size n: the best any model can score."""
    toy = toy_dataset(dataset)
    return floor_2d(toy.sample, n, reference_2d(dataset), FLOOR_SEED, mixture=toy.mixture)


def metrics_2d(samples: Tensor, dataset: str) -> dict[str, float]:
    """evaluate_2d of samples against the dataset's reference."""
    return evaluate_2d(samples, reference_2d(dataset), mixture=toy_dataset(dataset).mixture)


def live_sampler(T: int) -> SamplerConfig:
    """The cheap sampler used to measure a model while it trains: DDIM with min(LIVE_STEPS, T) steps, eta 0."""
    return SamplerConfig("ddim", steps=min(LIVE_STEPS, T))


@lru_cache(maxsize=32)
def metric_floor(dataset: str) -> dict[str, float]:
    """The metrics of an independent true sample of METRIC_N points: what a perfect model scores here."""
    toy = toy_dataset(dataset)
    return floor_2d(toy.sample, METRIC_N, reference_2d(dataset, METRIC_N), FLOOR_SEED, mixture=toy.mixture)


def sample_metrics(samples: Tensor | np.ndarray, dataset: str) -> dict[str, float]:
    """w1, w2 (data-scale units), kl_model_true, kl_true_model (and nll for mixtures) against the reference.

    ValueError (from diffusion.metrics.points2d) when samples hold NaN or inf: a diverged sampler has no metrics.
    """
    return evaluate_2d(samples, reference_2d(dataset, METRIC_N), mixture=toy_dataset(dataset).mixture)


def live_metrics(run: Run, seed: int = 0) -> dict[str, float]:
    """sample_metrics of METRIC_N samples drawn with live_sampler: what the page plots during training."""
    samples = run.sample(METRIC_N, live_sampler(run.schedule.T), seed=seed)
    return sample_metrics(samples, run.config.data.dataset)


@dataclass(frozen=True)
class Evaluation2D:
    metrics: dict[str, float]
    floor: dict[str, float]
    samples: Tensor


def evaluate_run_2d(run: Run, n: int = 2000, sampler: SamplerConfig = SamplerConfig(), seed: int = 0
                    ) -> Evaluation2D:
    """Sample n points from a 2D run and measure them (w1, w2 in data-scale units; KL both ways; nll)."""
    samples = run.sample(n, sampler, seed=seed)
    return Evaluation2D(metrics_2d(samples, run.config.data.dataset), floor_metrics_2d(run.config.data.dataset, n),
                        samples)


def evaluate_run_images(run: Run, n: int, sampler: SamplerConfig, metrics: Sequence[str] = ("fid",), *,
                        seed: int = 0, y: Tensor | None = None, extractor: str = "classifier",
                        inception_weights: str | None = None) -> dict:
    """Sample n images (labels y, or balanced over the trained classes) and measure them against up to n real
    training images; the floor is the FID between two disjoint halves of those real images."""
    from diffusion.data import load_data  # torchvision and torch-fidelity: only when images are measured
    from diffusion.data.images import to_uint8
    from diffusion.metrics.classifier import load_classifier
    from diffusion.metrics.images import class_histogram, fid_floor, image_metrics, label_accuracy
    data_cfg = run.config.data
    y = run.balanced_labels(n) if y is None else y
    samples = to_uint8(run.sample(n, sampler, seed=seed, y=y))
    real_x = load_data(data_cfg).x
    pick = torch.randperm(len(real_x), generator=torch.Generator().manual_seed(seed))[:n]
    real = to_uint8(real_x[pick])
    options = dict(extractor=extractor, dataset=data_cfg.dataset, inception_weights=inception_weights)
    report = {"metrics": image_metrics(samples, real, tuple(metrics), **options),
              "floor": fid_floor(real, seed=seed, **options)}
    if y is not None or extractor == "classifier":
        clf, info = load_classifier(data_cfg.dataset, data_cfg.image_size)
        report["classifier"] = {"folder": f"{data_cfg.dataset}-{data_cfg.image_size}",
                                "held_out_accuracy": info.accuracy}
        hist = class_histogram(samples, clf, clf.config.num_classes)
        report["generated_class_histogram"] = hist.tolist()
        if y is not None:
            report["label_accuracy"] = label_accuracy(samples, y, clf)
    return report
