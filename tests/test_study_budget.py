"""The study's error budget (explore.study_budget): each row is explore.error_budget's budget for the same run, sampler
and seed, its total is the study's own W1 for that row, the exact model through DDPM-1000 is at the floor, and the
sweep and budget shipped with the moons run are today's (the protocols of today's plan, one total per sweep W1)."""

from dataclasses import replace

import pandas as pd
import pytest

from conftest import ROOT, oracle_run
from diffusion.explore.error_budget import error_budget
from diffusion.explore.nfe_study import plan, study, study_protocol
from diffusion.explore.study_budget import TERMS, budget_markdown, study_budget
from diffusion.sampling.registry import SAMPLERS
from diffusion.training.checkpoints import load_run
from ui.views.study_budget_view import SHIPPED_BUDGET
from ui.views.study_view import SHIPPED_INPUTS, SHIPPED_STUDY

N = 200
SAMPLED = dict(samplers=["ddim", "flow_midpoint"], nfe_targets=[5, 10], n=N, seed=2, reference=False)


@pytest.fixture(scope="module")
def moons():
    return load_run(ROOT / "checkpoints" / "moons")


def test_each_row_is_error_budgets_budget_and_its_total_the_studys_w1(moons):
    frame = study_budget(moons, **SAMPLED)
    sweep = study(moons, **SAMPLED)
    configs = plan(moons, SAMPLED["samplers"], SAMPLED["nfe_targets"], reference=False)
    assert len(frame) == len(configs) == 4 and frame["consistent"].all()
    for row, config, w1 in zip(frame.itertuples(), configs, sweep["w1"]):
        b = error_budget(moons, replace(study_protocol(moons, N, 2), sampler=config))
        assert row.protocol == b.protocol.name and (row.sampler, row.steps) == (config.name, config.steps)
        for term in TERMS:
            v = getattr(b, term)
            assert (getattr(row, term), getattr(row, f"{term}_low"), getattr(row, f"{term}_high")) == \
                (v.value, v.low, v.high)
        assert row.total == pytest.approx(w1, rel=1e-12)          # the same noises: the study's number
        assert row.solver_floor == row.floor
    table = budget_markdown(frame)
    assert "| sampler | settings | nfe | steps | floor | solver |" in table and "quadrature" in table
    assert "holds in every row" in table


def test_the_exact_model_through_ddpm_1000_is_within_its_floor():
    """The exact eps of 8gaussians through DDPM-1000: the network adds nothing and the solver's W1 is within the
    floor's 95% interval (no discretisation error measurable at n = 500)."""
    frame = study_budget(oracle_run("8gaussians"), ["ddpm"], [1000], n=500, reference=False)
    row = frame.iloc[0]
    assert (row["sampler"], row["steps"]) == ("ddpm", 1000)
    assert row["floor_low"] <= row["solver"] <= row["floor_high"]
    assert row["network"] < 1e-3 and row["displacement"] < 1e-3
    assert "exact law" in row["law"]


def test_an_image_run_has_no_budget(monkeypatch, moons):
    monkeypatch.setattr(type(moons), "is_image", property(lambda self: True))
    with pytest.raises(ValueError, match="for 2D runs"):
        study_budget(moons, ["ddim"], [5], n=N)


def test_the_shipped_sweep_and_budget_are_todays_and_agree(moons):
    """Both files list today's plan at the page's defaults (a sampler default that moves makes them stale: rerun
    study_view.SHIPPED_COMMAND and study_budget_view.SHIPPED_BUDGET_COMMAND), and each budget total is the sweep's W1
    of the same row (the same noises)."""
    protocol = study_protocol(moons, SHIPPED_INPUTS["n"], 0)
    names = [replace(protocol, sampler=c).name for c in plan(moons, SAMPLERS, SHIPPED_INPUTS["nfe_targets"])]
    folder = ROOT / "checkpoints" / "moons"
    sweep, budget = pd.read_csv(folder / SHIPPED_STUDY), pd.read_csv(folder / SHIPPED_BUDGET)
    assert list(sweep["protocol"]) == names and list(budget["protocol"]) == names
    assert budget["total"].to_numpy() == pytest.approx(sweep["w1"].to_numpy(), rel=1e-9)
    assert budget["consistent"].all()
