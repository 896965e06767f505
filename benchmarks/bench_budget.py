"""Where the error comes from, for every 2D run we ship or promise: the error budget (explore.error_budget: floor,
solver, network and total W1 from the same noises, each with its 95% interval) of each preset set's recipe run
(trained here with training.defaults.recipe_2d, to its steps as bench_2d.py does with --seconds 0) and of the
shipped moons and moons-flow runs, for DDIM-50 and Heun-18 (35 NFE), and the noise levels where each network's
denoiser is furthest from the exact one.

    nice -n 10 python benchmarks/bench_budget.py [--datasets all] [--n 2000] [--seconds 0]

Prints Markdown (docs/error-budget.md quotes it). One torch thread, as the CLI trains the MLP.
"""

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_2d import train_ours  # noqa: E402

from diffusion.data.toy_datasets import TOY_DATASETS  # noqa: E402
from diffusion.explore.error_budget import denoiser_error, error_budget  # noqa: E402
from diffusion.metrics.protocol import points_protocol  # noqa: E402
from diffusion.sampling.sampler_config import SamplerConfig  # noqa: E402
from diffusion.training.checkpoints import load_run  # noqa: E402

SAMPLERS = (SamplerConfig("ddim", 50), SamplerConfig("heun", 18))
SHIPPED = ("moons", "moons-flow")
SEED = 1


def _cell(v) -> str:
    return f"{v.value:.3f} [{v.low:.3f}, {v.high:.3f}]"


def rows(name: str, run, n: int, laws: dict[str, str]) -> list[str]:
    """One Markdown row per sampler: floor, solver, network (W1 and per sample), total, the triangle check, and the
    three noise levels where the denoiser error is largest relative to the irreducible error."""
    curve = denoiser_error(run)
    relative = (curve["error"] / curve["mmse"]).to_numpy()
    worst = ", ".join(f"{s:.3g}" for s in curve["sigma"].to_numpy()[relative.argsort()[::-1][:3]])
    out = []
    for sampler in SAMPLERS:
        b = error_budget(run, points_protocol(n, sampler, seed=SEED))
        laws[run.config.data.dataset] = b.law.description
        out.append(f"| {name} | {sampler.name}-{sampler.steps} | {_cell(b.floor)} | {_cell(b.solver)} | "
                   f"{_cell(b.network)} | {_cell(b.displacement)} | {_cell(b.total)} | "
                   f"{'yes' if b.consistent else 'NO'} | {worst} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="all")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=0.0, help="training budget per recipe run; 0: the "
                        "recipe's steps, whatever they take")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = list(TOY_DATASETS) if args.datasets == "all" else args.datasets.split(",")
    start = time.perf_counter()
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()} ({os.cpu_count()} cores), load "
          f"{os.getloadavg()[0]:.1f} at the start, torch {torch.__version__}, 1 thread; "
          f"`nice -n 10 python benchmarks/bench_budget.py --n {args.n}`\n")
    print(f"W1 in data-scale units under {points_protocol(args.n, SAMPLERS[0], seed=SEED).name} (and heun18), 95% "
          "intervals; 'worst sigma': the noise levels where E||D_theta - D*||^2 / E||D* - x0||^2 is largest\n")
    print("| run | sampler | floor | solver | network W1 | network per sample | total | triangle | worst sigma |")
    print("|---|---|---|---|---|---|---|---|---|")
    laws: dict[str, str] = {}
    for name in names:
        run, steps, seconds = train_ours(name, args.seconds, False)
        print("\n".join(rows(f"{name} recipe ({steps:,} steps, {seconds:.0f} s)", run, args.n, laws)), flush=True)
    for name in SHIPPED:
        run = load_run(ROOT / "checkpoints" / name)
        print("\n".join(rows(f"shipped {name} ({run.step:,} steps)", run, args.n, laws)), flush=True)
    print("\nExact models: " + "; ".join(f"{k}: {v}" for k, v in laws.items()) + ".")
    print(f"\n{time.perf_counter() - start:.0f} s in all, load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
