"""THE measurement protocol: what one quality number is (metric family, feature extractor, n, reference set,
floor, sampler, seed), as a frozen, hashable object with a short printable name, and the one place where a
reference and a floor are built.

The rule: the reference, each floor draw and the generated set have exactly the same n, and the floor's real sets
are disjoint from the reference. 2D: the reference is n fresh true points (reference_seed), the floor n other fresh
true points (floor_seed + k); of one class only when the protocol has a label (samples drawn for that class). Images with a test split: the reference is n held-out test images, the floor n
training images (a perfect model draws fresh images of the data), the model n samples, all against that one
reference; n = min(asked, |test|, |train|). Folder datasets (no test split): reference and floor are disjoint sets
of training images, n <= N / 2 (memorisation is reported beside). A capped n is said (Reference.cap).

Floors are drawn the way the samples are: samples drawn with given labels (balanced over the classes, or one class)
make a stratified protocol (stratify), whose every floor draw holds the same count of each class; a balanced set
sits closer to the data than an i.i.d. one (25gaussians: 0.80x the i.i.d. floor's W1 at n = 1,000), so an i.i.d.
floor would flatter it. Every metric's floor comes from the same FLOOR_DRAWS draws (FID, W, KL here; KID, IS,
precision and recall by extra_floor), as the prediction interval of one more draw (intervals.spread).
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
FLOOR_DRAWS = 10                 # independent floor sets (seeds FLOOR_SEED .. FLOOR_SEED + 9): mean and spread
END_SIGMA = 0.010000500037503125  # where every reported likelihood's ODE ends (metrics.likelihood): the smallest noise
                                 # level sqrt(beta_1 / (1 - beta_1)) of the linear schedule, beta_1 = 1e-4, T = 1,000
HELD_OUT_SEED = 20_001           # 2D held-out points of a likelihood (+ its seed): no training set (data seeds are
                                 # small), reference or floor draw (10,001 .. 10,011) uses these generators
MAX_N, MAX_SEED = 100_000, 2**31 - 1
EXTRACTORS = {"classifier": "clf", "inception": "incv3"}
SHORT = {"guidance": "w", "eta": "eta", "variance": "var", "spacing": "sp"}
METHODS = {**{m.name: m.method for m in POINT_METRICS.values()}, "fid": "bootstrap",   # 2D: the registry's entries
           "kid": "std over KID subsets (torch-fidelity)",
           "isc": "std over IS splits (torch-fidelity)", "precision": "bootstrap, k-NN balls recomputed",
           "recall": "bootstrap, k-NN balls recomputed"}
SIGNED = tuple(m.name for m in POINT_METRICS.values() if m.signed)   # may be negative, and under its floor
BOUNDS = {"nll": (-math.inf, math.inf), "kid": (-math.inf, math.inf),   # KID unbiased: may be < 0
          "isc": (1.0, math.inf), "precision": (0.0, 1.0), "recall": (0.0, 1.0)}


# What a bare tag means for the timestep spacing and the noise grid: the settings protocols were named under before
# the samplers' defaults moved to the grids of docs/samplers.md, so a stored 'ddim50' keeps meaning trailing DDIM-50
# and today's default cubic DDIM-50 reads 'ddim50·spacing=cubic'.
TAG_BASE = {"ddim": {"spacing": "trailing"}, "ddpm": {"spacing": "trailing"}, "euler": {"grid": "karras"},
            "heun": {"grid": "karras"}, "dpmpp2m": {"grid": "logsnr"}, "flow_euler": {"grid": "flow"},
            "flow_midpoint": {"grid": "flow"}}
MEASUREMENT_SAMPLER = SamplerConfig("ddim", 50, spacing="trailing")   # 'ddim50': every stored number's sampler


def _settings(sampler: SamplerConfig) -> dict:
    return {**vars(sampler), "spacing": sampler.timestep_spacing, "grid": sampler.sigma_grid}


def sampler_tag(sampler: SamplerConfig) -> str:
    """'ddim50', 'ddim20·w2', 'heun18·rho=5': name, steps and the settings that differ from that sampler's defaults
    (its spacing and grid compared with TAG_BASE, so a tag keeps its meaning when a default moves)."""
    base = {**_settings(SamplerConfig(sampler.name)), **TAG_BASE.get(sampler.name, {})}
    changed = [f"{SHORT.get(k, k)}{'' if k == 'guidance' else '='}{v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in _settings(sampler).items() if k not in ("name", "steps") and v != base[k]]
    return "·".join([f"{sampler.name}{sampler.steps}", *changed])


@dataclass(frozen=True)
class Protocol:
    """How one quality number is measured; frozen and hashable (it keys caches), `name` prints it."""

    family: Family                   # "points2d": W1, W2, KL both ways (+ NLL for mixtures); "fid": FID
    n: int                           # asked samples: generated, reference and each floor draw alike
    sampler: SamplerConfig = MEASUREMENT_SAMPLER
    seed: int = 0                    # the generated samples' noise bank (Run.sample's seed)
    extractor: str = ""              # fid: "classifier" (the dataset's shipped CNN) or "inception"
    reference: Split = "fresh"       # where the reference comes from: fresh true points, the test or train split
    reference_seed: int = REFERENCE_SEED
    floor_seed: int = FLOOR_SEED     # floor draw k uses floor_seed + k
    label: int | None = None         # points2d: the class the samples were drawn for (reference and floor of it)
    strata: tuple[tuple[int, int], ...] = ()   # (class, count) of the samples' labels: each floor draw holds as many

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
        if self.strata and (self.label is not None or sum(k for _, k in self.strata) != self.n or any(
                c < 0 or k < 1 for c, k in self.strata) or len({c for c, _ in self.strata}) != len(self.strata)):
            raise ValueError(f"protocol strata={self.strata!r} with n={self.n}, label={self.label!r}; allowed: distinct "
                             "(class >= 0, count >= 1) pairs whose counts add up to n, without a label")
        if self.floor_seed <= self.reference_seed < self.floor_seed + FLOOR_DRAWS:
            raise ValueError(f"reference_seed={self.reference_seed} is one of the floor's seeds "
                             f"{self.floor_seed}..{self.floor_seed + FLOOR_DRAWS - 1}: the sets must differ")

    @property
    def name(self) -> str:
        """Short and printable, e.g. 'fid·clf·n500·test·ddim50·s0' or '2d·n1000·fresh·ddim50·s0'."""
        head = ["2d"] if self.family == "points2d" else ["fid", EXTRACTORS[self.extractor]]
        seeds = [f"r{self.reference_seed}"] * (self.reference_seed != REFERENCE_SEED) + \
            [f"f{self.floor_seed}"] * (self.floor_seed != FLOOR_SEED)
        label = [f"c{self.label}"] * (self.label is not None) + [strata_tag(self.strata)] * bool(self.strata)
        return "·".join([*head, f"n{self.n}", self.reference, *label, sampler_tag(self.sampler), f"s{self.seed}",
                         *seeds])

    def describe(self, n: int | None = None) -> str:
        """The protocol in words, at the n actually used."""
        n = self.n if n is None else n
        strata = f", {self.strata_words()}" if self.strata else ""
        if self.family == "points2d":
            of = "" if self.label is None else f" of class {self.label}"
            real = f"{n:,} fresh true points{of}; floor: {n:,} other fresh true points{of}{strata} ({FLOOR_DRAWS} draws)"
        else:
            ref = "held-out test images" if self.reference == "test" else "training images"
            floor = "training images" if self.reference == "test" else "other training images"
            real = f"{n:,} {ref} on {self.extractor} features; floor: {n:,} {floor}{strata} ({FLOOR_DRAWS} draws)"
        return f"{n:,} samples ({sampler_tag(self.sampler)}, seed {self.seed}) against {real}"

    def strata_words(self) -> str:
        counts = sorted({k for _, k in self.strata})
        each = "-".join(map(str, counts))
        return f"stratified as the samples' labels: {each} of each of {len(self.strata)} classes"

    def real_side(self) -> "Protocol":
        """The protocol without what only the generated side uses (the reference and floor do not depend on it)."""
        return replace(self, sampler=SamplerConfig(), seed=0)


def strata_tag(strata: tuple[tuple[int, int], ...]) -> str:
    """'bal10' for labels balanced over 10 classes (counts differ by at most 1), else 'y0:400+3:100'."""
    counts = [k for _, k in strata]
    if len(strata) > 1 and max(counts) - min(counts) <= 1:
        return f"bal{len(strata)}"
    return "y" + "+".join(f"{c}:{k}" for c, k in strata)


def stratify(protocol: Protocol, y: Tensor | None) -> Protocol:
    """The protocol of samples drawn with labels y (n,): stratified by their class counts (each floor draw holds as many
    of each class), or itself when y is None or the protocol already draws one class (label)."""
    if y is None or protocol.label is not None:
        return protocol
    counts = torch.bincount(y.cpu().long())
    return replace(protocol, n=len(y), strata=tuple((c, int(k)) for c, k in enumerate(counts.tolist()) if k))


def points_protocol(n: int = 1000, sampler: SamplerConfig = MEASUREMENT_SAMPLER, seed: int = 0,
                    label: int | None = None) -> Protocol:
    """A 2D protocol: W1, W2, KL both ways (and NLL for mixtures) against n fresh true points (of class label)."""
    return Protocol("points2d", n, sampler, seed, label=label)


def image_protocol(data: DataConfig, n: int = 500, sampler: SamplerConfig = MEASUREMENT_SAMPLER,
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
    floor_sets: tuple[Tensor, ...] = ()  # image protocols: every floor draw's images (uint8)
    pool: Tensor | None = None       # folder datasets: training images outside the reference (memorisation)
    finite_population: float = 1.0   # sqrt(1 - n / N) when floor draws take n of a pool of N (intervals.spread)
    scale: float = 1.0               # 2D: the unit of W1 and W2, data_scale of the reference points

    @property
    def floor_images(self) -> Tensor | None:
        """The first floor draw's images (uint8; None for 2D)."""
        return self.floor_sets[0] if self.floor_sets else None

    def measure(self, samples: Tensor) -> dict[str, Interval]:
        """Each metric of n samples with its 95% interval: its own sd, never below the floor's (intervals.py)."""
        if len(samples) != self.n:
            raise ValueError(f"this reference compares {self.n} samples (the floor's size), got {len(samples)}")
        return {m: normal(v, sd, METHODS[m], self.floor_sd[m], *BOUNDS.get(m, (0.0, math.inf)))
                for m, (v, sd) in self.score(self.embed(samples)).items()}


