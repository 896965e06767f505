"""Measuring a run under a protocol (diffusion.metrics.protocol): n samples scored against the protocol's reference,
each number with its 95% interval and its floor's, read against the floor; image runs add the accuracy of the
requested labels and the generated class shares (Wilson intervals) and, when the reference is training images,
memorisation. A Result prints as one JSON object (evaluate), one flat row (metrics.csv) or sentences (the pages).
"""

from collections.abc import Sequence
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from diffusion.config import DataConfig, RunConfig
from diffusion.metrics.intervals import LEVEL, Interval, normal, reading, sentence, wilson
from diffusion.metrics.protocol import (
    BOUNDS,
    MEASUREMENT_SAMPLER,
    METHODS,
    SIGNED,
    Protocol,
    Reference,
    extra_floor,
    points_protocol,
    reference_for,
    sample_size,
    stratify,
)
from diffusion.sampling.run import Run, balanced_labels

LIVE_2D_N, LIVE_2D_STEPS = 1000, 50     # the 2D page's live protocol: DDIM-50 (at most T steps), 1,000 points
INTERVALS = (f"{LEVEL:.0%}: W1, W2 by the delta method (Kantorovich potentials); KL, FID, precision and recall by "
             "bootstrap over the samples; NLL std / sqrt(n); accuracy and class shares Wilson; floors: prediction "
             "intervals (t, 9 df) of 10 real sets drawn as the samples are (stratified by their labels); no "
             "number's sd below its floor's")


@dataclass(frozen=True)
class Result:
    """One measurement: the protocol, the n used (and why it is below the protocol's, if it is), each metric and
    its floor as intervals, numbers without a floor (accuracy...) and JSON details (histogram, memorisation)."""

    protocol: Protocol
    n: int
    cap: str
    metrics: dict[str, Interval]
    floor: dict[str, Interval]
    extra: dict[str, Interval] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def reading(self, metric: str) -> str:
        return reading(self.metrics[metric], self.floor[metric], metric not in SIGNED)

    def sentence(self, metric: str, label: str | None = None, digits: int = 3) -> str:
        """'FID 4.7 [4.1, 5.3], floor 5.2 [4.0, 6.4]: at the floor (n = 500, fid·clf·n500·test·ddim50·s0)'."""
        return (f"{sentence(label or metric, self.metrics[metric], self.floor[metric], digits, metric not in SIGNED)}"
                f" (n = {self.n:,}{'; ' + self.cap if self.cap else ''}; {self.protocol.name})")

    def row(self) -> dict[str, float | str]:
        """Flat columns for metrics.csv: protocol, n, and per metric m: m, m_low, m_high, m_floor, m_floor_low,
        m_floor_high (numbers without a floor: e, e_low, e_high)."""
        out: dict[str, float | str] = {"protocol": self.protocol.name, "n": self.n}
        for m, value in {**self.metrics, **self.extra}.items():
            out |= value.columns(m)
            if m in self.floor:
                out |= self.floor[m].columns(f"{m}_floor")
        return out

    def report(self) -> dict:
        """The JSON `evaluate` prints: protocol, n (and cap), and each metric with its interval, floor and reading."""
        metrics = {m: {**v.as_dict(), "floor": self.floor[m].as_dict(), "reading": self.reading(m)}
                   for m, v in self.metrics.items()}
        extra = {m: {**v.as_dict(), **({"floor": self.floor[m].as_dict()} if m in self.floor else {})}
                 for m, v in self.extra.items()}
        return {"protocol": self.protocol.name, "measured": self.protocol.describe(self.n), "n": self.n,
                "n_requested": self.protocol.n, "cap": self.cap, "interval": INTERVALS, "metrics": metrics,
                **extra, **self.details}


def row_interval(row: dict, metric: str, floor: bool = False) -> Interval:
    """The interval a Result.row() stored for metric (or for its floor)."""
    key = f"{metric}_floor" if floor else metric
    return Interval(row[key], row[f"{key}_low"], row[f"{key}_high"])


def row_sentences(row: dict, labels: dict[str, str], digits: int = 3) -> str:
    """The numbers of a Result.row() in words, 'W1 0.071 [0.052, 0.090], floor 0.098 [0.070, 0.126]: at the floor ·
    label accuracy 0.96 [0.94, 0.97]' (labels: metric -> name; metrics the row lacks are skipped)."""
    parts = []
    for m, label in labels.items():
        if f"{m}_low" not in row or not np.isfinite(row[m]):
            continue
        value = row_interval(row, m)
        parts.append(sentence(label, value, row_interval(row, m, floor=True), digits, m not in SIGNED)
                     if f"{m}_floor" in row else f"{label} {value.text(digits)}")
    return " · ".join(parts)


def rows_frame(rows: list[dict], names: Sequence[str]) -> pd.DataFrame:
    """Long form of Result rows for charts: columns step, metric, value, low, high, floor, floor_low, floor_high
    (NaN where a row lacks a column: no floor for accuracy, no interval for old rows)."""
    columns = ["value", "low", "high", "floor", "floor_low", "floor_high"]
    suffixes = ["", "_low", "_high", "_floor", "_floor_low", "_floor_high"]
    records = [{"step": row["step"], "metric": m, **{c: row.get(m + s, np.nan) for c, s in zip(columns, suffixes)}}
               for row in rows for m in names if m in row]
    return pd.DataFrame(records, columns=["step", "metric", *columns])


def live_protocol(run: Run, n: int = LIVE_2D_N) -> Protocol:
    """The 2D page's and `train --measure-every`'s 2D protocol: n DDIM samples with at most LIVE_2D_STEPS steps."""
    return points_protocol(n, replace(MEASUREMENT_SAMPLER, steps=min(LIVE_2D_STEPS, run.schedule.T)))


