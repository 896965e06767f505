"""Analytic denoisers of an image training set, x0-prediction "networks" (x_t, t, y) -> x0_hat on a discrete VP
schedule (Ho et al. 2020, eq. 4), so that every registered sampler runs them as it runs a trained U-Net:

- EmpiricalDenoiser: E[x0 | x_t] when x0 is uniform on the N training images, a softmax over them; its probability
  flow can only end on a training image (the optimal denoiser of the training loss: it memorises).
- GaussianDenoiser: E[x0 | x_t] when x0 ~ N(mu, C), the data's mean and covariance; linear in x_t, exact through C's
  eigendecomposition (Wang & Vastola 2024: it explains trained models' high-noise behaviour).
- PatchDenoiser: the equivariant local score (ELS) machine of Kamb & Ganguli 2024 in its simplest form: each pixel's
  x0_hat is the posterior mean of the centre pixel over the training set's P x P patches, given only the P x P patch
  of x_t around it (locality); equivariant=True pools patches from every position (translation equivariance,
  circular padding as in their ELS), False keeps those at the pixel's own position (their LS machine).
- ClassConditional: any of them per class, for class-conditional runs: label y gets the denoiser of the class-y
  training images, the null label the whole set's (so classifier-free guidance applies unchanged).

Timesteps t may be fractional (continuous-time samplers): alpha_bar is then read with ln sigma linear between the
schedule's integer timesteps, the inverse of core.edm.fractional_timestep.
"""

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHUNK_ELEMENTS = 1 << 24        # query rows x training patches evaluated at once (64 MB of float32)


def alpha_bar_at(alpha_bar: Tensor, t: Tensor) -> Tensor:
    """alpha_bar at code timesteps t (B,) (integer or fractional), float64: ln sigma linear between timesteps."""
    t = t.double()
    log_sigma = (0.5 * ((1 - alpha_bar.double()) / alpha_bar.double()).log()).to(t.device)     # (T,)
    low = t.floor().long().clamp(0, len(alpha_bar) - 1)
    high = (low + 1).clamp(max=len(alpha_bar) - 1)
    frac = (t - low).clamp(0, 1)
    sigma = (log_sigma[low] + frac * (log_sigma[high] - log_sigma[low])).exp()
    return 1.0 / (1.0 + sigma.square())


def _flat(images: Tensor) -> Tensor:
    if images.ndim != 4 or len(images) < 1 or not images.is_floating_point():
        raise ValueError(f"training images must be float (N >= 1, C, H, W); got {images.dtype} {tuple(images.shape)}")
    return images.reshape(len(images), -1)


class _AnalyticNet(nn.Module):
    """The shared contract: forward(x_t (B, C, H, W), t (B,), y) -> x0_hat (B, C, H, W) in x_t's dtype, unconditional
    (y is ignored), no trainable parameters; the `anchor` parameter gives a Run its device. Computed in the dtype of
    the training images (float32 on the pages; float64 in the tests, which check equivalences to 1e-10)."""

    null_label = None

    def __init__(self, alpha_bar: Tensor, shape: tuple[int, ...], dtype: torch.dtype):
        super().__init__()
        self.register_buffer("alpha_bar", torch.as_tensor(alpha_bar, dtype=torch.float64))
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.shape, self.dtype = tuple(shape), dtype

    @torch.no_grad()
    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if tuple(x_t.shape[1:]) != self.shape:
            raise ValueError(f"x_t has shape {tuple(x_t.shape)}; allowed: (B, {', '.join(map(str, self.shape))})")
        ab = alpha_bar_at(self.alpha_bar, t.to(x_t.device)).to(self.dtype)                    # (B,)
        return self.posterior_mean(x_t.to(self.dtype), ab).to(x_t.dtype)

    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        raise NotImplementedError


def _softmax_average(logits: Tensor, values: Tensor) -> Tensor:
    """sum_m softmax(logits)[r, m] values[m] for logits (R, M), values (M, K) -> (R, K)."""
    return torch.softmax(logits, dim=1) @ values


