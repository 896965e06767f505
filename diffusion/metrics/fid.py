"""FID from features computed once: the feature extractor (the dataset's classifier or Inception-v3, through
torch-fidelity, so the features are those image_metrics uses), the reference side held fixed, and the bootstrap
standard deviation over the generated features (Heusel et al. 2017, eq. 6 of their appendix for the distance).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset, \
    resolve_feature_layer_for_metric

from diffusion.metrics.image_metrics import INCEPTION, ImageSet, resolve_extractor
from diffusion.metrics.intervals import BOOTSTRAP_REPLICATES, bootstrap_sd

CHUNK = 16           # bootstrap replicates evaluated together (bounded memory at 2,048 Inception features)


def features(images: Tensor, extractor: str = "classifier", dataset: str | None = None,
             inception_weights: str | Path | None = None, download: bool = True) -> Tensor:
    """FID features (N, d) float64 of uint8 images (N, C, H, W): the classifier's penultimate layer, or
    Inception-v3's 2,048 pool features (grayscale repeated to RGB)."""
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 2:
        raise ValueError(f"FID features need uint8 (N >= 2, C, H, W) images, got {images.dtype} "
                         f"{tuple(images.shape)}")
    name, weights = resolve_extractor(extractor, dataset, images, inception_weights, download)
    if name == INCEPTION:
        images = images.expand(-1, 3, -1, -1)
    layer = resolve_feature_layer_for_metric("fid", feature_extractor=name)
    try:
        net = create_feature_extractor(name, [layer], cuda=False, feature_extractor_weights_path=weights,
                                       verbose=False)
    except OSError as err:  # URLError: the Inception weights could not be downloaded
        raise ValueError(f"Inception-v3 weights could not be downloaded ({err}); use extractor='classifier', or "
                         f"pass inception_weights=<local file>") from None
    out = get_featuresdict_from_dataset(ImageSet(images), net, 500, False, True, False)
    return out[layer].double()


@dataclass(frozen=True, eq=False)
class Frechet:
    """The reference side of FID: the mean (d,), covariance (d, d) and its symmetric square root of n features."""

    mu: Tensor
    sigma: Tensor
    root: Tensor
    n: int

    @classmethod
    def of(cls, reference: Tensor) -> "Frechet":
        f = reference.double()
        sigma = torch.cov(f.T)
        w, v = torch.linalg.eigh(sigma)
        return cls(f.mean(0), sigma, (v * w.clamp(min=0).sqrt()) @ v.T, len(f))

    def _trace_sqrt(self, c: Tensor) -> Tensor:
        """tr((Sigma_ref^1/2 S Sigma_ref^1/2)^1/2) for centred features c (B, m, d), S = c^T c / (m - 1); with
        m < d through the m x m matrix c Sigma_ref c^T / (m - 1), which has the same non-zero eigenvalues."""
        m, d = c.shape[1:]
        if m < d:
            g = c @ self.sigma @ c.transpose(1, 2) / (m - 1)
        else:
            g = self.root @ (c.transpose(1, 2) @ c / (m - 1)) @ self.root
        return torch.linalg.eigvalsh(g).clamp(min=0).sqrt().sum(-1)

    def _distances(self, f: Tensor) -> Tensor:
        """FID (B,) of feature sets (B, m, d) against the reference."""
        mu = f.mean(1)
        c = f - mu[:, None]
        trace = c.square().sum((1, 2)) / (f.shape[1] - 1)
        return (mu - self.mu).square().sum(-1) + trace + self.sigma.trace() - 2 * self._trace_sqrt(c)

    def distance(self, generated: Tensor) -> float:
        """FID of generated features (m, d) against the reference: |mu_g - mu_r|^2 + tr(S_g + S_r - 2 (S_g S_r)^1/2)."""
        if generated.ndim != 2 or generated.shape[1] != len(self.mu) or len(generated) < 2:
            raise ValueError(f"FID needs features (m >= 2, {len(self.mu)}), got {tuple(generated.shape)}")
        return float(self._distances(generated.double()[None])[0])

    def distance_sd(self, generated: Tensor, replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0
                    ) -> tuple[float, float]:
        """(FID, its bootstrap sd): the generated features resampled with replacement, the reference fixed."""
        value, f = self.distance(generated), generated.double()

        def statistic(idx: np.ndarray) -> np.ndarray:
            return torch.cat([self._distances(f[chunk]) for chunk in torch.from_numpy(idx).split(CHUNK)]).numpy()
        return value, float(bootstrap_sd(statistic, len(f), replicates, seed))
