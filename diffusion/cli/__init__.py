"""python -m diffusion train | sample | evaluate | data | study. Bad input: one line naming the value, exit code 2,
checked before any work (diffusion.cli.checks); an I/O failure during the work (a full disk): one line, exit 1."""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from diffusion import __version__
from diffusion.cli.checks import MAX_N, check_device, check_int, check_output_file, check_seed, check_threads
from diffusion.cli.train import check_dataset, set_threads, train
from diffusion.config import DECAYS, PRECISIONS, TRAIN_OBJECTIVES, DataConfig
from diffusion.core.flow_matching import TIME_SAMPLINGS
from diffusion.core.schedules import SCHEDULES, SPACINGS
from diffusion.data import is_toy, load_data
from diffusion.data.custom import custom_from_spec
from diffusion.data.toy_datasets import TOY_DATASETS, toy_dataset
from diffusion.models.model_config import CONDITIONINGS
from diffusion.sampling.sampler_config import GRIDS, SamplerConfig
from diffusion.sampling.registry import SAMPLERS, nfe
from diffusion.sampling.vp import VARIANCES
from diffusion.training import distributed
from diffusion.training.checkpoints import load_run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _csv_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"2D: {', '.join(TOY_DATASETS)}, or your own: csv:PATH (columns x,y[,label]), "
                   "image:PATH (a silhouette), word:TEXT; images: mnist, fashion-mnist, cifar10, shapes, folder:PATH")
    p.add_argument("--name", help="the name of a custom 2D set (default: after its file or word)")
    p.add_argument("--classes", type=_csv_ints, help="images: keep these class ids, e.g. 0 or 0,1,2")
    p.add_argument("--class-weights", type=_csv_floats, help="images: class proportions, e.g. 1,1,0.1")
    p.add_argument("--image-size", type=int, help="images: side in pixels (16, 28, 32, ...)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m diffusion", description="Train, sample and measure diffusion models.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model (resumes when --out already holds a run)")
    _add_data_args(t)
    t.add_argument("--images", type=int, help="images: train on this many of the selected images, a subset drawn "
                   "with --seed (default: all; the training-set-size sweep of docs/analytic-denoisers.md)")
    t.add_argument("--model", choices=("mlp", "unet"))
    t.add_argument("--preset", help="U-Net preset (default: small-16 up to 16 px, small-32 above)")
    t.add_argument("--conditional", action="store_true", default=None, help="class-conditional (images and "
                   "labelled 2D sets), trained with label dropout for classifier-free guidance")
    t.add_argument("--conditioning", choices=CONDITIONINGS, help="how labels enter the U-Net: add (to the time "
                   "embedding, default) or cross (cross-attention to label tokens)")
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--timesteps", type=int)
    t.add_argument("--zero-terminal-snr", action="store_true", default=None)
    t.add_argument("--objective", choices=TRAIN_OBJECTIVES, help="eps (default), x0, v, edm (Karras 2022), or flow "
                   "(flow matching / rectified flow: x_t = (1 - t) x0 + t eps, target eps - x0)")
    t.add_argument("--time-sampling", choices=TIME_SAMPLINGS, help="flow: training times uniform (default) or "
                   "logit_normal (SD3, Esser et al. 2024)")
    t.add_argument("--logit-mean", type=float, help="flow, logit_normal: location m of t = sigmoid(m + s z) (0)")
    t.add_argument("--logit-std", type=float, help="flow, logit_normal: scale s (1)")
    t.add_argument("--steps", type=int, help="total training steps of the run (default: per model)")
    t.add_argument("--minutes", type=float, help="time budget of this invocation (0.5 = 30 s)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--ema-decay", type=float)
    t.add_argument("--decay", choices=DECAYS, help="learning rate after warm-up: none (constant, default) or cosine "
                   "(to 10%% of --lr at --steps)")
    t.add_argument("--seed", type=int)
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    t.add_argument("--precision", choices=PRECISIONS, help="bfloat16: autocast forward and loss (default float32)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="U-Net NHWC layout (default: on CPUs only, where it is faster)")
    t.add_argument("--measure-every", type=int, help="steps between quality measurements logged in metrics.csv "
                   "(2D: W1, W2, KL; images: FID on the classifier's features, accuracy if conditional)")
    t.add_argument("--measure-n", type=int, help="samples per measurement, and real images (points) in its reference "
                   "and floor (default: images 500 with DDIM-50, 2D 1000 with DDIM-50)")
    t.add_argument("--out", required=True, help="run folder")

    s = sub.add_parser("sample", help="draw samples from a trained run")
    e = sub.add_parser("evaluate", help="sample and print metrics against the truth as JSON")
    for p in (t, s, e):
        p.add_argument("--threads", type=int, help="CPU threads (default: 1 for the MLP, all for the U-Net)")
    for p in (s, e):
        p.add_argument("--checkpoint", required=True, help="run folder")
        p.add_argument("--n", type=int, default=2000)
        p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
        p.add_argument("--steps", type=int, default=50, help="network evaluations")
        p.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity, 0 to 1")
        p.add_argument("--spacing", choices=SPACINGS, default="trailing")
        p.add_argument("--variance", choices=VARIANCES, default="beta_tilde", help="DDPM posterior variance")
        p.add_argument("--clip", action=argparse.BooleanOptionalAction, default=None,
                       help="clip x0_hat (default on): images to [-1, 1], 2D onto the ball of the training "
                       "data's radius; --no-clip shows the raw network")
        p.add_argument("--label", type=int, help="conditional runs: the class to generate")
        p.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale w")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--grid", choices=GRIDS, help="euler/heun/dpmpp2m noise levels (default: karras; "
                       "logsnr for dpmpp2m)")
        p.add_argument("--rho", type=float, default=7.0, help="karras grid exponent")
        p.add_argument("--sigma-min", type=float)
        p.add_argument("--sigma-max", type=float)
        p.add_argument("--churn", type=float, default=0.0, help="EDM S_churn (euler, heun)")
        p.add_argument("--s-min", type=float, default=0.0)
        p.add_argument("--s-max", type=float, help="default: no upper bound")
        p.add_argument("--s-noise", type=float, default=1.0)
    s.add_argument("--out", required=True, help=".npy, .csv (2D) or .png (image grid)")
    e.add_argument("--metrics", help="images: comma-separated, from fid (default; always measured with the others), "
                   "isc, kid, prc, nll (bits/dim of held-out test images); 2D: nll (nats of held-out true points beside "
                   "the true density's own NLL), else W1/W2/KL of samples")
    e.add_argument("--probes", type=int, default=1, help="nll on images: Hutchinson probes per image")
    e.add_argument("--extractor", choices=("classifier", "inception"), default="classifier",
                   help="images: feature network (the dataset's shipped classifier, or Inception-v3)")
    e.add_argument("--inception-weights", help="images: local Inception-v3 weights file (offline use)")
    e.add_argument("--budget", action="store_true", help="2D: print the error budget instead (floor, solver, network "
                   "and total W1 from the same noises, docs/error-budget.md) as a Markdown table")

    d = sub.add_parser("data", help="write fresh true samples, as the model sees the data")
    _add_data_args(d)
    d.add_argument("--n", type=int, default=5000)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--out", required=True, help=".npy, .csv (2D) or .png (image grid)")

    q = sub.add_parser("study", help="quality, wall time and stability against network evaluations (NFE)")
    q.add_argument("--checkpoint", required=True, help="run folder")
    q.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated; settings after colons, "
                   "e.g. ddim:eta=0.5,heun:rho=5")
    q.add_argument("--nfe", type=_csv_ints, default=(5, 10, 20, 50, 100, 250, 1000), help="NFE targets")
    q.add_argument("--n", type=int, default=500)
    q.add_argument("--precision", default="float32", help="comma-separated, from float32, bfloat16, float16")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--out", required=True, help=".csv (every column) or .md (table and goal line)")
    return parser


