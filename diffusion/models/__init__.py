"""Networks: they map (x_t, t, y) to a prediction and know nothing about noise schedules."""

import os
from functools import lru_cache

import torch
from torch import nn

from diffusion.models.model_config import MLPConfig, UNetConfig

DEFAULT_MAX_PARAMETERS = 100_000_000   # 400 MB of float32 weights; training holds ~5 copies (weights, grads, Adam, EMA)


def max_parameters() -> int:
    """The largest network this process builds: $DIFFUSION_MAX_PARAMETERS, else DEFAULT_MAX_PARAMETERS."""
    value = os.environ.get("DIFFUSION_MAX_PARAMETERS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PARAMETERS


@lru_cache(maxsize=256)
def parameter_count(config: MLPConfig | UNetConfig) -> int:
    """Parameters of the network a model config describes, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = _build(config)
    return sum(p.numel() for p in net.parameters())


def check_size(config: MLPConfig | UNetConfig, limit: int | None = None) -> int:
    """The config's parameter count; ValueError naming it when above limit (default max_parameters())."""
    limit = limit or max_parameters()
    count = parameter_count(config)
    if count > limit:
        raise ValueError(f"this model has {count:,} parameters; allowed: at most {limit:,} (set by "
                         f"DIFFUSION_MAX_PARAMETERS on this machine)")
    return count


def build_model(config: MLPConfig | UNetConfig) -> nn.Module:
    """The network a model config describes (MLPConfig or UNetConfig); its size is checked on the meta device
    first, so an oversized config is refused before any memory is allocated."""
    check_size(config)
    return _build(config)


def _build(config: MLPConfig | UNetConfig) -> nn.Module:
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