def _floor(scores: list[dict[str, ValueSD]], method: str, finite_population: float) -> tuple[dict, dict]:
    """(floor intervals, floor sds) of the scores of the floor draws (one draw: its own sd)."""
    intervals, sds = {}, {}
    for m in scores[0]:
        lowest, highest = BOUNDS.get(m, (0.0, math.inf))
        if len(scores) > 1:
            intervals[m], sds[m] = spread([s[m][0] for s in scores], method, lowest, finite_population, highest)
        else:
            value, sd = scores[0][m]
            intervals[m], sds[m] = normal(value, sd, f"{METHODS[m]} of the one floor set", 0.0, lowest, highest), sd
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

    def true_points(seed: int, strata: tuple[tuple[int, int], ...] = ()) -> Tensor:
        generator = _generator(seed)
        if strata:
            return torch.cat([toy.sample_class(count, generator, c) for c, count in strata])
        return toy.sample(p.n, generator) if p.label is None else toy.sample_class(p.n, generator, p.label)
    reference = true_points(p.reference_seed)
    scale = data_scale(reference)

    def score(x: Tensor) -> dict[str, ValueSD]:
        return score_2d(x, reference, mixture=toy.mixture, scale=scale)
    draws = [true_points(p.floor_seed + k, p.strata) for k in range(FLOOR_DRAWS)]
    floor, sds = _floor([score(d) for d in draws], f"{FLOOR_DRAWS} fresh true samples", 1.0)
    return Reference(p, p.n, "", lambda x: x, score, floor, sds, tuple(len(d) for d in draws), scale=scale)