def _sampler_config(args) -> SamplerConfig:
    return SamplerConfig(args.sampler, args.steps, args.eta, args.spacing, args.variance, args.clip, args.guidance,
                         args.grid, args.rho, args.sigma_min, args.sigma_max, args.churn, args.s_min, args.s_max,
                         args.s_noise)


def _labels(args, run, n: int) -> torch.Tensor | None:
    """--label for every sample; without it, conditional runs cycle through their classes."""
    num_classes = run.num_classes
    if args.guidance != 1.0 and not num_classes:
        raise ValueError(f"--guidance {args.guidance}: this run is unconditional (it was not trained with "
                         "--conditional)")
    if args.label is None:
        return run.balanced_labels(n)
    if not num_classes:
        raise ValueError(f"--label {args.label}: this run is unconditional (it was not trained with --conditional)")
    trained = run.config.data.classes or tuple(range(num_classes))
    if args.label not in trained:
        raise ValueError(f"--label {args.label} is not a class this run was trained on; allowed: "
                         f"{', '.join(map(str, trained))}")
    return torch.full((n,), args.label, dtype=torch.long)


SUFFIXES = {"images": (".npy", ".png"), "2D points": (".npy", ".csv")}


def _write(samples: torch.Tensor, path: Path) -> None:
    """2D points as float32 (.npy/.csv); images as uint8 (N, C, H, W) (.npy) or a PNG grid (suffix checked before)."""
    suffix = path.suffix.lower()
    if samples.dim() == 4:
        from diffusion.data.image_datasets import save_grid_png, to_uint8
        images = to_uint8(samples)
        return save_grid_png(images, path) if suffix == ".png" else np.save(path, images.numpy())
    if suffix == ".npy":
        return np.save(path, samples.numpy().astype(np.float32))
    return np.savetxt(path, samples.numpy(), delimiter=",", header="x,y", comments="", fmt="%.6f")


