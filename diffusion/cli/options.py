"""The command line as tables: one row per flag (its names and argparse keywords), one table per group of flags,
one entry per command naming its groups. The sampler's flags are not listed: they are SamplerConfig's fields
(name, type and default from the dataclass; flag name, help and choices from SAMPLER_FLAGS), so a new sampler
setting is a field there and a row here.
"""

import argparse
import types
from dataclasses import MISSING, fields
from typing import Any, Union, get_args, get_origin

from diffusion.config import DECAYS, PRECISIONS, TRAIN_OBJECTIVES
from diffusion.core.flow_matching import TIME_SAMPLINGS
from diffusion.core.schedules import SCHEDULES, SPACINGS
from diffusion.core.time import CLIPS, Clip
from diffusion.data.toy_datasets import TOY_DATASETS
from diffusion.models.model_config import CONDITIONINGS
from diffusion.sampling.registry import SAMPLERS
from diffusion.sampling.sampler_config import GRIDS, SamplerConfig
from diffusion.sampling.vp import VARIANCES

Option = tuple[str, dict[str, Any]]       # a flag and its add_argument keywords


def csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def csv_floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


DATA: tuple[Option, ...] = (
    ("--dataset", dict(help=f"2D: {', '.join(TOY_DATASETS)}, or your own: csv:PATH (columns x,y[,label]), "
                       "image:PATH (a silhouette), word:TEXT; images: mnist, fashion-mnist, cifar10, shapes, "
                       "folder:PATH")),
    ("--name", dict(help="the name of a custom 2D set (default: after its file or word)")),
    ("--classes", dict(type=csv_ints, help="images: keep these class ids, e.g. 0 or 0,1,2")),
    ("--class-weights", dict(type=csv_floats, help="images: class proportions, e.g. 1,1,0.1")),
    ("--image-size", dict(type=int, help="images: side in pixels (16, 28, 32, ...)")),
)
TRAIN: tuple[Option, ...] = (
    ("--images", dict(type=int, help="images: train on this many of the selected images, a subset drawn with --seed "
                      "(default: all; the training-set-size sweep of docs/analytic-denoisers.md)")),
    ("--model", dict(choices=("mlp", "unet"))),
    ("--preset", dict(help="U-Net preset (default: small-16 up to 16 px, small-32 above)")),
    ("--conditional", dict(action="store_true", default=None, help="class-conditional (images and labelled 2D sets), "
                           "trained with label dropout for classifier-free guidance")),
    ("--conditioning", dict(choices=CONDITIONINGS, help="how labels enter the U-Net: add (to the time embedding, "
                            "default) or cross (cross-attention to label tokens)")),
    ("--schedule", dict(choices=SCHEDULES)),
    ("--timesteps", dict(type=int)),
    ("--zero-terminal-snr", dict(action="store_true", default=None)),
    ("--objective", dict(choices=TRAIN_OBJECTIVES, help="eps (default), x0, v, edm (Karras 2022), or flow (flow "
                         "matching / rectified flow: x_t = (1 - t) x0 + t eps, target eps - x0)")),
    ("--time-sampling", dict(choices=TIME_SAMPLINGS, help="flow: training times uniform (default) or logit_normal "
                             "(SD3, Esser et al. 2024)")),
    ("--logit-mean", dict(type=float, help="flow, logit_normal: location m of t = sigmoid(m + s z) (0)")),
    ("--logit-std", dict(type=float, help="flow, logit_normal: scale s (1)")),
    ("--steps", dict(type=int, help="total training steps of the run (default: per model)")),
    ("--minutes", dict(type=float, help="time budget of this invocation (0.5 = 30 s)")),
    ("--batch-size", dict(type=int)),
    ("--lr", dict(type=float)),
    ("--ema-decay", dict(type=float)),
    ("--decay", dict(choices=DECAYS, help="learning rate after warm-up: none (constant, default) or cosine (to 10%% "
                     "of --lr at --steps)")),
    ("--seed", dict(type=int)),
    ("--checkpoint-every", dict(type=int, help="steps between checkpoints")),
    ("--precision", dict(choices=PRECISIONS, help="bfloat16: autocast forward and loss (default float32)")),
    ("--channels-last", dict(action=argparse.BooleanOptionalAction, default=None,
                             help="U-Net NHWC layout (default: on CPUs only, where it is faster)")),
    ("--measure-every", dict(type=int, help="steps between quality measurements logged in metrics.csv (2D: W1, W2, "
                             "KL; images: FID on the classifier's features, accuracy if conditional)")),
    ("--measure-n", dict(type=int, help="samples per measurement, and real images (points) in its reference and "
                         "floor (default: images 500 with DDIM-50, 2D 1000 with DDIM-50)")),
    ("--out", dict(required=True, help="run folder")),
)
THREADS: tuple[Option, ...] = (
    ("--threads", dict(type=int, help="CPU threads (default: 1 for the MLP, all for the U-Net)")),
)
DRAW: tuple[Option, ...] = (           # sample and evaluate, beside the sampler's flags
    ("--checkpoint", dict(required=True, help="run folder")),
    ("--n", dict(type=int, default=2000)),
    ("--label", dict(type=int, help="conditional runs: the class to generate")),
    ("--seed", dict(type=int, default=0)),
)
# SamplerConfig field -> its flag (default "--" + the field with dashes) and help/choices; type and default: the field's
SAMPLER_FLAGS: dict[str, dict[str, Any]] = {
    "name": dict(flag="--sampler", choices=SAMPLERS),
    "steps": dict(help="network evaluations"),
    "eta": dict(help="DDIM stochasticity, 0 to 1"),
    "spacing": dict(choices=SPACINGS, help="ddim, ddpm timesteps (default: cubic for ddim, trailing for ddpm; flow: the "
                    "rectified-flow grid's, docs/samplers.md)"),
    "variance": dict(choices=VARIANCES, help="DDPM posterior variance"),
    "clip": dict(choices=CLIPS, default=Clip.AUTO.value, help="x0_hat: auto (default: images clamped to [-1, 1], 2D "
                 "onto the ball of the training data's radius), clamp, ball, none (the raw network)"),
    "guidance": dict(help="classifier-free guidance scale w"),
    "grid": dict(choices=GRIDS, help="euler/heun/dpmpp2m/flow noise levels (default: flow for euler and the flow "
                 "samplers; logsnr for dpmpp2m; equal_error for heun; docs/samplers.md)"),
    "rho": dict(help="karras grid exponent"),
    "S_churn": dict(flag="--churn", help="EDM S_churn (euler, heun)"),
    "S_max": dict(help="default: no upper bound"),
}
NO_CLIP: tuple[Option, ...] = (
    ("--no-clip", dict(dest="clip", action="store_const", const="none", help="the same as --clip none")),
)
SAMPLE: tuple[Option, ...] = (
    ("--out", dict(required=True, help=".npy, .csv (2D) or .png (image grid)")),
)
EVALUATE: tuple[Option, ...] = (
    ("--metrics", dict(help="images: comma-separated, from fid (default; always measured with the others), isc, kid, "
                       "prc, nll (bits/dim of held-out test images); 2D: nll (nats of held-out true points beside the "
                       "true density's own NLL), else W1/W2/KL of samples")),
    ("--probes", dict(type=int, default=1, help="nll on images: Hutchinson probes per image")),
    ("--extractor", dict(choices=("classifier", "inception"), default="classifier",
                         help="images: feature network (the dataset's shipped classifier, or Inception-v3)")),
    ("--inception-weights", dict(help="images: local Inception-v3 weights file (offline use)")),
    ("--budget", dict(action="store_true", help="2D: print the error budget instead (floor, solver, network and "
                      "total W1 from the same noises, docs/error-budget.md) as a Markdown table")),
)
TRUE_SAMPLES: tuple[Option, ...] = (
    ("--n", dict(type=int, default=5000)),
    ("--seed", dict(type=int, default=1)),
    ("--out", dict(required=True, help=".npy, .csv (2D) or .png (image grid)")),
)
STUDY: tuple[Option, ...] = (
    ("--checkpoint", dict(required=True, help="run folder")),
    ("--samplers", dict(default=",".join(SAMPLERS), help="comma-separated; settings after colons, e.g. "
                        "ddim:eta=0.5,heun:rho=5")),
    ("--nfe", dict(type=csv_ints, default=(5, 10, 20, 50, 100, 250, 1000), help="NFE targets")),
    ("--n", dict(type=int, default=500)),
    ("--precision", dict(default="float32", help="comma-separated, from float32, bfloat16, float16")),
    ("--seed", dict(type=int, default=0)),
    ("--device", dict(default="cpu", help="cpu or cuda")),
    ("--out", dict(required=True, help=".csv (every column) or .md (table and goal line)")),
    ("--budget", dict(action="store_true", help="2D: each row's error budget instead (floor, solver, network and "
                      "total W1 from the study's noises, docs/error-budget.md); float32 only")),
)


