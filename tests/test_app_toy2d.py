"""The 2D page through AppTest: the training widgets follow each dataset's recipe, the expected time is shown, the
shipped runs power the sections after training until the visitor trains, the animations are Plotly figures with
frames and Play/Pause, the field grid follows its setting, and the flow and likelihood sections compute on a click.
(Playback in a real browser is tests/test_browser.py.)"""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from diffusion.data import load_data
from diffusion.explore.toy2d_experiments import toy_points
from diffusion.config import DataConfig
from diffusion.training.defaults import recipe_2d
from diffusion.training.trainer import Trainer
from ui.toy2d import flow2d
from ui.toy2d.models2d import CHOICE_KEY
from ui.jobs.training import JOB_KEY, TrainingJob, run_config

ROOT = Path(__file__).resolve().parents[1]
TOY2D = "app_pages/toy2d.py"


def _page() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=180).run().switch_page(TOY2D).run()


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _array(value) -> np.ndarray:
    """A Plotly 7 JSON array: a list, or {"dtype", "bdata": base64}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def _animations(at: AppTest) -> list[dict]:
    return [f for f in _figures(at) if f.get("frames")]


def _give_a_trained_model(at: AppTest, dataset: str = "moons", steps: int = 20) -> TrainingJob:
    """A tiny model of `dataset` trained for `steps` steps (T = 100), set as the visitor's model, page rerun."""
    x = load_data(DataConfig(dataset, n=512)).x
    job = TrainingJob(Trainer(run_config(dataset, "linear", 100, 32, 1, 1e-3, 64, steps), x))
    job.start(steps, None, 0)
    assert job.wait(60)
    at.session_state[JOB_KEY] = job
    at.run()
    assert not at.exception
    return job


@pytest.fixture(scope="module")
def shipped() -> AppTest:
    """A visitor who pressed "Use the shipped moons run" before training anything."""
    at = _page()
    assert not at.exception
    assert any("use a shipped run" in i.value for i in at.info)          # sections 4 on wait for a model
    at.button(key="toy2d_use_moons").click().run()
    assert not at.exception
    return at


def test_training_widgets_take_each_datasets_recipe_and_show_the_expected_time():
    at = _page()
    for dataset in ("moons", "spirals", "8gaussians"):
        if dataset != "moons":
            at.selectbox(key="toy2d_dataset").set_value(dataset).run()
        r = recipe_2d(dataset)
        assert at.select_slider(key="toy2d_width").value == r.width
        assert at.slider(key="toy2d_depth").value == r.depth
        assert at.select_slider(key="toy2d_lr").value == r.lr
        assert at.select_slider(key="toy2d_batch").value == r.batch_size
        assert at.radio(key="toy2d_objective").value == r.objective
        assert at.radio(key="toy2d_decay").value == r.decay
        assert at.slider(key="toy2d_steps").value == r.steps
    text = " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])
    assert "close to the floor in about 20 s" not in text       # the old canned promise (a real one may read 20 s)
    expected = re.search(r"Expected: about (\d+) (s|min) on this machine", text)   # ui.jobs.timing's promise
    assert expected and int(expected.group(1)) >= 1


