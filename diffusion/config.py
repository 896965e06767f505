"""Frozen, JSON-round-tripping configuration of a run: data, schedule, model and training hyperparameters.

Hashable (they can key caches) and validated on construction: a bad value raises ValueError naming it
and what is allowed.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from diffusion.core.flow_matching import TIME_SAMPLINGS
from diffusion.core.forward import OBJECTIVES, WEIGHTINGS
from diffusion.core.schedules import MAX_T, MIN_T, SCHEDULES, NoiseSchedule, make_schedule
from diffusion.models.model_config import MAX_CLASSES, MAX_IMAGE_SIZE, MLPConfig, UNetConfig, check_choice
from diffusion.models.model_config import check_range as _check_range

DECAYS = ("none", "cosine")
TRAIN_OBJECTIVES = (*OBJECTIVES, "edm", "flow")
PRECISIONS = ("float32", "bfloat16")
MAX_SEED = 2**32 - 1        # every seed (numpy's range; sample i of seed s draws from seed s * 10^6 + i)
MAX_POINTS = 10_000_000     # data n: 2D points drawn, or images kept

@dataclass(frozen=True)
class ScheduleConfig:
    name: str = "linear"
    timesteps: int = 1000
    zero_terminal_snr: bool = False

    def __post_init__(self):
        check_choice("schedule", "name", self.name, SCHEDULES)
        _check_range("schedule", "timesteps", self.timesteps, MIN_T, MAX_T, int)
        if not isinstance(self.zero_terminal_snr, bool):
            raise ValueError(f"schedule zero_terminal_snr={self.zero_terminal_snr!r} must be true or false")

    def build(self) -> NoiseSchedule:
        return make_schedule(self.name, self.timesteps, self.zero_terminal_snr)

CUSTOM_PREFIX = "custom:"
MIN_CUSTOM_POINTS, MAX_CUSTOM_POINTS, MAX_CUSTOM_CLASSES = 10, 5000, 10

@dataclass(frozen=True)
class DataConfig:
    """What the model is trained on. 2D sets: `n` points drawn with `seed`; images: see diffusion.data. A custom 2D
    set ("custom:NAME:HASH", built by diffusion.data.custom) carries its standardised points (and optional class per
    point) here, so they travel with every run's config.json."""

    dataset: str = "moons"
    n: int | None = None                          # None: the dataset's default size
    seed: int = 0
    image_size: int | None = None                 # images only
    classes: tuple[int, ...] | None = None        # images only: keep these class ids
    class_weights: tuple[float, ...] | None = None
    points: tuple[tuple[float, float], ...] | None = None   # custom 2D sets only
    labels: tuple[int, ...] | None = None                   # custom 2D sets only: a class per point, or None

    def __post_init__(self):
        if not isinstance(self.dataset, str) or not self.dataset.strip() or self.dataset.strip() == "folder:":
            raise ValueError(f"data dataset={self.dataset!r} is empty; allowed: a dataset name or folder:PATH")
        if self.n is not None:
            _check_range("data", "n", self.n, 1, MAX_POINTS, int)
        _check_range("data", "seed", self.seed, 0, MAX_SEED, int)
        if self.image_size is not None:
            _check_range("data", "image_size", self.image_size, 1, MAX_IMAGE_SIZE, int)
        for name, kind, low in (("classes", int, 0), ("class_weights", float, 0.0)):
            values = getattr(self, name)
            if values is None:
                continue
            if not isinstance(values, tuple) or not 1 <= len(values) <= MAX_CLASSES:
                raise ValueError(f"data {name}={values!r} must be a list of 1 to {MAX_CLASSES} numbers")
            for value in values:
                _check_range("data", name, value, low, MAX_CLASSES - 1 if kind is int else 1e6, kind)
        custom = isinstance(self.dataset, str) and self.dataset.startswith(CUSTOM_PREFIX)
        if custom != (self.points is not None) or (self.labels is not None and not custom):
            raise ValueError(f"dataset {self.dataset!r}: points and labels are given for custom sets "
                             f"('{CUSTOM_PREFIX}...') only, and a custom set needs its points")
        if custom:
            object.__setattr__(self, "points", _custom_points(self.points))
            object.__setattr__(self, "labels", _custom_labels(self.labels, len(self.points)))

