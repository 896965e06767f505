"""The quality-versus-steps page through AppTest: it renders, a tiny sweep of a session run draws the charts, the
stability table and the goal line, and the same inputs are not computed twice."""

import re
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.nfe_study import plan, quality_metrics, study_protocol
from diffusion.metrics.protocol import reference_for
from diffusion.training.trainer import Trainer
from ui.jobs import scheduler, timing
from ui.jobs.session_runs import KEY
from ui.views import study_view

ROOT = Path(__file__).resolve().parents[1]
PAGE = "app_pages/study.py"
NAME = "tiny moons"


@pytest.fixture(scope="module")
def run():
    trainer = Trainer(RunConfig(data=DataConfig("moons", n=500), train=TrainConfig(steps=50, batch_size=64)),
                      toy_dataset("moons").sample(500, torch.Generator().manual_seed(0)))
    trainer.run()
    return trainer.as_run()


def _charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))


def _page(run=None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if run is not None:
        at.session_state[KEY] = {NAME: run}
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def test_the_page_opens_on_the_shipped_sweep_and_offers_the_session_run(run):
    """Titled as in the menu; on arrival the shipped moons run's sweep (checkpoints/moons/study.csv, at the page's
    default inputs) is drawn with no click: the quality panels, wall time and the literature."""
    at = _page(run)
    assert at.title[0].value == "Quality vs steps"
    assert f"{NAME} (this session)" in at.selectbox(key="study_run").options
    assert any("Expected time" in c.value for c in at.caption)
    assert any("the sweep shipped with this run" in c.value for c in at.caption)
    assert _charts(at) == 2 + len(quality_metrics(run)) and not at.button(key="study_go").disabled
    stability = at.dataframe[0].value
    assert {"ddpm", "ddim", "euler", "heun", "dpmpp2m"} <= set(stability["sampler"])
    at.multiselect(key="study_nfe_False").set_value([5, 10]).run()        # other inputs: nothing shipped to show
    assert _charts(at) == 0 and not any("shipped with this run" in c.value for c in at.caption)


def test_a_tiny_sweep_draws_charts_stability_and_the_goal_line(run):
    at = _page(run)
    at.selectbox(key="study_run").set_value(f"{NAME} (this session)").run()
    at.multiselect(key="study_samplers").set_value(["ddim", "dpmpp2m"])
    at.multiselect(key="study_nfe_False").set_value([5, 20])
    at.select_slider(key="study_n_False").set_value(64).run()
    at.button(key="study_go").click().run()
    assert not at.exception and not at.error
    charts = 2 + len(quality_metrics(run))                  # one quality panel per metric, time, literature
    assert _charts(at) == charts
    goal = (at.success or at.warning)[0].value
    assert goal.startswith("best at <= 20 NFE: ") and "DDPM with 1000 NFE" in goal
    stability = at.dataframe[0].value
    assert len(stability) == 5 and (stability["nonfinite"] == 0).all() and (stability["max_abs_x"] > 0).all()
    at.run()                                           # stored by its inputs: shown again, nothing to recompute
    assert at.button(key="study_go").disabled and _charts(at) == charts
    at.multiselect(key="study_nfe_False").set_value([]).run()
    assert any("Pick at least one" in i.value for i in at.info)


def test_the_shipped_flow_run_is_studied_with_the_flow_and_the_diffusion_samplers(run):
    at = _page()
    at.selectbox(key="study_run").set_value("moons (2D MLP), flow matching · checkpoints/moons-flow").run()
    assert {"flow_euler", "flow_midpoint", "ddim"} <= set(at.multiselect(key="study_samplers").options)
    at.multiselect(key="study_samplers").set_value(["flow_euler", "ddim"])
    at.multiselect(key="study_nfe_False").set_value([10])
    at.select_slider(key="study_n_False").set_value(64).run()
    at.button(key="study_go").click().run()
    assert not at.exception and not at.error and _charts(at) == 2 + len(quality_metrics(run))   # a 2D run too
    assert set(at.dataframe[0].value["sampler"]) >= {"flow_euler", "ddim"}


def test_a_sweep_is_stopped_at_the_job_budget(run, monkeypatch):
    """Issue 20: a sweep was refused beforehand when its promise passed the budget, but never stopped at it. Here a
    sweep promised 1 s runs into a 3 s budget: it stops within the budget (its warm-up counted), returns
    the rows it measured, says it is incomplete, and is not stored as if it were the answer."""
    monkeypatch.setenv("DIFFUSION_JOB_SECONDS", "3")
    monkeypatch.setenv("DIFFUSION_JOB_NICE", "1")
    server = scheduler.Scheduler(1)
    monkeypatch.setattr(scheduler, "scheduler", lambda: server)
    inputs = dict(samplers=("ddim", "euler", "heun", "dpmpp2m"), nfe_targets=(5, 10, 20, 50, 100, 250), n=500,
                  precisions=("float32",), reference=False)
    reference_for(study_protocol(run, 500, 0), run.config.data)   # the floor at n = 500: once per process
    key, out = ("budget test",), {}

    def sweep() -> None:                 # on a thread of its own, as a page's script runs (turn renices it)
        start = time.monotonic()
        out["frame"], out["complete"] = study_view.run_study(key, run, timing.Estimate("study sweep", 1.0, 1.0),
                                                             lambda fraction, text: None, **inputs)
        out["seconds"] = time.monotonic() - start
    thread = threading.Thread(target=sweep)
    thread.start()
    thread.join(120)
    assert not out["complete"] and 0 < len(out["frame"]) < len(plan(run, inputs["samplers"], inputs["nfe_targets"],
                                                                    False))
    assert out["seconds"] <= 3.0 * 1.1, out["seconds"]
    assert study_view.stored(key) is None and server.counts() == (0, 0)


def _budget_tables(at: AppTest) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe if "network (per sample)" in d.value.columns]