class EmpiricalDenoiser(_AnalyticNet):
    """E[x0 | x_t] for x0 uniform on the training images: sum_n softmax_n(-|x_t - sqrt(ab) x_n|^2 / 2(1 - ab)) x_n."""

    def __init__(self, images: Tensor, alpha_bar: Tensor):
        super().__init__(alpha_bar, images.shape[1:], images.dtype)
        self.register_buffer("x", _flat(images))                                              # (N, D)

    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        x, ab = x_t.reshape(len(x_t), -1), alpha_bar[:, None]
        # -|x_t - sqrt(ab) x_n|^2 / 2(1 - ab), without |x_t|^2 (the same for every n)
        logits = (ab.sqrt() * x @ self.x.T - 0.5 * ab * self.x.square().sum(1)) / (1 - ab)   # (B, N)
        return _softmax_average(logits, self.x).reshape(x_t.shape)


class GaussianDenoiser(_AnalyticNet):
    """E[x0 | x_t] for x0 ~ N(mu, C): mu + U diag(sqrt(ab) lam / (ab lam + 1 - ab)) U^T (x_t - sqrt(ab) mu), with
    C = U diag(lam) U^T, U (D, r) orthonormal columns spanning C's range (outside it, lam = 0: the gain is 0)."""

    def __init__(self, mean: Tensor, lam: Tensor, U: Tensor, alpha_bar: Tensor, shape: tuple[int, ...]):
        super().__init__(alpha_bar, shape, mean.dtype)
        mean = mean.flatten()
        if len(mean) != math.prod(shape) or U.shape != (len(mean), len(lam)):
            raise ValueError(f"mean {tuple(mean.shape)}, eigenvalues {tuple(lam.shape)} and eigenvectors "
                             f"{tuple(U.shape)} do not fit images {shape}; allowed: ({math.prod(shape)},), (r,) and "
                             f"({math.prod(shape)}, r)")
        self.register_buffer("mu", mean)
        self.register_buffer("lam", lam.clamp(min=0).to(mean.dtype))
        self.register_buffer("U", U.to(mean.dtype))

    @classmethod
    def of_covariance(cls, mean: Tensor, covariance: Tensor, alpha_bar: Tensor, shape: tuple[int, ...]
                      ) -> "GaussianDenoiser":
        """The Gaussian N(mean, covariance), through covariance's eigendecomposition in float64 (eigenvalues clipped
        at 0: a sample covariance of N < D images is singular)."""
        D = math.prod(shape)
        if covariance.shape != (D, D):
            raise ValueError(f"covariance {tuple(covariance.shape)} does not fit images {shape}; allowed: ({D}, {D})")
        lam, U = torch.linalg.eigh(0.5 * (covariance + covariance.T).double())   # float64: small eigenvalues
        return cls(mean, lam, U, alpha_bar, shape)

    @classmethod
    def of_images(cls, images: Tensor, alpha_bar: Tensor) -> "GaussianDenoiser":
        """The Gaussian with the training images' mean and (maximum-likelihood, 1/N) covariance. With fewer images
        than pixels (a class of 1,000 RGB 32x32 images: N = 1,000 < D = 3,072), C = X^T X / N of the centred images X
        has rank < N: its eigenpairs come from the N x N Gram matrix X X^T / N = V diag(lam) V^T, U = X^T V /
        sqrt(N lam), keeping the eigenvalues matrix_rank's tolerance keeps (N eps lam_max); the same posterior mean
        as the D x D eigendecomposition, 30x cheaper there."""
        x = _flat(images)
        mean, (N, D) = x.mean(0), x.shape
        centred = x - mean
        if N >= D:
            return cls.of_covariance(mean, centred.T @ centred / N, alpha_bar, images.shape[1:])
        centred = centred.double()
        lam, V = torch.linalg.eigh(centred @ centred.T / N)
        keep = lam > N * torch.finfo(lam.dtype).eps * lam.max().clamp(min=0)
        lam, V = lam[keep], V[:, keep]
        return cls(mean, lam, centred.T @ V / (N * lam).sqrt(), alpha_bar, images.shape[1:])

    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        x, ab = x_t.reshape(len(x_t), -1), alpha_bar[:, None]
        gain = ab.sqrt() * self.lam / (ab * self.lam + 1 - ab)                                  # (B, D)
        coords = (x - ab.sqrt() * self.mu) @ self.U                                             # (B, D)
        return (self.mu + (gain * coords) @ self.U.T).reshape(x_t.shape)


Padding = Literal["zero", "circular"]
PADDINGS: tuple[str, ...] = ("zero", "circular")


