"""The error budget (explore.error_budget) against known answers: the exact model as the network has no network
error and a zero denoiser-error curve, a network built another way (the exact eps, the exact velocity) agrees with it,
a denoiser shifted by delta shows |delta|^2 at every noise level and a network error of |delta| where the sampler
returns x0_hat, and the pieces obey the triangle inequality and equal the protocol's own numbers."""

import math
from dataclasses import dataclass

import pytest
import torch

from conftest import oracle_flow_run, oracle_run
from diffusion.data.custom import custom_data
from diffusion.data.toy_datasets import density_mixture, toy_dataset
from diffusion.explore.error_budget import (QUADRATURE_POINTS, RAW, ExactModel, error_budget, denoiser_error,
                                            exact_law, exact_model)
from diffusion.metrics.evaluation import measure_run
from diffusion.metrics.protocol import points_protocol, reference_for
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import load_run

DELTA = torch.tensor([0.3, -0.4])          # |delta| = 0.5
N = 300


@dataclass
class Shifted(ExactModel):
    """The exact denoiser plus DELTA at every noise level: a network wrong by a known amount."""

    def flow_denoiser(self, sampler):
        exact = super().flow_denoiser(sampler)
        return lambda x_t, t, y=None: exact(x_t, t, y) + DELTA.to(x_t.dtype)


def _shifted(run) -> Shifted:
    exact, law = exact_model(run)
    return Shifted(run.config, run.schedule, run.net, 0, [], law=law.mixture)


@pytest.fixture(scope="module")
def moons():
    return load_run("checkpoints/moons")


def _intervals(budget):
    return (budget.floor, budget.solver, budget.network, budget.displacement, budget.total)


def test_the_exact_model_as_the_network_has_no_network_error_and_a_zero_curve(moons):
    exact, _ = exact_model(moons)
    budget = error_budget(exact, points_protocol(N, SamplerConfig("ddim", 20)))
    assert budget.network.value == 0 and budget.displacement.value == 0
    assert budget.total == budget.solver and budget.consistent
    curve = denoiser_error(exact, n=200, levels=8)
    assert len(curve) == 8 and (curve["error"] == 0).all() and (curve["mmse"] > 0).all()
    x, t = torch.randn(50, 2), torch.full((50,), 0.4)                   # every space is the exact law's, the ODE too
    torch.testing.assert_close(exact.velocity()(x, t, None), (x - exact.flow_denoiser(RAW)(x, t)) / 0.4,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make, sampler", [
    (oracle_run, SamplerConfig("ddim", 20)), (oracle_run, SamplerConfig("flow_midpoint", 10)),
    (oracle_flow_run, SamplerConfig("ddim", 20)), (oracle_flow_run, SamplerConfig("heun", 10)),
    (oracle_flow_run, SamplerConfig("flow_midpoint", 10))],
    ids=lambda v: v.name if isinstance(v, SamplerConfig) else v.__name__)
def test_a_network_built_another_way_from_the_exact_law_has_no_network_error(make, sampler):
    """The exact eps (discrete timesteps) and the exact velocity (a flow run) through each space where they are told
    the true noise level: only float rounding apart from the exact model, and the denoiser-error curve is 0. (A
    discrete network in the sigma space is told the nearest timestep's sigma: that rounding is network error.)"""
    run = make("8gaussians")
    budget = error_budget(run, points_protocol(N, sampler))
    assert budget.network.value < 1e-4 and budget.displacement.value < 1e-4
    assert abs(budget.total.value - budget.solver.value) < 1e-4 and budget.consistent
    assert budget.law.exact and "exact law" in budget.law.description
    assert denoiser_error(run, n=200, levels=6)["error"].max() < 1e-9


def test_a_shifted_denoiser_shows_its_shift_squared_at_every_noise_level(moons):
    curve = denoiser_error(_shifted(moons), n=200, levels=10)
    assert curve["error"].to_numpy() == pytest.approx(float(DELTA.square().sum()), rel=1e-5)
    exact_curve = denoiser_error(exact_model(moons)[0], n=200, levels=10)
    assert curve["mmse"].tolist() == exact_curve["mmse"].tolist()      # the same x_t at each level
    assert (curve["sigma"].diff().dropna() > 0).all()


def test_a_shifted_denoiser_gives_a_network_error_of_the_shift_where_the_sampler_returns_x0_hat(moons):
    """DDIM with one step returns x0_hat(x_T): the learned samples are the exact ones moved by delta, so W1 between
    them and the mean displacement are both |delta| (in the reference's units)."""
    protocol = points_protocol(N, SamplerConfig("ddim", 1, clip=False))
    budget = error_budget(_shifted(moons), protocol)
    unit = reference_for(protocol, moons.config.data).scale
    assert budget.network.value == pytest.approx(0.5 / unit, rel=1e-4)
    assert budget.displacement.value == pytest.approx(0.5 / unit, rel=1e-4)
    assert budget.consistent


def test_the_budget_of_a_learned_run_is_consistent_and_its_total_is_the_protocols_number(moons):
    protocol = points_protocol(N, SamplerConfig("ddim", 20), seed=3)
    budget = error_budget(moons, protocol)
    assert budget.consistent
    assert all(v.low <= v.value <= v.high for v in _intervals(budget))
    assert budget.network.value > 0 and budget.network.value <= budget.displacement.value
    measured = measure_run(moons, protocol)[0]
    assert budget.total == measured.metrics["w1"] and budget.floor == measured.floor["w1"]
    table = budget.markdown()
    for term in ("floor", "solver", "network", "total", protocol.name, "quadrature", "holds"):
        assert term in table
    assert [r["term"] for r in budget.rows()] == ["floor", "solver", "network", "network, per sample", "total"]


def test_every_set_says_what_plays_its_exact_model():
    assert "exact law" in exact_law("25gaussians").description
    moons = exact_law("moons")
    assert moons.exact and "quadrature" in moons.description and len(moons.mixture.weights) == 2 * QUADRATURE_POINTS
    checker = exact_law("checkerboard")
    assert not checker.exact and "kernel density estimate" in checker.description
    custom = exact_law(custom_data("budget-test", torch.randn(50, 2, generator=torch.Generator().manual_seed(0)))
                       .dataset)
    assert custom.exact and "kernel mixture of the set's 50 points" in custom.description


@pytest.mark.parametrize("dataset", ["moons", "swissroll", "circles", "spirals"])
def test_the_budgets_quadrature_is_the_densitys_within_its_stated_error(dataset):
    x = toy_dataset(dataset).sample(2000, torch.Generator().manual_seed(1))
    gap = (exact_law(dataset).mixture.log_prob(x).double() - density_mixture(dataset).log_prob(x).double()).abs()
    assert float(gap.max()) < 0.04 and float(gap.mean()) < 2e-4


def test_bad_input_is_named(moons):
    with pytest.raises(ValueError, match="unguided"):
        error_budget(moons, points_protocol(N, SamplerConfig("ddim", 20, guidance=2.0)))
    with pytest.raises(ValueError, match="unlabelled 2D protocol"):
        error_budget(moons, points_protocol(N, label=0))
    with pytest.raises(ValueError, match="levels"):
        denoiser_error(moons, levels=1)
    assert math.isfinite(denoiser_error(moons, n=50, levels=3)["error"].sum())
