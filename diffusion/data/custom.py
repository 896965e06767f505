"""Bring your own 2D distribution: points from a CSV, strokes drawn on a canvas, a silhouette image or a typed word,
turned into a custom set usable wherever a preset is (training, floors, metrics, densities, checkpoints).

A custom set's law is a kernel mixture: an isotropic Gaussian of std KERNEL_FRACTION x the points' scale on each
point, standardised exactly like the presets (mean 0, sqrt(trace(Cov) / 2) = 1, the kernel's variance included).
Being a GaussianMixture, its density, noised density, exact denoiser and (with labels) exact guidance are known.
Its DataConfig is named "custom:SLUG:HASH" (HASH: the first 10 hex digits of the SHA-256 of its points and labels,
so a name always means the same points) and carries the points, so they travel in every run's config.json.
Raw points come from data.sources (CSV, strokes, image, word), which bound every input before reading it.
"""

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import torch

from diffusion.config import CUSTOM_PREFIX, MAX_CUSTOM_CLASSES, MAX_CUSTOM_POINTS, MIN_CUSTOM_POINTS, DataConfig
from diffusion.core.oracles import GaussianMixture
import diffusion.data.sources as sources
from diffusion.data.toy_datasets import Toy2D, mixture_set, register_custom
from diffusion.data.toy_recipes import CUSTOM_RECIPE

KERNEL_FRACTION = 0.05               # kernel std / the points' own scale (moons' noise is 0.057 of its scale)
KERNEL_STD = KERNEL_FRACTION / math.sqrt(1 + KERNEL_FRACTION**2)   # in standardised units
DECIMALS = 5                         # standardised points are stored rounded to this many decimals
MAX_MAGNITUDE = 1e150                # raw coordinates: squared and summed over every point, finite in float64
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def _as_points(points, what: str) -> np.ndarray:
    """(N, 2) float64 array; ValueError naming `what` unless it holds MIN..MAX_CUSTOM_POINTS finite pairs."""
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} are not numbers; allowed: an (N, 2) array of finite numbers") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{what} have shape {arr.shape}; allowed: (N, 2), one x, y pair per point")
    if not MIN_CUSTOM_POINTS <= len(arr) <= MAX_CUSTOM_POINTS:
        raise ValueError(f"{what}: {len(arr)} points; allowed: {MIN_CUSTOM_POINTS} to {MAX_CUSTOM_POINTS}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} hold {int((~np.isfinite(arr)).any(axis=1).sum())} rows with NaN or inf; "
                         "allowed: finite numbers")
    large = np.abs(arr) > MAX_MAGNITUDE
    if large.any():         # the spread (a sum of squares) would overflow to inf and every point become (0, 0)
        raise ValueError(f"{what} hold {int(large.any(axis=1).sum())} rows with a value beyond {MAX_MAGNITUDE:.0e} "
                         f"(the largest is {np.abs(arr).max():.3g}); allowed: values of magnitude at most "
                         f"{MAX_MAGNITUDE:.0e}, whose spread float64 can measure (rescale the data)")
    return arr


def standardised(points) -> np.ndarray:
    """Points moved and scaled so their kernel mixture has mean 0 and sqrt(trace(Cov) / 2) = 1: (P - mean) /
    (s sqrt(1 + KERNEL_FRACTION^2)), s^2 = trace(Cov(P)) / 2 (population covariance); (N, 2) float64."""
    arr = _as_points(points, "points")
    centred = arr - arr.mean(axis=0)
    scale = math.sqrt(centred.var(axis=0).sum() / 2)
    if not scale > 1e-9:
        raise ValueError("the points are all the same; allowed: points that spread out")
    return centred / (scale * math.sqrt(1 + KERNEL_FRACTION**2))


def _digest(points: tuple, labels: tuple | None) -> str:
    return hashlib.sha256(repr((points, labels)).encode()).hexdigest()[:10]


