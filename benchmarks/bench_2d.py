"""Phase 1, ten seconds to a good model: for every preset 2D set (and, with --labelled, its class-conditional run),
train with the defaults (training.defaults.recipe_2d) for at most --seconds (10) and at most the recipe's steps, then

1. W1 / floor with DDPM-1000 and DDIM-50 under the protocol (metrics.protocol: 2,000 samples against 2,000 fresh
   true points, the floor 2,000 other true points, 10 draws) and its reading against the floor (95% intervals);
2. steps/s of our trainer (EMA, gradient clipping and history included) against diffusers' bare loop
   (DDPMScheduler.add_noise, MSE on eps, AdamW) on the same MLP and batch, medians of alternating timed bursts;
3. the largest |x| of --extent-n (100,000) samples per registered sampler at its documented steps, against the
   data's extent (max |x| of the training set), and the share of x0_hat evaluations the projection moved.

    python benchmarks/bench_2d.py [--datasets all] [--seconds 10] [--extent-n 100000] [--labelled]

Prints Markdown tables (the README quotes them). One torch thread, as the CLI trains the MLP.
"""

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusers import DDPMScheduler  # noqa: E402

from diffusion.data import data_radius, load_data  # noqa: E402
from diffusion.data.toy_datasets import TOY_DATASETS  # noqa: E402
from diffusion.explore.quality2d import class_quality  # noqa: E402
from diffusion.metrics.evaluation import Result, measure_run  # noqa: E402
from diffusion.metrics.protocol import points_protocol  # noqa: E402
from diffusion.explore.nfe_study import Extremes  # noqa: E402
from diffusion.models.mlp import MLP  # noqa: E402
from diffusion.sampling.sampler_config import SamplerConfig  # noqa: E402
from diffusion.sampling.registry import REGISTRY  # noqa: E402
from diffusion.training.defaults import UNBOUNDED_STEPS, recipe_2d, run_config_2d  # noqa: E402
from diffusion.training.trainer import Trainer  # noqa: E402

QUALITY_SAMPLERS = (SamplerConfig("ddpm", 1000), SamplerConfig("ddim", 50))
W1_N = 2000


def train_ours(dataset: str, seconds: float, conditional: bool):
    """The recipe's run, stopped at its steps or after `seconds`: (run, steps, seconds of training)."""
    data = load_data(run_config_2d(dataset).data)
    config = run_config_2d(dataset, num_classes=data.num_classes if conditional else 0)
    trainer = Trainer(config, data.x, data.y if conditional else None)
    trainer.run(seconds=seconds or None)
    return trainer.as_run(), trainer.step, trainer.elapsed


