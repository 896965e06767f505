"""Every registered sampler through one conformance suite (diffusers' scheduler tests, done with a list): a new
sampler is tested by being registered. Driven by the exact eps of a Gaussian mixture (conftest.oracle_run) and by its
exact flow-matching velocity (conftest.oracle_flow_run), each must reproduce the mixture at its documented number of
steps: every sampler on a diffusion run and on a flow run."""

import math
from dataclasses import fields

import pytest
import torch
from conftest import N, oracle_flow_run, oracle_run

from diffusion.cli import _parser
from diffusion.core.schedules import SPACINGS, spaced_timesteps
from diffusion.metrics.points2d import wasserstein
from diffusion.sampling.sampler_config import COMMON, SamplerConfig
from diffusion.sampling.registry import REGISTRY, SAMPLERS, sampler_spec
from diffusion.sampling.run import Trajectory


@pytest.fixture(scope="module", params=["diffusion", "flow"])
def run(request):
    return oracle_run("8gaussians") if request.param == "diffusion" else oracle_flow_run("8gaussians")


@pytest.mark.parametrize("name", SAMPLERS)
def test_exact_denoiser_reproduces_the_mixture_at_the_documented_steps(run, floor_8gaussians, name):
    ref, floor_mean, floor_std = floor_8gaussians
    x = run.sample(N, SamplerConfig(name, steps=sampler_spec(name).default_steps), seed=0)
    assert wasserstein(x, ref) < floor_mean + 4 * floor_std


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("steps", [1, 2, 7])
def test_network_evaluations_are_the_registered_nfe(run, name, steps):
    calls = []
    hook = run.net.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    try:
        out = run.sample(4, SamplerConfig(name, steps=steps), seed=1)
    finally:
        hook.remove()
    spec = sampler_spec(name)
    assert len(calls) == spec.nfe(steps) and spec.steps_for_nfe(spec.nfe(steps)) == steps
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SAMPLERS)
def test_trajectory_is_typed_by_the_sampler_space(run, name):
    traj = Trajectory()
    run.sample(3, SamplerConfig(name, steps=6), trajectory=traj)
    spec = sampler_spec(name)
    assert traj.space == spec.space and len(traj.times) == len(traj.x_t) == 6
    assert all(a > b for a, b in zip(traj.times, traj.times[1:]))
    kind = int if spec.space == "timesteps" else float
    assert all(isinstance(t, kind) for t in traj.times)
    if spec.space == "timesteps":
        assert traj.paper_timesteps()[0] == run.schedule.T
    else:
        with pytest.raises(ValueError, match="noise levels, not timesteps"):
            traj.paper_timesteps()


def test_the_sigma_samplers_start_at_sigma_max_times_the_noise_and_end_on_x0_hat():
    """Their x_T is sigma_max z (EDM Algorithm 2, line 1), and the last step to sigma = 0 lands on x0_hat."""
    run = oracle_run("gaussian")
    start = Trajectory()
    run.sample(4, SamplerConfig("ddim", steps=1), seed=2, trajectory=start)     # DDIM starts from z itself
    for name in [n for n in SAMPLERS if sampler_spec(n).space == "sigmas"]:
        traj, config = Trajectory(), SamplerConfig(name, steps=5)
        out = run.sample(4, config, seed=2, trajectory=traj)
        torch.testing.assert_close(traj.x_t[0], start.x_t[0] * float(run.sigmas(config)[0]))
        torch.testing.assert_close(out, traj.x0_hat[-1])


def test_the_registry_is_the_one_list_of_samplers():
    assert SAMPLERS == tuple(REGISTRY)
    sample = _parser()._subparsers._group_actions[0].choices["sample"]
    choices = next(a.choices for a in sample._actions if a.dest == "sampler")
    assert tuple(choices) == SAMPLERS
    read = set(COMMON).union(*(spec.settings for spec in REGISTRY.values()))
    assert {f.name for f in fields(SamplerConfig)} == read          # every setting is read by some sampler


@pytest.mark.parametrize("spacing", SPACINGS)
def test_one_step_starts_from_pure_noise_whatever_the_spacing(spacing):
    assert spaced_timesteps(1000, 1, spacing) == [999]
    assert spaced_timesteps(10, 10, spacing) == list(range(9, -1, -1))


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "plms"}, "unknown sampler 'plms'"),
    ({"steps": 0}, "steps=0 is out of range; allowed: an integer from 1 to 10000"),
    ({"steps": 2.5}, "steps=2.5"),
    ({"steps": True}, "steps=True"),
    ({"eta": 1.5}, "eta=1.5 is out of range; allowed: a number from 0 to 1"),
    ({"eta": math.nan}, "eta=nan"),
    ({"spacing": "even"}, "spacing='even' is out of range; allowed: trailing, linspace, leading"),
    ({"name": "ddpm", "variance": "big"}, "variance='big'"),
    ({"clip": "yes"}, "clip='yes'"),
    ({"guidance": -1.0}, "guidance=-1.0"),
    ({"guidance": math.inf}, "guidance=inf"),
    ({"name": "heun", "grid": "cosine"}, "grid='cosine' is out of range; allowed: None, karras, logsnr"),
    ({"name": "heun", "rho": 0.0}, "rho=0.0"),
    ({"name": "euler", "sigma_min": -1.0}, "sigma_min=-1.0"),
    ({"name": "euler", "sigma_max": math.inf}, "sigma_max=inf"),
    ({"name": "euler", "sigma_min": 2.0, "sigma_max": 1.0}, "sigma_min=2.0 must be below sigma_max=1.0"),
    ({"name": "heun", "S_churn": -1.0}, "S_churn=-1.0"),
    ({"name": "heun", "S_noise": math.inf}, "S_noise=inf is out of range; allowed: a number from 0 to 2"),
    ({"name": "heun", "S_min": 5.0, "S_max": 1.0}, "S_max=1.0 must be at least S_min=5.0"),
    ({"name": "heun", "eta": 0.5}, "eta=0.5 does not apply to 'heun'; it is read by ddim"),
    ({"name": "ddim", "variance": "beta"}, "variance='beta' does not apply to 'ddim'; it is read by ddpm"),
    ({"name": "ddpm", "S_churn": 10.0}, "S_churn=10.0 does not apply to 'ddpm'; it is read by euler, heun"),
    ({"name": "dpmpp2m", "rho": 5.0}, "rho=5.0 shapes the karras grid"),
])
def test_every_sampler_setting_is_validated_on_construction(kwargs, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        SamplerConfig(**kwargs)


def test_more_steps_than_the_schedule_has_is_refused_naming_both(run):
    with pytest.raises(ValueError, match="number of steps 1001 is out of range; allowed: 1 to T=1000"):
        run.sample(2, SamplerConfig("ddim", steps=1001))
