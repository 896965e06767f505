"""No sample flies off: 2D x0_hat is projected onto the training data's ball (never farther from the exact denoiser),
the v-parameterised recipe keeps the raw network near the data, and the study shows the projection when it bites."""

from dataclasses import replace

import pytest
import torch

from diffusion.core.denoisers import projected
from diffusion.data import data_radius, load_data
from diffusion.explore.nfe_study import Extremes, study
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.sampling.registry import REGISTRY
from diffusion.training.defaults import run_config_2d
from diffusion.training.trainer import Trainer

N = 100_000          # samples per sampler
DDPM_N = 5_000       # DDPM's 1000 steps: 5,000 samples cost what 100,000 cost the 50-step samplers


def _short_run(objective: str, steps: int):
    """moons with its recipe, narrowed (width 32, depth 2, batch 256) and trained briefly: a worse network than a
    10 s run's."""
    config = run_config_2d("moons", steps=steps, objective=objective, batch_size=256)
    config = replace(config, model=replace(config.model, width=32, depth=2))
    trainer = Trainer(config, load_data(config.data).x)
    trainer.run()
    return trainer.as_run()


@pytest.fixture(scope="module")
def short_run():
    return _short_run("v", 600)


@pytest.fixture(scope="module")
def eps_run():
    return _short_run("eps", 150)


def test_projection_is_onto_the_ball_and_never_moves_away_from_points_inside():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(2000, 2, generator=g) * 3
    seen = []
    project = projected(lambda x, t, y: x, 1.5, lambda x0, moved: seen.append((x0, moved)))
    out = project(raw, torch.zeros(2000, dtype=torch.long), None)
    norms = raw.norm(dim=1)
    assert torch.equal(out[norms <= 1.5], raw[norms <= 1.5])                      # inside: untouched
    torch.testing.assert_close(out[norms > 1.5].norm(dim=1), torch.full(((norms > 1.5).sum(),), 1.5))
    torch.testing.assert_close(out / out.norm(dim=1, keepdim=True), raw / norms[:, None])   # along the ray
    assert torch.equal(seen[0][1], norms > 1.5) and torch.equal(seen[0][0], raw)
    target = torch.randn(2000, 2, generator=g)
    target = target * (1.5 * torch.rand(2000, 1, generator=g) / target.norm(dim=1, keepdim=True))  # in the ball
    assert ((out - target).norm(dim=1) <= (raw - target).norm(dim=1) + 1e-6).all()  # non-expansive toward it
    with pytest.raises(ValueError, match="radius=0"):
        projected(lambda x, t, y: x, 0)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_no_sample_flies_off(short_run, name):
    """Every registered sampler at its documented steps, on the v recipe's network: the raw network's x0_hat (before
    its projection) stays within 2 of the data's extent (an eps-prediction network of this kind reaches ~100): the
    projection is a guard, not what keeps the samples in. (The samples themselves lie in the projection ball by
    construction, for every sampler: the next test.)"""
    extremes = Extremes()
    n = DDPM_N if name == "ddpm" else N
    samples = replace(short_run, observe_x0=extremes.observe).sample(
        n, SamplerConfig(name, REGISTRY[name].default_steps), callback=extremes)
    extent = data_radius(short_run.config.data)
    assert torch.isfinite(samples).all() and samples.norm(dim=1).max() <= extent + 1
    assert float(extremes.x0) < extent + 2 and extremes.evaluations >= n * REGISTRY[name].default_steps


def test_the_study_shows_the_projection_when_it_bites():
    """An eps-prediction run trained briefly: its raw x0_hat flies off at t = T (network error times
    sqrt((1 - ab) / ab) ~ 157); the study's max_abs_x0 shows the raw value and x0_projected how often it was cut."""
    run = _short_run("eps", 150)
    extent = run.x0_radius
    frame = study(run, ["ddim"], [50], n=400, reference=False)
    row = frame.iloc[0]
    assert row["max_abs_x0"] > 3 * extent and row["x0_projected"] > 0 and row["max_abs_x"] < 10
    raw = study(run, [SamplerConfig("ddim", clip=False)], [50], n=400, reference=False).iloc[0]
    assert raw["max_abs_x0"] > 3 * extent and raw["x0_projected"] == 0


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_sampler_returns_a_point_of_the_projection_ball(eps_run, name):
    """The claim, sampler by sampler: the output is the last x0_hat, so it lies in the ball x0_hat is projected onto,
    even from a network whose raw x0_hat flies off (an eps run trained briefly). flow_midpoint's own last step,
    2 x0_mid - x0_hat, left it (a radius-1 projection gave [3, 0]); a second-order sampler that extrapolates its
    last x0_hats (DPM-Solver++'s last step) would too."""
    run = eps_run
    extremes = Extremes()
    steps = min(REGISTRY[name].default_steps, 50)
    samples = replace(run, observe_x0=extremes.observe).sample(2000, SamplerConfig(name, steps), seed=3)
    assert float(extremes.x0) > 2 * run.x0_radius                      # the projection bites
    assert samples.norm(dim=1).max() <= run.x0_radius * (1 + 1e-5)

