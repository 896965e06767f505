"""THE measurement protocol: what one quality number is (metric family, feature extractor, n, reference set,
floor, sampler, seed), as a frozen, hashable object with a short printable name, and the one place where a
reference and a floor are built.

The rule: the reference, each floor draw and the generated set have exactly the same n, and the floor's real sets
are disjoint from the reference. 2D: the reference is n fresh true points (reference_seed), the floor n other fresh
true points (floor_seed + k); of one class only when the protocol has a label (samples drawn for that class). Images with a test split: the reference is n held-out test images, the floor n
training images (a perfect model draws fresh images of the data), the model n samples, all against that one
reference; n = min(asked, |test|, |train|). Folder datasets (no test split): reference and floor are disjoint sets
of training images, n <= N / 2 (memorisation is reported beside). A capped n is said (Reference.cap).
"""

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import Tensor

from diffusion.config import DataConfig
from diffusion.data.toy_datasets import toy_dataset
from diffusion.metrics.intervals import Interval, normal, spread
from diffusion.metrics.points2d import POINT_METRICS, ValueSD, data_scale, score_2d
from diffusion.sampling.sampler_config import SamplerConfig

Family = Literal["points2d", "fid"]
Split = Literal["fresh", "test", "train"]
REFERENCE_SEED, FLOOR_SEED = 10_001, 10_002
FLOOR_DRAWS = 10                 # independent floor sets: the floor is their mean, its interval their spread
MAX_N, MAX_SEED = 100_000, 2**31 - 1
EXTRACTORS = {"classifier": "clf", "inception": "incv3"}
SHORT = {"guidance": "w", "eta": "eta", "variance": "var", "spacing": "sp"}
IMAGE_METHODS = {"fid": "bootstrap"}   # the 2D metrics' methods are in their POINT_METRICS entries


def interval_method(metric: str) -> str:
    """How a metric's sd is estimated (its interval's method, and the floor's with one floor set)."""
    return POINT_METRICS[metric].method if metric in POINT_METRICS else IMAGE_METHODS[metric]


def signed(metric: str) -> bool:
    """Whether a metric may be negative and under its floor when samples concentrate (not a distance: NLL)."""
    return metric in POINT_METRICS and POINT_METRICS[metric].signed


