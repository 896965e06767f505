"""What a training step of a config costs on this machine, timed on a trainer fed zeros of the model's input
shape (no dataset needed): the image pages show it, and the app's budget refuses runs that would not fit."""

import statistics
import time

import torch

from diffusion.config import RunConfig
from diffusion.training.trainer import Trainer


def dummy_trainer(config: RunConfig, device: str = "cpu") -> Trainer:
    """A trainer of config on a batch of zeros shaped like the model's input (labels 0 for conditional models)."""
    m = config.model
    shape = (m.dim,) if m.kind == "mlp" else (m.channels, m.image_size, m.image_size)
    x = torch.zeros(config.train.batch_size, *shape)
    y = torch.zeros(len(x), dtype=torch.long) if getattr(m, "num_classes", 0) else None
    return Trainer(config, x, y, device=device)


def seconds_per_step(trainer: Trainer, steps: int = 3) -> float:
    """Median wall time of `steps` training steps (after the caller's warm-up), waiting for the GPU."""
    sync = torch.cuda.synchronize if torch.device(trainer.device).type == "cuda" else (lambda: None)
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        trainer.train_step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

