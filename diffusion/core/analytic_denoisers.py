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

Timesteps t may be fractional (continuous-time samplers): alpha_bar is then read with ln sigma linear between the
schedule's integer timesteps, the inverse of core.edm.fractional_timestep.
"""

import math
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
    C = U diag(lam) U^T (eigenvalues clipped at 0: a sample covariance of N < D images is singular)."""

    def __init__(self, mean: Tensor, covariance: Tensor, alpha_bar: Tensor, shape: tuple[int, ...]):
        super().__init__(alpha_bar, shape, mean.dtype)
        mean = mean.flatten()
        if covariance.shape != (len(mean), len(mean)) or len(mean) != math.prod(shape):
            raise ValueError(f"mean {tuple(mean.shape)} and covariance {tuple(covariance.shape)} do not fit images "
                             f"{shape}; allowed: ({math.prod(shape)},) and ({math.prod(shape)}, {math.prod(shape)})")
        lam, U = torch.linalg.eigh(0.5 * (covariance + covariance.T).double())   # float64: small eigenvalues
        self.register_buffer("mu", mean)
        self.register_buffer("lam", lam.clamp(min=0).to(mean.dtype))
        self.register_buffer("U", U.to(mean.dtype))

    @classmethod
    def of_images(cls, images: Tensor, alpha_bar: Tensor) -> "GaussianDenoiser":
        """The Gaussian with the training images' mean and (maximum-likelihood, 1/N) covariance."""
        x = _flat(images)
        centred = x - x.mean(0)
        return cls(x.mean(0), centred.T @ centred / len(x), alpha_bar, images.shape[1:])

    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
        x, ab = x_t.reshape(len(x_t), -1), alpha_bar[:, None]
        gain = ab.sqrt() * self.lam / (ab * self.lam + 1 - ab)                                  # (B, D)
        coords = (x - ab.sqrt() * self.mu) @ self.U                                             # (B, D)
        return (self.mu + (gain * coords) @ self.U.T).reshape(x_t.shape)


Padding = Literal["zero", "circular"]
PADDINGS: tuple[str, ...] = ("zero", "circular")


def _patches(images: Tensor, size: int, padding: Padding) -> Tensor:
    """The size x size patch anchored at every pixel (the pixel at offset size // 2), the image padded with zeros or
    circularly: (N, C, H, W) -> (N, H * W, C * size^2)."""
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(images, (before, after, before, after), mode="constant" if padding == "zero" else padding)
    return F.unfold(padded, size).transpose(1, 2)


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
        patches = _patches(images, patch_size, padding)                                          # (N, L, d)
        centre = (patch_size // 2) * patch_size + patch_size // 2
        self.centre = [c * patch_size**2 + centre for c in range(C)]                            # centre per channel
        groups, generator = _position_groups(H, W, patch_size, padding, equivariant), torch.Generator()
        self.groups = []
        for g in range(int(groups.max()) + 1):
            positions = (groups == g).nonzero().squeeze(1)
            pool = patches[:, positions].reshape(-1, patches.shape[-1])
            if max_patches is not None and max_patches < len(pool):
                pool = pool[torch.randperm(len(pool), generator=generator.manual_seed(seed + g))[:max_patches]]
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