def _image_sets(p: Protocol, data: DataConfig) -> tuple[Tensor, Tensor, Tensor | None, str]:
    """(reference images uint8 (n, C, H, W), the floor's pool (float), the pool's labels, cap) for an image
    protocol."""
    from diffusion.data import load_data
    from diffusion.data.image_datasets import load_images, to_uint8
    loaded = load_data(data)
    train, labels = loaded.x, loaded.y
    if p.reference == "test":
        test = load_images(data.dataset, data.image_size, classes=data.classes, class_weights=data.class_weights,
                           split="test", seed=data.seed).x
        n = min(p.n, len(test), len(train))
        cap = f"n capped at {n:,} (asked {p.n:,}): {len(test):,} test and {len(train):,} training images" \
            if n < p.n else ""
        pick = torch.randperm(len(test), generator=_generator(p.reference_seed))[:n]
        return to_uint8(test[pick]), train, labels, cap
    n = min(p.n, len(train) // 2)
    cap = f"n capped at {n:,} (asked {p.n:,}): reference and floor are disjoint halves of {len(train):,} " \
          f"training images" if n < p.n else ""
    perm = torch.randperm(len(train), generator=_generator(p.reference_seed))
    return to_uint8(train[perm[:n]]), train[perm[n:]], None if labels is None else labels[perm[n:]], cap


def _image_reference(p: Protocol, data: DataConfig, inception_weights: str | None) -> Reference:
    from diffusion.data.image_datasets import to_uint8
    from diffusion.metrics.fid import Frechet, features
    images, pool, pool_labels, cap = _image_sets(p, data)
    n = len(images)
    if p.strata and n != p.n:
        raise ValueError(f"a stratified protocol of n = {p.n} needs that many real images; {cap}")
    if n < 2:
        raise ValueError(f"FID needs at least 2 real images on each side; {data.dataset!r} gives {n} ({cap})")

    def embed(x: Tensor) -> Tensor:
        x = x if x.dtype == torch.uint8 else to_uint8(x)
        return features(x, p.extractor, data.dataset, inception_weights)
    frechet = Frechet.of(embed(images))

    def score(f: Tensor) -> dict[str, ValueSD]:
        return {"fid": frechet.distance_sd(f)}
    draws = FLOOR_DRAWS if len(pool) >= 2 * n else 1      # one set only when the pool holds no second one
    picks = [_floor_pick(p, n, pool_labels, len(pool), _generator(p.floor_seed + k)) for k in range(draws)]
    union = torch.cat(picks).unique()                     # each pool image through the extractor once
    pooled = embed(pool[union])
    scores = [score(pooled[torch.searchsorted(union, pick)]) for pick in picks]
    source = "training images" if p.reference == "test" else "other training images"
    finite_population = math.sqrt(1 - n / len(pool))
    floor, sds = _floor(scores, f"{draws} draws of n {source}", finite_population)
    return Reference(p, n, cap, embed, score, floor, sds, tuple(len(pick) for pick in picks), images,
                     tuple(to_uint8(pool[pick]) for pick in picks), pool if p.reference == "train" else None,
                     finite_population)


def _floor_pick(p: Protocol, n: int, labels: Tensor | None, size: int, generator: torch.Generator) -> Tensor:
    """Indices of one floor draw of n from a pool of `size` images (labels: theirs): at random, or p.strata's count of
    each class."""
    if not p.strata:
        return torch.randperm(size, generator=generator)[:n]
    if labels is None:
        raise ValueError("a stratified floor needs the training images' labels; this dataset has none")
    picks = []
    for c, count in p.strata:
        members = (labels == c).nonzero().flatten()
        if len(members) < count:
            raise ValueError(f"class {c} has {len(members)} training images; its floor stratum needs {count}")
        picks.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(picks)


@lru_cache(maxsize=16)
def extra_floor(ref: Reference, metrics: tuple[str, ...], dataset: str) -> tuple[dict[str, Interval], dict[str, float]]:
    """(floor intervals, floor sds) of torch-fidelity's KID and IS and of precision/recall (metrics.prc) for an image
    reference: each computed on every floor draw against the reference, like FID's floor (built once per process)."""
    from diffusion.metrics.image_metrics import image_metrics
    from diffusion.metrics.prc import precision_recall
    fidelity = tuple(m for m in metrics if m in ("isc", "kid"))
    real = ref.embed(ref.images) if "prc" in metrics else None
    scores = []
    for draw in ref.floor_sets:
        out = image_metrics(draw, ref.images, fidelity, extractor=ref.protocol.extractor, dataset=dataset) \
            if fidelity else {}
        score = {m: (out[f"{m}_mean"], out[f"{m}_std"]) for m in fidelity}
        if real is not None:
            score |= precision_recall(ref.embed(draw), real, replicates=0)
        scores.append(score)
    source = "training images" if ref.protocol.reference == "test" else "other training images"
    return _floor(scores, f"{len(scores)} draws of n {source}", ref.finite_population)


@lru_cache(maxsize=16)
def _reference(p: Protocol, data: DataConfig, inception_weights: str | None) -> Reference:
    if p.family == "points2d":
        return _points_reference(p, data.dataset)
    return _image_reference(p, data, inception_weights)


def sample_size(protocol: Protocol, data: DataConfig) -> int:
    """The n a protocol measures on a run's data (its own n, or the cap the held-out images set) without building the
    floor: what labels for the samples are drawn for before the (stratified) reference is built."""
    if protocol.family == "points2d":
        return protocol.n
    return len(_image_sets(protocol.real_side(), data)[0])


def reference_for(protocol: Protocol, data: DataConfig, inception_weights: str | Path | None = None) -> Reference:
    """The reference and floor of a protocol on a run's data (built once per process, shared by every sampler)."""
    if (protocol.family == "points2d") != (data.image_size is None):
        raise ValueError(f"a {protocol.family} protocol does not measure dataset {data.dataset!r}")
    weights = None if inception_weights is None else str(inception_weights)
    return _reference(protocol.real_side(), data, weights)
