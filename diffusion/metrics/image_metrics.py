"""Image metrics with honest labels: FID, Inception Score, KID and precision/recall through torch-fidelity, in
the feature space of a shipped classifier (offline) or of Inception-v3 (their floors: diffusion.metrics.protocol);
the classifier's outputs and class histograms of samples; memorisation and diversity in pixel space.

Images are uint8 (N, C, H, W) in 0..255 or float (N, C, H, W) in [-1, 1]; the dtype tells which.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from diffusion.metrics.classifier import FeatureCNN, load_classifier

Metric = Literal["fid", "isc", "kid", "prc"]
METRICS: tuple[str, ...] = ("fid", "isc", "kid", "prc")
INCEPTION = "inception-v3-compat"
KID_SUBSET_SIZE = 1000  # Binkowski et al. 2018: 100 subsets of 1,000 (of at most half of each set here)
COPY_THRESHOLD = 0.3   # memorisation ratio below this: the sample is (nearly) a copy of a training image
_KEYS = {torch_fidelity.KEY_METRIC_FID: "fid", torch_fidelity.KEY_METRIC_ISC_MEAN: "isc_mean",
         torch_fidelity.KEY_METRIC_ISC_STD: "isc_std", torch_fidelity.KEY_METRIC_KID_MEAN: "kid_mean",
         torch_fidelity.KEY_METRIC_KID_STD: "kid_std", torch_fidelity.KEY_METRIC_PRECISION: "precision",
         torch_fidelity.KEY_METRIC_RECALL: "recall", torch_fidelity.KEY_METRIC_F_SCORE: "f_score"}
_CDIST_ELEMENTS = 1 << 24  # distance-matrix entries per block (64 MB of float32)
_REGISTERED: dict[str, FeatureCNN] = {}


class ClassifierExtractor(torch_fidelity.FeatureExtractorBase):
    """torch-fidelity extractor over a FeatureCNN: "features" (penultimate layer) for FID/KID/PRC, "logits" for IS."""

    def __init__(self, name: str, features_list: Sequence[str], **kwargs):  # every calculate_metrics kwarg lands here
        super().__init__(name, features_list)
        self.net = _REGISTERED[name]

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "features"  # torch-fidelity applies the softmax for IS

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        h = self.net.features(to_float(x))
        out = {"features": h, "logits": self.net.out(h)}
        return tuple(out[name] for name in self.features_list)


def register_classifier(net: FeatureCNN, name: str) -> str:
    """Make net available to torch-fidelity as feature_extractor=name (re-registering a name replaces the net)."""
    if name not in _REGISTERED:
        torch_fidelity.register_feature_extractor(name, ClassifierExtractor)
    _REGISTERED[name] = net.eval()
    return name


@lru_cache(maxsize=16)
def classifier_extractor(dataset: str, image_size: int) -> str:
    """Load the shipped classifier for dataset at image_size and register it as "classifier-<dataset>-<size>"."""
    return register_classifier(load_classifier(dataset, image_size)[0], f"classifier-{dataset}-{image_size}")


def to_float(images: Tensor) -> Tensor:
    """uint8 0..255 -> float32 [-1, 1]; float images are taken to be in [-1, 1] already."""
    return images.float().div(127.5).sub(1) if images.dtype == torch.uint8 else images.float()


class ImageSet(Dataset):
    """Bare uint8 (C, H, W) items, as torch-fidelity wants them (a TensorDataset's tuples fail)."""

    def __init__(self, x: Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Tensor:
        return self.x[i]


def _check_images(name: str, x: Tensor, minimum: int) -> None:
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be uint8 (N, 1|3, H, W), got {x.dtype} {tuple(x.shape)}")
    if len(x) < minimum:
        raise ValueError(f"{name} has {len(x)} images; these metrics need at least {minimum}")


def _inception_weights(weights: str | Path | None, download: bool) -> str | None:
    """The local Inception weights file to use, or None for torch-fidelity's download; ValueError if neither."""
    if weights is not None:
        if not Path(weights).is_file():
            raise ValueError(f"Inception weights file {str(weights)!r} does not exist")
        return str(weights)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(URL_INCEPTION_V3).name
    if cached.is_file():
        return str(cached)
    if not download:
        raise ValueError(f"Inception-v3 weights are not on this machine ({cached} is missing) and download=False; "
                         f"use extractor='classifier', or pass inception_weights=<path to {cached.name}>")
    return None


def resolve_extractor(extractor: str, dataset: str | None, x: Tensor, inception_weights: str | Path | None,
             download: bool) -> tuple[str, str | None]:
    """(torch-fidelity extractor name, weights path) for extractor 'classifier', 'inception' or a registered name."""
    if extractor == "classifier":
        if dataset is None:
            raise ValueError("extractor='classifier' needs dataset=<name of the shipped classifier's dataset>")
        name = classifier_extractor(dataset, x.shape[-1])
        if _REGISTERED[name].config.in_channels != x.shape[1]:
            raise ValueError(f"{name} takes {_REGISTERED[name].config.in_channels}-channel images, got {x.shape[1]}")
        return name, None
    if extractor == "inception":
        return INCEPTION, _inception_weights(inception_weights, download)
    if extractor in _REGISTERED:
        return extractor, None
    raise ValueError(f"unknown extractor {extractor!r}; allowed: 'classifier', 'inception', or a name given to "
                     f"register_classifier ({', '.join(_REGISTERED) or 'none yet'})")


def image_metrics(generated: Tensor, real: Tensor, metrics: Sequence[Metric] = METRICS, *,
                  extractor: str = "classifier", dataset: str | None = None,
                  inception_weights: str | Path | None = None, download: bool = True) -> dict:
    """FID (Heusel 2017), IS (Salimans 2016, of `generated`), KID (Binkowski 2018), precision/recall (Kynkaanniemi
    2019, k=3) of uint8 (N, C, H, W) images; the dict says which extractor and how many samples made each number."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown or list(metrics)}; allowed: {', '.join(METRICS)}")
    minimum = 4 if {"kid", "prc"} & set(metrics) else 2  # KID subsets of N // 2 >= 2; PRC needs 3 neighbours
    _check_images("generated", generated, minimum)
    _check_images("real", real, minimum)
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"generated {tuple(generated.shape[1:])} and real {tuple(real.shape[1:])} images differ "
                         f"in shape")
    name, weights = resolve_extractor(extractor, dataset, real, inception_weights, download)
    kid_subset = min(KID_SUBSET_SIZE, min(len(generated), len(real)) // 2)  # < N, so kid_std measures something
    if name == INCEPTION:  # Inception wants RGB
        generated, real = generated.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1)
    options = dict(input1=ImageSet(generated), input2=ImageSet(real), feature_extractor=name,
                   feature_extractor_weights_path=weights, cuda=False, save_cpu_ram=True, cache=False,
                   verbose=False, batch_size=500, isc_splits=min(10, len(generated)), kid_subset_size=kid_subset,
                   **{m: m in metrics for m in METRICS})
    try:
        raw = torch_fidelity.calculate_metrics(**options)
    except OSError as err:  # URLError: torch-fidelity could not download the Inception weights
        if name != INCEPTION or weights is not None:
            raise
        raise ValueError(f"Inception-v3 weights could not be downloaded ({err}); use extractor='classifier', or "
                         f"pass inception_weights=<local file>") from None
    out = {_KEYS[k]: float(v) for k, v in raw.items()}
    counts = {"kid_subset_size": kid_subset} if "kid" in metrics else {}
    return {**out, "extractor": name, "n_generated": len(generated), "n_real": len(real), **counts}


@torch.no_grad()
def classifier_outputs(images: Tensor, classifier: FeatureCNN, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """(features (N, feature_dim), logits (N, num_classes)) of images (uint8 or float in [-1, 1])."""
    classifier.eval()
    device = next(classifier.parameters()).device
    feats = [classifier.features(to_float(x).to(device)).cpu() for x in images.split(batch_size)]
    h = torch.cat(feats)
    return h, classifier.out(h.to(device)).cpu()


def class_histogram(images: Tensor, classifier: FeatureCNN, num_classes: int | None = None) -> Tensor:
    """Counts (num_classes,) of the classifier's predicted classes; compare with the training histogram."""
    k = classifier.config.num_classes if num_classes is None else num_classes
    return torch.bincount(classifier_outputs(images, classifier)[1].argmax(1), minlength=k)


def _flat(x: Tensor) -> Tensor:
    return to_float(x).reshape(len(x), -1)


def nearest_neighbours(generated: Tensor, train: Tensor) -> tuple[Tensor, Tensor]:
    """Index (N,) of each generated image's nearest training image and the L2 distance (N,) in [-1, 1] pixel
    units; blocks of the distance matrix are bounded in memory, the reported distance is recomputed exactly."""
    g, t = _flat(generated), _flat(train)
    if g.shape[1] != t.shape[1]:
        raise ValueError(f"generated {tuple(generated.shape[1:])} and train {tuple(train.shape[1:])} images differ")
    rows = max(1, _CDIST_ELEMENTS // len(t))
    idx = torch.cat([torch.cdist(block, t).argmin(1) for block in g.split(rows)])
    return idx, (g - t[idx]).norm(dim=1)


@dataclass(frozen=True)
class Memorisation:
    """Per generated sample: nearest training image, its distance, and that distance over the typical one;
    the same ratio for the held-out real images, whose flagged fraction is the false-alarm floor."""

    nearest: Tensor        # (N,) index into the training set
    distance: Tensor       # (N,) L2 distance in [-1, 1] pixel units
    typical: float         # median distance from a held-out real image to its nearest training image
    ratio: Tensor          # (N,) distance / typical: ~1 for a fresh image, ~0 for a copy
    holdout_ratio: Tensor  # (M,) the same ratio for the held-out real images (median 1 by construction)

    @property
    def copies(self) -> Tensor:
        """(N,) bool: samples closer to a training image than COPY_THRESHOLD times the typical distance."""
        return self.ratio < COPY_THRESHOLD

    @property
    def copy_floor(self) -> float:
        """Fraction of held-out real images flagged as copies (near-duplicates exist in real data too)."""
        return float((self.holdout_ratio < COPY_THRESHOLD).float().mean())


def memorisation_ratio(generated: Tensor, train: Tensor, real_holdout: Tensor) -> Memorisation:
    """Nearest-training-image distance of each sample over the median nearest-training distance of held-out
    real images (the distance a fresh draw from the data distribution has)."""
    nearest, distance = nearest_neighbours(generated, train)
    holdout = nearest_neighbours(real_holdout, train)[1]
    typical = float(holdout.median())
    if typical == 0:
        raise ValueError("the held-out images are copies of training images: real_holdout must be disjoint from train")
    return Memorisation(nearest, distance, typical, distance / typical, holdout / typical)


def pairwise_distance_sd(x: Tensor) -> tuple[float, float]:
    """Mean L2 distance over pairs i != j of (N, ...) images or features (uint8 images are mapped to [-1, 1]), and
    its sd as a U-statistic, 2 std_i(mean_j |x_i - x_j|) / sqrt(N) (Hoeffding's first-order term)."""
    f = _flat(x)
    if len(f) < 2:
        raise ValueError(f"diversity needs at least 2 samples, got {len(f)}")
    rows, sums = max(1, _CDIST_ELEMENTS // len(f)), []
    for start in range(0, len(f), rows):
        d = torch.cdist(f[start:start + rows], f)                       # (rows, N)
        d[torch.arange(len(d)), torch.arange(start, start + len(d))] = 0  # exclude i == j (cdist rounding)
        sums.append(d.double().sum(1))
    row_means = torch.cat(sums) / (len(f) - 1)
    sd = 2 * float(row_means.std()) / len(f) ** 0.5 if len(f) > 2 else 0.0
    return float(row_means.mean()), sd


def mean_pairwise_distance(x: Tensor) -> float:
    """Mean L2 distance over pairs i != j of (N, ...) images or features (pairwise_distance_sd without its sd)."""
    return pairwise_distance_sd(x)[0]
