"""python -m diffusion train: a new run from the flags, or the run in --out resumed. Everything is checked before
training: the flags (zero and empty values are refused, never replaced by defaults), the output folder (a folder,
writable, room for one checkpoint, locked against a second writer) and, on resume, every flag against the saved
run (a flag that would change it is refused, naming the saved value)."""

import signal
import sys
import threading
from argparse import Namespace
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from diffusion.cli.checks import check_free_space, check_run_folder, check_seed, check_threads
from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.data import is_toy, load_data
from diffusion.data.custom import custom_from_spec
from diffusion.data.toy_datasets import TOY_DATASETS
from diffusion.metrics.measure import measure_every
from diffusion.models import parameter_count
from diffusion.models.model_config import UNET_PRESETS
from diffusion.training import distributed, runlock
from diffusion.training.checkpoints import CONFIG, read_config
from diffusion.training.defaults import MODEL_DEFAULTS, UNBOUNDED_STEPS, recipe_2d
from diffusion.training.trainer import Trainer

IMAGE_ONLY = ("image_size", "classes", "class_weights", "images", "preset", "conditioning")


def check_dataset(name: str) -> None:
    from diffusion.data.image_datasets import IMAGE_DATASETS
    if not (is_toy(name) or name in IMAGE_DATASETS or (name.startswith("folder:") and len(name) > len("folder:"))):
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(TOY_DATASETS)}, "
                         f"{', '.join(IMAGE_DATASETS)}, folder:PATH")


def _given(value, default):
    """The flag's value when given (0 and "" included: the configs refuse them), else the default."""
    return default if value is None else value


