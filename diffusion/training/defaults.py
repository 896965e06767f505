"""Training defaults: per model kind (tuned for 2 CPU cores), and per 2D set the recipe that reaches W1 <= 1.25x its
floor in about 10 s of training on 2 idle CPU cores; the CLI and the pages start from them.

Every 2D recipe predicts v (Salimans & Ho 2022): x0_hat = sqrt(ab) x_t - sqrt(1 - ab) v_hat, so the network's error
reaches x0_hat multiplied by sqrt(1 - ab) <= 1, where predicting eps multiplies it by sqrt((1 - ab) / ab), about 160
at t = T on the linear schedule (see README, "No sample flies off"). The learning rate warms up linearly, then
decays along a cosine to 10% at the last step; the EMA of weights uses the trainer's warm-up, decay
min(ema_decay, (1 + n) / (10 + n)) after n steps, so after a short run it averages about the last n / 9 steps.
"""

from diffusion.config import CUSTOM_PREFIX, DataConfig, RunConfig, ScheduleConfig
from diffusion.data.toy_datasets import TOY_DATASETS
from diffusion.data.toy_recipes import CUSTOM_RECIPE, Recipe2D

MODEL_DEFAULTS = {
    "mlp": {"batch_size": 256, "lr": 1e-3, "ema_decay": 0.999, "steps": 4000, "threads": 1},
    "unet": {"batch_size": 64, "lr": 5e-4, "ema_decay": 0.999, "steps": 20_000, "threads": 0},
}
UNBOUNDED_STEPS = 10_000_000    # the step target of a run bounded by time only


RECIPES_2D: dict[str, Recipe2D] = {name: toy.recipe for name, toy in TOY_DATASETS.items()}   # each preset's entry


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

