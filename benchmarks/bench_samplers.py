"""Samplers driven by the exact denoiser (docs/samplers.md): are they as good as DDPM-1000, do they keep a Gaussian's
standard deviation, and do they converge to the probability-flow ODE's solution at the rate of their order?

    python benchmarks/bench_samplers.py [--parts w1,paired,std,heungrid,order] [--n 2000] [--reps 6] [--figures DIR]

w1: every deterministic sampler at its registered default steps against DDPM-1000 on 8gaussians, 25gaussians and a
custom set (a 64-point spiral, a kernel mixture): W1 of n samples to n fresh true points (exact OT, POT), for `reps`
disjoint banks of initial noises (bank k: samples k n .. (k+1) n - 1 of seed 1), the ratio to DDPM-1000's W1 on the
same bank, its mean and 95% t-interval. paired: every sampler at its default steps (and other grids and spacings)
against the exact ODE solution from the same noises (the test's measure, 6 banks of 1,000), beside its std error at
s = 0.1 and 0.05. std: the exact output std of each sampler on N(0, diag(s)^2) (the map is
linear: no sampling noise), relative to s. heungrid: Heun's std error at 25 steps on the logsnr grid, on its default
equal-error grid, and on the best of all grids between the same ends (a numerical search over the interior noise
levels). order: the mean distance per sample to the dopri5 reference solution (sampling.reference, rtol = atol =
1e-8) of 200 samples of 8gaussians at 10, 20, 40, 80 steps, its fitted slope against NFE, and a log-log plot written
to FIGURES/sampler-convergence.png. About 2 minutes on 2 idle cores.
"""

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.data import toy_for  # noqa: E402
from diffusion.data.custom import custom_data  # noqa: E402
from diffusion.explore.exact import exact_run, gaussian_run  # noqa: E402
from diffusion.metrics.points2d import wasserstein  # noqa: E402
from diffusion.sampling.sampler_config import SamplerConfig  # noqa: E402
from diffusion.sampling.reference import (  # noqa: E402
    fitted_order,
    heun_on_a_gaussian,
    linear_output_std,
    ode_span,
    reference_error,
    reference_sample,
)
from diffusion.sampling.registry import REGISTRY  # noqa: E402

ODE_SAMPLERS = [name for name, spec in REGISTRY.items() if spec.order > 0]
STEPS = (10, 20, 40, 80)


def spiral(points: int = 64):
    """A custom set: `points` points on a spiral, seed 0 (its law: a kernel mixture, data.custom)."""
    theta = np.random.default_rng(0).uniform(0, 3 * np.pi, points)
    return custom_data("spiral", np.stack([theta * np.cos(theta), theta * np.sin(theta)], 1))


def banks_w1(run, config: SamplerConfig, reference: torch.Tensor, n: int, reps: int) -> list[float]:
    """W1 to `reference` of `reps` disjoint banks of n samples (one batch: the same noises whatever the sampler)."""
    return split_w1(run.sample(n * reps, config, seed=1, batch_size=n * reps), reference, n)