def sampler_tag(sampler: SamplerConfig) -> str:
    """'ddim50', 'ddim20·w2', 'heun18·rho=5': name, steps and the settings that differ from that sampler's defaults."""
    default = SamplerConfig(sampler.name)
    changed = [f"{SHORT.get(k, k)}{'' if k == 'guidance' else '='}{v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in vars(sampler).items() if k not in ("name", "steps") and v != getattr(default, k)]
    return "·".join([f"{sampler.name}{sampler.steps}", *changed])


@dataclass(frozen=True)
class Protocol:
    """How one quality number is measured; frozen and hashable (it keys caches), `name` prints it."""

    family: Family                   # "points2d": W1, W2, KL both ways (+ NLL for mixtures); "fid": FID
    n: int                           # asked samples: generated, reference and each floor draw alike
    sampler: SamplerConfig = SamplerConfig("ddim", 50)
    seed: int = 0                    # the generated samples' noise bank (Run.sample's seed)
    extractor: str = ""              # fid: "classifier" (the dataset's shipped CNN) or "inception"
    reference: Split = "fresh"       # where the reference comes from: fresh true points, the test or train split
    reference_seed: int = REFERENCE_SEED
    floor_seed: int = FLOOR_SEED     # floor draw k uses floor_seed + k
    label: int | None = None         # points2d: the class the samples were drawn for (reference and floor of it)

    def __post_init__(self):
        allowed = {"points2d": (("",), ("fresh",)), "fid": (tuple(EXTRACTORS), ("test", "train"))}
        if self.family not in allowed:
            raise ValueError(f"unknown metric family {self.family!r}; allowed: {', '.join(allowed)}")
        extractors, splits = allowed[self.family]
        if self.extractor not in extractors or self.reference not in splits:
            raise ValueError(f"{self.family} protocol with extractor={self.extractor!r}, reference="
                             f"{self.reference!r}; allowed: extractor {extractors}, reference {splits}")
        for name, low, high in (("n", 2, MAX_N), ("seed", 0, MAX_SEED), ("reference_seed", 0, MAX_SEED),
                                ("floor_seed", 0, MAX_SEED)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"protocol {name}={value!r} is out of range; allowed: integers from {low} to {high}")
        if self.label is not None and (self.family != "points2d" or isinstance(self.label, bool)
                                       or not isinstance(self.label, int) or self.label < 0):
            raise ValueError(f"protocol label={self.label!r}; allowed: a class id >= 0, for 2D protocols only")
        if self.floor_seed <= self.reference_seed < self.floor_seed + FLOOR_DRAWS:
            raise ValueError(f"reference_seed={self.reference_seed} is one of the floor's seeds "
                             f"{self.floor_seed}..{self.floor_seed + FLOOR_DRAWS - 1}: the sets must differ")

    @property
    def name(self) -> str:
        """Short and printable, e.g. 'fid·clf·n500·test·ddim50·s0' or '2d·n1000·fresh·ddim50·s0'."""
        head = ["2d"] if self.family == "points2d" else ["fid", EXTRACTORS[self.extractor]]
        seeds = [f"r{self.reference_seed}"] * (self.reference_seed != REFERENCE_SEED) + \
            [f"f{self.floor_seed}"] * (self.floor_seed != FLOOR_SEED)
        label = [f"c{self.label}"] * (self.label is not None)
        return "·".join([*head, f"n{self.n}", self.reference, *label, sampler_tag(self.sampler), f"s{self.seed}",
                         *seeds])

    def describe(self, n: int | None = None) -> str:
        """The protocol in words, at the n actually used."""
        n = self.n if n is None else n
        if self.family == "points2d":
            of = "" if self.label is None else f" of class {self.label}"
            real = f"{n:,} fresh true points{of}; floor: {n:,} other fresh true points{of} ({FLOOR_DRAWS} draws)"
        else:
            ref = "held-out test images" if self.reference == "test" else "training images"
            floor = "training images" if self.reference == "test" else "other training images"
            real = f"{n:,} {ref} on {self.extractor} features; floor: {n:,} {floor} ({FLOOR_DRAWS} draws)"
        return f"{n:,} samples ({sampler_tag(self.sampler)}, seed {self.seed}) against {real}"

    def real_side(self) -> "Protocol":
        """The protocol without what only the generated side uses (the reference and floor do not depend on it)."""
        return replace(self, sampler=SamplerConfig(), seed=0)


def points_protocol(n: int = 1000, sampler: SamplerConfig = SamplerConfig("ddim", 50), seed: int = 0,
                    label: int | None = None) -> Protocol:
    """A 2D protocol: W1, W2, KL both ways (and NLL for mixtures) against n fresh true points (of class label)."""
    return Protocol("points2d", n, sampler, seed, label=label)


def image_protocol(data: DataConfig, n: int = 500, sampler: SamplerConfig = SamplerConfig("ddim", 50),
                   seed: int = 0, extractor: str = "classifier") -> Protocol:
    """An image protocol: FID against held-out test images, or training images for folder datasets (no test split)."""
    return Protocol("fid", n, sampler, seed, extractor, "train" if data.dataset.startswith("folder:") else "test")


@dataclass(frozen=True, eq=False)
class Reference:
    """The real side of a protocol on one dataset: the metrics of any n samples against the reference, and the floor
    (the same metrics of real sets of the same n) with the spread that bounds every number's sd from below."""

    protocol: Protocol               # the real side (Protocol.real_side)
    n: int
    cap: str                         # why n is below the protocol's ("" when it is not)
    embed: Callable[[Tensor], Tensor]                 # samples -> what is scored (points, or FID features)
    score: Callable[[Tensor], dict[str, ValueSD]]     # n embedded samples -> {metric: (value, own sd)}
    floor: dict[str, Interval]
    floor_sd: dict[str, float]
    draw_sizes: tuple[int, ...]      # n of each floor draw (all equal n: tests/test_protocol.py checks)
    images: Tensor | None = None     # uint8 reference images (image protocols)
    floor_images: Tensor | None = None   # the first floor draw (uint8)
    pool: Tensor | None = None       # folder datasets: training images outside the reference (memorisation)
    scale: float = 1.0               # 2D: the unit of W1 and W2, data_scale of the reference points

    def measure(self, samples: Tensor) -> dict[str, Interval]:
        """Each metric of n samples with its 95% interval: its own sd, never below the floor's (intervals.py)."""
        if len(samples) != self.n:
            raise ValueError(f"this reference compares {self.n} samples (the floor's size), got {len(samples)}")
        return {m: normal(v, sd, interval_method(m), self.floor_sd[m], -math.inf if signed(m) else 0.0)
                for m, (v, sd) in self.score(self.embed(samples)).items()}


def _floor(scores: list[dict[str, ValueSD]], method: str, finite_population: float) -> tuple[dict, dict]:
    """(floor intervals, floor sds) of the scores of the floor draws (one draw: its own sd)."""
    intervals, sds = {}, {}
    for m in scores[0]:
        lowest = -math.inf if signed(m) else 0.0
        if len(scores) > 1:
            intervals[m], sds[m] = spread([s[m][0] for s in scores], method, lowest, finite_population)
        else:
            value, sd = scores[0][m]
            intervals[m], sds[m] = normal(value, sd, f"{interval_method(m)} of the one floor set"), sd
    return intervals, sds


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def points_reference(protocol: Protocol, dataset: str) -> Reference:
    """The reference and floor of a 2D protocol on the set called dataset (a preset, or a custom set loaded in this
    process), built once per process."""
    return _points_reference(protocol.real_side(), dataset)


@lru_cache(maxsize=64)
def _points_reference(p: Protocol, dataset: str) -> Reference:
    toy = toy_dataset(dataset)

    def true_points(seed: int) -> Tensor:
        generator = _generator(seed)
        return toy.sample(p.n, generator) if p.label is None else toy.sample_class(p.n, generator, p.label)
    reference = true_points(p.reference_seed)
    scale = data_scale(reference)

    def score(x: Tensor) -> dict[str, ValueSD]:
        return score_2d(x, reference, mixture=toy.mixture, scale=scale)
    draws = [true_points(p.floor_seed + k) for k in range(FLOOR_DRAWS)]
    floor, sds = _floor([score(d) for d in draws], f"{FLOOR_DRAWS} fresh true samples", 1.0)
    return Reference(p, p.n, "", lambda x: x, score, floor, sds, tuple(len(d) for d in draws), scale=scale)


def _image_sets(p: Protocol, data: DataConfig) -> tuple[Tensor, Tensor, str]:
    """(reference images uint8 (n, C, H, W), the floor's pool (float), cap) for an image protocol."""
    from diffusion.data import load_data
    from diffusion.data.image_datasets import load_images, to_uint8
    train = load_data(data).x
    if p.reference == "test":
        test = load_images(data.dataset, data.image_size, classes=data.classes, class_weights=data.class_weights,
                           split="test", seed=data.seed).x
        n = min(p.n, len(test), len(train))
        cap = f"n capped at {n:,} (asked {p.n:,}): {len(test):,} test and {len(train):,} training images" \
            if n < p.n else ""
        pick = torch.randperm(len(test), generator=_generator(p.reference_seed))[:n]
        return to_uint8(test[pick]), train, cap
    n = min(p.n, len(train) // 2)
    cap = f"n capped at {n:,} (asked {p.n:,}): reference and floor are disjoint halves of {len(train):,} " \
          f"training images" if n < p.n else ""
    perm = torch.randperm(len(train), generator=_generator(p.reference_seed))
    return to_uint8(train[perm[:n]]), train[perm[n:]], cap


def _image_reference(p: Protocol, data: DataConfig, inception_weights: str | None) -> Reference:
    from diffusion.data.image_datasets import to_uint8
    from diffusion.metrics.fid import Frechet, features
    images, pool, cap = _image_sets(p, data)
    n = len(images)
    if n < 2:
        raise ValueError(f"FID needs at least 2 real images on each side; {data.dataset!r} gives {n} ({cap})")

    def embed(x: Tensor) -> Tensor:
        x = x if x.dtype == torch.uint8 else to_uint8(x)
        return features(x, p.extractor, data.dataset, inception_weights)
    frechet = Frechet.of(embed(images))

    def score(f: Tensor) -> dict[str, ValueSD]:
        return {"fid": frechet.distance_sd(f)}
    draws = FLOOR_DRAWS if len(pool) >= 2 * n else 1      # one set only when the pool holds no second one
    picks = [torch.randperm(len(pool), generator=_generator(p.floor_seed + k))[:n] for k in range(draws)]
    union = torch.cat(picks).unique()                     # each pool image through the extractor once
    pooled = embed(pool[union])
    scores = [score(pooled[torch.searchsorted(union, pick)]) for pick in picks]
    source = "training images" if p.reference == "test" else "other training images"
    floor, sds = _floor(scores, f"{draws} draws of n {source}", math.sqrt(1 - n / len(pool)))
    return Reference(p, n, cap, embed, score, floor, sds, tuple(len(pick) for pick in picks), images,
                     to_uint8(pool[picks[0]]), pool if p.reference == "train" else None)


@lru_cache(maxsize=16)
def _reference(p: Protocol, data: DataConfig, inception_weights: str | None) -> Reference:
    if p.family == "points2d":
        return _points_reference(p, data.dataset)
    return _image_reference(p, data, inception_weights)


def reference_for(protocol: Protocol, data: DataConfig, inception_weights: str | Path | None = None) -> Reference:
    """The reference and floor of a protocol on a run's data (built once per process, shared by every sampler)."""
    if (protocol.family == "points2d") != (data.image_size is None):
        raise ValueError(f"a {protocol.family} protocol does not measure dataset {data.dataset!r}")
    weights = None if inception_weights is None else str(inception_weights)
    return _reference(protocol.real_side(), data, weights)
