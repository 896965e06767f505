"""Diffusion and flow side by side (diffusion.explore.flow_experiments): straightness against its closed form for Gaussian data,
reflow straightening a trained model and improving its few-step samples, paths from shared noises, fields, density
maps and the quality-vs-NFE frame of both families."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import OracleVelocity, oracle_flow_run, oracle_run

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.core.oracles import GaussianMixture
from diffusion.data import load_data
from diffusion.explore.flow_experiments import (
    coupling,
    density_map,
    exact_flow_paths,
    flow_paths,
    paired_configs,
    quality_vs_nfe,
    reflow,
    straightness,
    unit_noise,
    velocity_field,
)
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.protocol import points_protocol
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.trainer import Trainer


def test_paired_configs_differ_in_the_objective_only():
    base = RunConfig(train=TrainConfig(steps=123, seed=4, objective="v"))
    pair = paired_configs(base)
    assert pair["diffusion"].train.objective == "eps" and pair["flow"].train.objective == "flow"
    for config in pair.values():
        assert (config.data, config.model, config.schedule) == (base.data, base.model, base.schedule)
        assert (config.train.steps, config.train.seed, config.train.lr) == (123, 4, base.train.lr)


def _gaussian_straightness() -> float:
    """Closed form for N(0, C): along the exact ODE, x(t) = c(t) z per eigenvalue lam of C, c(t) = sqrt((1 - t)^2 lam
    + t^2), so S = (1/D) sum_lam int_0^1 (c(1) - c(0) - c'(t))^2 dt (E z^2 = 1), by a fine trapezoid rule."""
    lam = torch.linalg.eigvalsh(torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64))
    t = torch.linspace(0, 1, 200_001, dtype=torch.float64)[:, None]
    c_prime = ((1 - t) * -lam + t) / ((1 - t).square() * lam + t.square()).sqrt()
    integrand = ((1 - lam.sqrt()) - c_prime).square().sum(1) / 2
    return float(torch.trapezoid(integrand, t[:, 0]))


def test_straightness_of_the_exact_flow_matches_its_closed_form():
    result = straightness(oracle_flow_run("gaussian"), n=2000, steps=400)
    expected = _gaussian_straightness()
    assert expected > 0.05 and abs(result.value - expected) < 4 * result.se + 0.01 * expected, (result, expected)
    assert (result.n, result.steps) == (2000, 400)


def test_straight_paths_have_zero_straightness():
    """Data concentrated on one point: the exact paths are the straight lines from the noise to it."""
    point = GaussianMixture.isotropic(torch.tensor([[0.5, -1.0]]), 1e-5)   # far below the grid's t_min = 0.002
    run = replace(oracle_flow_run("gaussian"), net=OracleVelocity(point).eval())
    assert straightness(run, n=200, steps=50).value < 1e-5


@pytest.fixture(scope="module")
def moons_flow():
    x = load_data(DataConfig("moons", n=20_000)).x
    trainer = Trainer(RunConfig(train=TrainConfig(steps=800, objective="flow")), x)
    trainer.run()
    return trainer.as_run()


def test_one_reflow_straightens_the_paths_and_improves_two_step_samples(moons_flow):
    """Liu et al. 2022: re-training on the model's own (noise, sample) pairs straightens its paths; measured here as
    straightness below half the teacher's and a better W1 at 2 Euler steps."""
    student = reflow(moons_flow, 4000, steps=300, seed=1)
    assert student.is_flow and student.step == 300 and "reflow: 4000 (noise, sample) pairs" in student.data_source
    before, after = straightness(moons_flow, n=500), straightness(student, n=500)
    assert after.value < 0.5 * before.value, (before, after)
    two_steps = SamplerConfig("flow_euler", steps=2)
    w1 = [w1_of(run.sample(1000, two_steps, seed=2)) for run in (moons_flow, student)]
    assert w1[1] < w1[0], w1


def test_the_coupling_pairs_each_noise_with_its_own_sample(moons_flow):
    z, x = coupling(moons_flow, 5, seed=3, sampler=SamplerConfig("flow_euler", steps=10))
    torch.testing.assert_close(x, moons_flow.sample(5, SamplerConfig("flow_euler", steps=10), seed=3))
    torch.testing.assert_close(z, unit_noise(moons_flow, 5, seed=3))
    with pytest.raises(ValueError, match="reflow needs a deterministic ODE sampler"):
        coupling(moons_flow, 5, sampler=SamplerConfig("ddim", eta=0.5))
    with pytest.raises(ValueError, match="reflow needs a budget"):
        reflow(moons_flow, 5)


def test_paths_of_both_families_start_from_the_same_noise():
    flow, diffusion = flow_paths(oracle_flow_run("8gaussians"), 7, 10, seed=5), flow_paths(oracle_run(), 7, 10, seed=5)
    t_max = diffusion.times[0]
    assert flow.times[0] == 1.0 and t_max < 1 and flow.x.shape == (11, 7, 2) and flow.x0_hat.shape == (10, 7, 2)
    np.testing.assert_allclose(diffusion.x[0] / t_max, flow.x[0], rtol=1e-6)
    np.testing.assert_allclose(flow.x[0], unit_noise(oracle_flow_run(), 7, seed=5).numpy())


def test_exact_paths_are_the_exact_runs_paths():
    exact, run = exact_flow_paths("8gaussians", 6, 10, seed=2), flow_paths(oracle_flow_run("8gaussians"), 6, 10, seed=2)
    np.testing.assert_allclose(exact.x, run.x, atol=1e-5)
    np.testing.assert_allclose(exact.times, run.times)
    assert exact_flow_paths("checkerboard", 2) is None and exact_flow_paths("moons", 3, 4).x.shape == (5, 3, 2)


def test_velocity_fields_of_the_exact_flow_are_the_exact_field():
    field = velocity_field(oracle_flow_run("8gaussians"), 0.3, size=9)
    assert field["x"].shape == field["learned"].shape == field["exact"].shape == (81, 2)
    np.testing.assert_allclose(field["learned"], field["exact"], atol=1e-5)
    with pytest.raises(ValueError, match="t=0.995 is out of range"):
        velocity_field(oracle_run("8gaussians"), 0.995)


def test_density_map_of_the_exact_flow_is_the_true_density():
    maps = density_map(oracle_flow_run("8gaussians"), size=11)
    np.testing.assert_allclose(maps["model"], maps["true"], rtol=1e-2, atol=1e-6)


def test_quality_against_nfe_of_both_families_from_the_same_noises():
    runs = {"diffusion": oracle_run("8gaussians"), "flow": oracle_flow_run("8gaussians")}
    frame = quality_vs_nfe(runs, ["flow_euler", "heun"], [5, 10], n=200)
    assert list(frame.columns[:3]) == ["run", "precision", "sampler"]
    assert sorted(set(frame["run"])) == ["diffusion", "flow"] and len(frame) == 8
    assert set(frame["nfe"]) == {5, 9, 10} and frame["w1"].notna().all() and (frame["w1_floor"] > 0).all()
    assert math.isfinite(frame["w1"].max())


def w1_of(samples) -> float:
    """W1 of 1,000 moons samples under the 2D measurement protocol."""
    return measure_samples(samples, points_protocol(len(samples)), DataConfig("moons")).metrics["w1"].value
