"""python -m diffusion train | sample | evaluate | data. Bad input: one line naming the value, exit code 2."""

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from diffusion import __version__
from diffusion.config import DECAYS, PRECISIONS, TRAIN_OBJECTIVES, DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.core.schedules import SCHEDULES, SPACINGS
from diffusion.data import is_toy, load_data
from diffusion.data.custom import custom_from_spec
from diffusion.data.toy2d import TOY_DATASETS, toy_dataset
from diffusion.metrics.measure import measure_every
from diffusion.models.config import CONDITIONINGS
from diffusion.sampling.config import GRIDS, SamplerConfig
from diffusion.sampling.registry import SAMPLERS, nfe
from diffusion.sampling.vp import VARIANCES
from diffusion.training import distributed
from diffusion.training.checkpoints import CONFIG, load_run
from diffusion.training.defaults import MODEL_DEFAULTS, UNBOUNDED_STEPS, recipe_2d
from diffusion.training.trainer import Trainer


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
    t.add_argument("--model", choices=("mlp", "unet"))
    t.add_argument("--preset", help="U-Net preset (default: small-16 up to 16 px, small-32 above)")
    t.add_argument("--conditional", action="store_true", default=None, help="class-conditional (images and "
                   "labelled 2D sets), trained with label dropout for classifier-free guidance")
    t.add_argument("--conditioning", choices=CONDITIONINGS, help="how labels enter the U-Net: add (to the time "
                   "embedding, default) or cross (cross-attention to label tokens)")
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--timesteps", type=int)
    t.add_argument("--zero-terminal-snr", action="store_true", default=None)
    t.add_argument("--objective", choices=TRAIN_OBJECTIVES, help="eps (default), x0, v, or edm (Karras 2022)")
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
    t.add_argument("--measure-n", type=int, default=500, help="images: samples per measurement (DDIM-50)")
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
    e.add_argument("--metrics", default="fid", help="images: comma-separated, from fid, isc, kid, prc")
    e.add_argument("--extractor", choices=("classifier", "inception"), default="classifier",
                   help="images: feature network (the dataset's shipped classifier, or Inception-v3)")
    e.add_argument("--inception-weights", help="images: local Inception-v3 weights file (offline use)")

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


def _model_config(kind: str, args, data_cfg: DataConfig, num_classes: int, channels: int):
    if kind == "mlp":
        if not is_toy(data_cfg.dataset):
            raise ValueError(f"model 'mlp' is for 2D data; dataset {data_cfg.dataset!r} needs --model unet")
        return recipe_2d(data_cfg.dataset).model(num_classes)
    from diffusion.models.config import unet_preset
    if is_toy(data_cfg.dataset):
        raise ValueError(f"model 'unet' is for images; 2D dataset {data_cfg.dataset!r} needs --model mlp")
    preset = args.preset or ("small-16" if data_cfg.image_size <= 16 else "small-32")
    return unet_preset(preset, image_size=data_cfg.image_size, channels=channels, num_classes=num_classes,
                       conditioning=args.conditioning or "add")


def _data_config(args, **fields) -> DataConfig:
    """The DataConfig --dataset names: a preset, a custom 2D set from csv:/image:/word:, or an image dataset."""
    dataset = args.dataset or "moons"
    custom = custom_from_spec(dataset, args.name, seed=fields.get("seed", 0))
    if custom is not None:
        return replace(custom, n=fields.get("n"))
    _check_dataset(dataset)
    return DataConfig(dataset, **fields)


def _check_dataset(name: str) -> None:
    from diffusion.data.images import IMAGE_DATASETS
    if not (is_toy(name) or name in IMAGE_DATASETS or name.startswith("folder:")):
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(TOY_DATASETS)}, "
                         f"{', '.join(IMAGE_DATASETS)}, folder:PATH")


def _set_threads(kind: str, threads: int | None) -> None:
    """One thread for the small MLP (two threads cost more in synchronisation than they gain), all for U-Nets."""
    threads = threads if threads is not None else MODEL_DEFAULTS[kind]["threads"]
    if threads:
        torch.set_num_threads(threads)


def _defaults(kind: str, dataset: str) -> dict:
    """Training defaults: the 2D set's recipe for the MLP (training.defaults.recipe_2d), per model kind otherwise."""
    if kind == "mlp" and is_toy(dataset):
        r = recipe_2d(dataset)
        return dict(steps=r.steps, batch_size=r.batch_size, lr=r.lr, ema_decay=r.ema_decay, decay=r.decay,
                    objective=r.objective, warmup_steps=r.warmup_steps)
    return {**MODEL_DEFAULTS[kind], "decay": "none", "objective": "eps", "warmup_steps": 100}


