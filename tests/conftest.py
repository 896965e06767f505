import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

# One intra-op thread: the tests' tensors are small, and on a 2-core machine OpenMP synchronisation costs
# more than it gains (and much more when another process holds a core).
torch.set_num_threads(1)


N, N_REF = 1000, 2000  # sampler tests: samples drawn, and true reference points


@pytest.fixture(scope="session")
def floor_8gaussians():
    """W1 between independent true samples of size N and a reference of N_REF points: mean and std over 6
    draws. A sampler driven by the exact denoiser must land within a few of these standard deviations."""
    from diffusion.data.toy2d import toy_dataset
    from diffusion.metrics.points2d import wasserstein
    toy = toy_dataset("8gaussians")
    ref = toy.sample(N_REF, torch.Generator().manual_seed(999))
    w = [wasserstein(toy.sample(N, torch.Generator().manual_seed(s)), ref) for s in range(6)]
    return ref, statistics.mean(w), statistics.stdev(w)


class OracleEps(torch.nn.Module):
    """The exact eps-prediction network of Gaussian-mixture data: eps = (x_t - sqrt(ab) E[x0 | x_t]) / sqrt(1 - ab)
    (Ho eq. 4 solved for eps at the exact denoiser). A Run around it samples with the analytic answer."""

    def __init__(self, mixture, alpha_bar):
        super().__init__()
        self.mixture, self.alpha_bar = mixture, alpha_bar.double()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)   # gives the Run a device

    def forward(self, x_t, t, y=None):
        ab = self.alpha_bar[t.long()]
        x0 = self.mixture.posterior_mean(x_t, ab).double()
        return ((x_t.double() - ab.sqrt()[:, None] * x0) / (1 - ab).sqrt()[:, None]).to(x_t.dtype)


def oracle_run(dataset: str = "8gaussians", schedule: str = "linear", T: int = 1000):
    """A Run whose network is the exact eps of a toy mixture: what any sampler must turn into the mixture."""
    from diffusion.config import DataConfig, RunConfig, ScheduleConfig
    from diffusion.data.toy2d import toy_dataset
    from diffusion.sampling.run import Run
    config = RunConfig(data=DataConfig(dataset), schedule=ScheduleConfig(schedule, T))
    sch = config.schedule.build()
    return Run(config, sch, OracleEps(toy_dataset(dataset).mixture, sch.alpha_bar).eval(), 0, [])
