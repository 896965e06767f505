"""The 2D page's "Where the error comes from" through AppTest: behind a button naming its time, the error budget of
the current model (a shipped moons run, the visitor's own) with every row's interval and their protocol, the exact model
said in words, and the denoiser-error chart with titled log axes, tall enough to read."""

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from test_app_toy2d import _give_a_trained_model, _page
from ui.toy2d import error_sources

TERMS = ["floor", "solver", "network", "network, per sample", "total"]


@pytest.fixture(autouse=True)
def small(monkeypatch):
    monkeypatch.setattr(error_sources, "BUDGET_N", 300)
    monkeypatch.setattr(error_sources, "CURVE_N", 200)


def _budget_tables(at: AppTest) -> list:
    return [t.value for t in at.table if "W1 [95% interval]" in t.value.columns]


def _budget_table(at: AppTest):
    tables = _budget_tables(at)
    assert len(tables) == 1
    return tables[0]


def _protocol(at: AppTest) -> str:
    """The one protocol of every row, said under the table."""
    found = [m.group(1) for c in at.caption for m in [re.search(r"Protocol of every row: (\S+)\.", c.value)] if m]
    assert len(found) == 1, [c.value for c in at.caption]
    return found[0]


def _chart(at: AppTest) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart") + at.get("arrow_vega_lite_chart")]
    found = [s for s in specs if "not learned" in json.dumps(s.get("title", ""))]
    assert len(found) == 1
    return found[0]


def test_the_budget_of_a_shipped_run_shows_each_term_with_its_interval_and_protocol():
    at = _page()
    at.button(key="toy2d_use_moons").click().run()
    run_button = at.button(key="toy2d_error_budget_button")
    assert re.search(r"Compute the error budget \(about \d+ s\)", run_button.label)
    assert not _budget_tables(at)                                        # nothing before the click
    run_button.click().run()
    assert not at.exception
    table = _budget_table(at)
    assert list(table.index) == TERMS
    assert all(re.fullmatch(r"[\d.e-]+ \[[\d.e-]+, [\d.e-]+\]", cell) for cell in table["W1 [95% interval]"])
    assert _protocol(at) == "2d·n300·fresh·ddim100·spacing=cubic·s0"
    assert "quadrature" in " ".join(c.value for c in at.caption)
    chart = _chart(at)
    assert chart["height"] >= 180
    layers = chart["layer"]
    line = layers[1]["encoding"]
    assert line["x"]["title"] == "noise level σ (log)" and line["x"]["scale"]["type"] == "log"
    assert line["y"]["title"] == "mean squared error (log)" and line["y"]["scale"]["type"] == "log"
    at.radio(key="toy2d_error_budget_sampler").set_value("heun").run()   # another sampler: its own click and time
    assert not _budget_tables(at)
    at.button(key="toy2d_error_budget_button").click().run()
    assert not at.exception
    assert list(_budget_table(at).index) == TERMS and _protocol(at) == "2d·n300·fresh·heun25·grid=equal_error·s0"


def test_the_visitors_own_model_gets_its_budget_with_the_exact_law():
    at = _page()
    _give_a_trained_model(at, "8gaussians")
    at.button(key="toy2d_error_budget_button").click().run()
    assert not at.exception
    table = _budget_table(at)
    assert list(table.index) == TERMS and _protocol(at) == "2d·n300·fresh·ddim100·spacing=cubic·s0"
    assert any("the set's exact law" in c.value for c in at.caption)
    assert "total" in " ".join(at.markdown[i].value for i in range(len(at.markdown)))
