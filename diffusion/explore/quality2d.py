"""How close a 2D model's samples are to the data, overall and per class, and how many leave the data's support:
what the 2D page, the recipe checks and benchmarks/bench_2d.py report.

Protocol (the same n on both sides): W1 of n samples to an independent reference of n fresh true points, beside the
floor, W1 of n other true points to that same reference. In 2D a single W1 of n = 2,000 points fluctuates by 12-22%
(relative std over fresh samples, measured on the presets), so `w1_ratio` averages several (reference, floor) pairs.
Support: a point leaves it when its distance to the nearest of SUPPORT_N true points exceeds the SUPPORT_QUANTILE
quantile of that distance for fresh true points (so a perfect model leaves it 1% of the time).
"""

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from diffusion.data.toy2d import toy_dataset
from diffusion.metrics.points2d import wasserstein

W1_N, REFERENCE_SEED, FLOOR_SEED = 2000, 30_001, 40_001
SUPPORT_N, SUPPORT_QUANTILE, SUPPORT_SEED = 5000, 0.99, 50_001
MAX_DRAWS = 64     # rejection rounds when drawing one class of a labelled set


def true_points(dataset: str, n: int, seed: int, label: int | None = None) -> Tensor:
    """n fresh true points (n, 2) of a 2D set, of class `label` only when given (drawn by rejection)."""
    toy, generator = toy_dataset(dataset), torch.Generator().manual_seed(seed)
    if label is None:
        return toy.sample(n, generator)
    if not 0 <= label < max(toy.num_classes, 1) or not toy.num_classes:
        raise ValueError(f"class {label!r} is not one of {dataset!r}'s {toy.num_classes} classes")
    kept, count = [], 0
    for _ in range(MAX_DRAWS):
        x, y = toy.sample_labelled(max(n, 256) * toy.num_classes, generator)
        kept.append(x[y == label])
        count += len(kept[-1])
        if count >= n:
            return torch.cat(kept)[:n]
    raise ValueError(f"class {label} of {dataset!r} is too rare to draw {n} points")


def w1_and_floor(samples: Tensor | np.ndarray, dataset: str, seed: int = 0, label: int | None = None
                 ) -> tuple[float, float]:
    """(W1 of the n samples to n true points, W1 of n other true points to the same reference), in data units (the
    sets have unit scale); class `label` only when given. The one place the 2D protocol is applied here."""
    samples = torch.as_tensor(np.asarray(samples), dtype=torch.float32)
    n = len(samples)
    reference = true_points(dataset, n, REFERENCE_SEED + seed, label)
    return wasserstein(samples, reference), wasserstein(true_points(dataset, n, FLOOR_SEED + seed, label), reference)


def w1_ratio(samples: Tensor | np.ndarray, dataset: str, repeats: int) -> tuple[float, float, float]:
    """(mean W1, mean floor, ratio) over `repeats` disjoint chunks of samples, each against its own (reference,
    floor) pair (seeds 0..repeats-1): averaging tames the single-W1 noise of 2D."""
    chunks = np.array_split(np.asarray(samples), repeats)
    pairs = np.array([w1_and_floor(chunk, dataset, seed) for seed, chunk in enumerate(chunks)])
    w1, floor = pairs.mean(axis=0)
    return float(w1), float(floor), float(w1 / floor)


@lru_cache(maxsize=32)
def support(dataset: str) -> tuple[cKDTree, float]:
    """A tree over SUPPORT_N true points and the distance beyond which a point has left the support."""
    reference = true_points(dataset, SUPPORT_N, SUPPORT_SEED).double().numpy()
    fresh = true_points(dataset, SUPPORT_N, SUPPORT_SEED + 1).double().numpy()
    tree = cKDTree(reference)
    return tree, float(np.quantile(tree.query(fresh)[0], SUPPORT_QUANTILE))


def off_support(points: Tensor | np.ndarray, dataset: str) -> np.ndarray:
    """(n,) bool: which points are farther from the data than all but 1% of true points are."""
    tree, threshold = support(dataset)
    return tree.query(np.asarray(points, dtype=np.float64).reshape(-1, 2))[0] > threshold


def class_quality(samples: Tensor | np.ndarray, labels: Tensor | np.ndarray | None, dataset: str, seed: int = 0
                  ) -> pd.DataFrame:
    """One row per class (label) and one for all samples ("all"): n, w1, floor (same n, class-conditional
    reference), ratio, and off_support (share of samples off the data's support)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    labels = None if labels is None else np.asarray(labels).reshape(-1)
    groups = [("all", np.ones(len(x), dtype=bool), None)]
    if labels is not None:
        groups += [(int(c), labels == c, int(c)) for c in np.unique(labels)]
    rows = []
    for name, keep, label in groups:
        part = x[keep]
        w1, floor = w1_and_floor(part, dataset, seed, label) if len(part) >= 2 else (math.nan, math.nan)
        rows.append({"label": str(name), "n": int(keep.sum()), "w1": w1, "floor": floor, "ratio": w1 / floor,
                     "off_support": float(off_support(part, dataset).mean()) if len(part) else math.nan})
    return pd.DataFrame(rows)
