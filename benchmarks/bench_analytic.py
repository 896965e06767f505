"""The analytic denoisers beside the network, and the training-set-size sweep (docs/analytic-denoisers.md):

    python benchmarks/bench_analytic.py compare      # shipped digit-0 U-Net vs empirical, Gaussian, ELS patch machine
    python benchmarks/bench_analytic.py patches      # the ELS machine's patch size against the network's samples
    python benchmarks/bench_analytic.py patches --run shapes32-cond --n 20 --sizes 3 5 7 9 11   # the same at 32x32
    python benchmarks/bench_analytic.py sweep        # the shipped Fashion-MNIST N sweep: copies and FID against N

Every table is printed as Markdown with the date, the machine's load and the command; nothing is trained here.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.explore import analytic_comparison as an
from diffusion.explore import size_sweep as sw
from diffusion.metrics.evaluation import row_sentences
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import CHECKPOINTS_DIR, load_run

DIGIT_RUN = CHECKPOINTS_DIR / "mnist16-digit0"


def _header(args) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} (1 min) · torch threads {torch.get_num_threads()}"
          " · "
          f"`python benchmarks/bench_analytic.py {' '.join(sys.argv[1:])}`\n")


def _markdown(frame: pd.DataFrame) -> str:
    """A Markdown table, numbers to 3 significant digits."""
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)])


def compare(args) -> None:
    run = load_run(DIGIT_RUN)
    sampler = SamplerConfig("ddim", steps=args.steps)
    start = time.perf_counter()
    sets = an.side_by_side(run, args.n, sampler, args.seed)
    seconds = time.perf_counter() - start
    print(f"Samples from the same {args.n} noises (DDIM {args.steps}, seed {args.seed}), {seconds:.0f} "
          f"s; d1 = L2 distance to the nearest of the {len(an.training_set(run.config.data).x)} training zeros\n")
    print(_markdown(an.summary_text(an.summary(sets)).reset_index()))
    start = time.perf_counter()
    frame = an.agreement(run, args.agree_n)
    print(f"\nMean |D_theta - D|^2 per pixel over {args.agree_n} noised held-out zeros (95% interval: std / sqrt(n)), "
          f"{time.perf_counter() - start:.0f} s; 'truth' is the network's own error against the clean image\n")
    table = frame.assign(cell=[f"{v:.3g} [{lo:.2g}, {hi:.2g}]" for v, lo, hi in
                               zip(frame["value"], frame["low"], frame["high"])])
    wide = table.pivot(index=["t", "sigma"], columns="denoiser", values="cell").reset_index()
    closest = an.closest_by_noise(frame).set_index("t")["closest"]
    print(_markdown(wide.assign(closest=wide["t"].map(closest))))


def patches(args) -> None:
    run = load_run(CHECKPOINTS_DIR / args.run)
    sampler = SamplerConfig("ddim", steps=args.steps)
    network = run.sample(args.n, sampler, seed=args.seed, y=run.balanced_labels(args.n))
    _, max_patches = an.patch_settings(run.config.model.image_size)
    rows = []
    for size in args.sizes:
        start = time.perf_counter()
        patch = an.analytic_run(run, "patch", patch_size=size)
        sets = an.side_by_side(run, args.n, sampler, args.seed, {"patch": patch})
        row = an.summary(sets).iloc[1].to_dict()
        assert torch.equal(sets["network"].samples, network)
        rows.append({"patch": size, **{k: row[k] for k in ("median d1", "median d1 / typical", "copies",
                                                           "RMS to network")},
                     "seconds": time.perf_counter() - start})
    per_class = ", per class" if run.num_classes else ""
    print(f"ELS machine of {args.run} (zero padding, {max_patches} patches per group{per_class}) against"
          f" the network's samples from the same {args.n} noises (DDIM {args.steps}, seed {args.seed})\n")
    print(_markdown(pd.DataFrame(rows)))


def sweep(args) -> None:
    runs = sw.sweep_runs()
    if not runs:
        raise SystemExit(f"no sweep run under {CHECKPOINTS_DIR}: {', '.join(sw.SWEEP_FOLDERS.values())}")
    start = time.perf_counter()
    table, _ = sw.sweep_table(runs, args.n, seed=args.seed)
    seconds = time.perf_counter() - start
    print(f"{args.n} samples per N (DDIM {sw.SWEEP_SAMPLER.steps}, seed {args.seed}), {seconds:.0f} "
          "s; d1 against the run's own N images, 'typical' the median d1 of held-out images; copies: d1 / typical < "
          "0.3 (Wilson 95%); FID on the Fashion-MNIST classifier's features, its floor from the class's training set\n")
    shown = table.assign(FID=[row_sentences(r, {"fid": "FID"}) for r in table.to_dict("records")],
                         copies=[f"{c:.0%} [{lo:.0%}, {hi:.0%}]" for c, lo, hi in
                                 zip(table["copies"], table["copies_low"], table["copies_high"])])
    print(_markdown(shown[["N", "n", "median d1", "median d1 / typical", "copies", "FID", "protocol"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("compare", "patches", "sweep"))
    parser.add_argument("--n", type=int, help="samples (compare, patches: 16; sweep: 300)")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps of compare and patches")
    parser.add_argument("--agree-n", type=int, default=32, help="held-out images per noise level (compare)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", default=DIGIT_RUN.name, help="a shipped image run (patches)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 7, 9, 11, 13], help="patch sizes (patches)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.n = args.n or (300 if args.what == "sweep" else 16)
    torch.set_num_threads(args.threads)
    _header(args)
    {"compare": compare, "patches": patches, "sweep": sweep}[args.what](args)


if __name__ == "__main__":
    main()