def _plain(kind: Any) -> Any:
    """The type of a field without its None: float | None -> float."""
    if get_origin(kind) in (Union, types.UnionType):
        return next(k for k in get_args(kind) if k is not type(None))
    return kind


def sampler_flag(name: str) -> str:
    """The command-line flag of a SamplerConfig field: --sampler, --sigma-min, --churn..."""
    return SAMPLER_FLAGS.get(name, {}).get("flag", "--" + name.lower().replace("_", "-"))


def sampler_options() -> tuple[Option, ...]:
    """One flag per SamplerConfig field, its type and default the field's (a bool is --flag/--no-flag)."""
    options = []
    for f in fields(SamplerConfig):
        extra = {k: v for k, v in SAMPLER_FLAGS.get(f.name, {}).items() if k != "flag"}
        kind = _plain(f.type)
        typed = dict(action=argparse.BooleanOptionalAction) if kind is bool else \
            {} if kind is str or "choices" in extra else dict(type=kind)
        default = None if f.default is MISSING else f.default
        options.append((sampler_flag(f.name), {**typed, "default": default, **extra}))
    return tuple(options)


def sampler_settings(args: argparse.Namespace) -> SamplerConfig:
    """The SamplerConfig of parsed sample/evaluate flags."""
    return SamplerConfig(**{f.name: getattr(args, sampler_flag(f.name)[2:].replace("-", "_"))
                            for f in fields(SamplerConfig)})