def custom_data(slug: str, points, labels=None, seed: int = 0) -> DataConfig:
    """The DataConfig of a custom set named slug (lower-case letters, digits, - and _, at most 32) from raw points
    (N, 2) and optional labels (N,) (any integers; classes are numbered by sorted value, at most
    MAX_CUSTOM_CLASSES). The set is registered, so toy_dataset(config.dataset) finds it in this process."""
    if not (isinstance(slug, str) and SLUG.fullmatch(slug)):
        raise ValueError(f"custom set name {slug!r} is invalid; allowed: 1 to 32 lower-case letters, digits, - or _, "
                         "starting with a letter or digit")
    q = tuple(map(tuple, np.round(standardised(points), DECIMALS).tolist()))
    classes = None
    if labels is not None:
        raw = np.asarray(labels).reshape(-1)
        if raw.shape != (len(q),) or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"labels: {raw.size} values of type {raw.dtype}; allowed: one integer per point ({len(q)})")
        values, classes = np.unique(raw, return_inverse=True)
        if len(values) > MAX_CUSTOM_CLASSES:
            raise ValueError(f"labels: {len(values)} classes; allowed: at most {MAX_CUSTOM_CLASSES}")
        classes = tuple(int(c) for c in classes)
    config = DataConfig(f"{CUSTOM_PREFIX}{slug}:{_digest(q, classes)}", seed=seed, points=q, labels=classes)
    custom_set(config)
    return config


def custom_set(config: DataConfig) -> Toy2D:
    """The Toy2D of a custom DataConfig (registered in this process); ValueError if its name does not match its
    points (a hand-edited config)."""
    prefix, _, rest = config.dataset.partition(CUSTOM_PREFIX)
    slug, _, digest = rest.rpartition(":")
    if prefix or config.points is None or not SLUG.fullmatch(slug) or digest != _digest(config.points, config.labels):
        raise ValueError(f"custom set {config.dataset!r} does not match its points; allowed: a config made by "
                         "diffusion.data.custom.custom_data")
    means = torch.tensor(config.points, dtype=torch.float64)
    mixture = GaussianMixture.isotropic(means, KERNEL_STD)
    labels = None if config.labels is None else torch.tensor(config.labels, dtype=torch.long)
    description = f"custom set {slug!r}: {len(means)} points" + ("" if labels is None else
                                                                  f", {int(labels.max()) + 1} classes")
    return register_custom(mixture_set(config.dataset, description, mixture, labels, CUSTOM_RECIPE))


SOURCES = ("csv", "image", "word")     # custom_from_spec's SOURCE:VALUE forms


def slugify(text: str) -> str:
    """A valid custom set name from any text: lower case, runs of other characters as '-', at most 32."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:32]
    return slug or "custom"


def custom_from_spec(spec: str, name: str | None = None, seed: int = 0) -> DataConfig | None:
    """The custom DataConfig of "csv:PATH", "image:PATH" or "word:TEXT" (None for any other string: a preset or
    an image dataset); named `name`, else after the file or the word. Files are size-checked before reading."""
    kind, sep, value = spec.partition(":")
    if not sep or kind not in SOURCES:
        return None
    if kind == "word":
        return custom_data(name or slugify(value), sources.points_from_word(value, seed=seed), seed=seed)
    path, limit = Path(value), sources.MAX_CSV_BYTES if kind == "csv" else sources.MAX_IMAGE_BYTES
    if not path.is_file():
        raise ValueError(f"{kind} file {value!r} does not exist")
    if path.stat().st_size > limit:
        raise ValueError(f"{kind} file {value!r} has {path.stat().st_size:,} bytes; allowed: at most {limit:,}")
    raw = path.read_bytes()
    points, labels = sources.points_from_csv(raw) if kind == "csv" else (sources.points_from_image(raw, seed=seed),
                                                                       None)
    return custom_data(name or slugify(path.stem), points, labels, seed=seed)
