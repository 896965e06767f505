"""What one visitor may ask of this server. A job (a training, a sweep) gets at most `job_seconds` of wall time; a
visitor's model at most `max_parameters` parameters, a batch at most `max_batch` examples and a 2D training set at
most `max_points` points. Together they cap steps x batch x model size: a training whose expected time (its steps
times a measured step) exceeds the budget is refused before it starts, and any job is stopped at the budget.
Each limit has a default from the machine (a GPU gets more) and an environment variable (README, SECURITY.md).
"""

import os
from dataclasses import dataclass

from diffusion.config import RunConfig
from diffusion.data import TOY_TRAIN_SIZE, is_toy
from diffusion.models import parameter_count

DEFAULTS = {"cpu": {"job_seconds": 600, "max_parameters": 5_000_000, "max_batch": 2048, "max_points": TOY_TRAIN_SIZE},
            "gpu": {"job_seconds": 3600, "max_parameters": 50_000_000, "max_batch": 4096, "max_points": TOY_TRAIN_SIZE}}
VARIABLES = {"job_seconds": "DIFFUSION_JOB_SECONDS", "max_parameters": "DIFFUSION_VISITOR_PARAMETERS",
             "max_batch": "DIFFUSION_VISITOR_BATCH", "max_points": "DIFFUSION_VISITOR_POINTS"}


@dataclass(frozen=True)
class Budget:
    job_seconds: int
    max_parameters: int
    max_batch: int
    max_points: int


def budget() -> Budget:
    """This server's budget per visitor: the machine's defaults, each overridden by its environment variable."""
    import torch
    values = dict(DEFAULTS["gpu" if torch.cuda.is_available() else "cpu"])
    for name, variable in VARIABLES.items():
        text = os.environ.get(variable, "")
        if text.isdigit() and int(text) > 0:
            values[name] = int(text)
    return Budget(**values)


def check_config(config: RunConfig) -> int:
    """The config's parameter count; ValueError naming the first value above this server's budget. Run before any
    network is built (parameters are counted on PyTorch's meta device)."""
    b = budget()
    if config.train.batch_size > b.max_batch:
        raise ValueError(f"batch size {config.train.batch_size:,} is above this server's limit of {b.max_batch:,}")
    if is_toy(config.data.dataset) and (config.data.n or TOY_TRAIN_SIZE) > b.max_points:
        raise ValueError(f"a 2D training set of {config.data.n:,} points is above this server's limit of "
                         f"{b.max_points:,}")
    count = parameter_count(config.model)
    if count > b.max_parameters:
        raise ValueError(f"a model of {count:,} parameters is above this server's limit of {b.max_parameters:,}")
    return count


def check_time(expected: float, what: str, steps: int | None = None, fewest: int = 1) -> None:
    """ValueError when `what` is expected to take longer than a job may; with its steps, how many fit: the steps at
    the promise's own rate (its measurements and the server's correction included), as the job will run them, or,
    when that is under the `fewest` the page offers, that none of its trainings fits now."""
    limit = budget().job_seconds
    if expected > limit:
        fit = int(limit * steps / expected) if steps else 0
        advice = ("" if not steps else f": at most {fit:,} steps with these settings" if fit >= fewest else
                  f", and not even the fewest steps offered ({fewest:,}) fit with these settings now (at most "
                  f"{fit:,}): the server is busy, try again later")
        raise ValueError(f"{what} would take about {expected:,.0f} s; a job may take at most {limit:,} s on this "
                         f"server{advice}")
