"""The compare page through AppTest: it lists the repository's runs, folders typed in and this session's runs (the
2D page's model included), overlays curves of the picked runs, plots the analysis, and answers a bad folder or a
broken run with an error, never an exception."""

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from diffusion.cli import main
from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.explore import catalog
from diffusion.metrics.measure import measure
from diffusion.training.trainer import Trainer
from ui.jobs.session_runs import KEY as SESSION_RUNS_KEY
from ui.jobs.training import JOB_KEY, TrainingJob

ROOT = Path(__file__).resolve().parents[1]
COMPARE, TOY2D = "app_pages/compare.py", "app_pages/toy2d.py"
TIMEOUT = 120
STEPS = 20


@pytest.fixture(autouse=True)
def allowed_roots(tmp_path_factory, monkeypatch):
    """The app confines typed folders to its run roots (ui.jobs.roots): here, pytest's temporary folders."""
    monkeypatch.setenv("DIFFUSION_RUNS_DIRS", str(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    """A 2D moons run trained in this process, with W1/W2/KL measured at its last step."""
    config = RunConfig(data=DataConfig("moons"), train=TrainConfig(steps=STEPS, batch_size=64))
    tr = Trainer(config, load_data(config.data).x)
    tr.run()
    tr.log(**measure(tr.as_run()))
    return tr


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, trainer) -> Path:
    """A folder of runs: one from the CLI, one with measured metrics, one whose config.json is corrupt."""
    root = tmp_path_factory.mktemp("compare")
    assert main(["train", "--dataset", "moons", "--steps", str(STEPS), "--timesteps", "100",
                 "--out", str(root / "cli-moons")]) == 0
    trainer.save(root / "measured")
    shutil.copytree(root / "cli-moons", root / "corrupt")
    (root / "corrupt" / "config.json").write_text("{")
    return root


def _compare(**session) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run().switch_page(COMPARE).run()
    assert not at.exception
    return at


def _add(at: AppTest, path: str) -> AppTest:
    at.text_input(key="compare_path").input(path)
    at.button(key="compare_add").click().run()
    assert not at.exception
    return at


def _names(at: AppTest) -> list[str]:
    return at.dataframe[0].value["run"].tolist()          # the overview a visitor reads first


def _table(at: AppTest):
    return at.dataframe[1].value                          # every column, in its expander


def _charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))


def test_the_page_lists_the_repository_runs_and_a_folder_typed_in(runs_dir):
    at = _compare()
    shipped = [p.name for p in catalog.discover()]
    if shipped:
        assert set(shipped) <= set(_names(at))
    _add(at, str(runs_dir))
    table = _table(at)
    assert {"cli-moons", "measured", "corrupt"} <= set(table["name"]) <= set(_names(at))
    overview = at.dataframe[0].value.set_index("run")
    assert overview.loc["measured", "quality [95%]"].startswith("W1 ") and overview.loc["corrupt", "floor"] == ""
    added = table.set_index("name").loc[["cli-moons", "measured"]]
    assert (added["steps"] == STEPS).all() and (added["kind"] == "2D MLP").all() and (added["error"] == "").all()
    assert added.loc["cli-moons", "T"] == 100 and added.loc["measured", "w1"] > 0
    assert "unreadable run" in table.set_index("name").loc["corrupt", "error"]
    assert any("corrupt" in w.value for w in at.warning)
    assert at.text_input(key="compare_path").value == ""


def test_a_bad_folder_path_shows_an_error_box_naming_it(tmp_path):
    at = _compare()
    _add(at, str(tmp_path / "no-such-run"))
    assert any(str(tmp_path / "no-such-run") in e.value for e in at.error)
    _add(at, str(tmp_path))                       # exists, but holds no run
    assert any(f"no run in '{tmp_path}'" in e.value for e in at.error)


def test_picked_runs_get_overlaid_loss_and_metric_curves_and_an_analysis(runs_dir, trainer):
    at = _add(_compare(**{SESSION_RUNS_KEY: {"session moons": trainer.as_run()}}), str(runs_dir))
    assert "session" in _table(at).set_index("name").loc["session moons", "source"]
    at.multiselect(key="compare_pick").set_value([]).run()
    assert _charts(at) == 1 and any("Pick runs" in i.value for i in at.info)             # the analysis only
    at.multiselect(key="compare_pick").set_value(["cli-moons", "measured", "session moons"]).run()
    panels = _charts(at) - 2                                 # loss, one panel per metric measured, analysis
    assert panels >= 1
    at.radio(key="compare_x").set_value("time")
    at.toggle(key="compare_log").set_value(False).run()
    assert not at.exception and _charts(at) == 2 + panels
    at.selectbox(key="compare_metric").set_value("w1")
    for axis in ("schedule", "parameters", "learning rate"):
        at.selectbox(key="compare_axis").set_value(axis).run()
        assert not at.exception and _charts(at) == 2 + panels
        assert any("Each point is one run" in c.value and axis in c.value for c in at.caption)


def test_the_2d_pages_model_is_listed_for_this_session(trainer):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[JOB_KEY] = TrainingJob(trainer)
    at.run().switch_page(TOY2D).run()
    assert not at.exception
    registered = at.session_state[SESSION_RUNS_KEY]
    assert len(registered) == 1 and next(iter(registered.values())).step == STEPS
    at.switch_page(COMPARE).run()
    assert not at.exception
    row = _table(at).set_index("name").loc[next(iter(registered))]
    assert (row["source"], row["dataset"], row["steps"]) == ("session", "moons", STEPS)
    at.switch_page(TOY2D).run()
    at.button(key="toy2d_reset").click().run()                # discarded: no page lists it any more
    at.switch_page(COMPARE).run()
    assert not at.exception and next(iter(registered)) not in set(_names(at))


def test_compare_opens_on_todays_protocol():
    """The overlay's protocol and the analysis' group default to today's protocols, the legacy ('old·...') and
    unrecorded ones after them."""
    from diffusion.metrics.measure import LEGACY
    from ui.views import compare_view as compare
    labels = ["old·fid·clf·n100·train-halves·ddim50·s0 on mnist", "no protocol recorded on mnist",
              "fid·clf·n500·heldout·ddim20·s0 on mnist"]
    assert compare.current_first(labels) == [labels[2], labels[0], labels[1]]
    assert all(protocol.startswith(compare.LEGACY_PREFIX) for protocol in LEGACY.values())


def test_the_curves_open_on_measured_runs_of_one_data():
    """On arrival the overlay holds the runs on one data with the most points under one of today's protocols (the
    shipped moons pair, diffusion and flow: 6 measurements each along training), not the first folders in the list
    (size-sweep runs with a loss only) nor runs measured once; with no measured run, the first three."""
    from diffusion.explore import catalog
    from ui.views import compare_view as compare
    at = _compare()
    picked = at.multiselect(key="compare_pick").value
    assert picked == ["moons", "moons-flow"], picked
    assert not any("None of these runs logged" in c.value for c in at.caption)
    runs = [catalog.read_folder(ROOT / "checkpoints" / name) for name in ("fashion16-boot-n10", "fashion16-boot-n30")]
    assert compare.default_overlay(runs) == ["fashion16-boot-n10", "fashion16-boot-n30"]
