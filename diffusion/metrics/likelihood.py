"""Model likelihoods by the probability-flow ODE (Chen et al. 2018; Grathwohl et al. 2019; Song et al. 2021, app. D.2),
for diffusion and flow runs alike, in flow time t (core.flow): along dx/dt = v(x, t) from t_min to t_max,
log p_{t_min}(x) = log p_{t_max}(x(t_max)) + int_{t_min}^{t_max} div v(x(t), t) dt, integrated by torchdiffeq's
adaptive Dormand-Prince (dopri5). The divergence is exact (one backward pass per dimension, 2D) or Hutchinson's
estimate e^T (dv/dx) e with Rademacher probes e fixed along each path (Grathwohl et al. 2019, FFJORD), whose spread
over probes gives its standard error. Images: uniform dequantization and bits per dimension (Theis et al. 2016).

Like for like: every reported likelihood (nll_report_2d, nll_report_images) ends at the same time, END_SIGMA: the
smallest noise level of the linear 1,000-step schedule (sigma_1 = 0.0100, t_min = 0.0099), below which a diffusion
run of that schedule is not defined; flow runs, defined down to t = 0, are read there too (a flow run at t = 0 and a
diffusion run at sigma = 0.01 differ by the blur alone: up to ~1 bit/dim on images whose pixels pile up at 0). What
is measured is the density of the data blurred by N(0, END_SIGMA^2 I), for every family; the 2D floor is the true
density blurred the same way. A run not defined down to END_SIGMA is measured at its own end and says so ("matched":
false). Song et al. 2021 end at t = 1e-5 on a continuous-time VP SDE; our discrete schedules end at their sigma_1.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torchdiffeq import odeint

from diffusion.core.flow_matching import Velocity, time_of_sigma
from diffusion.metrics.protocol import END_SIGMA, HELD_OUT_SEED
from diffusion.sampling.run import Run

Divergence = Literal["exact", "hutchinson"]
RTOL, ATOL = 1e-5, 1e-5        # Song et al. 2021's tolerances for likelihoods
MAX_EXACT_DIM = 256            # exact divergence costs one backward pass per dimension
MAX_PROBES = 64
FIRST_STEPS = 100              # the solver's first step is this fraction of the interval (then adapted)
PIXEL_BINS = 256               # 8-bit images
BITS_OFFSET = math.log2(PIXEL_BINS / 2)   # -log2 |d[-1, 1] / d[0, 256]| per dimension: 7 bits


@dataclass(frozen=True)
class Likelihood:
    """log p of each point (n,) in nats (the mean over probes for Hutchinson), its probe standard error (n,)
    (None for the exact divergence), and the velocity evaluations the solver made."""

    log_prob: Tensor
    probe_se: Tensor | None
    nfe: int

    def nll(self) -> tuple[float, float]:
        """Mean negative log-likelihood in nats and its standard error over the points (probe noise included)."""
        nll = -self.log_prob.double()
        return float(nll.mean()), float(nll.std() / math.sqrt(len(nll))) if len(nll) > 1 else math.nan


def divergence(velocity: Velocity, x: Tensor, t: Tensor, y: Tensor | None,
               probes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(v (B, ...), div v): exact (B,) when probes is None, else Hutchinson's e^T (dv/dx) e for each probe (K, B);
    probes (K, B, ...). Differentiates through the velocity with autograd; v and the divergence come back detached."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t, y)
        if probes is None:
            flat = v.reshape(v.shape[0], -1)
            div = sum(torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)[0].reshape(v.shape[0], -1)[:, i]
                      for i in range(flat.shape[1]))
        else:
            div = torch.stack([(torch.autograd.grad(v, x, e, retain_graph=True)[0] * e).reshape(v.shape[0], -1).sum(1)
                               for e in probes])
    return v.detach(), div.detach()


def _check(x: Tensor, how: Divergence, probes: int) -> None:
    if how not in ("exact", "hutchinson"):
        raise ValueError(f"unknown divergence {how!r}; allowed: exact, hutchinson")
    if how == "exact" and x[0].numel() > MAX_EXACT_DIM:
        raise ValueError(f"exact divergence of {x[0].numel()} dimensions costs a backward pass each; allowed: up to "
                         f"{MAX_EXACT_DIM} dimensions, use hutchinson above")
    if how == "hutchinson" and not (isinstance(probes, int) and 1 <= probes <= MAX_PROBES):
        raise ValueError(f"probes={probes!r} is out of range; allowed: integers from 1 to {MAX_PROBES}")


def ode_log_likelihood(velocity: Velocity, x: Tensor, t_range: tuple[float, float] = (0.0, 1.0), *,
                       y: Tensor | None = None, how: Divergence = "exact", probes: int = 1,
                       generator: torch.Generator | None = None, rtol: float = RTOL, atol: float = ATOL) -> Likelihood:
    """log p(x) (B,) of points x (B, ...) under the flow-time ODE of `velocity` on t_range = (t_min, t_max).

    x is read as the VE point at sigma_min = t_min / (1 - t_min), i.e. the flow point (1 - t_min) x, whose Jacobian
    D ln(1 - t_min) is added; the prior at t_max is N(0, t_max^2 I), exact at t_max = 1, and off by the neglected
    (1 - t_max) x0 term otherwise (for t_max = 0.988, a relative variance error near 1.5e-4)."""
    _check(x, how, probes)
    t_min, t_max = t_range
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"t_range=({t_min!r}, {t_max!r}) is invalid; allowed: 0 <= t_min < t_max <= 1")
    B, D = x.shape[0], x[0].numel()
    e = None if how == "exact" else (torch.randint(0, 2, (probes, *x.shape), generator=generator) * 2 - 1).to(x)
    calls = [0]

    def dynamics(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        calls[0] += 1
        v, div = divergence(velocity, state[0], t.expand(B).to(x.dtype), y, e)
        return v, div.reshape(state[1].shape)

    x_min = (1 - t_min) * x
    start = (x_min, x.new_zeros(B if e is None else (probes, B)))
    times = torch.tensor([t_min, t_max], dtype=x.dtype, device=x.device)
    # Steps land on t_max (torchdiffeq otherwise steps past it and interpolates: a diffusion run is undefined beyond)
    options = {"step_t": times[1:], "first_step": (t_max - t_min) / FIRST_STEPS}
    x_max, integral = (s[-1] for s in odeint(dynamics, start, times, rtol=rtol, atol=atol, method="dopri5",
                                             options=options))
    prior = -0.5 * (x_max.reshape(B, -1).square().sum(1) / t_max**2 + D * math.log(2 * math.pi * t_max**2))
    log_prob = prior + integral + D * math.log1p(-t_min)                           # (B,) or (K, B)
    if e is None:
        return Likelihood(log_prob, None, calls[0])
    se = log_prob.std(0) / math.sqrt(probes) if probes > 1 else torch.full_like(log_prob[0], math.nan)
    return Likelihood(log_prob.mean(0), se, calls[0])


def end_of(run: Run) -> dict:
    """Where a reported likelihood of this run ends: {"t_min", "sigma_min", "matched"}: END_SIGMA's time when the run
    is defined there (matched: true, the same end for every family), else the run's own t_min (matched: false)."""
    own, end = run.flow_range()[0], time_of_sigma(END_SIGMA)
    matched = own <= end * (1 + 1e-9)                  # float rounding of the schedule's own sigma_1
    t_min = end if matched else own
    return {"t_min": t_min, "sigma_min": t_min / (1 - t_min), "matched": matched}


