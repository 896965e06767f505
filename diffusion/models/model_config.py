"""Model configurations: frozen dataclasses of primitives, validated on construction, with the U-Net presets.

Pure data (no torch): run configs, checkpoints and pages read them without building a network.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "silu")
NORMS: tuple[str, ...] = ("none", "layer")
# Documented limits (README, SECURITY.md): a config is refused before any network is built, so that a few bytes of
# JSON cannot ask for gigabytes. diffusion.models.check_size adds a bound on the parameter count.
MAX_CLASSES = 1000         # labels of a conditional model (ImageNet has 1,000)
MAX_IMAGE_SIZE = 64        # pixels a side, for the data and the U-Net
MAX_CHANNELS = 4
MAX_WIDTH = 4096           # MLP width, U-Net width of any level
MAX_LEVELS = 6


def check_range(owner: str, name: str, value: Any, low: float, high: float, kind: type = float) -> None:
    """ValueError naming owner.name unless value is a finite number (an int if kind is int) in [low, high]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
    if not (ok and math.isfinite(value) and low <= value <= high):
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{owner} {name}={value!r} is out of range; allowed: {what} from {low:g} to {high:g}")


def check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not (isinstance(value, str) and value in allowed):
        raise ValueError(f"{owner} {name}={value!r} is unknown; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class MLPConfig:
    """Hyperparameters of `MLP`; input_scale > 0 embeds each coordinate sinusoidally (tiny-diffusion: a
    2-input MLP struggles to represent sharp 2D structure, Fourier features of x make it easy)."""

    kind: Literal["mlp"] = "mlp"
    dim: int = 2
    width: int = 128
    depth: int = 3
    activation: str = "gelu"
    norm: str = "none"
    dropout: float = 0.0
    embed_dim: int = 32        # sinusoidal features for t, and per coordinate of x when input_scale > 0
    input_scale: float = 5.0   # 0 = feed raw coordinates; 25 (tiny-diffusion) gave outliers on x_T
    num_classes: int = 0       # > 0: label embedding added to the input (null label = num_classes)

    def __post_init__(self):
        if self.kind != "mlp":
            raise ValueError(f"MLP kind={self.kind!r} must be 'mlp'")
        check_choice("MLP", "activation", self.activation, ACTIVATIONS)
        check_choice("MLP", "norm", self.norm, NORMS)
        for name, low, high in (("dim", 1, MAX_WIDTH), ("width", 4, MAX_WIDTH), ("depth", 1, 32),
                                ("embed_dim", 2, 1024), ("num_classes", 0, MAX_CLASSES)):
            check_range("MLP", name, getattr(self, name), low, high, int)
        check_range("MLP", "dropout", self.dropout, 0.0, 0.99)
        check_range("MLP", "input_scale", self.input_scale, 0.0, 1000.0)


Conditioning = Literal["add", "cross"]
CONDITIONINGS: tuple[str, ...] = ("add", "cross")


@dataclass(frozen=True)
class UNetConfig:
    """Every hyperparameter of a UNet; JSON round trip: UNetConfig(**json.loads(json.dumps(asdict(c))))."""

    image_size: int = 16
    channels: int = 1
    base_width: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 3)    # width of level i = base_width * channel_mult[i]
    blocks_per_level: int = 1                    # residual blocks per encoder level (decoder: one more)
    attention_levels: tuple[int, ...] = (2,)     # level indices, 0 = full resolution
    head_dim: int = 32                           # heads = width // head_dim
    dropout: float = 0.0
    groups: int = 8                              # GroupNorm groups; must divide every width
    num_classes: int = 0                         # 0 = unconditional; label num_classes is the null label
    conditioning: Conditioning = "add"           # "add": label emb + time emb; "cross": attend to label tokens
    label_tokens: int = 4                        # tokens per label for "cross"
    kind: str = "unet"

    def __post_init__(self) -> None:
        for name in ("channel_mult", "attention_levels"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) > MAX_LEVELS:
                raise ValueError(f"U-Net {name}={value!r} must be a list of at most {MAX_LEVELS} integers")
            object.__setattr__(self, name, tuple(value))
        _check_scalars(self)
        _check_levels(self)

    @property
    def levels(self) -> int:
        return len(self.channel_mult)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.base_width * m for m in self.channel_mult)

    @property
    def null_label(self) -> int | None:
        """The label meaning "no label" for classifier-free guidance (Ho & Salimans 2022); None if unconditional."""
        return self.num_classes if self.num_classes > 0 else None


