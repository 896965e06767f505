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
from diffusion.cli.options import (DATA, DRAW, EVALUATE, NO_CLIP, SAMPLE, STUDY, THREADS, TRAIN, TRUE_SAMPLES,
                                   Option, sampler_options, sampler_settings)
from diffusion.cli.train import check_dataset, set_threads, train
from diffusion.config import DataConfig
from diffusion.data import is_toy, load_data
from diffusion.data.custom import custom_from_spec
from diffusion.data.toy_datasets import toy_dataset
from diffusion.sampling.registry import nfe
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training import distributed
from diffusion.training.checkpoints import load_run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


COMMAND_OPTIONS: dict[str, tuple[str, tuple[tuple[Option, ...], ...]]] = {   # command -> (help, its flag tables)
    "train": ("train a model (resumes when --out already holds a run)", (DATA, TRAIN, THREADS)),
    "sample": ("draw samples from a trained run", (THREADS, DRAW, sampler_options(), NO_CLIP, SAMPLE)),
    "evaluate": ("sample and print metrics against the truth as JSON", (THREADS, DRAW, sampler_options(), NO_CLIP, EVALUATE)),
    "data": ("write fresh true samples, as the model sees the data", (DATA, TRUE_SAMPLES)),
    "study": ("quality, wall time and stability against network evaluations (NFE)", (STUDY,)),
}


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m diffusion", description="Train, sample and measure diffusion models.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command, (about, tables) in COMMAND_OPTIONS.items():
        p = sub.add_parser(command, help=about)
        for flag, keywords in (option for table in tables for option in table):
            p.add_argument(flag, **keywords)
    return parser


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
    sampler = sampler_settings(args)
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
    if args.budget:
        from diffusion.explore.study_budget import budget_checkpoint
        if args.precision != "float32":
            raise ValueError(f"--budget with --precision {args.precision}: the budget is float32 only (the exact "
                             "model has no precision)")
        print(budget_checkpoint(args.checkpoint, args.samplers.split(","), args.nfe, args.out, n=args.n,
                                seed=args.seed, device=args.device))
        return 0
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
