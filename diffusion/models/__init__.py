"""Networks: they map (x_t, t, y) to a prediction and know nothing about noise schedules."""

from torch import nn

from .mlp import MLP, MLPConfig


def build_model(config) -> nn.Module:
    """The network a model config describes (MLPConfig or UNetConfig)."""
    if isinstance(config, MLPConfig):
        return MLP(config)
    from .unet import UNet, UNetConfig
    if isinstance(config, UNetConfig):
        return UNet(config)
    raise ValueError(f"unknown model config {type(config).__name__}; allowed: MLPConfig, UNetConfig")
