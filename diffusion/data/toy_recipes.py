"""How a 2D set is trained by default: a Recipe2D is part of each preset's entry (data.toy_datasets.TOY_DATASETS),
and training.defaults.recipe_2d reads it. Every recipe predicts v with a cosine decay (training.defaults says why)."""

from dataclasses import dataclass

from diffusion.config import TrainConfig
from diffusion.models.model_config import MLPConfig


@dataclass(frozen=True)
class Recipe2D:
    """How a 2D set is trained by default (benchmarks/bench_2d.py measures W1 / floor after `steps`)."""

    steps: int
    batch_size: int = 1024
    lr: float = 3e-3
    warmup_steps: int = 100
    decay: str = "cosine"
    ema_decay: float = 0.999
    objective: str = "v"
    width: int = 64
    depth: int = 3
    input_scale: float = 5.0

    def model(self, num_classes: int = 0) -> MLPConfig:
        return MLPConfig(width=self.width, depth=self.depth, input_scale=self.input_scale, num_classes=num_classes)

    def train(self, **overrides) -> TrainConfig:
        """The recipe's TrainConfig (sigma_data 1: the 2D sets have unit scale), fields overridden by keyword."""
        fields = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                      decay=self.decay, ema_decay=self.ema_decay, objective=self.objective, sigma_data=1.0)
        return TrainConfig(**{**fields, **overrides})


# Searched by step count on the loaded 2-core machine (W1 / floor with DDPM-1000, 6 protocols of n = 2,000; README).
# Width 64 with batches of 1,024 beat width 128 with 256 at equal cost (the loss is noisy: a random t and eps per
# example); on 1 idle thread this step runs at about 450 steps/s, so 3,600 steps take about 8 s.
EASY = Recipe2D(steps=2400)                           # one Gaussian, moons, the 5x5 grid: 0.90-0.99 at 2,400
BASE_RECIPE = Recipe2D(steps=3600)                    # ring, Swiss roll, circles, checkerboard: 1.03-1.09
THIN = Recipe2D(steps=3600, lr=5e-3, input_scale=10.0)   # spirals: thin arms want finer input features (1.25 -> 1.09)
CUSTOM_RECIPE = THIN                                  # drawn strokes, words and silhouettes are thin like the spirals
