"""Exact laws and exact denoisers for Gaussian-mixture data: the analytic truth samplers are tested against.

Notation (Ho et al. 2020, eq. 4): x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, eps ~ N(0, I).
Any schedule drives it: it reads only alpha_bar, at integer or fractional timesteps (schedules.alpha_bar_at).
The flow-matching path x_t = (1 - t) x0 + t eps is served by the functions at the end (flow_posterior).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from diffusion.core.flow_matching import FlowDenoiser, Velocity, vp_point
from diffusion.core.schedules import alpha_bar_at

Denoiser = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # same contract as diffusion.core.denoisers.Denoiser
WEIGHT_TOL = 1e-6  # weights must sum to 1 within this
CHUNK_ELEMENTS = 2**20  # rows x components evaluated at once: bounded memory for kernel mixtures of 5,000 points


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k weights[k] N(means[k], covs[k]); stored in float64, every output float32.

    Each covariance is kept as its eigendecomposition covs[k] = U_k diag(lam_k) U_k^T, so the noised
    covariance alpha_bar C_k + (1 - alpha_bar) I = U_k diag(alpha_bar lam_k + 1 - alpha_bar) U_k^T is
    inverted and log-determined exactly for any alpha_bar in [0, 1] without a Cholesky per sample.
    """

    weights: Tensor  # (K,)
    means: Tensor    # (K, D)
    covs: Tensor     # (K, D, D), symmetric positive definite
    _eigvals: Tensor = field(init=False, repr=False)  # (K, D) lam_k
    _eigvecs: Tensor = field(init=False, repr=False)  # (K, D, D) U_k, columns are eigenvectors

    def __post_init__(self) -> None:
        w, m, c = (torch.as_tensor(v, dtype=torch.float64) for v in (self.weights, self.means, self.covs))
        if w.ndim != 1 or m.ndim != 2 or c.ndim != 3 or not (w.shape[0] == m.shape[0] == c.shape[0]):
            raise ValueError(f"shapes weights {tuple(w.shape)}, means {tuple(m.shape)}, covs {tuple(c.shape)}"
                             " are inconsistent; allowed: (K,), (K, D), (K, D, D)")
        if c.shape[1:] != (m.shape[1], m.shape[1]):
            raise ValueError(f"covs shape {tuple(c.shape)} does not match means {tuple(m.shape)};"
                             " allowed: (K, D, D)")
        if (w < 0).any() or abs(w.sum().item() - 1.0) > WEIGHT_TOL:
            raise ValueError(f"weights {w.tolist()} must be non-negative and sum to 1 (within {WEIGHT_TOL})")
        if not torch.allclose(c, c.mT, rtol=0.0, atol=1e-10):
            raise ValueError("covs must be symmetric")
        w = w / w.sum()  # exact normalisation in float64 (float32 weights sum to 1 only within ~1e-7)
        lam, U = torch.linalg.eigh(c)
        if (lam <= 0).any():
            raise ValueError(f"covs must be positive definite; smallest eigenvalue is {lam.min().item():.3g}")
        for name, value in (("weights", w), ("means", m), ("covs", c), ("_eigvals", lam), ("_eigvecs", U)):
            object.__setattr__(self, name, value)

    @classmethod
    def isotropic(cls, means: Tensor, std: float, weights: Tensor | None = None) -> "GaussianMixture":
        """Components N(means[k], std^2 I), equal weights unless given."""
        means = torch.as_tensor(means, dtype=torch.float64)
        K, D = means.shape
        weights = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else weights
        return cls(weights, means, std**2 * torch.eye(D, dtype=torch.float64).expand(K, D, D).clone())

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> Tensor:
        """E[x0] = sum_k w_k m_k, (D,) float64."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """Cov[x0] = sum_k w_k (C_k + m_k m_k^T) - E[x0] E[x0]^T (law of total covariance), (D, D) float64."""
        outer = self.means[:, :, None] * self.means[:, None, :]                        # (K, D, D)
        second = torch.einsum("k,kij->ij", self.weights, self.covs + outer)
        mu = self.mean()
        return second - torch.outer(mu, mu)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n iid draws: k ~ Categorical(weights), then m_k + U_k sqrt(lam_k) z with z ~ N(0, I); (n, D)."""
        return self.sample_components(n, generator)[0]

    def sample_components(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """sample's n draws (n, D) float32 and the component k each came from (n,) long."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"number of samples n={n!r} is invalid; allowed: an integer >= 1")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)      # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)            # (n, D)
        x = self.means[k] + torch.einsum("nij,nj->ni", self._eigvecs[k], self._eigvals[k].sqrt() * z)
        return x.float(), k

    def _component_terms(self, x: Tensor, alpha_bar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per row and component of the noised mixture: the rotated residual U_k^T (x_t - sqrt(ab) m_k)
        (B, K, D), its variances ab lam_k + 1 - ab (B, K, D), or (1, K, D) when all rows share alpha_bar, and
        log w_k N(x_t; sqrt(ab) m_k, ab C_k + (1 - ab) I) (B, K)."""
        shared = bool((alpha_bar == alpha_bar[0]).all())     # one noise level (a grid, a sampling step)
        ab = (alpha_bar[:1] if shared else alpha_bar)[:, None, None]                     # (B or 1, 1, 1)
        resid = x[:, None, :] - ab.sqrt() * self.means[None]                             # (B, K, D)
        d = torch.einsum("kji,bkj->bki", self._eigvecs, resid)                           # (B, K, D)
        var = ab * self._eigvals[None] + (1.0 - ab)                                      # (B or 1, K, D)
        log_det = (var.log() + math.log(2 * math.pi)).sum(-1)                           # (B or 1, K)
        log_norm = -0.5 * ((d**2 / var).sum(-1) + log_det)                              # (B, K)
        return d, var, self.weights.log()[None] + log_norm

    def _checked(self, x: Tensor, alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; allowed: (B, {self.dim})")
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64).to(x.device)
        if alpha_bar.shape != (x.shape[0],):
            raise ValueError(f"alpha_bar has shape {tuple(alpha_bar.shape)}; allowed: ({x.shape[0]},),"
                             " one per row")
        if not ((alpha_bar >= 0) & (alpha_bar <= 1)).all():
            raise ValueError(f"alpha_bar must lie in [0, 1]; got values from {alpha_bar.min().item():.3g}"
                             f" to {alpha_bar.max().item():.3g}")
        return x.to(torch.float64), alpha_bar

    def _to(self, device: torch.device) -> "GaussianMixture":
        return self if self.means.device == device else GaussianMixture(
            self.weights.to(device), self.means.to(device), self.covs.to(device))

    def _chunked(self, fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, alpha_bar: Tensor) -> Tensor:
        """fn over row chunks of at most CHUNK_ELEMENTS rows x components (kernel mixtures have thousands)."""
        step = max(1, CHUNK_ELEMENTS // len(self.weights))
        return torch.cat([fn(x[i:i + step], alpha_bar[i:i + step]) for i in range(0, x.shape[0], step)])

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density log sum_k w_k N(x; m_k, C_k) by log-sum-exp; x (n, D) -> (n,) float32."""
        x = torch.as_tensor(x)
        gm = self._to(x.device)
        x64, ab = gm._checked(x, torch.ones(x.shape[0], dtype=torch.float64, device=x.device))
        return gm._chunked(lambda xc, abc: torch.logsumexp(gm._component_terms(xc, abc)[2], dim=1), x64, ab).float()

    def noised(self, alpha_bar: float) -> "GaussianMixture":
        """Exact law of x_t (Ho eq. 4): means sqrt(alpha_bar) m_k, covs alpha_bar C_k + (1 - alpha_bar) I."""
        if not 0.0 <= alpha_bar <= 1.0:
            raise ValueError(f"alpha_bar={alpha_bar!r} is out of range; allowed: [0, 1]")
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.means.device)
        return GaussianMixture(self.weights, math.sqrt(alpha_bar) * self.means,
                               alpha_bar * self.covs + (1.0 - alpha_bar) * eye)

    def blurred(self, sigma: float) -> "GaussianMixture":
        """Exact law of x + sigma eps (the VE point at noise level sigma): covs C_k + sigma^2 I."""
        if not sigma >= 0.0:
            raise ValueError(f"sigma={sigma!r} is out of range; allowed: sigma >= 0")
        eye = torch.eye(self.dim, dtype=torch.float64, device=self.means.device)
        return GaussianMixture(self.weights, self.means, self.covs + sigma**2 * eye)

    @torch.no_grad()
    def component_posteriors(self, x_t: Tensor, alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
        """Per row and component: log w_k p_t(x_t | k) (B, K) and E[x0 | x_t, k] (B, K, D), float64, where
        (Gaussian conditioning) E[x0 | x_t, k] = m_k + sqrt(ab) C_k (ab C_k + (1 - ab) I)^-1 (x_t - sqrt(ab) m_k)."""
        gm = self._to(x_t.device)
        x, ab = gm._checked(x_t, alpha_bar)
        d, var, log_r = gm._component_terms(x, ab)
        gain = ab.sqrt()[:, None, None] * gm._eigvals[None] / var                        # (B, K, D)
        return log_r, gm.means[None] + torch.einsum("kij,bkj->bki", gm._eigvecs, gain * d)

    @torch.no_grad()
    def posterior_mean(self, x_t: Tensor, alpha_bar: Tensor, mask: Tensor | None = None) -> Tensor:
        """Exact denoiser E[x0 | x_t] by Bayes over components; x_t (B, D), alpha_bar (B,) per row -> (B, D):
        the component means of component_posteriors averaged with responsibilities softmax(log w_k p_t(x_t | k)).
        mask (B, K) bool keeps, per row, a subset of the components (E[x0 | x_t, k in subset], e.g. a class)."""
        x, ab = self._checked(x_t, alpha_bar)
        if mask is not None and mask.shape != (x.shape[0], len(self.weights)):
            raise ValueError(f"mask has shape {tuple(mask.shape)}; allowed: ({x.shape[0]}, {len(self.weights)})")
        shared_std = self._shared_isotropic_variance()

        def mean(x_rows: Tensor, index: Tensor) -> Tensor:
            if shared_std is not None:
                return self._isotropic_posterior_mean(x_rows, ab[index], shared_std,
                                                      None if mask is None else mask.to(x.device)[index])
            log_r, cond = self.component_posteriors(x_rows, ab[index])
            if mask is not None:
                log_r = log_r.masked_fill(~mask.to(x.device)[index], -math.inf)
            return torch.einsum("bk,bkd->bd", torch.softmax(log_r, dim=1), cond)
        return self._chunked(mean, x, torch.arange(x.shape[0], device=x.device)).float()

    def _shared_isotropic_variance(self) -> float | None:
        """s^2 when every component is N(m_k, s^2 I) with one s (kernel mixtures), else None."""
        lam = self._eigvals
        isotropic = torch.allclose(lam, lam[:1, :1].expand_as(lam), rtol=0.0, atol=1e-15)
        diagonal = torch.allclose(self.covs, lam[0, 0] * torch.eye(self.dim, dtype=torch.float64), rtol=0.0,
                                  atol=1e-15)
        return float(lam[0, 0]) if isotropic and diagonal else None

    def _isotropic_posterior_mean(self, x: Tensor, ab: Tensor, s2: float, mask: Tensor | None) -> Tensor:
        """posterior_mean when C_k = s^2 I for all k, by one matrix product: with v = ab s^2 + 1 - ab,
        log r_k = log w_k + (sqrt(ab) x.m_k - ab |m_k|^2 / 2) / v and E[x0 | x_t] = (1 - ab) / v sum_k r_k m_k +
        sqrt(ab) s^2 / v x_t (the same Gaussian conditioning, |x_t|^2 dropped: it is common to all k)."""
        gm = self._to(x.device)
        a, v = ab.sqrt()[:, None], (ab * s2 + 1 - ab)[:, None]                            # (B, 1)
        log_r = gm.weights.log()[None] + (a * (x @ gm.means.T) - ab[:, None] * gm.means.square().sum(1)[None] / 2) / v
        if mask is not None:
            log_r = log_r.masked_fill(~mask, -math.inf)
        return (1 - ab)[:, None] / v * (torch.softmax(log_r, dim=1) @ gm.means) + a * s2 / v * x

    def denoiser(self, alpha_bar: Tensor) -> Denoiser:
        """Exact Denoiser (x_t, t, y) -> E[x0 | x_t] at alpha_bar (T,) read at code timesteps t (B,), integer or
        fractional (schedules.alpha_bar_at): exact in continuous time."""
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
        if alpha_bar.ndim != 1:
            raise ValueError(f"alpha_bar has shape {tuple(alpha_bar.shape)}; allowed: (T,)")

        def denoise(x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
            return self.posterior_mean(x_t, alpha_bar_at(alpha_bar, t.to(x_t.device)))

        return denoise


# Flow matching: x_t = (1 - t) x0 + t eps is the VP point x_t / c, alpha_bar = (1 - t)^2 / c^2, c^2 = (1 - t)^2 + t^2
# (core.flow.vp_point), with the same eps: the mixture's exact answers above serve it after that rescaling.

def flow_posterior(mixture: GaussianMixture, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(E[x0 | x_t], E[eps | x_t]) on the flow path, exact, differentiable, in x_t's dtype; x_t (B, D), t (B,).

    Per component, Gaussian conditioning at the VP point (d, var as in posterior_mean): E[x0 | x, k] = m_k +
    U_k (sqrt(ab) lam_k / var) d, E[eps | x, k] = U_k (sqrt(1 - ab) / var) d; both stay finite at t = 0 and t = 1,
    so the exact velocity E[eps - x0 | x_t] (Liu et al. 2022, eq. 2) needs no division by t.
    """
    gm = mixture._to(x_t.device)
    c, alpha_bar = vp_point(torch.as_tensor(t, dtype=torch.float64).to(x_t.device))
    x, ab = gm._checked(x_t.double() / c[:, None], alpha_bar)
    d, var, log_r = gm._component_terms(x, ab)
    r = torch.softmax(log_r, dim=1)                                                      # (B, K)
    x0_gain = ab.sqrt()[:, None, None] * gm._eigvals[None] / var                         # (B, K, D)
    eps_gain = (1 - ab).sqrt()[:, None, None] / var
    x0 = gm.means[None] + torch.einsum("kij,bkj->bki", gm._eigvecs, x0_gain * d)         # (B, K, D)
    eps = torch.einsum("kij,bkj->bki", gm._eigvecs, eps_gain * d)
    mean = lambda v: torch.einsum("bk,bkd->bd", r, v).to(x_t.dtype)  # noqa: E731
    return mean(x0), mean(eps)


def flow_velocity(mixture: GaussianMixture) -> Velocity:
    """The exact flow-matching velocity field v(x_t, t) = E[eps | x_t] - E[x0 | x_t], a Velocity (core.flow)."""
    def velocity(x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        x0, eps = flow_posterior(mixture, x_t, t)
        return eps - x0
    return velocity


def flow_denoiser(mixture: GaussianMixture) -> FlowDenoiser:
    """The exact flow denoiser (x_t, t, y) -> E[x0 | x_t] on x_t = (1 - t) x0 + t eps, a FlowDenoiser (core.flow)."""
    return lambda x_t, t, y=None: flow_posterior(mixture, x_t, t)[0]


def _class_mask(component_labels: Tensor, y: Tensor, K: int) -> Tensor:
    """(B, K) bool: component k belongs to row b's class y[b]; ValueError when a class has no component."""
    labels = torch.as_tensor(component_labels, dtype=torch.long)
    if labels.shape != (K,):
        raise ValueError(f"component_labels has shape {tuple(labels.shape)}; allowed: ({K},), one class per component")
    mask = labels.to(y.device)[None, :] == y.long()[:, None]
    if not mask.any(dim=1).all():
        missing = sorted(set(y.tolist()) - set(labels.tolist()))
        raise ValueError(f"classes {missing} have no component; allowed: {sorted(set(labels.tolist()))}")
    return mask


@torch.no_grad()
def guided_posterior_mean(mixture: GaussianMixture, component_labels: Tensor, x_t: Tensor, alpha_bar: Tensor,
                          y: Tensor, w: float) -> Tensor:
    """Exact classifier-free guidance (Ho & Salimans 2022) for a labelled mixture whose class y is the sub-mixture of
    the components labelled y: uncond + w (cond - uncond), with uncond = E[x0 | x_t] and cond = E[x0 | x_t, y].

    By Tweedie (E[x0 | x_t] = (x_t + (1 - ab) grad log p_t(x_t)) / sqrt(ab)) it is the denoiser of the tilted
    density p_t(x_t)^(1 - w) p_t(x_t | y)^w. x_t (B, D), alpha_bar (B,), y (B,) class per row -> (B, D) float32.
    """
    mask = _class_mask(component_labels, y, len(mixture.weights))
    uncond = mixture.posterior_mean(x_t, alpha_bar).double()
    given_y = mixture.posterior_mean(x_t, alpha_bar, mask).double()
    return (uncond + w * (given_y - uncond)).float()