def _fidelity(images: Tensor, ref: Reference, extra_metrics: Sequence[str], dataset: str, floor_sd: dict[str, float]
              ) -> dict[str, Interval]:
    """KID and IS (torch-fidelity) +- Z times the std the library reports (over KID subsets, over IS splits), precision
    and recall (metrics.prc) +- Z times their bootstrap sd; no sd below its floor's."""
    from diffusion.metrics.image_metrics import image_metrics
    from diffusion.metrics.prc import precision_recall
    fidelity = tuple(m for m in extra_metrics if m in ("isc", "kid"))
    scores = {}
    if fidelity:
        out = image_metrics(images, ref.images, fidelity, extractor=ref.protocol.extractor, dataset=dataset)
        scores = {m: (out[f"{m}_mean"], out[f"{m}_std"]) for m in fidelity}
    if "prc" in extra_metrics:
        scores |= precision_recall(ref.embed(images), ref.embed(ref.images))
    return {m: normal(v, sd, METHODS[m], floor_sd[m], *BOUNDS.get(m, (0.0, math.inf)))
            for m, (v, sd) in scores.items()}


def _image_extras(images: Tensor, y: Tensor | None, data: DataConfig, ref: Reference,
                  extra_metrics: Sequence[str]) -> tuple[dict, dict, dict, dict]:
    """(metrics, their floors, numbers without a floor, details) beyond FID: KID (a distance, read against its floor),
    IS, precision and recall (shown beside their floors: higher is not worse), each floor from every floor draw
    (protocol.extra_floor); label accuracy and class shares on the dataset's classifier, memorisation."""
    from diffusion.metrics.classifier import classifier_dir, load_classifier
    from diffusion.metrics.image_metrics import INCEPTION, classifier_outputs, memorisation_ratio, resolve_extractor
    metrics, floor, extra, details = {}, {}, {}, {}
    if extra_metrics:
        floor, floor_sd = extra_floor(ref, tuple(sorted(extra_metrics)), data.dataset)
        floor = dict(floor)
        extra = _fidelity(images, ref, extra_metrics, data.dataset, floor_sd)
        if "kid" in extra:
            metrics["kid"] = extra.pop("kid")
    details["extractor"] = INCEPTION if ref.protocol.extractor == "inception" else \
        resolve_extractor("classifier", data.dataset, images, None, False)[0]
    if classifier_dir(data.dataset, data.image_size).is_dir():
        clf, info = load_classifier(data.dataset, data.image_size)
        predicted = classifier_outputs(images, clf)[1].argmax(1)
        counts = torch.bincount(predicted, minlength=clf.config.num_classes)
        details["classifier"] = {"folder": f"{data.dataset}-{data.image_size}", "held_out_accuracy": info.accuracy}
        details["generated_class_histogram"] = counts.tolist()
        details["generated_class_shares"] = [wilson(int(c), len(images)).as_dict() for c in counts]
        if y is not None:
            extra["accuracy"] = wilson(int((predicted == y.cpu()).sum()), len(images))
    if ref.pool is not None:
        memo = memorisation_ratio(images, ref.pool, ref.images)
        details["memorisation"] = {"copies": wilson(int(memo.copies.sum()), len(images)).as_dict(),
                                   "copies_among_real": memo.copy_floor, "median_ratio": float(memo.ratio.median())}
    return metrics, floor, extra, details


def measure_samples(samples: Tensor, protocol: Protocol, data: DataConfig, *, y: Tensor | None = None,
                    extra_metrics: Sequence[str] = (), inception_weights: str | None = None) -> Result:
    """Score n samples (points (n, 2), or images (n, C, H, W) in [-1, 1] or uint8) under the protocol on `data`
    (n: the reference's, protocol.n or its cap); y: the labels they were drawn for (the floor is stratified by them,
    protocol.stratify; image runs: label accuracy)."""
    protocol = stratify(protocol, y)
    ref = reference_for(protocol, data, inception_weights)
    metrics, floor = ref.measure(samples), dict(ref.floor)
    if protocol.family == "points2d":
        return Result(protocol, ref.n, ref.cap, metrics, floor)
    from diffusion.data.image_datasets import to_uint8
    images = samples if samples.dtype == torch.uint8 else to_uint8(samples)
    more, more_floor, extra, details = _image_extras(images, y, data, ref, extra_metrics)
    return Result(protocol, ref.n, ref.cap, metrics | more, floor | more_floor, extra, details)


def prepare_floor(protocol: Protocol, config: RunConfig) -> Reference:
    """Build (and cache) the reference and floor that measure_run will use for a run of config: stratified by the
    balanced labels it samples conditional runs with; what the training pages build before their clock runs."""
    return reference_for(stratify(protocol, balanced_labels(config, sample_size(protocol, config.data))), config.data)


def measure_run(run: Run, protocol: Protocol, *, y: Tensor | None = None, extra_metrics: Sequence[str] = (),
                inception_weights: str | None = None) -> tuple[Result, Tensor]:
    """Draw the protocol's n samples from a run (its sampler and seed; labels y, else balanced over the trained
    classes; a capped n keeps y's first n) and measure them, the floor stratified by those labels; returns (result,
    samples)."""
    data = run.config.data
    n = sample_size(protocol, data)
    y = run.balanced_labels(n) if y is None else y[:n]
    samples = run.sample(n, protocol.sampler, seed=protocol.seed, y=y)
    result = measure_samples(samples, protocol, data, y=y, extra_metrics=extra_metrics,
                             inception_weights=inception_weights)
    return result, samples