def run_log_likelihood(run: Run, x: Tensor, *, y: Tensor | None = None, how: Divergence = "exact", probes: int = 1,
                       seed: int = 0, batch_size: int = 1000, rtol: float = RTOL, atol: float = ATOL,
                       t_min: float | None = None) -> Likelihood:
    """ode_log_likelihood of x (n, ...) under a trained run (Run.velocity from t_min, default the run's own end, to
    the end of Run.flow_range), in batches on the run's device; Hutchinson's probes drawn from `seed`."""
    if x.shape[1:] != run.sample_shape:
        raise ValueError(f"points of shape {tuple(x.shape[1:])} do not fit this run; allowed: {run.sample_shape}")
    own, t_max = run.flow_range()
    if t_min is None:
        t_min = own
    elif t_min < own * (1 - 1e-9):
        raise ValueError(f"t_min={t_min!r} is below where this run is defined; allowed: t_min >= {own:.6g}")
    t_range = (max(t_min, own), t_max)
    device = next(run.net.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, len(x), batch_size):
        yb = None if y is None else y[start:start + batch_size].to(device)
        parts.append(ode_log_likelihood(run.velocity(), x[start:start + batch_size].to(device), t_range,
                                        y=yb, how=how, probes=probes, generator=generator, rtol=rtol, atol=atol))
    se = None if parts[0].probe_se is None else torch.cat([p.probe_se.cpu() for p in parts])
    return Likelihood(torch.cat([p.log_prob.cpu() for p in parts]), se, sum(p.nfe for p in parts))


