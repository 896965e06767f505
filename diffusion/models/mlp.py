"""A time-embedded MLP for low-dimensional data (phase 1: 2D points)."""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .embeddings import sinusoidal_embedding

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = ("none", "layer")


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


class _Block(nn.Module):
    """x + Dropout(act(Linear(norm(x)))): a residual layer, so depth helps rather than hurts."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        norm = nn.LayerNorm(cfg.width) if cfg.norm == "layer" else nn.Identity()
        self.net = nn.Sequential(norm, nn.Linear(cfg.width, cfg.width), ACTIVATIONS[cfg.activation](),
                                 nn.Dropout(cfg.dropout))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.net(h)


class MLP(nn.Module):
    """(x_t (B, dim), t (B,), y (B,) | None) -> (B, dim): [emb(x) | emb(t)] -> Linear -> residual blocks -> Linear."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        x_features = cfg.dim * cfg.embed_dim if cfg.input_scale > 0 else cfg.dim
        self.input = nn.Linear(x_features + cfg.embed_dim, cfg.width)
        self.label = nn.Embedding(cfg.num_classes + 1, cfg.width) if cfg.num_classes else None
        self.blocks = nn.Sequential(*[_Block(cfg) for _ in range(cfg.depth)])
        self.output = nn.Linear(cfg.width, cfg.dim)

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        cfg = self.config
        if cfg.input_scale > 0:
            x = sinusoidal_embedding((x * cfg.input_scale).reshape(-1), cfg.embed_dim).reshape(x.shape[0], -1)
        h = self.input(torch.cat([x, sinusoidal_embedding(t, cfg.embed_dim)], dim=1))
        if self.label is not None:
            y = torch.full_like(t, self.null_label, dtype=torch.long) if y is None else y
            h = h + self.label(y)
        return self.output(self.blocks(h))
