"""Where a 2D run's error comes from: its W1 to the data split into the floor (a finite sample), the solver (the exact
denoiser through the same sampler) and the network (learned against exact, same sampler, same noises), and the
denoiser's own error against the noise level.

For one run, one sampler and one protocol (metrics.protocol), from the same noise bank (Run.sample's seed):
- floor: W1 of n fresh true points against the reference (what a perfect model scores at this n);
- solver: W1 of the exact model's samples through the sampler against the reference (floor + discretisation);
- network: W1 between the learned and the exact samples, and their mean displacement per sample (same noise ->
  same sample index, so the pairing is a coupling and W1 <= displacement);
- total: W1 of the learned samples against the reference (the number the other sections show).
By the triangle inequality |solver - network| <= total <= solver + network.
The denoiser error E||D_theta(x_t, t) - D*(x_t, t)||^2 over x_t ~ p_t, per noise level, says which levels the network
has not learned; E||D* - x0||^2 beside it is what no denoiser can remove (their sum is E||D_theta - x0||^2).

The exact model: the set's own law when it is a Gaussian mixture (gaussian, 8gaussians, 25gaussians; a custom
set's law is its kernel mixture), the curve sets' law by quadrature (data.toy_datasets.density_mixture), and for the rest
(checkerboard) a kernel density estimate of true points (explore.densities.density_law); `ExactLaw.description`
says which, and every output carries it.
"""

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from diffusion.core.edm import fractional_timestep
from diffusion.core.flow_matching import FlowDenoiser, sigma_from_flow, vp_from_flow, vp_point
from diffusion.core.forward import q_sample
from diffusion.core.oracles import GaussianMixture, flow_velocity
from diffusion.data.toy_datasets import CUSTOM_PREFIX, density_mixture, toy_dataset
from diffusion.explore.densities import density_law
from diffusion.metrics.intervals import Interval, normal
from diffusion.metrics.points2d import wasserstein_sd
from diffusion.metrics.protocol import Protocol, reference_for
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.run import Run

CURVE_LEVELS, CURVE_N, CURVE_SEED = 20, 1000, 30_001
QUADRATURE_POINTS = 500    # per branch: kernel spacing under 0.4 noise std on every curve set; log density within
                           # 0.04 nats of CURVE_POINTS' at worst (the curves' ends), 1e-4 on average
RAW = SamplerConfig(clip=False)          # the denoisers as trained: no projection, no guidance


@dataclass(frozen=True, eq=False)
class ExactLaw:
    """The law that plays the exact model, and in words what it is (every output says it)."""

    mixture: GaussianMixture
    description: str
    exact: bool                      # False: a stand-in (a kernel estimate), not the set's law itself


def exact_law(dataset: str) -> ExactLaw:
    """The best Gaussian-mixture law known for a 2D set: its own, the curve sets' by quadrature, else a kernel
    density estimate of true points."""
    toy = toy_dataset(dataset)
    if toy.mixture is not None:
        if dataset.startswith(CUSTOM_PREFIX):
            return ExactLaw(toy.mixture, f"the kernel mixture of the set's {len(toy.mixture.weights):,} points "
                            "(a custom set's law)", True)
        return ExactLaw(toy.mixture, "the set's exact law (a Gaussian mixture)", True)
    curve = density_mixture(dataset, QUADRATURE_POINTS)
    if curve is not None:
        return ExactLaw(curve, f"the set's law as {len(curve.weights):,} Gaussian kernels along its curves "
                        "(quadrature, log density within 0.04 nats)", True)
    kde, _ = density_law(dataset)
    return ExactLaw(kde, f"a kernel density estimate of {len(kde.weights):,} true points (bandwidth "
                    f"{math.sqrt(float(kde.covs[0, 0, 0])):.3g}) standing in for the unknown law", False)


