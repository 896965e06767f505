"""Networks: they map (x_t, t, y) to a prediction and know nothing about noise schedules."""

import torch
from torch import nn

from diffusion.models.config import MLPConfig, UNetConfig


def build_model(config: MLPConfig | UNetConfig) -> nn.Module:
    """The network a model config describes (MLPConfig or UNetConfig)."""
    if isinstance(config, MLPConfig):
        from diffusion.models.mlp import MLP
        return MLP(config)
    if isinstance(config, UNetConfig):
        from diffusion.models.unet import UNet
        return UNet(config)
    raise ValueError(f"unknown model config {type(config).__name__}; allowed: MLPConfig, UNetConfig")


def memory_format(config, device: str | torch.device, channels_last: bool | None = None) -> torch.memory_format:
    """The layout to run a network in: channels_last when asked; by default (None) NHWC for U-Nets on a CPU, where
    oneDNN's convolutions ran 10-30% faster in it (benchmarks/bench_images.py speed), NCHW elsewhere."""
    if channels_last is None:
        channels_last = getattr(config, "kind", "") == "unet" and torch.device(device).type == "cpu"
    return torch.channels_last if channels_last else torch.contiguous_format