def _padded(images: Tensor, size: int, padding: Padding) -> Tensor:
    """images padded so that the size x size patch anchored at each pixel (the pixel at offset size // 2) fits."""
    before, after = size // 2, size - 1 - size // 2
    return F.pad(images, (before, after, before, after), mode="constant" if padding == "zero" else padding)


def _patches(images: Tensor, size: int, padding: Padding) -> Tensor:
    """The size x size patch anchored at every pixel, the image padded with zeros or circularly: (N, C, H, W) ->
    (N, H * W, C * size^2)."""
    return F.unfold(_padded(images, size, padding), size).transpose(1, 2)


def _pool(padded: Tensor, width: int, positions: Tensor, size: int, drawn: Tensor | None) -> Tensor:
    """Rows of _patches(images)[:, positions].reshape(-1, d) (image-major), only those `drawn` (None: all), cut out of
    the padded images (N, C, H', W'): unfolding every patch of 1,000 RGB 32x32 images would take 600 MB."""
    if drawn is None:
        drawn = torch.arange(len(padded) * len(positions))
    image, position, offsets = drawn // len(positions), positions[drawn % len(positions)], torch.arange(size)
    rows = (position // width)[:, None, None, None] + offsets[None, None, :, None]              # (R, 1, size, 1)
    cols = (position % width)[:, None, None, None] + offsets[None, None, None, :]               # (R, 1, 1, size)
    channels = torch.arange(padded.shape[1])[None, :, None, None]                                # (1, C, 1, 1)
    return padded[image[:, None, None, None], channels, rows, cols].reshape(len(drawn), -1)     # (R, C size^2)


def _position_groups(H: int, W: int, size: int, padding: Padding, equivariant: bool) -> Tensor:
    """(H * W,) group of each pixel: training patches pool within a group. Local only: one pixel per group;
    circular: one group; zero padding: pixels whose patch overhangs the image's edges alike (the interior is one)."""
    if not equivariant:
        return torch.arange(H * W)
    if padding == "circular":
        return torch.zeros(H * W, dtype=torch.long)
    before, after = size // 2, size - 1 - size // 2

    def overhang(n: int) -> Tensor:
        i = torch.arange(n)
        return torch.stack([(before - i).clamp(min=0), (i + after - (n - 1)).clamp(min=0)], 1)     # (n, 2)
    key = torch.cat([overhang(H)[:, None].expand(H, W, 2), overhang(W)[None].expand(H, W, 2)], -1)
    return torch.unique(key.reshape(H * W, 4), dim=0, return_inverse=True)[1]


class PatchDenoiser(_AnalyticNet):
    """Kamb & Ganguli's (E)LS machine: x0_hat at pixel l is sum_m softmax_m(-|x_t[P(l)] - sqrt(ab) p_m|^2 / 2(1 - ab))
    p_m[centre] over training patches p_m. equivariant: the patches of every image at every position of l's group
    (_position_groups: with zero padding, positions whose patch meets the image's edges alike, their boundary-broken
    ELS; circular: all positions, their ELS); not equivariant: the patches at l only (their LS machine).
    max_patches: at most this many patches per group, drawn uniformly (a Monte Carlo posterior; None: all)."""

    def __init__(self, images: Tensor, alpha_bar: Tensor, patch_size: int, equivariant: bool = True,
                 padding: Padding = "zero", max_patches: int | None = None, seed: int = 0):
        super().__init__(alpha_bar, images.shape[1:], images.dtype)
        _flat(images)
        C, H, W = self.shape
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; allowed: {', '.join(PADDINGS)}")
        largest = min(H, W) if padding == "circular" else 2 * min(H, W) - 1     # a patch that sees the whole image
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or not 1 <= patch_size <= largest:
            raise ValueError(f"patch_size={patch_size!r} is out of range; allowed: integers from 1 to {largest} "
                             f"({padding} padding)")
        if max_patches is not None and (isinstance(max_patches, bool) or not isinstance(max_patches, int)
                                        or max_patches < 1):
            raise ValueError(f"max_patches={max_patches!r} is out of range; allowed: None or an integer >= 1")
        self.patch_size, self.padding = patch_size, padding
        centre = (patch_size // 2) * patch_size + patch_size // 2
        self.centre = [c * patch_size**2 + centre for c in range(C)]                            # centre per channel
        groups, generator = _position_groups(H, W, patch_size, padding, equivariant), torch.Generator()
        padded, self.groups = _padded(images, patch_size, padding), []
        for g in range(int(groups.max()) + 1):
            positions = (groups == g).nonzero().squeeze(1)
            drawn = None                                          # the group's pool: every image at every position
            if max_patches is not None and max_patches < len(images) * len(positions):
                drawn = torch.randperm(len(images) * len(positions), generator=generator.manual_seed(seed + g))
                drawn = drawn[:max_patches]
            pool = _pool(padded, W, positions, patch_size, drawn)
            unique, counts = torch.unique(pool, dim=0, return_counts=True)   # plain background: one row, its count
            self.register_buffer(f"positions_{g}", positions)
            self.register_buffer(f"p_{g}", unique)                                              # (M_g, d)
            self.register_buffer(f"log_count_{g}", counts.to(images.dtype).log())               # (M_g,)
            self.groups.append(g)

    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        B, (C, H, W) = len(x_t), self.shape
        q = _patches(x_t, self.patch_size, self.padding)                                        # (B, L, d)
        out = q.new_empty(B, H * W, C)
        for g in self.groups:
            positions = getattr(self, f"positions_{g}")
            rows = q[:, positions].reshape(B * len(positions), -1)
            ab = alpha_bar.repeat_interleave(len(positions))[:, None]                           # (R, 1)
            out[:, positions] = self._pooled(g, rows, ab).reshape(B, len(positions), C)
        return out.transpose(1, 2).reshape(x_t.shape)

    def _pooled(self, g: int, q: Tensor, ab: Tensor) -> Tensor:
        """Posterior mean of the centre over group g's training patches for query patches q (R, d), alpha_bar (R, 1)."""
        p, log_count = getattr(self, f"p_{g}"), getattr(self, f"log_count_{g}")
        norms, centres = p.square().sum(1), p[:, self.centre]
        rows = max(1, CHUNK_ELEMENTS // len(p))
        out = []
        for start in range(0, len(q), rows):
            a = ab[start:start + rows]
            logits = (a.sqrt() * q[start:start + rows] @ p.T - 0.5 * a * norms) / (1 - a) + log_count
            out.append(_softmax_average(logits, centres))
        return torch.cat(out)


class ClassConditional(nn.Module):
    """E[x0 | x_t, y] of a labelled training set: for label y, the analytic denoiser `build` makes of the training
    images of class y; for y = null_label (num_classes) or None, the one of the whole set, so that classifier-free
    guidance (core.denoisers.guided: uncond + w (cond - uncond)) combines the two as it does a network's. A batch of
    mixed labels is split by label: one call of one denoiser per label present."""

    def __init__(self, build: Callable[[Tensor], _AnalyticNet], images: Tensor, labels: Tensor, num_classes: int):
        super().__init__()
        if labels.shape != (len(images),) or not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
            raise ValueError(f"labels {tuple(labels.shape)} in [{int(labels.min())}, {int(labels.max())}] do not fit "
                             f"{len(images)} images of {num_classes} classes; allowed: (N,) in [0, {num_classes - 1}]")
        order = labels.argsort(stable=True)
        images, counts = images[order].contiguous(), labels.bincount(minlength=num_classes).tolist()
        starts = [sum(counts[:c]) for c in range(num_classes)]
        # slices of one sorted copy: the empirical denoisers' per-class images are views of the whole set's
        self.classes = nn.ModuleDict({str(c): build(images[s:s + n]) for c, (s, n) in enumerate(zip(starts, counts))
                                      if n})
        self.unconditional = build(images)
        self.null_label = num_classes

    def denoiser(self, label: int) -> nn.Module:
        """The denoiser of class `label` (the whole set's for null_label)."""
        if label == self.null_label:
            return self.unconditional
        if str(label) not in self.classes:
            raise ValueError(f"class {label} has no training images; allowed labels: {', '.join(self.classes)} and "
                             f"{self.null_label} (none)")
        return self.classes[str(label)]

    @torch.no_grad()
    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            return self.unconditional(x_t, t)
        out = torch.empty_like(x_t)
        for label in y.unique().tolist():
            rows = y == label
            out[rows] = self.denoiser(label)(x_t[rows], t[rows])
        return out
