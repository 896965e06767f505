"""Diffusion against flow matching, side by side, in one run: for moons and for MNIST zeros, one diffusion (eps) and
one flow model with the same network, data, seed and training time; quality at 5, 10, 20 and 50 NFE from the same
initial noises; Liu et al.'s straightness before and after one reflow step, and the reflowed model's few-step
quality; the likelihood of held-out data (2D: nats beside the true density's NLL; MNIST: bits/dim).

    python benchmarks/bench_flow.py [--parts moons,mnist] [--moons-seconds 60] [--mnist-seconds 600]
        [--n-2d 1000] [--n-images 300] [--banks 3] [--figures docs/figures]

Defaults are sized for 2 idle CPU cores (about 2 hours, most of it MNIST); shorter budgets print the same tables.
Every quality number is a mean over `--banks` disjoint banks of initial noises with its 95% t-interval (half width),
beside the floor (a true sample of the same size); quality() is the one call site of the measurement.
"""

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.config import DataConfig, RunConfig, TrainConfig  # noqa: E402
from diffusion.data import load_data  # noqa: E402
from diffusion.explore.flow_experiments import FlowPaths, flow_paths, paired_configs, reflow, straightness  # noqa: E402
from diffusion.metrics.likelihood import nll_report_2d, nll_report_images  # noqa: E402
from diffusion.models.model_config import MLPConfig, unet_preset  # noqa: E402
from diffusion.sampling.sampler_config import SamplerConfig  # noqa: E402
from diffusion.sampling.registry import nfe, steps_for_nfe  # noqa: E402
from diffusion.sampling.run import Run  # noqa: E402
from diffusion.training.defaults import MODEL_DEFAULTS  # noqa: E402
from diffusion.training.trainer import Trainer  # noqa: E402

NFES = (5, 10, 20, 50)
FEW_STEPS = (1, 2, 5)          # flow_euler NFE at which reflow is judged


@dataclass(frozen=True)
class Quality:
    value: float          # mean over the banks
    half_width: float     # 95% t-interval half width (nan with one bank)
    floor: float
    metric: str


