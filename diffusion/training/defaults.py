"""Training defaults: per model kind (tuned for 2 CPU cores), and per 2D set the recipe that reaches W1 <= 1.25x its
floor in about 10 s of training on 2 idle CPU cores; the CLI and the pages start from them.

Every 2D recipe predicts v (Salimans & Ho 2022): x0_hat = sqrt(ab) x_t - sqrt(1 - ab) v_hat, so the network's error
reaches x0_hat multiplied by sqrt(1 - ab) <= 1, where predicting eps multiplies it by sqrt((1 - ab) / ab), about 160
at t = T on the linear schedule (see README, "No sample flies off"). The learning rate warms up linearly, then
decays along a cosine to 10% at the last step; the EMA of weights uses the trainer's warm-up, decay
min(ema_decay, (1 + n) / (10 + n)) after n steps, so after a short run it averages about the last n / 9 steps.
"""

from dataclasses import dataclass

from diffusion.config import CUSTOM_PREFIX, DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.models.model_config import MLPConfig

MODEL_DEFAULTS = {
    "mlp": {"batch_size": 256, "lr": 1e-3, "ema_decay": 0.999, "steps": 4000, "threads": 1},
    "unet": {"batch_size": 64, "lr": 5e-4, "ema_decay": 0.999, "steps": 20_000, "threads": 0},
}
UNBOUNDED_STEPS = 10_000_000    # the step target of a run bounded by time only


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
RECIPES_2D: dict[str, Recipe2D] = {
    "gaussian": EASY,
    "8gaussians": BASE_RECIPE,
    "25gaussians": EASY,
    "moons": EASY,
    "swissroll": BASE_RECIPE,
    "circles": BASE_RECIPE,
    "spirals": THIN,
    "checkerboard": BASE_RECIPE,
}
CUSTOM_RECIPE = THIN                                  # drawn strokes, words and silhouettes are thin like the spirals


def recipe_2d(dataset: str) -> Recipe2D:
    """The recipe of a preset 2D set; custom sets get CUSTOM_RECIPE."""
    if dataset in RECIPES_2D:
        return RECIPES_2D[dataset]
    if dataset.startswith(CUSTOM_PREFIX):
        return CUSTOM_RECIPE
    raise ValueError(f"no 2D recipe for dataset {dataset!r}; allowed: {', '.join(RECIPES_2D)} or a custom set")


def run_config_2d(data: DataConfig | str, num_classes: int = 0, schedule: ScheduleConfig = ScheduleConfig(),
                  **train_overrides) -> RunConfig:
    """The default RunConfig of a 2D set (its recipe), class-conditional when num_classes > 0; TrainConfig fields
    (steps, lr, seed...) can be overridden by keyword."""
    data = DataConfig(data) if isinstance(data, str) else data
    recipe = recipe_2d(data.dataset)
    return RunConfig(data, schedule, recipe.model(num_classes), recipe.train(**train_overrides))

