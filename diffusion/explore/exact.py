"""The exact model of a Gaussian-mixture 2D set as a Run: its "network" returns the exact E[x0 | x_t, y], so every
registered sampler, classifier-free guidance, trajectories and fields run on the analytic answer beside the learned
model (gaussian, 8gaussians, 25gaussians and custom sets, whose law is a kernel mixture)."""

import torch
from torch import Tensor, nn

from diffusion.config import DataConfig, RunConfig, ScheduleConfig, TrainConfig
from diffusion.core.oracles import GaussianMixture
from diffusion.core.schedules import alpha_bar_at
from diffusion.data import toy_for
from diffusion.models.model_config import MLPConfig
from diffusion.sampling.run import Run


class MixtureNet(nn.Module):
    """The exact x0-prediction network of a (labelled) mixture: (x_t (B, D), t (B,), y (B,) | None) -> E[x0 | x_t, y]
    (B, D), with y = null_label or None meaning unconditional; class y is the sub-mixture of components labelled y.
    t is a code timestep, integer or fractional (schedules.alpha_bar_at): the exact answer at any continuous t."""

    def __init__(self, mixture: GaussianMixture, alpha_bar: Tensor, component_labels: Tensor | None = None):
        super().__init__()
        self.mixture, self.alpha_bar = mixture, torch.as_tensor(alpha_bar, dtype=torch.float64)
        self.component_labels = component_labels
        self.num_classes = 0 if component_labels is None else int(component_labels.max()) + 1
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)   # gives the Run a device

    @property
    def null_label(self) -> int:
        return self.num_classes

    @torch.no_grad()
    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        keep = None
        if y is not None and self.component_labels is not None:
            labels = self.component_labels.to(x_t.device)
            keep = (labels[None, :] == y.long()[:, None]) | (y == self.null_label)[:, None]     # (B, K)
        return self.mixture.posterior_mean(x_t, alpha_bar_at(self.alpha_bar, t), keep).to(x_t.dtype)


def exact_run(data: DataConfig | str, schedule: ScheduleConfig = ScheduleConfig()) -> Run | None:
    """A Run sampling the exact law of a mixture set (None when the set is not a Gaussian mixture); labelled sets are
    class-conditional, so SamplerConfig(guidance=w) gives the exact guided sampler. A custom set is given by its
    DataConfig (which carries its points)."""
    data = DataConfig(data) if isinstance(data, str) else data
    toy = toy_for(data)
    if toy.mixture is None:
        return None
    config = RunConfig(data, schedule, MLPConfig(num_classes=toy.num_classes), TrainConfig(objective="x0"))
    sch = schedule.build()
    return Run(config, sch, MixtureNet(toy.mixture, sch.alpha_bar, toy.component_labels).eval(), 0, [],
               f"the exact law of {toy.name}")


def gaussian_run(stds: tuple[float, float], schedule: ScheduleConfig = ScheduleConfig()) -> Run:
    """The exact model of N(0, diag(stds)^2) in 2D, a Run: every deterministic sampler is then a linear map of x_T,
    so its output law is known exactly (sampling.reference.linear_output_std), no sampling noise."""
    if len(stds) != 2 or not all(s > 0 for s in stds):
        raise ValueError(f"stds={stds!r}; allowed: two positive standard deviations")
    mixture = GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.diag(torch.tensor(stds) ** 2)[None].double())
    config = RunConfig(DataConfig("gaussian"), schedule, MLPConfig(), TrainConfig(objective="x0"))
    sch = schedule.build()
    return Run(config, sch, MixtureNet(mixture, sch.alpha_bar).eval(), 0, [], f"N(0, diag{tuple(stds)}^2)")