def _check_sampling(args, low_n: int) -> None:
    """The flags sample, evaluate and study share, checked before the run is loaded."""
    check_int("--n", args.n, low_n, MAX_N, " (a metric compares at least two samples)" if low_n > 1 else "")
    check_seed(args.seed)
    check_threads(getattr(args, "threads", None))


def _load(args):
    """(run, sampler) of sample and evaluate, the threads set for the run's kind."""
    sampler = _sampler_config(args)
    run = load_run(args.checkpoint, distributed.default_device())
    set_threads(run.config.model.kind, args.threads)
    return run, sampler


def _sample(args) -> int:
    _check_sampling(args, 1)
    run, sampler = _load(args)
    what = "images" if run.is_image else "2D points"
    out = check_output_file(args.out, SUFFIXES[what], what)
    start = time.perf_counter()
    samples = run.sample(args.n, sampler, seed=args.seed, y=_labels(args, run, args.n))
    _write(samples, out)
    print(f"{args.n} samples ({sampler.name}, {sampler.steps} steps = {nfe(sampler.name, sampler.steps)} network "
          f"evaluations) in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


IMAGE_METRICS = ("fid", "isc", "kid", "prc", "nll")


def _metrics(args, run) -> list[str]:
    """--metrics as a list, checked against what the run's kind offers (images: fid by default)."""
    allowed = IMAGE_METRICS if run.is_image else ("nll",)
    metrics = args.metrics.split(",") if args.metrics else (["fid"] if run.is_image else [])
    bad = [m for m in metrics if m not in allowed]
    if bad:
        kind = "image" if run.is_image else "2D (W1, W2 and KL of samples are measured when --metrics is left out)"
        raise ValueError(f"--metrics {','.join(bad)} is not offered for {kind} runs; allowed: {', '.join(allowed)}")
    if "nll" in metrics:
        from diffusion.metrics.likelihood import MAX_PROBES  # torchdiffeq and scipy.integrate: only when asked
        if not 1 <= args.probes <= MAX_PROBES:
            raise ValueError(f"--probes {args.probes} is out of range; allowed: 1 to {MAX_PROBES}")
    return metrics


def _budget(args, run, sampler: SamplerConfig) -> int:
    """evaluate --budget: the error budget of a 2D run under the points protocol of --n, the sampler and --seed."""
    from diffusion.explore.error_budget import error_budget
    from diffusion.metrics.protocol import points_protocol
    if run.is_image or args.metrics:
        raise ValueError("--budget is for 2D runs, without --metrics: an image set has no exact law")
    start = time.perf_counter()
    budget = error_budget(run, points_protocol(args.n, sampler, args.seed))
    print(f"Error budget of {args.checkpoint} (step {run.step}, {run.config.data.dataset}, objective "
          f"{run.config.train.objective}): {budget.protocol.describe()}; W1 in data-scale units, 95% intervals\n")
    print(budget.markdown())
    print(f"\n{time.perf_counter() - start:.1f} s")
    return 0


def _evaluate(args) -> int:
    from diffusion.metrics.evaluation import measure_run
    from diffusion.metrics.protocol import image_protocol, points_protocol
    _check_sampling(args, 2)
    run, sampler = _load(args)
    if args.budget:
        return _budget(args, run, sampler)
    metrics = _metrics(args, run)
    start = time.perf_counter()
    result = {}
    if "nll" in metrics:
        from diffusion.metrics.likelihood import nll_report_2d, nll_report_images
        result["likelihood"] = (nll_report_images(run, args.n, args.probes, args.seed) if run.is_image
                                else nll_report_2d(run, args.n, args.seed))
        metrics.remove("nll")
    if metrics or not result:              # sample quality, under the measurement protocol
        if run.is_image:
            protocol = image_protocol(run.config.data, args.n, sampler, args.seed, args.extractor)
        else:
            protocol = points_protocol(args.n, sampler, args.seed)
        measured, _ = measure_run(run, protocol, y=_labels(args, run, args.n), inception_weights=args.inception_weights,
                                  extra_metrics=[m for m in metrics if m != "fid"])
        result = {"sampler": asdict(sampler), **measured.report(), **result}
    report = {"checkpoint": args.checkpoint, "step": run.step, "dataset": run.config.data.dataset,
              "objective": run.config.train.objective, **result, "seconds": round(time.perf_counter() - start, 3)}
    print(json.dumps(report, allow_nan=False))
    return 0


def _data(args) -> int:
    check_int("--n", args.n, 1, MAX_N)
    check_seed(args.seed)
    custom = custom_from_spec(args.dataset or "", args.name)
    dataset = custom.dataset if custom else "moons" if args.dataset is None else args.dataset
    check_dataset(dataset)
    what = "2D points" if is_toy(dataset) else "images"
    out = check_output_file(args.out, SUFFIXES[what], what)
    if is_toy(dataset):
        if args.image_size is not None or args.classes is not None or args.class_weights is not None:
            raise ValueError(f"--image-size, --classes and --class-weights are for image datasets; {dataset!r} is 2D")
        samples = toy_dataset(dataset).sample(args.n, torch.Generator().manual_seed(args.seed))
    else:
        data = load_data(DataConfig(dataset, n=args.n, seed=args.seed, image_size=16 if args.image_size is None
                                    else args.image_size, classes=args.classes, class_weights=args.class_weights))
        samples = data.x
        if data.notice:
            print(f"notice: {data.notice}")
    _write(samples, out)
    print(f"{samples.shape[0]} true samples of {dataset} -> {args.out}")
    return 0


def _study(args) -> int:
    from diffusion.explore.nfe_study import study_checkpoint
    _check_sampling(args, 2)
    check_device(args.device)
    check_output_file(args.out, (".csv", ".md"), "study results")
    print(study_checkpoint(args.checkpoint, args.samplers.split(","), args.nfe, args.out, n=args.n,
                           precisions=args.precision.split(","), seed=args.seed, device=args.device))
    return 0


COMMANDS = {"train": train, "sample": _sample, "evaluate": _evaluate, "data": _data, "study": _study}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"python -m diffusion {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:     # during the work: a full disk, a folder removed meanwhile
        print(f"python -m diffusion {args.command}: error: {e}", file=sys.stderr)
        return 1
