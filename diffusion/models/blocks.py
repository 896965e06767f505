"""U-Net building blocks: AdaGN residual block, self/cross-attention block, down/up sampling.

After Ho et al. 2020 (DDPM U-Net) and Dhariwal & Nichol 2021 (ADM: scale-shift norm, zero-init outputs).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def zero_init(module: nn.Module) -> nn.Module:
    """Zero every parameter: a residual block starts as the identity, the net outputs 0 (ADM's zero_module)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v (Vaswani et al. 2017, eq. 1), (B, heads, N, d) -> (B, heads, N, d).

    On CPU it runs in float32 even under bf16 autocast: there the bf16 kernels measured 3-7x slower than
    float32 for these short sequences (16-260 tokens), and the softmax is more accurate.
    """
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(q.dtype)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; emb enters by AdaGN, h = norm(h) * (1 + scale) + shift (ADM, sec. 3)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, affine=False)  # the scale-shift is its affine
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x (B, in_ch, H, W), emb (B, emb_dim) already through SiLU -> (B, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)      # (B, out_ch, 1, 1) each
        h = torch.addcmul(shift, self.norm2(h), 1 + scale)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W pixels; with a context, keys/values also span its tokens.

    Attending jointly to pixels and label tokens is GLIDE's cross-attention (Nichol et al. 2021, sec. 3):
    one softmax over [pixels ; tokens], so the block costs a single attention call.
    """

    def __init__(self, ch: int, head_dim: int, groups: int, context_dim: int = 0):
        super().__init__()
        self.heads = ch // head_dim
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Linear(ch, 3 * ch)
        self.context_kv = nn.Linear(context_dim, 2 * ch) if context_dim else None
        self.proj = zero_init(nn.Linear(ch, ch))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x (B, C, H, W), context (B, L, context_dim) when built with one -> (B, C, H, W)."""
        tokens = self.norm(x).flatten(2).transpose(1, 2)                      # (B, HW, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        if self.context_kv is not None:
            ck, cv = self.context_kv(context).chunk(2, dim=-1)   # (B, L, C) each
            k, v = torch.cat([k, ck], dim=1), torch.cat([v, cv], dim=1)
        q, k, v = (a.unflatten(-1, (self.heads, -1)).transpose(1, 2) for a in (q, k, v))  # (B, heads, N, d)
        out = attention(q, k, v).transpose(1, 2).flatten(2)                              # (B, HW, C)
        return x + self.proj(out).transpose(1, 2).unflatten(2, x.shape[2:])


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling, then a 3x3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
