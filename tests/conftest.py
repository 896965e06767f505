import fcntl
import os
import statistics
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Training jobs run at the tests' own priority (the server's default puts them 10 steps below its pages, which on a
# machine other processes load starves them); the tests of that priority set it themselves (test_scheduler,
# test_load through load_visitors).
os.environ.setdefault("DIFFUSION_JOB_NICE", "0")

import torch

# One intra-op thread: the tests' tensors are small, and on a 2-core machine OpenMP synchronisation costs
# more than it gains (and much more when another process holds a core).
torch.set_num_threads(1)


# Modules that take minutes, run first: the suite runs on two workers (pytest.ini: pytest-xdist, one module per
# worker at a time), and a long module started last would leave one core idle while the other finishes it.
SLOW_FIRST = ("test_browser", "test_idle_server", "test_load", "test_distributed", "test_cli_images",
              "test_app_images")


def pytest_collection_modifyitems(items) -> None:
    """SLOW_FIRST's modules ahead of the others, the order otherwise as collected (the same on every worker)."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


@pytest.fixture(autouse=True)
def _alone_if_marked(request):
    """A test marked `alone` (one that times what a visitor waits for) runs with no other test beside it on the
    other worker; every other test shares the machine. A readers-writer lock on files the workers of one run share;
    the `turn` file gives a waiting `alone` test precedence over tests that would start after it."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield
        return
    alone = request.node.get_closest_marker("alone") is not None
    folder = Path(tempfile.gettempdir())
    with open(folder / f"pytest-{run}.turn", "a") as turn, open(folder / f"pytest-{run}.share", "a") as share:
        fcntl.flock(turn, fcntl.LOCK_EX)
        fcntl.flock(share, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turn, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(share, fcntl.LOCK_UN)
            fcntl.flock(turn, fcntl.LOCK_UN)


N, N_REF = 1000, 2000  # sampler tests: samples drawn, and true reference points


def assert_hand_step_is_the_library_step(trainer, net, opt, loss) -> None:
    """Backpropagate the hand-written loss, step the hand-made optimizer, and check that trainer.train_step() gives
    the same loss and the same weights."""
    import pytest
    loss.backward()
    opt.step()
    library_loss, why = trainer.train_step()
    assert why == "" and library_loss == pytest.approx(loss.item(), rel=1e-6)
    for p_lib, p_ref in zip(trainer.model.parameters(), net.parameters()):
        torch.testing.assert_close(p_lib, p_ref)


@pytest.fixture(scope="session")
def floor_8gaussians():
    """W1 between independent true samples of size N and a reference of N_REF points: mean and std over 6
    draws. A sampler driven by the exact denoiser must land within a few of these standard deviations."""
    from diffusion.data.toy_datasets import toy_dataset
    from diffusion.metrics.points2d import wasserstein
    toy = toy_dataset("8gaussians")
    ref = toy.sample(N_REF, torch.Generator().manual_seed(999))
    w = [wasserstein(toy.sample(N, torch.Generator().manual_seed(s)), ref) for s in range(6)]
    return ref, statistics.mean(w), statistics.stdev(w)


class OracleEps(torch.nn.Module):
    """The exact eps-prediction network of Gaussian-mixture data, E[eps | x_t] (core.oracles.flow_posterior at the
    flow point of x_t: the same eps), differentiable in x_t. A Run around it samples with the analytic answer.
    Fractional timesteps (a diffusion run read in continuous time, core.edm.continuous_vp_denoiser) are read by
    core.schedules.alpha_bar_at."""

    def __init__(self, mixture, alpha_bar):
        super().__init__()
        self.mixture, self.alpha_bar = mixture, alpha_bar.double()
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)   # gives the Run a device

    def forward(self, x_t, t, y=None):
        from diffusion.core.oracles import flow_posterior
        from diffusion.core.schedules import alpha_bar_at
        ab = alpha_bar_at(self.alpha_bar, t)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return flow_posterior(self.mixture, x_t.double() / (a + b)[:, None], b / (a + b))[1].to(x_t.dtype)


def oracle_run(dataset: str = "8gaussians", schedule: str = "linear", T: int = 1000):
    """A Run whose network is the exact eps of a toy mixture: what any sampler must turn into the mixture."""
    from diffusion.config import DataConfig, RunConfig, ScheduleConfig
    from diffusion.data.toy_datasets import toy_dataset
    from diffusion.sampling.run import Run
    config = RunConfig(data=DataConfig(dataset), schedule=ScheduleConfig(schedule, T))
    sch = config.schedule.build()
    return Run(config, sch, OracleEps(toy_dataset(dataset).mixture, sch.alpha_bar).eval(), 0, [])


class OracleVelocity(torch.nn.Module):
    """The exact flow-matching network of Gaussian-mixture data: net(x_t, 1000 t) = E[eps - x0 | x_t]
    (core.oracles.flow_velocity; networks see FLOW_TIME_SCALE t)."""

    def __init__(self, mixture):
        super().__init__()
        from diffusion.core.oracles import flow_velocity
        self.velocity = flow_velocity(mixture)
        self.anchor = torch.nn.Parameter(torch.zeros(1), requires_grad=False)   # gives the Run a device

    def forward(self, x_t, s, y=None):
        from diffusion.core.flow_matching import FLOW_TIME_SCALE
        return self.velocity(x_t, s.double() / FLOW_TIME_SCALE, y)


def oracle_flow_run(dataset: str = "8gaussians"):
    """A flow Run whose network is the exact velocity of a toy mixture: what any sampler must turn into it."""
    from diffusion.config import DataConfig, RunConfig, TrainConfig
    from diffusion.data.toy_datasets import toy_dataset
    from diffusion.sampling.run import Run
    config = RunConfig(data=DataConfig(dataset), train=TrainConfig(objective="flow"))
    return Run(config, config.schedule.build(), OracleVelocity(toy_dataset(dataset).mixture).eval(), 0, [])