def dequantize(images: Tensor, generator: torch.Generator) -> Tensor:
    """uint8 images (N, C, H, W) -> (k + u) / 128 - 1 in [-1, 1), u ~ U[0, 1)^D (uniform dequantization)."""
    if images.dtype != torch.uint8:
        raise ValueError(f"dequantize needs uint8 images, got {images.dtype}")
    u = torch.rand(images.shape, generator=generator)
    return (images.float() + u) / (PIXEL_BINS / 2) - 1


@dataclass(frozen=True)
class BitsPerDim:
    """Bits per dimension of n images: mean and standard error over images (dequantization and probe noise
    included), the mean probe standard error per image (None with one probe), and the solver's evaluations."""

    bpd: float
    se: float
    probe_se: float | None
    n: int
    nfe: int


def bits_per_dim(run: Run, images: Tensor, *, y: Tensor | None = None, probes: int = 1, seed: int = 0,
                 batch_size: int = 250, rtol: float = RTOL, atol: float = ATOL, t_min: float | None = None
                 ) -> BitsPerDim:
    """Bits/dim of 8-bit images (N, C, H, W) uint8 under a run: -log2 p(z) / D + 7, z their uniform dequantization in
    [-1, 1) (7 = log2 128, the Jacobian of [0, 256) -> [-1, 1)); an upper bound on the discrete model's bits/dim
    (Theis et al. 2016), by Hutchinson's divergence. Dequantization and probes are drawn from `seed`."""
    z = dequantize(images, torch.Generator().manual_seed(seed))
    lik = run_log_likelihood(run, z, y=y, how="hutchinson", probes=probes, seed=seed + 1, batch_size=batch_size,
                             rtol=rtol, atol=atol, t_min=t_min)
    D = images[0].numel()
    bpd = -lik.log_prob.double() / (D * math.log(2)) + BITS_OFFSET
    se = float(bpd.std() / math.sqrt(len(bpd))) if len(bpd) > 1 else math.nan
    probe_se = None if probes == 1 else float(lik.probe_se.double().mean() / (D * math.log(2)))
    return BitsPerDim(float(bpd.mean()), se, probe_se, len(bpd), lik.nfe)


def nll_report_2d(run: Run, n: int = 2000, seed: int = 0) -> dict:
    """The run's NLL (nats, exact divergence) of n fresh true points at the matched end (end_of), beside the floor:
    the true density's own NLL of the same points, blurred to that end (data.toy_datasets.density_mixture; None for
    checkerboard), and their paired difference, an estimate of KL(true || model) >= 0; each mean with its standard
    error over the points."""
    from diffusion.data.toy_datasets import density_mixture, toy_dataset
    dataset, end = run.config.data.dataset, end_of(run)
    x = toy_dataset(dataset).sample(n, torch.Generator().manual_seed(HELD_OUT_SEED + seed))
    lik = run_log_likelihood(run, x, t_min=end["t_min"])
    report = {"nll": _mean_se(-lik.log_prob), "n": n, "divergence": "exact", "nfe": lik.nfe,
              "t_range": [end["t_min"], run.flow_range()[1]], "end": end, "true_nll": None, "kl_true_model": None}
    mixture = density_mixture(dataset)
    if mixture is not None:
        true_log_prob = mixture.blurred(end["sigma_min"]).log_prob(x)
        report["true_nll"] = _mean_se(-true_log_prob)
        report["kl_true_model"] = _mean_se(true_log_prob - lik.log_prob)
    return report


def nll_report_images(run: Run, n: int = 200, probes: int = 1, seed: int = 0) -> dict:
    """Bits/dim of n held-out images (the dataset's test split, the run's classes) at the matched end (end_of),
    conditioned on their labels for conditional runs; Hutchinson's divergence with `probes` probes per image."""
    from diffusion.data.image_datasets import load_images, to_uint8
    data_cfg = run.config.data
    held_out = load_images(data_cfg.dataset, data_cfg.image_size, classes=data_cfg.classes, split="test", n=n,
                           seed=seed)
    y = held_out.y if run.num_classes else None
    end = end_of(run)
    result = bits_per_dim(run, to_uint8(held_out.x), y=y, probes=probes, seed=seed, t_min=end["t_min"])
    return {"bits_per_dim": {"mean": result.bpd, "se": result.se}, "probe_se": result.probe_se, "n": result.n,
            "probes": probes, "divergence": "hutchinson", "nfe": result.nfe,
            "t_range": [end["t_min"], run.flow_range()[1]], "end": end, "split": "test", "source": held_out.source}


def _mean_se(values: Tensor) -> dict[str, float]:
    v = values.double()
    return {"mean": float(v.mean()), "se": float(v.std() / math.sqrt(len(v)))}