def _new_config(args) -> tuple[RunConfig, object]:
    dataset = args.dataset or "moons"
    image_size = args.image_size if args.image_size is not None else (None if is_toy(dataset) else 16)
    data_cfg = _data_config(args, seed=args.seed or 0, image_size=image_size, classes=args.classes,
                            class_weights=args.class_weights)
    dataset = data_cfg.dataset
    data = load_data(data_cfg)
    kind = args.model or ("mlp" if is_toy(dataset) else "unet")
    if args.conditional and not data.num_classes:
        raise ValueError(f"--conditional: dataset {dataset!r} has no classes; labelled 2D sets: "
                         f"{', '.join(n for n, t in TOY_DATASETS.items() if t.num_classes)} and CSVs with a label column")
    num_classes = data.num_classes if args.conditional else 0
    model = _model_config(kind, args, data_cfg, num_classes, int(data.x.shape[1]) if data.x.dim() == 4 else 1)
    d = _defaults(kind, dataset)
    steps = args.steps or (UNBOUNDED_STEPS if args.minutes is not None else d["steps"])
    train = TrainConfig(steps=steps, batch_size=args.batch_size or d["batch_size"], lr=args.lr or d["lr"],
                        ema_decay=args.ema_decay if args.ema_decay is not None else d["ema_decay"],
                        decay=args.decay or d["decay"], warmup_steps=d["warmup_steps"],
                        objective=args.objective or d["objective"], seed=args.seed or 0,
                        checkpoint_every=args.checkpoint_every or 1000,
                        sigma_data=1.0 if is_toy(dataset) else 0.5,  # the 2D sets have unit std
                        precision=args.precision or "float32", channels_last=args.channels_last)
    schedule = ScheduleConfig(args.schedule or "linear", args.timesteps or 1000, bool(args.zero_terminal_snr))
    return RunConfig(data_cfg, schedule, model, train), data


def _resumed_config(args, saved: RunConfig) -> RunConfig:
    """The saved config, with a new step target; any other flag that disagrees is an error."""
    custom = custom_from_spec(args.dataset, args.name, seed=saved.data.seed) if args.dataset else None
    asked = {"dataset": (custom.dataset if custom else args.dataset, saved.data.dataset),
             "model": (args.model, saved.model.kind),
             "schedule": (args.schedule, saved.schedule.name), "timesteps": (args.timesteps, saved.schedule.timesteps),
             "batch-size": (args.batch_size, saved.train.batch_size), "lr": (args.lr, saved.train.lr),
             "seed": (args.seed, saved.train.seed), "objective": (args.objective, saved.train.objective), "decay": (args.decay, saved.train.decay),
             "image-size": (args.image_size, saved.data.image_size), "classes": (args.classes, saved.data.classes)}
    clash = [f"--{k} {new} (the run has {old})" for k, (new, old) in asked.items() if new is not None and new != old]
    if clash:
        raise ValueError(f"{args.out} holds a run with other settings: {'; '.join(clash)}; use a new --out")
    steps = args.steps or (UNBOUNDED_STEPS if args.minutes is not None else saved.train.steps)
    return replace(saved, train=replace(saved.train, steps=steps))


def _say(*args, **kwargs) -> None:
    """print, on rank 0 only under torchrun."""
    if distributed.is_main():
        print(*args, **kwargs)


def _train(args) -> int:
    """Train in this process, or under torchrun as one rank of a data-parallel run."""
    device = distributed.setup()
    try:
        return _train_on(args, device)
    finally:
        distributed.teardown()


def _train_on(args, device: str) -> int:
    out = Path(args.out)
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes {args.minutes} is out of range; allowed: a positive number (0.5 = 30 s)")
    if (out / CONFIG).exists():
        saved = load_run(out).config
        config = _resumed_config(args, saved)
        with distributed.main_first():
            data = load_data(config.data)
        trainer = Trainer.resume(out, data.x, data.y, device=device)
        trainer.config = config
        _say(f"resuming {out} from step {trainer.step}")
    else:
        with distributed.main_first():  # a dataset download or cache is written once
            config, data = _new_config(args)
        trainer = Trainer(config, data.x, data.y, device=device, data_source=data.source)
    if data.notice:
        _say(f"notice: {data.notice}")
    _set_threads(config.model.kind, args.threads)
    seconds = args.minutes * 60 if args.minutes is not None else None
    try:
        callback = measure_every(args.measure_every, args.measure_n) if args.measure_every else None
        result = trainer.run(seconds=seconds, run_dir=out, callback=callback)
    except KeyboardInterrupt:
        trainer.save(out)
        _say(f"interrupted at step {trainer.step}; checkpoint saved in {out}")
        return 130
    loss = trainer.history[-1].get("loss", float("nan")) if trainer.history else float("nan")
    _say(f"step {trainer.step}, loss {loss:.4f}, {trainer.elapsed:.1f} s of training; saved in {out}")
    if result.reason == "diverged":
        _say(f"error: {result.message}", file=sys.stderr)
        return 1
    return 0


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


