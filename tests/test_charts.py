"""The chart module's guarantees that hold before a browser draws anything (docs/charts.md): every panel's plot
area at least MIN_PANEL px tall, the width fitted to the column and the height kept for the plot, SVG named as the
renderer, every mark clipped to its plot area, log axes ticked at 1-2-5 values only, one distinct colour per
sampler. What needs a browser (axes, ticks,
overlaps, cut text) is read by tests/test_browser.py through tests/chart_reader.py."""

import math

import pandas as pd
import pytest

from diffusion.sampling.registry import SAMPLERS
from ui.images import image_conditional
from ui.views import charts, study_view
from ui.views import compare_view as compare

MIN_PANEL = 180

METRIC = pd.DataFrame({"metric": "FID", "step": [100, 200], "value": [30.0, 9.0], "low": [25.0, 8.0],
                       "high": [35.0, 10.0], "floor": 2.0, "floor_low": 1.5, "floor_high": 2.5})
STUDY = pd.DataFrame({"curve": ["ddim", "heun (grid=karras, rho=7.0)"], "precision": "float32", "nfe": [10, 20],
                      "metric": "W1", "value": [0.2, 0.1], "low": 0.05, "high": 0.3, "floor": 0.05,
                      "floor_low": 0.04, "floor_high": 0.06})
BUILT = {
    "schedule": lambda: charts.schedule_curves(pd.DataFrame({"t": [1, 2], "value": [0.1, 0.2]}), 1, "β_t"),
    "metric": lambda: charts.metric_curves(METRIC, log_y=True, y_title="FID"),
    "loss": lambda: charts.loss_curve(pd.DataFrame({"step": [0, 3600], "loss": [1.0, 0.1]})),
    "compare overlay": lambda: compare.metric_overlay(METRIC.assign(run="a", time=1.0, protocol="p"), "step"),
    "study quality": lambda: study_view.quality_panel(STUDY),
    "class shares": lambda: image_conditional.class_histogram(pd.DataFrame(
        {"class": [0, 1], "source": "training set", "share": [0.5, 0.5], "low": 0.5, "high": 0.5})),
}


@pytest.mark.parametrize("name", BUILT)
def test_every_panel_keeps_a_readable_plot_area(name):
    spec = BUILT[name]().to_dict()
    assert spec["height"] >= MIN_PANEL
    assert spec["config"]["autosize"] == {"type": "fit-x", "contains": "padding"}   # titles and axes come on top
    assert spec["config"]["legend"]["orient"] == "bottom" and spec["config"]["legend"]["labelLimit"] == 0


def test_show_and_live_charts_name_the_svg_renderer():
    """Streamlit 1.67 draws a chart of more than 2,000 points on a canvas unless the spec names a renderer."""
    spec = charts._spec(charts.metric_curves, tuple(METRIC.columns), (("log_y", True),))
    assert spec["usermeta"] == {"embedOptions": {"renderer": "svg"}}
    assert all(layer["mark"]["clip"] is True for layer in spec["layer"])       # and clipped (charts.clipped)
    assert charts.SVG == {"embedOptions": {"renderer": "svg"}}


@pytest.mark.parametrize("name", BUILT)
def test_every_mark_of_every_chart_drawn_is_clipped_to_its_plot_area(name):
    """charts.clipped (which show and live_chart apply) sets clip on every mark, keeps a mark's own clip=False, and
    leaves the builder's chart as it was."""
    chart = BUILT[name]()
    before = chart.to_dict()
    spec = charts.clipped(chart).to_dict()
    marks = [layer["mark"] for layer in spec.get("layer", [spec])]
    assert marks and all(m["clip"] is True for m in marks), marks
    assert chart.to_dict() == before


def test_a_marks_own_clip_false_is_kept():
    chart = charts.loss_curve(pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]})).mark_line(clip=False)
    assert charts.clipped(chart).to_dict()["mark"]["clip"] is False


def test_log_axes_tick_round_values_only():
    axis = charts.log_axis("y").to_dict()
    for value in axis["values"]:
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        assert abs(mantissa - round(mantissa)) < 1e-9 and 1 <= round(mantissa) <= 9, value
    assert axis["labelOverlap"] is False and "domain('y')" in axis["labelExpr"]


def test_every_sampler_has_its_own_colour_and_keeps_it_with_its_settings():
    own = {name: charts.colour(name) for name in SAMPLERS}
    assert len(set(own.values())) == len(own), own
    assert charts.colour("ddim (eta=0.0)") == own["ddim"] and charts.colour("moons · heun") == own["heun"]
    assert charts.colour("mnist16-cond") == charts.colour("mnist16-cond")          # a run: stable everywhere
    scale = charts.colours(["ddim", "euler", "ddim"]).to_dict()
    assert scale == {"domain": ["ddim", "euler"], "range": [own["ddim"], own["euler"]]}
    assert charts.colour("mnist") == charts.colour("shapes")                     # the hash collides ...
    datasets = charts.colours(["mnist", "shapes", "moons", "fashion-mnist", "8gaussians"]).to_dict()["range"]
    assert datasets[0] == charts.colour("mnist") and len(set(datasets)) == 5      # ... never within one chart


def test_titles_wrap_to_their_panel():
    title = charts.titled("exact guided law, w = 1.5 (2,000 samples) over the mixture's density", chars=36)
    assert all(len(line) <= 36 for line in title.to_dict()["text"])
    assert " ".join(title.to_dict()["text"]).endswith("density")


def test_a_log_panel_drops_values_it_cannot_place():
    """A floor's lower bound at 0 on a log axis left the FID panels without a domain, so without a y axis."""
    clean = charts.positive(METRIC.assign(floor_low=0.0, step=[0, 1]))
    assert clean["floor_low"].isna().all() and (clean["value"] == METRIC["value"]).all()
    assert clean["step"].tolist() == [0, 1]                  # the x axis (guidance w = 0) keeps its points