def test_the_shipped_moons_run_shows_its_error_budget_beside_the_curves():
    """Issue 19: behind a toggle (the shipped budget at the page's defaults: drawn at once, said so), each row's W1
    split into floor, solver, network and total: two panels (solver with the floor's band, network) and a table of
    every row with 95% intervals; the exact model said in words, the triangle inequality checked."""
    at = _page()
    toggle = at.toggle(key="study_budget")
    assert "shipped with this run" in toggle.label and not _budget_tables(at)
    charts = _charts(at)
    toggle.set_value(True).run()
    assert not at.exception and not at.error
    assert _charts(at) == charts + 2
    table = _budget_tables(at)[0]
    assert len(table) == len(at.dataframe[0].value)                  # one budget row per sweep row
    assert all(re.fullmatch(r"[\d.e-]+ \[[\d.e-]+, [\d.e-]+\]", cell) for cell in table["solver"])
    captions = " ".join(c.value for c in at.caption)
    assert "quadrature" in captions and "holds in every row" in captions and "ddpm-1000 (1000 NFE)" in captions


def test_a_session_runs_budget_is_computed_on_the_toggle_naming_its_time(run):
    at = _page(run)
    at.selectbox(key="study_run").set_value(f"{NAME} (this session)").run()
    at.multiselect(key="study_samplers").set_value(["ddim"])
    at.multiselect(key="study_nfe_False").set_value([5, 10])
    at.toggle(key="study_ref_False").set_value(False)
    at.select_slider(key="study_n_False").set_value(64).run()
    at.button(key="study_go").click().run()
    assert re.search(r"\(about \d+ s\)", at.toggle(key="study_budget").label)
    at.toggle(key="study_budget").set_value(True).run()
    assert not at.exception and not at.error
    table = _budget_tables(at)[0]
    assert list(table["sampler"]) == ["ddim", "ddim"] and list(table["NFE"]) == [5, 10]
    assert any("the set's law as" in c.value for c in at.caption)      # moons: its law by quadrature
    at.run()                                                           # kept: drawn again, not recomputed
    assert "computed: drawn at once" in at.toggle(key="study_budget").label and len(_budget_tables(at)) == 1


def test_an_image_run_says_the_budget_is_for_2d_runs():
    at = _page()
    image = next(o for o in at.selectbox(key="study_run").options if "checkpoints/mnist16-digit0" in o)
    at.selectbox(key="study_run").set_value(image).run()
    at.multiselect(key="study_samplers").set_value(["ddim"])
    at.multiselect(key="study_nfe_True").set_value([5])
    at.select_slider(key="study_n_True").set_value(16).run()
    at.button(key="study_go").click().run()
    assert not at.exception and not at.error
    assert any("is for 2D runs" in c.value and "no exact law" in c.value for c in at.caption)
    assert not any(t.key == "study_budget" for t in at.toggle)
