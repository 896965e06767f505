"""Classifier-free guidance on labelled 2D sets (Ho & Salimans 2022): samples per class of a conditional run (trained
with label dropout) beside the exact guided sampler of labelled mixtures (uncond + w (cond - uncond) built from the
exact posterior means, explore.exact), and what w does to them: W1 per class against its floor, share off the data.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist

from diffusion.config import DataConfig, ScheduleConfig
from diffusion.explore.exact import exact_run
from diffusion.explore.quality2d import COLUMNS, class_quality
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

GUIDANCE_SCALES: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)


def _conditional(run: Run) -> Run:
    if not run.num_classes:
        raise ValueError("guidance needs a class-conditional run (train a labelled set with num_classes > 0)")
    return run


def guided_frame(run: Run, w: float, n: int, sampler: SamplerConfig = SamplerConfig(), seed: int = 0
                 ) -> pd.DataFrame:
    """n samples of a conditional run under guidance w, labels cycling through the classes: columns x, y, label."""
    labels = _conditional(run).balanced_labels(n)
    x = run.sample(n, replace(sampler, guidance=float(w)), seed=seed, y=labels).numpy()
    return pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "label": labels.numpy()})


def exact_guided_frame(data: DataConfig | str, w: float, n: int, sampler: SamplerConfig = SamplerConfig(),
                       seed: int = 0, schedule: ScheduleConfig = ScheduleConfig()) -> pd.DataFrame | None:
    """guided_frame of the exact model of a labelled mixture (None for sets without an exact law)."""
    run = exact_run(data, schedule)
    return None if run is None or not run.num_classes else guided_frame(run, w, n, sampler, seed)


def class_geometry(frame: pd.DataFrame) -> tuple[float, float]:
    """(spread, separation) of labelled samples (columns x, y, label): the RMS distance of a sample to its class's
    centroid, and the mean distance between class centroids (NaN with one class). Guidance w > 1 sharpens each class
    (spread falls) and pushes the classes apart (separation grows)."""
    centroids = frame.groupby("label")[["x", "y"]].mean()
    offsets = frame[["x", "y"]].to_numpy(np.float64) - centroids.loc[frame["label"]].to_numpy(np.float64)
    spread = float(np.sqrt((offsets**2).sum(axis=1).mean()))
    return spread, float(pdist(centroids.to_numpy(np.float64)).mean()) if len(centroids) > 1 else float("nan")


def guidance_sweep(run: Run, scales: tuple[float, ...] = GUIDANCE_SCALES, n: int = 2000,
                   sampler: SamplerConfig = SamplerConfig(), seed: int = 0, exact: bool = True) -> pd.DataFrame:
    """For each w: explore.quality2d.class_quality of the run's guided samples (and of the exact guided sampler when
    the set is a labelled mixture and exact is True). Columns source (learned | exact), w, then class_quality's."""
    dataset = _conditional(run).config.data.dataset
    sources = [("learned", run)]
    truth = exact_run(run.config.data, run.config.schedule) if exact else None
    if truth is not None and truth.num_classes:
        sources.append(("exact", truth))
    frames = []
    for name, source in sources:
        for w in scales:
            frame = guided_frame(source, w, n, sampler, seed)
            quality = class_quality(frame[["x", "y"]].to_numpy(np.float32), frame["label"].to_numpy(), dataset, seed,
                                    sampler)
            frames.append(quality.assign(source=name, w=float(w)))
    return pd.concat(frames, ignore_index=True)[["source", "w", *COLUMNS]]