def _custom_points(points) -> tuple[tuple[float, float], ...]:
    """points as a tuple of (x, y) float pairs; ValueError unless MIN..MAX_CUSTOM_POINTS finite pairs."""
    try:
        count = len(points)
        if not MIN_CUSTOM_POINTS <= count <= MAX_CUSTOM_POINTS:
            raise ValueError(f"{count} points")
        pairs = tuple((float(a), float(b)) for a, b in points)
    except (TypeError, ValueError) as e:
        raise ValueError(f"custom points are invalid ({e}); allowed: {MIN_CUSTOM_POINTS} to {MAX_CUSTOM_POINTS} "
                         "pairs of numbers") from None
    if not all(math.isfinite(v) for pair in pairs for v in pair):
        raise ValueError("custom points hold NaN or inf; allowed: finite numbers")
    largest, reach = max(abs(v) for pair in pairs for v in pair), math.sqrt(2 * count) + 1e-3
    if largest > reach:     # standardised: the squares sum to under 2 count, so no coordinate passes sqrt(2 count)
        raise ValueError(f"custom points reach {largest:.3g}; allowed: standardised points (mean 0, spread 1), which "
                         f"lie within {reach:.1f} of 0 for {count} points")
    return pairs

def _custom_labels(labels, count: int) -> tuple[int, ...] | None:
    if labels is None:
        return None
    ok = len(labels) == count and all(isinstance(v, int) and 0 <= v < MAX_CUSTOM_CLASSES for v in labels)
    if not ok:
        raise ValueError(f"custom labels are invalid; allowed: one integer from 0 to {MAX_CUSTOM_CLASSES - 1} per "
                         f"point ({count})")
    return tuple(labels)

@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 100
    decay: str = "none"              # "cosine": to 10% of lr at `steps`
    ema_decay: float = 0.999
    objective: str = "eps"           # eps | x0 | v, edm (Karras 2022 preconditioning and loss), flow (flow matching)
    weighting: str = "none"
    min_snr_gamma: float = 5.0
    label_dropout: float = 0.1       # conditional models only: p(y -> null) for classifier-free guidance
    seed: int = 0
    checkpoint_every: int = 1000     # steps between checkpoints when the run has a folder
    sigma_data: float = 0.5          # edm only: the data's std (0.5 for images in [-1, 1], 1 for the 2D sets)
    P_mean: float = -1.2             # edm only: ln sigma ~ N(P_mean, P_std^2) in training
    P_std: float = 1.2
    time_sampling: str = "uniform"   # flow only: t ~ U[0, 1], or "logit_normal" (SD3, Esser et al. 2024)
    logit_mean: float = 0.0          # flow, logit_normal only: t = sigmoid(logit_mean + logit_std z)
    logit_std: float = 1.0
    precision: str = "float32"       # "bfloat16": forward and loss under autocast (weights and optimizer stay fp32)
    channels_last: bool | None = None  # U-Nets: NHWC layout; None: NHWC on CPUs only (models.memory_format)

    def __post_init__(self):
        _check_range("train", "steps", self.steps, 1, 10_000_000, int)
        _check_range("train", "batch_size", self.batch_size, 1, 65_536, int)
        _check_range("train", "lr", self.lr, 1e-8, 1.0)
        _check_range("train", "weight_decay", self.weight_decay, 0.0, 10.0)
        _check_range("train", "grad_clip", self.grad_clip, 0.0, 1e6)
        _check_range("train", "warmup_steps", self.warmup_steps, 0, 10_000_000, int)
        _check_range("train", "ema_decay", self.ema_decay, 0.0, 1.0)
        _check_range("train", "label_dropout", self.label_dropout, 0.0, 1.0)
        _check_range("train", "checkpoint_every", self.checkpoint_every, 1, 10_000_000, int)
        _check_range("train", "sigma_data", self.sigma_data, 1e-3, 1e3)
        _check_range("train", "P_std", self.P_std, 1e-3, 10.0)
        _check_range("train", "P_mean", self.P_mean, -10.0, 10.0)
        _check_range("train", "min_snr_gamma", self.min_snr_gamma, 1e-3, 1e3)
        _check_range("train", "seed", self.seed, 0, MAX_SEED, int)
        _check_range("train", "logit_mean", self.logit_mean, -5.0, 5.0)
        _check_range("train", "logit_std", self.logit_std, 1e-2, 5.0)
        for name, value, allowed in (("decay", self.decay, DECAYS), ("objective", self.objective, TRAIN_OBJECTIVES),
                                     ("weighting", self.weighting, WEIGHTINGS),
                                     ("time_sampling", self.time_sampling, TIME_SAMPLINGS),
                                     ("precision", self.precision, PRECISIONS)):
            if not (isinstance(value, str) and value in allowed):
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        if self.channels_last not in (None, True, False):
            raise ValueError(f"train channels_last={self.channels_last!r} must be true, false or null")
        self._check_flow_settings()

    def _check_flow_settings(self) -> None:
        """The flow objective's time settings apply to it alone; its loss has no SNR weighting."""
        if self.objective == "flow" and self.weighting != "none":
            raise ValueError(f"weighting {self.weighting!r} does not apply to the flow objective (its loss is "
                             "unweighted); use weighting 'none'")
        changed = [f"{name}={getattr(self, name)!r}" for name in ("time_sampling", "logit_mean", "logit_std")
                   if getattr(self, name) != getattr(TrainConfig, name)]
        if self.objective != "flow" and changed:
            raise ValueError(f"{', '.join(changed)} apply to the flow objective only, not {self.objective!r}")
        if self.time_sampling == "uniform" and changed and self.objective == "flow":
            raise ValueError(f"{', '.join(changed)}: logit_mean and logit_std shape time_sampling 'logit_normal' "
                             "only; set it or leave them at 0 and 1")