def quality(run: Run, sampler: SamplerConfig, n: int, banks: int) -> Quality:
    """THE call site of the measurement: W1 (2D, data-scale units) or FID (images, the shipped classifier's features)
    of n samples per bank under the measurement protocol (banks = seeds 0..banks-1), and the protocol's floor."""
    from diffusion.metrics.evaluation import measure_run
    from diffusion.metrics.protocol import image_protocol, points_protocol
    values, floor, metric = [], math.nan, "fid" if run.is_image else "w1"
    for seed in range(banks):
        protocol = (image_protocol(run.config.data, n, sampler, seed) if run.is_image
                    else points_protocol(n, sampler, seed))
        result, _ = measure_run(run, protocol)
        values.append(result.metrics[metric].value)
        floor = result.floor[metric].value
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else math.nan
    half = float(stats.t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return Quality(mean, half, floor, metric)


def train_pair(base: RunConfig, x: torch.Tensor, seconds: float) -> dict[str, Run]:
    """Diffusion (eps) and flow, same config otherwise, each trained for `seconds` (one after the other)."""
    runs = {}
    for family, config in paired_configs(base).items():
        trainer = Trainer(config, x)
        trainer.run(seconds=seconds)
        runs[family] = trainer.as_run()
        print(f"  {family}: {trainer.step} steps in {trainer.elapsed:.0f} s", file=sys.stderr)
    return runs


def _cell(q: Quality) -> str:
    interval = f" ± {q.half_width:.3g}" if math.isfinite(q.half_width) else ""
    return f"{q.value:.3g}{interval}"


def quality_table(runs: dict[str, Run], samplers: list[str], n: int, banks: int) -> str:
    """Rows: family x sampler; columns: the NFE targets (a cell: mean ± half width; [NFE used] when it differs)."""
    lines, floor, metric = [], math.nan, ""
    for family, run in runs.items():
        for name in samplers:
            cells = []
            for target in NFES:
                steps = steps_for_nfe(name, target)
                q = quality(run, SamplerConfig(name, steps=steps), n, banks)
                used = nfe(name, steps)
                cells.append(_cell(q) + ("" if used == target else f" [{used}]"))
                floor, metric = q.floor, q.metric
                print(f"  {family} {name} {used} NFE: {q.value:.4g}", file=sys.stderr)
            lines.append(f"| {family} | {name} | " + " | ".join(cells) + " |")
    head = f"| model | sampler | {' | '.join(f'{k} NFE' for k in NFES)} |\n|---|---|{'---|' * len(NFES)}"
    return f"{metric} (n = {n} per bank, {banks} banks; floor {floor:.3g}):\n\n{head}\n" + "\n".join(lines)


def reflow_table(runs: dict[str, Run], pairs: int, seconds: float, n: int, banks: int,
                 coupling_steps: int) -> tuple[str, dict]:
    """Straightness (flow_euler, 100 steps) and flow_euler quality at FEW_STEPS NFE, before and after one reflow
    (pairs from flow_euler at coupling_steps, trained for `seconds` from the teacher's weights)."""
    head = (f"| model | straightness | {' | '.join(f'{k} NFE' for k in FEW_STEPS)} |\n"
            f"|---|---|{'---|' * len(FEW_STEPS)}")
    lines, students = [], {}
    for family, run in runs.items():
        student = reflow(run, pairs, seconds=seconds, seed=1, sampler=SamplerConfig("flow_euler", coupling_steps))
        students[family] = student
        for label, model in ((family, run), (f"{family} + reflow", student)):
            s = straightness(model, n=min(n, 1000))
            cells = [_cell(quality(model, SamplerConfig("flow_euler", steps=k), n, banks)) for k in FEW_STEPS]
            lines.append(f"| {label} | {s.value:.3g} ± {1.96 * s.se:.2g} | " + " | ".join(cells) + " |")
            print(f"  {label}: straightness {s.value:.4g}", file=sys.stderr)
    return head + "\n" + "\n".join(lines), students


def nll_table(runs: dict[str, Run], n: int, probes: int) -> str:
    lines = []
    for family, run in runs.items():
        if run.is_image:
            r = nll_report_images(run, n=n, probes=probes)
            b = r["bits_per_dim"]
            lines.append(f"| {family} | {b['mean']:.3f} ± {1.96 * b['se']:.2g} bits/dim | {r['n']} held-out "
                         f"test images, {r['nfe']} NFE (Hutchinson, {probes} probe) |")
        else:
            r = nll_report_2d(run, n=n)
            kl = r["kl_true_model"]
            lines.append(f"| {family} | {r['nll']['mean']:.3f} ± {1.96 * r['nll']['se']:.2g} nats (true "
                         f"{r['true_nll']['mean']:.3f}; KL(true, model) {kl['mean']:.3f} ± {1.96 * kl['se']:.2g}) | "
                         f"{r['n']} held-out points, {r['nfe']} NFE (exact divergence) |")
    return "| model | NLL | protocol |\n|---|---|---|\n" + "\n".join(lines)


def paths_figure(runs: dict[str, Run], students: dict[str, Run], path: Path) -> None:
    """Flow-time paths of 300 shared noises: diffusion, flow and their reflowed students."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = {**runs, **{f"{k} + reflow": v for k, v in students.items()}}
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4), sharex=True, sharey=True)
    for ax, (label, run) in zip(axes, models.items()):
        p: FlowPaths = flow_paths(run, 300, steps=50, seed=0)
        ax.plot(p.x[:, :, 0], p.x[:, :, 1], lw=0.3, alpha=0.4, color="tab:blue")
        ax.scatter(p.x[-1, :, 0], p.x[-1, :, 1], s=3, color="black")
        ax.set_title(f"{label}: S = {straightness(run, n=1000).value:.3f}")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def part(name: str, base: RunConfig, x: torch.Tensor, args, samplers: list[str], n: int) -> None:
    seconds = args.moons_seconds if name == "moons" else args.mnist_seconds
    print(f"\n## {name}: {seconds:.0f} s of training each ({base.model.kind}, batch {base.train.batch_size})\n")
    runs = train_pair(base, x, seconds)
    print("### Quality against NFE, same initial noises\n\n" + quality_table(runs, samplers, n, args.banks) + "\n")
    pairs = args.pairs_2d if name == "moons" else args.pairs_images
    table, students = reflow_table(runs, pairs, args.reflow_fraction * seconds, n, args.banks, args.coupling_steps)
    print(f"### One reflow step ({pairs} pairs by flow_euler-{args.coupling_steps}, "
          f"{args.reflow_fraction * seconds:.0f} s from the teacher's weights)"
          f"\n\nstraightness (per dimension, 95% interval over paths) and flow_euler quality:\n\n{table}\n")
    nll_n = args.n_2d if name == "moons" else args.nll_images
    print("### Likelihood of held-out data\n\n" + nll_table(runs, nll_n, args.probes) + "\n")
    if args.figures and name == "moons":
        Path(args.figures).mkdir(parents=True, exist_ok=True)
        paths_figure(runs, students, Path(args.figures) / "flow-moons-paths.png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="moons,mnist")
    parser.add_argument("--moons-seconds", type=float, default=60.0)
    parser.add_argument("--mnist-seconds", type=float, default=600.0)
    parser.add_argument("--n-2d", type=int, default=1000, help="2D samples per bank, and held-out points")
    parser.add_argument("--n-images", type=int, default=300, help="images per bank")
    parser.add_argument("--banks", type=int, default=3, help="disjoint noise banks per quality cell")
    parser.add_argument("--pairs-2d", type=int, default=10_000)
    parser.add_argument("--pairs-images", type=int, default=2000)
    parser.add_argument("--coupling-steps", type=int, default=100, help="flow_euler steps making the reflow pairs")
    parser.add_argument("--reflow-fraction", type=float, default=0.5, help="reflow training time / training time")
    parser.add_argument("--nll-images", type=int, default=100, help="held-out test images for bits/dim")
    parser.add_argument("--probes", type=int, default=1)
    parser.add_argument("--figures", help="folder for the moons paths figure (PNG)")
    parser.add_argument("--threads", type=int, default=2, help="U-Net threads (the MLP uses the CLI's 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# bench_flow: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d %H:%M')}")
    parts = args.parts.split(",")
    if "moons" in parts:
        torch.set_num_threads(MODEL_DEFAULTS["mlp"]["threads"])
        base = RunConfig(DataConfig("moons"), model=MLPConfig(), train=TrainConfig(steps=10_000_000))
        part("moons", base, load_data(base.data).x, args, ["flow_euler", "flow_midpoint", "heun", "dpmpp2m"],
             args.n_2d)
    if "mnist" in parts:
        torch.set_num_threads(args.threads)
        data = DataConfig("mnist", image_size=16, classes=(0,))
        d = MODEL_DEFAULTS["unet"]
        base = RunConfig(data, model=unet_preset("small-16"), train=TrainConfig(
            steps=10_000_000, batch_size=d["batch_size"], lr=d["lr"], ema_decay=d["ema_decay"]))
        part("mnist zeros", base, load_data(data).x, args, ["flow_euler", "dpmpp2m"], args.n_images)


if __name__ == "__main__":
    main()
