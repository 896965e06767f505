"""The four kinds of time the code speaks of, one name each, and the Clip modes of x0_hat.

- Timestep: a code timestep index t in 0..T-1 of a discrete schedule (the paper's t + 1; alpha_bar[t]).
- ContinuousTimestep: the same axis read between the integers (core.schedules.alpha_bar_at), what a discrete network
  is told when a sigma- or flow-space sampler visits a noise level between two timesteps.
- Sigma: the EDM noise level, x = x0 + sigma n (Karras et al. 2022), sigma = sqrt((1 - alpha_bar) / alpha_bar).
- FlowTime: t in [0, 1] on the flow path x_t = (1 - t) x0 + t eps (Liu et al. 2022), sigma = t / (1 - t).
A sampler's space (sampling.registry.Space) says which of Timestep, Sigma and FlowTime it walks.
"""

from enum import Enum
from typing import Literal, NewType

Timestep = NewType("Timestep", int)
ContinuousTimestep = NewType("ContinuousTimestep", float)
Sigma = NewType("Sigma", float)
FlowTime = NewType("FlowTime", float)
Space = Literal["timesteps", "sigmas", "flow"]
TIME_OF_SPACE: dict[str, str] = {"timesteps": "timestep t (code index, 0..T-1)", "sigmas": "noise level sigma",
                                 "flow": "flow time t in [0, 1]"}


class Clip(str, Enum):
    """What happens to each x0_hat before the sampler uses it: "auto" (the default) is the data's own, "clamp" for
    images and "ball" for 2D; "clamp" clips images to [-1, 1]; "ball" projects a 2D x0_hat onto the ball of the
    training set's radius (core.denoisers.projected); "none" leaves the network's raw x0_hat."""

    AUTO = "auto"
    NONE = "none"
    CLAMP = "clamp"
    BALL = "ball"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of(cls, value) -> "Clip":
        """A Clip from its name or from the old tri-state (None and True: on, the data's own; False: off), so run
        folders and results written before the modes were named still load; ValueError names what is allowed."""
        if value is None or value is True:
            return cls.AUTO
        if value is False:
            return cls.NONE
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"sampler setting clip={value!r} is out of range; allowed: "
                             f"{', '.join(c.value for c in cls)} (or the old None/True/False)") from None


CLIPS: tuple[str, ...] = tuple(c.value for c in Clip)
