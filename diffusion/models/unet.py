"""Image U-Net net(x_t, t, y) -> eps | x0 | v (the caller decides); its config and presets are in models.config.

Architecture after Ho et al. 2020 (DDPM) with Dhariwal & Nichol 2021 (ADM) refinements: AdaGN time
(+ label) injection in every residual block, zero-initialised residual outputs, attention at chosen levels.
Level i works at resolution image_size / 2**i; attention_levels are level indices (0 = full resolution),
so a preset keeps its meaning at 16, 28 or 32 pixels. The middle block always has attention.
t goes through a sinusoidal embedding of max period 10,000, made for DDPM's 0..T-1 scale: continuous-time
callers should scale their noise level to it (e.g. 1000 * t for t in [0, 1], or EDM's c_noise times 250).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models.blocks import AttentionBlock, Downsample, ResBlock, Upsample, zero_init
from diffusion.models.model_config import UNetConfig
from diffusion.models.embeddings import TimeEmbedding


class Stage(nn.Module):
    """A residual block, then attention if the level has it: the unit of the encoder and the decoder."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, c: UNetConfig, attend: bool):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, c.groups, c.dropout)
        context_dim = emb_dim if c.conditioning == "cross" else 0
        self.attn = AttentionBlock(out_ch, c.head_dim, c.groups, context_dim) if attend else None

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None) -> Tensor:
        h = self.res(x, emb)
        return self.attn(h, context) if self.attn is not None else h


class UNet(nn.Module):
    """U-Net with skip connections encoder -> decoder: (B, C, H, W), t (B,), y (B,) | None -> (B, C, H, W)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        c = self.config = config
        emb_dim = 4 * c.base_width                                    # DDPM: time embedding 4x base width
        self.time_embed = TimeEmbedding(c.base_width, emb_dim)
        tokens = c.label_tokens if c.conditioning == "cross" else 1
        self.label_embed = nn.Embedding(c.num_classes + 1, tokens * emb_dim) if c.num_classes else None
        self.stem = nn.Conv2d(c.channels, c.widths[0], 3, padding=1)
        skip_widths = self._build_encoder(emb_dim)
        ch = c.widths[-1]
        self.middle = nn.ModuleList([Stage(ch, ch, emb_dim, c, True), Stage(ch, ch, emb_dim, c, False)])
        self._build_decoder(emb_dim, skip_widths)
        self.out_norm = nn.GroupNorm(c.groups, c.widths[0])
        self.out_conv = zero_init(nn.Conv2d(c.widths[0], c.channels, 3, padding=1))

    def _build_encoder(self, emb_dim: int) -> list[int]:
        """Encoder stages and downsamplers; returns the widths of the skips they leave, in order."""
        c = self.config
        skip_widths, ch = [c.widths[0]], c.widths[0]
        self.encoder, self.downsamples = nn.ModuleList(), nn.ModuleList()
        for i, width in enumerate(c.widths):
            stages = []
            for _ in range(c.blocks_per_level):
                stages.append(Stage(ch, width, emb_dim, c, i in c.attention_levels))
                ch = width
                skip_widths.append(width)
            self.encoder.append(nn.ModuleList(stages))
            if i < c.levels - 1:
                self.downsamples.append(Downsample(width))
                skip_widths.append(width)
        return skip_widths

    def _build_decoder(self, emb_dim: int, skip_widths: list[int]) -> None:
        """Decoder stages, each taking one skip (concatenated), and upsamplers; consumes skip_widths."""
        c = self.config
        ch = c.widths[-1]
        self.decoder, self.upsamples = nn.ModuleList(), nn.ModuleList()
        for i, width in reversed(list(enumerate(c.widths))):
            stages = []
            for _ in range(c.blocks_per_level + 1):
                stages.append(Stage(ch + skip_widths.pop(), width, emb_dim, c, i in c.attention_levels))
                ch = width
            self.decoder.append(nn.ModuleList(stages))
            if i > 0:
                self.upsamples.append(Upsample(width))

    @property
    def null_label(self) -> int | None:
        """Label index of the unconditional (null) class for classifier-free guidance; None if unconditional."""
        return self.config.null_label

    def _conditioning(self, t: Tensor, y: Tensor | None, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(SiLU of the block embedding (B, E), label tokens (B, L, E) or None)."""
        emb = self.time_embed(t)                                      # (B, E)
        if self.label_embed is None:
            if y is not None:
                raise ValueError("this U-Net is unconditional (num_classes=0) but got labels y; pass y=None")
            return F.silu(emb), None
        if y is None:
            y = torch.full((x.shape[0],), self.config.num_classes, dtype=torch.long, device=x.device)
        label = self.label_embed(y)                                   # (B, L * E)
        if self.config.conditioning == "add":
            return F.silu(emb + label), None
        return F.silu(emb), label.unflatten(1, (self.config.label_tokens, -1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """x (B, C, H, W), t (B,) timesteps (float or long), y (B,) long labels or None -> (B, C, H, W)."""
        emb, context = self._conditioning(t, y, x)
        h = self.stem(x)
        skips = [h]
        for i, stages in enumerate(self.encoder):
            for stage in stages:
                h = stage(h, emb, context)
                skips.append(h)
            if i < len(self.downsamples):
                h = self.downsamples[i](h)
                skips.append(h)
        for stage in self.middle:
            h = stage(h, emb, context)
        for i, stages in enumerate(self.decoder):
            for stage in stages:
                h = stage(torch.cat([h, skips.pop()], dim=1), emb, context)
            if i < len(self.upsamples):
                h = self.upsamples[i](h)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return out.to(x.dtype)