def _peer_loop(dataset: str):
    """diffusers' bare training loop on the recipe's MLP and batch: a function running n steps."""
    config = run_config_2d(dataset)
    torch.manual_seed(0)
    net, scheduler = MLP(config.model), DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    opt = torch.optim.AdamW(net.parameters(), lr=config.train.lr)
    x, batch = load_data(config.data).x, config.train.batch_size

    def steps(n: int) -> None:
        for _ in range(n):
            x0 = x[torch.randint(0, x.shape[0], (batch,))]
            noise, t = torch.randn_like(x0), torch.randint(0, 1000, (batch,))
            loss = F.mse_loss(net(scheduler.add_noise(x0, noise, t), t), noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return steps


def speeds(dataset: str, bursts: int = 15, steps: int = 40) -> tuple[float, float]:
    """Median steps/s of our trainer (a fresh run of the recipe) and of diffusers' loop, timed in alternating bursts
    so that a shared machine's load falls on both alike."""
    data = load_data(run_config_2d(dataset).data)
    ours, peer = Trainer(run_config_2d(dataset, steps=UNBOUNDED_STEPS), data.x), _peer_loop(dataset)
    ours.run(steps=5)
    peer(5)
    rates = {"ours": [], "peer": []}
    for _ in range(bursts):
        for name, run_steps in (("ours", lambda n: ours.run(steps=n)), ("peer", peer)):
            start = time.perf_counter()
            run_steps(steps)
            rates[name].append(steps / (time.perf_counter() - start))
    return float(np.median(rates["ours"])), float(np.median(rates["peer"]))


def quality(run) -> dict[str, Result]:
    """Sampler -> its measurement under the protocol (W1_N samples against W1_N fresh true points, seed 1)."""
    return {f"{s.name}-{s.steps}": measure_run(run, points_protocol(W1_N, s, seed=1))[0] for s in QUALITY_SAMPLERS}


def _cell(result: Result) -> str:
    """'W1 / floor (reading)', e.g. '1.05 (at the floor)'."""
    w1, floor = result.metrics["w1"], result.floor["w1"]
    return f"{w1.value / floor.value:.2f} ({result.reading('w1')})"


def extents(run, n: int) -> dict[str, tuple[float, float]]:
    """Sampler -> (largest |x| of n samples, share of x0_hat evaluations moved by the projection)."""
    out = {}
    for name, spec in REGISTRY.items():
        extremes = Extremes()
        samples = replace(run, observe_x0=extremes.observe).sample(n, SamplerConfig(name, spec.default_steps),
                                                                   seed=2, callback=extremes)
        out[name] = (float(samples.norm(dim=1).max()), extremes.projected / max(1, extremes.evaluations))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default="all")
    parser.add_argument("--seconds", type=float, default=10.0, help="training budget; 0: the recipe's steps, whatever "
                        "they take (to check recipes on a loaded machine)")
    parser.add_argument("--extent-n", type=int, default=100_000)
    parser.add_argument("--labelled", action="store_true", help="also the class-conditional runs of labelled sets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = list(TOY_DATASETS) if args.datasets == "all" else args.datasets.split(",")
    budget = f"at most {args.seconds:g} s" if args.seconds else "the recipe's steps"
    load = os.getloadavg()[0]
    print(f"\nTen seconds to a good model: {budget} of training with each set's recipe, 1 torch "
          f"thread, torch {torch.__version__}, load {load:.1f} at the start; W1 / floor under "
          f"{points_protocol(W1_N, QUALITY_SAMPLERS[0], seed=1).name} (and ddim50), with its reading\n")
    print("| dataset | recipe | steps | s | ours steps/s | diffusers steps/s | W1/floor DDPM-1000 | W1/floor DDIM-50 |")
    print("|---|---|---|---|---|---|---|---|")
    ranges = {}
    for name in names:
        r = recipe_2d(name)
        run, steps, seconds = train_ours(name, args.seconds, False)
        ours_rate, peer_rate = speeds(name)
        q = quality(run)
        print(f"| {name} | {r.width}x{r.depth}, batch {r.batch_size}, lr {r.lr:g} | {steps} | {seconds:.1f} | "
              f"{ours_rate:.0f} | {peer_rate:.0f} | {_cell(q['ddpm-1000'])} | {_cell(q['ddim-50'])} |", flush=True)
        if args.extent_n:
            ranges[name] = (data_radius(run.config.data), extents(run, args.extent_n))
    if ranges:
        print(f"\nLargest |x| of {args.extent_n:,} samples per sampler (documented steps), against the data's extent "
              "(max |x| of the training set); in brackets, the share of x0_hat evaluations projected onto its ball\n")
        print("| dataset | extent | " + " | ".join(f"{k}-{s.default_steps}" for k, s in REGISTRY.items()) + " |")
        print("|---|---|" + "---|" * len(REGISTRY))
        for name, (extent, cells) in ranges.items():
            print(f"| {name} | {extent:.2f} | " + " | ".join(f"{m:.2f} ({p:.0e})" for m, p in cells.values()) + " |")
    if args.labelled:
        labelled(names, args)


def labelled(names: list[str], args) -> None:
    """Class-conditional runs of the labelled sets: W1 / floor at w = 1 over all samples and per class (DDPM-1000)."""
    print("\nLabelled sets, class-conditional with label dropout 0.1, w = 1, DDPM-1000, 2,000 samples with balanced "
          "labels\n")
    print("| dataset | classes | steps | s | W1/floor, all | W1/floor per class: mean (worst) | off support |")
    print("|---|---|---|---|---|---|---|")
    for name in [n for n in names if TOY_DATASETS[n].num_classes]:
        run, steps, seconds = train_ours(name, args.seconds, True)
        labels = run.balanced_labels(W1_N)
        frame = class_quality(run.sample(W1_N, QUALITY_SAMPLERS[0], seed=1, y=labels), labels, name, seed=1)
        classes = frame[frame["label"] != "all"]["ratio"]
        print(f"| {name} | {run.num_classes} | {steps} | {seconds:.1f} | {frame['ratio'].iloc[0]:.2f} | "
              f"{classes.mean():.2f} ({classes.max():.2f}) | {frame['off_support'].iloc[0]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
