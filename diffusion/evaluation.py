"""Measuring a 2D run against the truth: samples vs a fixed reference set, with the sampling floor beside."""

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from .data.toy2d import toy_dataset
from .metrics2d import evaluate_2d, floor_2d
from .runs import Run, SamplerConfig

REFERENCE_SIZE, REFERENCE_SEED, FLOOR_SEED = 5000, 10_001, 10_002


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