def test_the_shipped_run_powers_the_reverse_process_fields_and_samplers(shipped):
    at = shipped
    assert any("shipped moons run" in c.value for c in at.caption)
    animations = _animations(at)
    assert len(animations) == 2                                           # forward and reverse processes
    reverse = animations[1]
    buttons = reverse["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["▶ Play", "❚❚ Pause"] and {b["method"] for b in buttons} == {"animate"}
    frames = reverse["frames"]
    assert 2 <= len(frames) <= 101 and len(reverse["layout"]["sliders"][0]["steps"]) == len(frames)
    first, last = (np.stack([_array(frames[i]["data"][0][c]) for c in "xy"], 1) for i in (0, -1))
    assert first.shape == last.shape == (300, 2)
    true = toy_points("moons", 2000, 0)
    gap = {name: np.linalg.norm(x[:, None] - true[None], axis=2).min(1).mean() for name, x in
           (("x_T", first), ("x_0", last))}
    assert gap["x_0"] < 0.1 < gap["x_T"]                                  # from noise onto the two moons
    assert at.dataframe, "the samplers section shows its metrics"


def test_the_field_grid_follows_its_setting(shipped):
    at = shipped
    at.select_slider(key="toy2d_field_size").set_value(9).run()
    assert not at.exception
    heads = [t for f in _figures(at) for t in f["data"] if t.get("name") == "arrow heads"]
    assert [len(_array(t["x"])) for t in heads] == [81]                   # moons has no exact field


def test_a_model_trained_after_choosing_a_shipped_run_takes_over(shipped):
    at = shipped
    assert at.session_state[CHOICE_KEY][0] == "moons"
    _give_a_trained_model(at)
    assert any(c.value.startswith("Model: Your model") for c in at.caption)
    at.button(key="toy2d_use_moons-flow").click().run()
    assert any("moons-flow" in c.value and c.value.startswith("Model:") for c in at.caption)
    at.button(key="toy2d_use_mine").click().run()
    assert any(c.value.startswith("Model: Your model") for c in at.caption)


def test_flow_and_likelihood_sections_compute_on_a_click(shipped, monkeypatch):
    monkeypatch.setattr(flow2d, "NLL_N", 100)                            # small: seconds, not tens
    monkeypatch.setattr(flow2d, "DENSITY_SIZE", 9)
    monkeypatch.setattr(flow2d, "QUALITY_NFE", (2, 10))
    monkeypatch.setattr(flow2d, "QUALITY_N", 300)
    at = shipped
    at.button(key="toy2d_use_moons-flow").click().run()
    paths = [f for f in _figures(at) if any(t.get("name") == "flow paths" for t in f["data"])]
    assert len(paths) == 1
    straight = [d.value for d in at.dataframe if "straightness S" in d.value.columns]
    assert len(straight) == 1 and list(straight[0]["model"]) == ["diffusion", "flow"]
    at.button(key="toy2d_quality_button").click().run()
    assert not at.exception
    at.button(key="toy2d_nll_button").click().run()
    assert not at.exception
    table = [t.value for t in at.table if t.value.index.name == "quantity"][0]
    model, floor = (float(v.split(" ± ")[0]) for v in table["value"].iloc[:2])
    assert abs(model - floor) < 0.3                                      # a good moons model: near the floor
    at.button(key="toy2d_density_button").click().run()
    assert not at.exception
    titles = [f["layout"]["title"]["text"] for f in _figures(at)]
    assert "model density (ODE likelihood)" in titles and "true density" in titles
    at.run()                                                              # asked once: still shown on a rerun
    assert "model density (ODE likelihood)" in [f["layout"]["title"]["text"] for f in _figures(at)]


def test_the_density_map_promise_counts_the_solver_on_grid_points_not_on_the_likelihoods(monkeypatch):
    """Grid points far from the data take more solver steps than held-out points: the density map's first promise
    counts them on a 4 x 4 grid of its own window, and a likelihood's record does not stand in for it."""
    from diffusion.explore.flow_experiments import density_map
    from diffusion.training.checkpoints import load_run
    run = load_run(ROOT / "checkpoints" / "moons")
    monkeypatch.setattr(flow2d, "SOLVER_RECORD", {"likelihood": [10.0], "density map": []})
    counted = flow2d.solver_evaluations("density map", "moons-test", run)
    assert counted == density_map(run, 4)["nfe"] > 10
    assert flow2d.solver_evaluations("likelihood", "moons-test", run) == 10.0
    flow2d.SOLVER_RECORD["density map"].append(123.0)
    assert flow2d.solver_evaluations("density map", "moons-test", run) == 123.0


def test_a_mixture_model_shows_the_exact_field_beside_the_learned_one_on_one_colour_scale():
    at = _page()
    _give_a_trained_model(at, "8gaussians")
    fields = {f["layout"]["title"]["text"]: next(t for t in f["data"] if t.get("name") == "arrow heads")
              for f in _figures(at) if any(t.get("name") == "arrow heads" for t in f["data"])}
    assert sorted(fields) == ["exact E[x_0 | x_t], t = 20", "learned, t = 20"]
    scales = {(t["marker"]["cmin"], t["marker"]["cmax"]) for t in fields.values()}
    assert len(scales) == 1 and next(iter(scales))[1] > 0


def test_the_visitors_model_and_its_flow_twin_are_compared_from_the_same_noises():
    at = _page()
    job = _give_a_trained_model(at, steps=30)
    at.radio(key="toy2d_flow_source").set_value("own").run()
    assert any("Its flow twin" in c.value for c in at.caption)
    at.button(key="toy2d_twin_train").click().run()
    twin = at.session_state["toy2d_twin_job"]
    assert twin.wait(60) and twin.config.train.objective == "flow" and twin.trainer.step == 30
    assert twin.config.model == job.config.model and twin.config.data == job.config.data
    at.run()
    assert not at.exception
    straight = [d.value for d in at.dataframe if "straightness S" in d.value.columns]
    assert len(straight) == 1 and list(straight[0]["model"]) == ["diffusion", "flow"]
    assert any("Your model and its twin" in m.value for m in at.markdown)
