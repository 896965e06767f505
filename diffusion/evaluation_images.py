"""Measuring an image run: samples against the real images it was trained on, through the dataset's classifier
(or Inception), with the FID floor and, for conditional runs, the accuracy of the requested labels."""

from typing import Sequence

import torch
from torch import Tensor

from .classifier import load_classifier
from .data import load_data
from .data.images import to_uint8
from .metrics_images import class_histogram, fid_floor, image_metrics, label_accuracy
from .runs import Run, SamplerConfig


def evaluate_run_images(run: Run, n: int, sampler: SamplerConfig, metrics: Sequence[str] = ("fid",), *,
                        seed: int = 0, y: Tensor | None = None, extractor: str = "classifier",
                        inception_weights: str | None = None) -> dict:
    """Sample n images (labels y, or balanced over the trained classes) and measure them against up to n real
    training images; the floor is the FID between two disjoint halves of those real images."""
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