def split_w1(x: torch.Tensor, reference: torch.Tensor, n: int) -> list[float]:
    return [wasserstein(x[k * n:(k + 1) * n], reference) for k in range(len(x) // n)]


def mean_interval(values: list[float]) -> str:
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return f"{statistics.mean(values):.3f} ± {half:.3f}"


def w1_table(n: int, reps: int) -> None:
    print(f"\n## W1 / DDPM-1000's W1, same banks (n = {n:,} per bank, {reps} banks, mean ± 95% t half-width)\n")
    columns = [SamplerConfig(k, REGISTRY[k].default_steps) for k in ODE_SAMPLERS]
    columns.append(SamplerConfig("ddim", REGISTRY["ddim"].default_steps, spacing="flow"))   # DDIM on the flow grid
    print("| data | DDPM-1000 W1 | " + " | ".join(f"{c.name}-{c.steps}{' flow' if c.spacing else ''} ({c.nfe} NFE)"
                                             for c in columns) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for data in ("8gaussians", "25gaussians", spiral()):
        run = exact_run(data)
        reference = toy_for(run.config.data).sample(n, torch.Generator().manual_seed(999))
        ddpm = banks_w1(run, SamplerConfig("ddpm", 1000), reference, n, reps)
        cells = [mean_interval([w / d for w, d in zip(banks_w1(run, c, reference, n, reps), ddpm)]) for c in columns]
        name = run.config.data.dataset.split(":")[1] if ":" in run.config.data.dataset else run.config.data.dataset
        print(f"| {name} | {mean_interval(ddpm)} | " + " | ".join(cells) + " |", flush=True)


def std_table() -> None:
    stds = (1.0, 0.3, 0.1, 0.05)
    print("\n## Output std / true std - 1 on N(0, s^2), exact (linear map)\n")
    print("| sampler | NFE | " + " | ".join(f"s = {s:g}" for s in stds) + " |\n|---|---|" + "---|" * len(stds))
    runs = [gaussian_run(stds[:2]), gaussian_run(stds[2:])]
    configs = [SamplerConfig(k, REGISTRY[k].default_steps, clip="none") for k in ODE_SAMPLERS]
    before = [("ddim", 50, {"spacing": "trailing"}), ("ddim", 100, {"spacing": "trailing"}),   # the old defaults
              ("ddim", 100, {"spacing": "quadratic"}), ("heun", 18, {"grid": "karras"}), ("heun", 25, {"grid": "karras"}),
              ("ddim", 100, {"spacing": "flow"}), ("euler", 100, {"grid": "logsnr"}), ("ddim", 1000, {}),
              ("heun", 25, {"grid": "logsnr"}),                    # the default until the equal-error grid
              *(("heun", steps, {"grid": "logsnr"}) for steps in (30, 35, 40))]   # the steps logsnr needs for 1%
    configs += [SamplerConfig(name, steps, clip="none", **kw) for name, steps, kw in before]
    for config in configs:
        got = torch.cat([linear_output_std(run, config) for run in runs]) / torch.tensor(stds) - 1
        tag = f"{config.name}-{config.steps} {config.timestep_spacing or config.sigma_grid}"
        print(f"| {tag} | {config.nfe} | " + " | ".join(f"{v:+.2%}" for v in got.tolist()) + " |")


def heun_grid_table(steps: int = 25, stds: tuple[float, ...] = (1.0, 0.45, 0.17, 0.1)) -> None:
    """How close can Heun get at 25 steps? Its std error on the logsnr grid, on the equal-error grid (its default), and
    on the best of all grids between the same ends (sigma_max and the smallest sigma, then Euler to 0) found by
    searching the interior noise levels for the smallest worst |std error| over `stds`, on the scalar recursion that
    equals the sampler's exact output std (reference.heun_on_a_gaussian)."""
    from scipy.optimize import minimize
    run = gaussian_run((1.0, 1.0))
    logsnr, equal = ([float(v) for v in run.sigmas(SamplerConfig("heun", steps, grid=g))] for g in ("logsnr", None))
    ends = np.log([logsnr[0], logsnr[-2]])

    def grid(z: np.ndarray) -> list[float]:          # z: one free log-width per interval of the nonzero sigmas
        cuts = np.concatenate([[0.0], np.cumsum(np.exp(z))]) / np.exp(z).sum()
        return [*np.exp(ends[0] + (ends[1] - ends[0]) * cuts), 0.0]

    worst = lambda z: max(abs(heun_on_a_gaussian(grid(z), s) / s - 1) for s in stds)   # noqa: E731
    start = np.diff(-np.log(equal[:-1]))
    best = minimize(worst, np.log(start / start.sum()), method="Nelder-Mead",
                    options={"maxiter": 40_000, "xatol": 1e-7, "fatol": 1e-9, "adaptive": True})
    best = minimize(worst, best.x, method="Powell")
    shown = (0.05, 0.1, 0.17, 0.3, 0.45, 0.7, 1.0, 1.3, 2.0)
    print(f"\n## Heun, {steps} steps ({REGISTRY['heun'].nfe(steps)} NFE): output std / true std - 1 by grid (the best "
          f"searched minimises the worst over s = {', '.join(map(str, stds))})\n")
    print("| grid | " + " | ".join(f"s = {s:g}" for s in shown) + " |\n|---|" + "---|" * len(shown))
    for name, sigmas in (("logsnr", logsnr), ("equal_error (default)", equal), ("best searched", grid(best.x))):
        print(f"| {name} | " + " | ".join(f"{heun_on_a_gaussian(sigmas, s) / s - 1:+.2%}" for s in shown) + " |")
    for name, sigmas in (("equal_error", equal), ("best searched", grid(best.x))):
        print(f"\n{name} grid: " + ", ".join(f"{v:.3g}" for v in sigmas))


PAIRED = [*((k, {}) for k in ODE_SAMPLERS), ("euler", {"grid": "logsnr"}), ("euler", {"grid": "karras"}),
          *(("ddim", {"spacing": spacing}) for spacing in ("quadratic", "trailing", "flow"))]


def paired_table(n: int = 1000, reps: int = 6) -> None:
    """Each sampler at its default steps (defaults, then other grids and spacings) against the exact ODE solution from
    the same noises (the test's measure: mean W1 over reps banks of n, ratio of the means), and its std error at
    s = 0.1 and 0.05: where a first-order sampler's steps go decides one or the other."""
    sets = ("8gaussians", "25gaussians", spiral())
    print(f"\n## Paired: mean W1 / the exact ODE solution's, same noises ({reps} banks of {n:,}); std error\n")
    print("| sampler | NFE | 8gaussians | 25gaussians | spiral | s = 0.1 | s = 0.05 |\n|---|---|---|---|---|---|---|")
    banks = []
    for data in sets:
        run = exact_run(data)
        reference = toy_for(run.config.data).sample(n, torch.Generator().manual_seed(999))
        banks.append((run, reference, {}))
    gaussian = gaussian_run((0.1, 0.05))
    for name, settings in PAIRED:
        config = SamplerConfig(name, REGISTRY[name].default_steps, **settings)
        ratios = []
        for run, reference, solved in banks:
            span = ode_span(run, config)
            if span not in solved:
                exact = reference_sample(run, n * reps, config, seed=1, rtol=1e-4, atol=1e-4)
                solved[span] = statistics.mean(split_w1(exact, reference, n))
            ratios.append(statistics.mean(banks_w1(run, config, reference, n, reps)) / solved[span])
        std = linear_output_std(gaussian, dataclasses.replace(config, clip="none")) / torch.tensor([0.1, 0.05]) - 1
        tag = f"{name}, {config.timestep_spacing or config.sigma_grid}{'' if settings else ' (default)'}"
        print(f"| {tag} | {config.nfe} | " + " | ".join(f"{r:.3f}" for r in ratios) + " | "
              + " | ".join(f"{v:+.2%}" for v in std.tolist()) + " |", flush=True)


def order_table(figures: Path) -> None:
    run, n = exact_run("8gaussians"), 200
    print(f"\n## Convergence to the reference ODE solution (8gaussians, n = {n}, seed 0)\n")
    print("| sampler | order | " + " | ".join(f"{s} steps" for s in STEPS) + " | fitted order |\n|---|---|"
          + "---|" * (len(STEPS) + 1))
    curves = {}
    for name in ODE_SAMPLERS:
        reference = reference_sample(run, n, SamplerConfig(name))
        errors = [reference_error(run, SamplerConfig(name, steps), n, reference) for steps in STEPS]
        nfe = [REGISTRY[name].nfe(s) for s in STEPS]
        curves[name] = (nfe, errors)
        print(f"| {name} | {REGISTRY[name].order} | " + " | ".join(f"{e:.2e}" for e in errors)
              + f" | {fitted_order(nfe, errors):.2f} |", flush=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, (nfe, errors) in curves.items():
        ax.loglog(nfe, errors, "o-" if REGISTRY[name].order == 2 else "s--",
                  label=f"{name} (slope {fitted_order(nfe, errors):.2f})")
    ax.set(xlabel="network evaluations (NFE)", ylabel="mean |x - x_ref| per sample",
           title=f"Exact denoiser, 8gaussians: error against the dopri5 solution (n = {n})")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(True, which="both", alpha=0.3)
    figures.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(figures / "sampler-convergence.png", dpi=110)
    print(f"\nwrote {figures / 'sampler-convergence.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="w1,paired,std,heungrid,order")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    parts = args.parts.split(",")
    if "std" in parts:
        std_table()
    if "heungrid" in parts:
        heun_grid_table()
    if "order" in parts:
        order_table(args.figures)
    if "w1" in parts:
        w1_table(args.n, args.reps)
    if "paired" in parts:
        paired_table()
    print(f"\n{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
