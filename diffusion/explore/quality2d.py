"""How close a 2D model's samples are to the data, overall and per class, and how many leave the data's support:
what the 2D page's guidance section and benchmarks/bench_2d.py report.

Quality is measured under the protocol (metrics.protocol): W1 of a group's n samples against n fresh true points
(of the group's class), beside the floor (n other true points, FLOOR_DRAWS draws), each with its 95% interval and
its reading against the floor. Support: a point leaves it when its distance to the nearest of SUPPORT_N true points
exceeds the SUPPORT_QUANTILE quantile of that distance for fresh true points (so a perfect model leaves it 1% of
the time).
"""

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.intervals import reading
from diffusion.metrics.protocol import points_protocol, points_reference, stratify
from diffusion.sampling.sampler_config import SamplerConfig

SUPPORT_N, SUPPORT_QUANTILE, SUPPORT_SEED = 5000, 0.99, 50_001
COLUMNS = ["label", "n", "w1", "w1_low", "w1_high", "floor", "floor_low", "floor_high", "ratio", "reading",
           "off_support"]


@lru_cache(maxsize=32)
def support(dataset: str) -> tuple[cKDTree, float]:
    """A tree over SUPPORT_N true points and the distance beyond which a point has left the support."""
    toy = toy_dataset(dataset)
    reference = toy.sample(SUPPORT_N, torch.Generator().manual_seed(SUPPORT_SEED)).double().numpy()
    fresh = toy.sample(SUPPORT_N, torch.Generator().manual_seed(SUPPORT_SEED + 1)).double().numpy()
    tree = cKDTree(reference)
    return tree, float(np.quantile(tree.query(fresh)[0], SUPPORT_QUANTILE))


def off_support(points: Tensor | np.ndarray, dataset: str) -> np.ndarray:
    """(n,) bool: which points are farther from the data than all but 1% of true points are."""
    tree, threshold = support(dataset)
    return tree.query(np.asarray(points, dtype=np.float64).reshape(-1, 2))[0] > threshold


def _group_row(name: str, part: np.ndarray, dataset: str, label: int | None, sampler: SamplerConfig, seed: int,
               labels: np.ndarray | None = None) -> dict:
    row = {"label": name, "n": len(part), "off_support": float(off_support(part, dataset).mean()) if len(part)
           else math.nan}
    if len(part) < 2:
        return row
    strata = None if labels is None else torch.as_tensor(labels, dtype=torch.long)   # the floor drawn as the samples
    ref = points_reference(stratify(points_protocol(len(part), sampler, seed, label), strata), dataset)
    w1, floor = ref.measure(torch.as_tensor(part, dtype=torch.float32))["w1"], ref.floor["w1"]
    return {**row, **w1.columns("w1"), **floor.columns("floor"), "ratio": w1.value / floor.value,
            "reading": reading(w1, floor)}


def class_quality(samples: Tensor | np.ndarray, labels: Tensor | np.ndarray | None, dataset: str, seed: int = 0,
                  sampler: SamplerConfig = SamplerConfig()) -> pd.DataFrame:
    """One row per class (label) and one for all samples ("all"): n, W1 with its 95% interval, the floor with its
    (same n; the class's own reference for a class; for all samples, floor draws with their labels' class counts), ratio W1 / floor, reading against the floor, and off_support
    (share of samples off the data's support). sampler and seed: how the samples were drawn (the protocol's name)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    labels = None if labels is None else np.asarray(labels).reshape(-1)
    groups = [("all", np.ones(len(x), dtype=bool), None)]
    if labels is not None:
        groups += [(str(int(c)), labels == c, int(c)) for c in np.unique(labels)]
    rows = [_group_row(name, x[keep], dataset, label, sampler, seed, None if label is not None else labels)
            for name, keep, label in groups]
    return pd.DataFrame(rows).reindex(columns=COLUMNS)