def exact_flow_denoiser(law: GaussianMixture) -> FlowDenoiser:
    """E[x0 | x_t] on x_t = (1 - t) x0 + t eps at any t in [0, 1]: the mixture's posterior mean at the VP point
    (core.flow.vp_point), chunked over rows."""
    def denoise(x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        c, alpha_bar = vp_point(torch.as_tensor(t, dtype=torch.float64).to(x_t.device).expand(x_t.shape[0]))
        return law.posterior_mean(x_t.double() / c[:, None], alpha_bar).to(x_t.dtype)
    return denoise


@dataclass
class ExactModel(Run):
    """A run whose denoiser is the exact E[x0 | x_t] of `law` in every space, on the run's own grids (timesteps,
    sigmas, flow times) and with its clipping: only the denoiser differs from the run it copies."""

    law: GaussianMixture | None = None

    def flow_denoiser(self, sampler: SamplerConfig) -> FlowDenoiser:
        if sampler.guidance != 1.0:
            raise ValueError(f"guidance w={sampler.guidance:g}: the error budget covers unguided sampling (w = 1)")
        return self._wrap(exact_flow_denoiser(self.law), sampler)

    def denoiser(self, sampler: SamplerConfig):
        return vp_from_flow(self.flow_denoiser(sampler), self.schedule.alpha_bar)

    def sigma_denoiser(self, sampler: SamplerConfig):
        return sigma_from_flow(self.flow_denoiser(sampler))

    def velocity(self):
        return flow_velocity(self.law)


def exact_model(run: Run) -> tuple[ExactModel, ExactLaw]:
    """The exact model beside a 2D run (same config, schedule and grids) and the law it samples; a class-conditional
    run is compared unconditionally (y = None: its null label), with the set's whole law."""
    if run.is_image:
        raise ValueError("the error budget is for 2D runs: an image set has no exact law")
    law = exact_law(run.config.data.dataset)
    return ExactModel(run.config, run.schedule, run.net, run.step, run.history, law.description,
                      law=law.mixture), law


@dataclass(frozen=True)
class ErrorBudget:
    """The budget of one run under one protocol; every term in W1, in the reference's data-scale units."""

    protocol: Protocol
    law: ExactLaw
    floor: Interval
    solver: Interval
    network: Interval
    displacement: Interval
    total: Interval

    @property
    def consistent(self) -> bool:
        """The triangle inequality through the exact samples, and W1 under the pairing's displacement."""
        slack = 1e-9
        return (abs(self.solver.value - self.network.value) - slack <= self.total.value
                <= self.solver.value + self.network.value + slack
                and self.network.value <= self.displacement.value + slack)

    def rows(self) -> list[dict]:
        """One dict per term: term, meaning, value, low, high, method, protocol."""
        sampler = self.protocol.sampler
        terms = (("floor", self.floor, f"{self.protocol.n:,} other true points against the reference"),
                 ("solver", self.solver, f"the exact model through {sampler.name}-{sampler.steps}, same noises"),
                 ("network", self.network, "W1 between the learned and the exact samples, same noises"),
                 ("network, per sample", self.displacement, "mean distance from each learned sample to its exact "
                  "twin"),
                 ("total", self.total, f"the learned model through {sampler.name}-{sampler.steps}"))
        return [{"term": term, "meaning": meaning, "value": v.value, "low": v.low, "high": v.high,
                 "method": v.method, "protocol": self.protocol.name} for term, v, meaning in terms]

    def markdown(self) -> str:
        """The budget as a Markdown table, with the exact model and the triangle check in words."""
        lines = ["| term | W1 [95% interval] | what | interval | protocol |", "|---|---|---|---|---|"]
        lines += [f"| {r['term']} | {r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}] | {r['meaning']} | "
                  f"{r['method']} | {r['protocol']} |" for r in self.rows()]
        check = "holds" if self.consistent else "FAILS"
        return "\n".join([*lines, "", f"Exact model: {self.law.description}.",
                          f"|solver - network| <= total <= solver + network: {check}."])


def error_budget(run: Run, protocol: Protocol) -> ErrorBudget:
    """The floor, solver, network and total of a 2D run under a points2d protocol (its sampler and seed)."""
    if protocol.family != "points2d" or protocol.label is not None:
        raise ValueError(f"protocol {protocol.name}: the error budget needs an unlabelled 2D protocol")
    if protocol.sampler.guidance != 1.0:
        raise ValueError(f"guidance w={protocol.sampler.guidance:g}: the error budget covers unguided sampling (w = 1)")
    exact, law = exact_model(run)
    ref = reference_for(protocol, run.config.data)
    learned = run.sample(ref.n, protocol.sampler, seed=protocol.seed)
    twins = exact.sample(ref.n, protocol.sampler, seed=protocol.seed)
    w1, sd = wasserstein_sd(learned, twins, 1)
    gaps = (learned - twins).double().norm(dim=1).numpy() / ref.scale
    return ErrorBudget(
        protocol, law, ref.floor["w1"], ref.measure(twins)["w1"],
        normal(w1 / ref.scale, sd / ref.scale, "delta method", lowest=0.0),
        normal(gaps.mean(), gaps.std(ddof=1) / math.sqrt(len(gaps)), "std / sqrt(n)", lowest=0.0),
        ref.measure(learned)["w1"])


def curve_timesteps(run: Run, levels: int = CURVE_LEVELS) -> list[int]:
    """About `levels` code timesteps, evenly spaced in log sigma over the schedule (distinct, increasing)."""
    sigma = run.schedule.sigma.double()
    targets = torch.logspace(math.log10(float(sigma[0])), math.log10(float(sigma[-1])), levels, dtype=torch.float64)
    return sorted(set(fractional_timestep(targets, run.schedule).round().long().tolist()))   # nearest in log sigma


@torch.no_grad()
def denoiser_error(run: Run, n: int = CURVE_N, levels: int = CURVE_LEVELS, seed: int = CURVE_SEED) -> pd.DataFrame:
    """Per noise level (code timestep t, its sigma): error = E||D_theta(x_t, t) - D*(x_t, t)||^2 and mmse =
    E||D*(x_t, t) - x0||^2 over x_t = q_sample(x0, alpha_bar_t, eps), x0 n fresh true points, eps fresh noise (one
    draw per level, seeded), each with its 95% interval (std / sqrt(n)); raw denoisers (no projection)."""
    if not (isinstance(n, int) and 2 <= n <= 100_000 and isinstance(levels, int) and 2 <= levels <= 200):
        raise ValueError(f"n={n!r}, levels={levels!r}; allowed: integers, n from 2 to 100,000, levels 2 to 200")
    exact, _ = exact_model(run)
    learned_d, exact_d = run.denoiser(RAW), exact.denoiser(RAW)
    device = next(run.net.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    toy = toy_dataset(run.config.data.dataset)
    rows = []
    for t in curve_timesteps(run, levels):
        x0 = toy.sample(n, generator)
        eps = torch.randn(x0.shape, generator=generator)
        x_t = q_sample(x0, run.schedule.alpha_bar[t], eps).to(device)
        steps = torch.full((n,), t, dtype=torch.long, device=device)
        best = exact_d(x_t, steps, None).cpu()
        error = (learned_d(x_t, steps, None).cpu() - best).double().square().sum(1).numpy()
        mmse = (best - x0).double().square().sum(1).numpy()
        row = {"t": t, "sigma": float(run.schedule.sigma[t])}
        for name, values in (("error", error), ("mmse", mmse)):
            v = normal(values.mean(), values.std(ddof=1) / math.sqrt(n), "std / sqrt(n)", lowest=0.0)
            row |= v.columns(name)
        rows.append(row)
    return pd.DataFrame(rows)
