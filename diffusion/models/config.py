"""Model configurations: frozen dataclasses of primitives, validated on construction, with the U-Net presets.

Pure data (no torch): run configs, checkpoints and pages read them without building a network.
"""

from dataclasses import dataclass
from typing import Any, Literal

ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "silu")
NORMS: tuple[str, ...] = ("none", "layer")


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
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: {', '.join(NORMS)}")
        for name, low, high in (("dim", 1, 4096), ("width", 4, 4096), ("depth", 1, 32), ("embed_dim", 2, 1024)):
            value = getattr(self, name)
            if not (isinstance(value, int) and low <= value <= high):
                raise ValueError(f"MLP {name}={value!r} is out of range; allowed: integers from {low} to {high}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout!r} is out of range; allowed: 0 <= dropout < 1")
        if self.input_scale < 0 or self.num_classes < 0:
            raise ValueError(f"input_scale={self.input_scale!r} and num_classes={self.num_classes!r} must be >= 0")


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
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_levels", tuple(self.attention_levels))
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


def _check_scalars(c: UNetConfig) -> None:
    """ValueError naming the first out-of-range scalar field."""
    positive = {"image_size": c.image_size, "channels": c.channels, "base_width": c.base_width,
                "blocks_per_level": c.blocks_per_level, "head_dim": c.head_dim, "groups": c.groups,
                "label_tokens": c.label_tokens}
    for name, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if not 0.0 <= c.dropout < 1.0:
        raise ValueError(f"dropout={c.dropout!r} must be in [0, 1)")
    if not isinstance(c.num_classes, int) or c.num_classes < 0:
        raise ValueError(f"num_classes={c.num_classes!r} must be an integer >= 0 (0 = unconditional)")
    if c.conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning={c.conditioning!r} must be one of {CONDITIONINGS}")
    if c.conditioning == "cross" and c.num_classes == 0:
        raise ValueError("conditioning='cross' needs num_classes > 0 (labels to attend to)")
    if c.kind != "unet":
        raise ValueError(f"kind={c.kind!r} must be 'unet'")


def _check_levels(c: UNetConfig) -> None:
    """ValueError when the levels do not fit the image size, the GroupNorm groups or the head size."""
    if not c.channel_mult or any(not isinstance(m, int) or m < 1 for m in c.channel_mult):
        raise ValueError(f"channel_mult={c.channel_mult!r} must be a non-empty tuple of positive integers")
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