_UNET_RANGES = {"image_size": MAX_IMAGE_SIZE, "channels": MAX_CHANNELS, "base_width": MAX_WIDTH,
                "blocks_per_level": 8, "head_dim": MAX_WIDTH, "groups": MAX_WIDTH, "label_tokens": 64}


def _check_scalars(c: UNetConfig) -> None:
    """ValueError naming the first out-of-range scalar field."""
    for name, high in _UNET_RANGES.items():
        check_range("U-Net", name, getattr(c, name), 1, high, int)
    check_range("U-Net", "dropout", c.dropout, 0.0, 0.99)
    check_range("U-Net", "num_classes", c.num_classes, 0, MAX_CLASSES, int)
    if c.conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning={c.conditioning!r} must be one of {CONDITIONINGS}")
    if c.conditioning == "cross" and c.num_classes == 0:
        raise ValueError("conditioning='cross' needs num_classes > 0 (labels to attend to)")
    if c.kind != "unet":
        raise ValueError(f"kind={c.kind!r} must be 'unet'")


def _check_levels(c: UNetConfig) -> None:
    """ValueError when the levels do not fit the image size, the GroupNorm groups or the head size."""
    if not c.channel_mult or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in c.channel_mult):
        raise ValueError(f"channel_mult={c.channel_mult!r} must be a non-empty tuple of positive integers")
    if max(c.widths) > MAX_WIDTH:
        raise ValueError(f"U-Net widths {c.widths} (base_width x channel_mult) exceed {MAX_WIDTH}")
    factor = 2 ** (c.levels - 1)
    if c.image_size % factor:
        raise ValueError(f"image_size {c.image_size} is not divisible by 2**{c.levels - 1} = {factor} "
                         f"needed by {c.levels} levels (channel_mult={c.channel_mult}); "
                         f"use fewer levels or a multiple of {factor}")
    bad = [i for i in c.attention_levels if not (isinstance(i, int) and 0 <= i < c.levels)]
    if bad:
        raise ValueError(f"attention_levels={c.attention_levels} has {bad}: level indices must be in "
                         f"0..{c.levels - 1} (0 = full resolution)")
    for i, width in enumerate(c.widths):
        if width % c.groups:
            raise ValueError(f"width {width} of level {i} is not divisible by groups={c.groups}")
        attends = i in c.attention_levels or i == c.levels - 1  # the middle block attends at the last level
        if attends and width % c.head_dim:
            raise ValueError(f"width {width} of attention level {i} is not divisible by head_dim={c.head_dim}")


UNET_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(image_size=16, channels=1, base_width=16, channel_mult=(1, 2), blocks_per_level=1,
                 attention_levels=(), head_dim=16, groups=8),
    # One block per level and width at the coarse levels: conv cost grows with resolution, parameters with
    # width, so this buys parameters cheaply (small-16 trains ~1.3x faster than a same-size diffusers net).
    "small-16": dict(image_size=16, channels=1, base_width=32, channel_mult=(1, 2, 3), blocks_per_level=1,
                     attention_levels=(2,), head_dim=32, groups=8),
    "small-32": dict(image_size=32, channels=3, base_width=32, channel_mult=(1, 2, 3, 3), blocks_per_level=1,
                     attention_levels=(2,), head_dim=32, groups=8),
}


def unet_preset(name: str, **overrides: Any) -> UNetConfig:
    """UNetConfig of a named preset, with fields overridden (e.g. num_classes=10, image_size=28)."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset {name!r}; choose one of {sorted(UNET_PRESETS)}")
    return UNetConfig(**{**UNET_PRESETS[name], **overrides})
