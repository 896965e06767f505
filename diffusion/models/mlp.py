"""A time-embedded MLP for low-dimensional data (phase 1: 2D points)."""

import torch
from torch import Tensor, nn

from diffusion.models.model_config import MLPConfig
from diffusion.models.embeddings import sinusoidal_embedding

ACTIVATION_LAYERS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class _Block(nn.Module):
    """x + Dropout(act(Linear(norm(x)))): a residual layer, so depth helps rather than hurts."""

    def __init__(self, cfg: MLPConfig):
        super().__init__()
        norm = nn.LayerNorm(cfg.width) if cfg.norm == "layer" else nn.Identity()
        self.net = nn.Sequential(norm, nn.Linear(cfg.width, cfg.width), ACTIVATION_LAYERS[cfg.activation](),
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