def _write(samples: torch.Tensor, path: Path) -> None:
    """2D points as float32 (.npy/.csv); images as uint8 (N, C, H, W) (.npy) or a PNG grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if samples.dim() == 4:
        from diffusion.data.images import save_grid_png, to_uint8
        images = to_uint8(samples)
        if suffix == ".png":
            return save_grid_png(images, path)
        if suffix == ".npy":
            return np.save(path, images.numpy())
        raise ValueError(f"output {str(path)!r}: images are written as .npy or .png")
    if suffix == ".npy":
        return np.save(path, samples.numpy().astype(np.float32))
    if suffix == ".csv":
        return np.savetxt(path, samples.numpy(), delimiter=",", header="x,y", comments="", fmt="%.6f")
    raise ValueError(f"output {str(path)!r}: 2D points are written as .npy or .csv")


def _check_n(n: int) -> None:
    if not 1 <= n <= 1_000_000:
        raise ValueError(f"--n {n} is out of range; allowed: 1 to 1000000")


def _sample(args) -> int:
    _check_n(args.n)
    run, sampler = load_run(args.checkpoint, distributed.default_device()), _sampler_config(args)
    _set_threads(run.config.model.kind, args.threads)
    start = time.perf_counter()
    samples = run.sample(args.n, sampler, seed=args.seed, y=_labels(args, run, args.n))
    _write(samples, Path(args.out))
    print(f"{args.n} samples ({sampler.name}, {sampler.steps} steps = {nfe(sampler.name, sampler.steps)} network "
          f"evaluations) in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


def _evaluate(args) -> int:
    _check_n(args.n)
    run, sampler = load_run(args.checkpoint, distributed.default_device()), _sampler_config(args)
    _set_threads(run.config.model.kind, args.threads)
    start = time.perf_counter()
    if run.is_image:
        from diffusion.metrics.evaluation import evaluate_run_images
        result = evaluate_run_images(run, args.n, sampler, args.metrics.split(","), seed=args.seed,
                                     y=_labels(args, run, args.n), extractor=args.extractor,
                                     inception_weights=args.inception_weights)
    else:
        from diffusion.metrics.evaluation import evaluate_run_2d
        evaluation = evaluate_run_2d(run, args.n, sampler, seed=args.seed)
        result = {"metrics": evaluation.metrics, "floor": evaluation.floor}
    report = {"checkpoint": args.checkpoint, "step": run.step, "dataset": run.config.data.dataset, "n": args.n,
              "sampler": asdict(sampler), **result, "seconds": round(time.perf_counter() - start, 3)}
    print(json.dumps(report, allow_nan=False))
    return 0


def _data(args) -> int:
    _check_n(args.n)
    custom = custom_from_spec(args.dataset or "", args.name)
    dataset = custom.dataset if custom else args.dataset or "moons"
    _check_dataset(dataset)
    if is_toy(dataset):
        samples = toy_dataset(dataset).sample(args.n, torch.Generator().manual_seed(args.seed))
    else:
        data = load_data(DataConfig(dataset, n=args.n, seed=args.seed, image_size=args.image_size or 16,
                                    classes=args.classes, class_weights=args.class_weights))
        samples = data.x
        if data.notice:
            print(f"notice: {data.notice}")
    _write(samples, Path(args.out))
    print(f"{samples.shape[0]} true samples of {dataset} -> {args.out}")
    return 0


def _study(args) -> int:
    from diffusion.explore.study import study_checkpoint
    _check_n(args.n)
    print(study_checkpoint(args.checkpoint, args.samplers.split(","), args.nfe, args.out, n=args.n,
                           precisions=args.precision.split(","), seed=args.seed, device=args.device))
    return 0


COMMANDS = {"train": _train, "sample": _sample, "evaluate": _evaluate, "data": _data, "study": _study}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"python -m diffusion {args.command}: error: {e}", file=sys.stderr)
        return 2
