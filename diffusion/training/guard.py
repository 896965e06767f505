"""Never keep garbage: the tests that stop a diverging run before it can poison a checkpoint.

Each step's loss is compared with the run's loss level, an EMA whose updates are clipped at LEVEL_CLIP times the
level, so that a divergence cannot drag the level along (it rises by 2% a step at most). A step whose loss or
gradient is not finite, or whose loss exceeds EXPLOSION_FACTOR times the level, is not applied.

A step's loss is computed on the weights *before* its update, so when it explodes, the weights that produced it
are already bad. Hence `health`, run before every save: the weights must be finite and their loss on a fixed probe
batch (drawn with its own generator, so the run's RNG and its exact resumption are untouched) within the same
bound. A checkpoint that fails is not written: the run folder keeps its last good one.
"""

import math
from typing import Protocol

import torch

EXPLOSION_FACTOR = 10.0   # a loss this many times the run's loss level means training has diverged
LEVEL_CLIP = 2.0          # each update of the level counts a loss as at most this many times the level
LEVEL_DECAY = 0.98
CHECK_AFTER = 1           # steps before the explosion test starts (the level starts at the first loss)
PROBE_EXAMPLES = 64       # the probe loss averages batches until it has seen at least this many examples


class Guarded(Protocol):
    model: torch.nn.Module
    ema: torch.nn.Module
    loss_avg: float

    def probe_loss(self, examples: int) -> float: ...


def next_level(level: float, loss: float) -> float:
    """The loss level after a step with this loss (the first loss starts it)."""
    if math.isnan(level):
        return loss
    return LEVEL_DECAY * level + (1 - LEVEL_DECAY) * min(loss, LEVEL_CLIP * level)


def step_verdict(step: int, loss: float, grad_norm: float, level: float) -> str:
    """Why step `step + 1` must not be applied ("" if it may)."""
    if not math.isfinite(loss) or not math.isfinite(grad_norm):
        return f"loss={loss:.4g}, gradient norm={grad_norm:.4g} at step {step + 1}"
    if step >= CHECK_AFTER and loss > EXPLOSION_FACTOR * level:
        return (f"loss {loss:.4g} at step {step + 1} exploded (above {EXPLOSION_FACTOR:g}x the run's loss level "
                f"{level:.4g})")
    return ""


def health(trainer: Guarded) -> str:
    """Why the trainer's current weights must not be saved ("" when they may)."""
    for name, module in (("network", trainer.model), ("EMA", trainer.ema)):
        bad = next((n for n, p in module.named_parameters() if not bool(torch.isfinite(p).all())), None)
        if bad is not None:
            return f"the {name}'s weights are not finite ({bad})"
    loss = trainer.probe_loss(PROBE_EXAMPLES)
    level = trainer.loss_avg
    if not math.isfinite(loss) or (math.isfinite(level) and loss > EXPLOSION_FACTOR * level):
        return f"their loss on a fixed probe batch is {loss:.4g}, above {EXPLOSION_FACTOR:g}x the run's loss level {level:.4g}"
    return ""
