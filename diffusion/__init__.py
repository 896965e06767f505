"""Diffusion Explorer's package: noise schedules, forward process, samplers, models, training, metrics."""

__version__ = "0.1.0"