def _check_flags(args, dataset: str) -> None:
    check_seed(args.seed)
    check_threads(args.threads)
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes {args.minutes} is out of range; allowed: a positive number (0.5 = 30 s)")
    if args.measure_every is not None and args.measure_every < 1:
        raise ValueError(f"--measure-every {args.measure_every} is out of range; allowed: 1 or more (leave it out "
                         "to measure nothing)")
    if is_toy(dataset):
        given = [f"--{name.replace('_', '-')}" for name in IMAGE_ONLY if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: for image datasets only; {dataset!r} is a 2D dataset")


def _model_config(kind: str, args, data_cfg: DataConfig, num_classes: int, channels: int):
    if kind == "mlp":
        if not is_toy(data_cfg.dataset):
            raise ValueError(f"model 'mlp' is for 2D data; dataset {data_cfg.dataset!r} needs --model unet")
        return recipe_2d(data_cfg.dataset).model(num_classes)
    from diffusion.models.model_config import unet_preset
    if is_toy(data_cfg.dataset):
        raise ValueError(f"model 'unet' is for images; 2D dataset {data_cfg.dataset!r} needs --model mlp")
    preset = args.preset or ("small-16" if data_cfg.image_size <= 16 else "small-32")
    return unet_preset(preset, image_size=data_cfg.image_size, channels=channels, num_classes=num_classes,
                       conditioning=args.conditioning or "add")


def _data_config(args) -> DataConfig:
    """The DataConfig --dataset names: a preset, a custom 2D set from csv:/image:/word:, or an image dataset."""
    dataset, seed = _given(args.dataset, "moons"), _given(args.seed, 0)
    custom = custom_from_spec(dataset, args.name, seed=seed)
    if custom is not None:
        return custom
    check_dataset(dataset)
    return DataConfig(dataset, seed=seed, image_size=_given(args.image_size, None if is_toy(dataset) else 16),
                      classes=args.classes, class_weights=args.class_weights, n=args.images)


def _defaults(kind: str, dataset: str) -> dict:
    """Training defaults: the 2D set's recipe for the MLP (training.defaults.recipe_2d), per model kind otherwise."""
    if kind == "mlp" and is_toy(dataset):
        r = recipe_2d(dataset)
        return dict(steps=r.steps, batch_size=r.batch_size, lr=r.lr, ema_decay=r.ema_decay, decay=r.decay,
                    objective=r.objective, warmup_steps=r.warmup_steps)
    return {**MODEL_DEFAULTS[kind], "decay": "none", "objective": "eps", "warmup_steps": 100}


def _new_config(args) -> tuple[RunConfig, object]:
    data_cfg = _data_config(args)
    dataset, toy = data_cfg.dataset, is_toy(data_cfg.dataset)
    data = load_data(data_cfg)
    if args.conditional and not data.num_classes:
        labelled = ", ".join(n for n, t in TOY_DATASETS.items() if t.num_classes)
        raise ValueError(f"--conditional: dataset {dataset!r} has no labels; labelled 2D sets: {labelled} and "
                         "CSVs with a label column")
    kind = args.model or ("mlp" if toy else "unet")
    num_classes = data.num_classes if args.conditional else 0
    model = _model_config(kind, args, data_cfg, num_classes, int(data.x.shape[1]) if data.x.dim() == 4 else 1)
    d = _defaults(kind, dataset)
    steps = _given(args.steps, UNBOUNDED_STEPS if args.minutes is not None else d["steps"])
    train = TrainConfig(steps=steps, batch_size=_given(args.batch_size, d["batch_size"]), lr=_given(args.lr, d["lr"]),
                        ema_decay=_given(args.ema_decay, d["ema_decay"]), decay=_given(args.decay, d["decay"]),
                        warmup_steps=d["warmup_steps"], objective=_given(args.objective, d["objective"]), **_flow_settings(args), seed=_given(args.seed, 0),
                        checkpoint_every=_given(args.checkpoint_every, 1000),
                        sigma_data=1.0 if toy else 0.5,  # the 2D sets have unit std
                        precision=_given(args.precision, "float32"), channels_last=args.channels_last)
    schedule = ScheduleConfig(_given(args.schedule, "linear"), _given(args.timesteps, 1000),
                              bool(args.zero_terminal_snr))
    return RunConfig(data_cfg, schedule, model, train), data


def _flow_settings(args) -> dict:
    """The flow objective's time settings the command line gives (TrainConfig refuses them for other objectives)."""
    given = {"time_sampling": args.time_sampling, "logit_mean": args.logit_mean, "logit_std": args.logit_std}
    return {k: v for k, v in given.items() if v is not None}


def _preset_of(model) -> str | None:
    """The preset a saved U-Net matches (None for an MLP or a custom U-Net)."""
    for name, settings in UNET_PRESETS.items():
        if model.kind == "unet" and all(getattr(model, k) == v for k, v in settings.items()
                                        if k not in ("image_size", "channels")):
            return name
    return None


def _saved_values(saved: RunConfig) -> dict[str, tuple[str, object]]:
    """flag -> (args attribute, the saved run's value) for every flag that describes a saved run."""
    d, s, m, t = saved.data, saved.schedule, saved.model, saved.train
    unet = m.kind == "unet"
    return {"dataset": ("dataset", d.dataset), "model": ("model", m.kind), "schedule": ("schedule", s.name),
            "timesteps": ("timesteps", s.timesteps), "zero-terminal-snr": ("zero_terminal_snr", s.zero_terminal_snr),
            "objective": ("objective", t.objective), "time-sampling": ("time_sampling", t.time_sampling),
            "logit-mean": ("logit_mean", t.logit_mean), "logit-std": ("logit_std", t.logit_std), "batch-size": ("batch_size", t.batch_size), "lr": ("lr", t.lr),
            "ema-decay": ("ema_decay", t.ema_decay), "decay": ("decay", t.decay), "seed": ("seed", t.seed),
            "checkpoint-every": ("checkpoint_every", t.checkpoint_every), "precision": ("precision", t.precision),
            "channels-last": ("channels_last", t.channels_last), "image-size": ("image_size", d.image_size),
            "classes": ("classes", d.classes), "class-weights": ("class_weights", d.class_weights),
            "images": ("images", d.n),
            "conditional": ("conditional", getattr(m, "num_classes", 0) > 0),
            "conditioning": ("conditioning", m.conditioning if unet else "none (an MLP)"),
            "preset": ("preset", _preset_of(m) or ("a custom U-Net" if unet else "none (an MLP)"))}


def _resumed_config(args, saved: RunConfig) -> RunConfig:
    """The saved config, with a new step target; any other flag that disagrees with the saved run is an error."""
    if args.preset is not None and args.preset not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset {args.preset!r}; allowed: {', '.join(UNET_PRESETS)}")
    custom = custom_from_spec(args.dataset, args.name, seed=saved.data.seed) if args.dataset else None
    if custom is not None:      # a custom set is saved under its name, which says which points it holds
        args = Namespace(**{**vars(args), "dataset": custom.dataset})
    clash = [f"--{flag} {getattr(args, attr)} (the run has {old})" for flag, (attr, old) in _saved_values(saved).items()
             if getattr(args, attr) is not None and getattr(args, attr) != old]
    if clash:
        raise ValueError(f"{args.out} holds a run with other settings: {'; '.join(clash)}; use a new --out")
    steps = _given(args.steps, UNBOUNDED_STEPS if args.minutes is not None else saved.train.steps)
    return replace(saved, train=replace(saved.train, steps=steps))


def _say(*args, **kwargs) -> None:
    """print, on rank 0 only under torchrun."""
    if distributed.is_main():
        print(*args, **kwargs)


def set_threads(kind: str, threads: int | None) -> None:
    """One thread for the small MLP (two threads cost more in synchronisation than they gain), all for U-Nets."""
    threads = threads if threads is not None else MODEL_DEFAULTS[kind]["threads"]
    if threads:
        torch.set_num_threads(threads)


def train(args) -> int:
    """Train in this process, or under torchrun as one rank of a data-parallel run."""
    device = distributed.setup()
    try:
        out = check_run_folder(args.out)
        with runlock.hold(out, wait=0.0) if distributed.is_main() else nullcontext():
            return _train_on(args, out, device)
    finally:
        distributed.teardown()


def _prepare(args, out: Path, device: str) -> tuple[Trainer, object]:
    """(trainer, data): the run in out resumed, or a new one; the disk checked for one checkpoint's room."""
    if (out / CONFIG).exists():
        saved = read_config(out)
        _check_flags(args, saved.data.dataset)
        config = _resumed_config(args, saved)
        check_free_space(out, parameter_count(config.model))
        with distributed.main_first():
            data = load_data(config.data)
        trainer = Trainer.resume(out, data.x, data.y, device=device)
        trainer.config = config
        _say(f"resuming {out} from step {trainer.step}")
        return trainer, data
    _check_flags(args, _given(args.dataset, "moons"))
    with distributed.main_first():  # a dataset download or cache is written once
        config, data = _new_config(args)
    check_free_space(out, parameter_count(config.model))
    return Trainer(config, data.x, data.y, device=device, data_source=data.source), data


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def _interruptible():
    """Ctrl-C and SIGTERM (kill, a job scheduler, a container stop) interrupt training, which then saves; SIGINT too
    when the shell started the run in the background (nohup ... &), which ignores it."""
    if threading.current_thread() is not threading.main_thread():   # signals reach the main thread only
        yield
        return
    before = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _train_on(args, out: Path, device: str) -> int:
    trainer, data = _prepare(args, out, device)
    if data.notice:
        _say(f"notice: {data.notice}")
    set_threads(trainer.config.model.kind, args.threads)
    seconds = args.minutes * 60 if args.minutes is not None else None
    try:
        callback = measure_every(args.measure_every, args.measure_n) if args.measure_every else None
        with _interruptible():
            result = trainer.run(seconds=seconds, run_dir=out, callback=callback)
    except KeyboardInterrupt:
        trainer.save(out)
        _say(f"interrupted at step {trainer.step}; checkpoint saved in {out}")
        return 130
    loss = trainer.history[-1].get("loss", float("nan")) if trainer.history else float("nan")
    if trainer.saved_step == trainer.step:
        where = f"saved in {out}"
    else:
        where = f"{out} keeps step {trainer.saved_step}" if trainer.saved_step is not None else "nothing saved"
    _say(f"step {trainer.step}, loss {loss:.4f}, {trainer.elapsed:.1f} s of training; {where}")
    if result.reason == "diverged":
        _say(f"error: {result.message}", file=sys.stderr)
        return 1
    return 0
