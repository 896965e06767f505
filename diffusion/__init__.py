"""Diffusion Explorer's package: noise schedules, forward process, samplers, models, training, metrics.

The stable public API is what this module exports (loaded on first use, so `import diffusion` stays light).
Where code lives, one concept per subpackage, imports pointing one way (left to right may import leftwards):
core (schedules, forward process, losses, denoisers, EDM, exact oracles) <- models, config, data <- sampling
(the sampler registry, SamplerConfig, Run) <- training (trainer, checkpoints, distributed) <- metrics (2D and
image metrics, the measurement protocol and its intervals, evaluation, classifiers) <- explore (what the pages compute) <- cli.
"""

from importlib import import_module

__version__ = "0.2.0"

_API = {
    "NoiseSchedule": "diffusion.core.schedules", "make_schedule": "diffusion.core.schedules",
    "spaced_timesteps": "diffusion.core.schedules", "GaussianMixture": "diffusion.core.oracles",
    "RunConfig": "diffusion.config", "DataConfig": "diffusion.config", "ScheduleConfig": "diffusion.config",
    "TrainConfig": "diffusion.config", "MLPConfig": "diffusion.models.model_config", "UNetConfig": "diffusion.models.model_config",
    "unet_preset": "diffusion.models.model_config", "build_model": "diffusion.models", "load_data": "diffusion.data",
    "toy_dataset": "diffusion.data.toy_datasets", "SAMPLERS": "diffusion.sampling.registry",
    "sampler_spec": "diffusion.sampling.registry", "nfe": "diffusion.sampling.registry",
    "SamplerConfig": "diffusion.sampling.sampler_config", "Run": "diffusion.sampling.run",
    "Trajectory": "diffusion.sampling.run", "Trainer": "diffusion.training.trainer",
    "load_run": "diffusion.training.checkpoints", "measure_run": "diffusion.metrics.evaluation",
    "Protocol": "diffusion.metrics.protocol", "points_protocol": "diffusion.metrics.protocol",
    "image_protocol": "diffusion.metrics.protocol", "study": "diffusion.explore.nfe_study",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'diffusion' has no attribute {name!r}")