def _section(cls: type, name: str, d: Any, lists_as_tuples: bool = False) -> Any:
    """cls(**d) for a config section read from JSON; ValueError naming the section when d is not an object with
    cls's fields."""
    if not isinstance(d, dict):
        raise ValueError(f"config section {name!r} must be an object of settings, got {type(d).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"unknown settings {unknown} in config section {name!r}; allowed: {', '.join(allowed)}")
    return cls(**{k: tuple(v) if lists_as_tuples and isinstance(v, list) else v for k, v in d.items()})


def model_config_from_dict(d: Any) -> Any:
    """Rebuild a model config from its dict; its `kind` says which class."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind == "mlp":
        return _section(MLPConfig, "model", d)
    if kind == "unet":
        return _section(UNetConfig, "model", d, lists_as_tuples=True)
    raise ValueError(f"unknown model kind {kind!r}; allowed: mlp, unet")

@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    model: Any = field(default_factory=MLPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        for name, cls in (("data", DataConfig), ("schedule", ScheduleConfig), ("model", (MLPConfig, UNetConfig)),
                          ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"RunConfig {name} is a {type(getattr(self, name)).__name__}; allowed: "
                                 f"{' or '.join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))}")
        if self.schedule.zero_terminal_snr and self.train.objective == "eps":
            raise ValueError("zero terminal SNR makes eps-prediction undefined at t=T; use objective 'v' or 'x0' "
                             "(Lin et al. 2024)")
        if self.schedule.zero_terminal_snr and self.train.objective == "edm":
            raise ValueError("zero terminal SNR has alpha_bar_T = 0, i.e. sigma_T = infinity, where the EDM "
                             "denoiser's input x_t / sqrt(alpha_bar_T) is undefined; the edm objective has its own "
                             "noise levels: leave zero_terminal_snr off")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "RunConfig":
        """The config a dict read from JSON describes; ValueError naming the first bad section or value."""
        known = [f.name for f in fields(cls)]
        if not isinstance(d, dict) or set(d) != set(known):
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"a run config has the sections {', '.join(known)}; got {got}")
        return cls(data=_section(DataConfig, "data", d["data"], lists_as_tuples=True),
                   schedule=_section(ScheduleConfig, "schedule", d["schedule"]),
                   model=model_config_from_dict(d["model"]), train=_section(TrainConfig, "train", d["train"]))
