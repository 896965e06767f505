"""The Phase 2 page's analytic-denoiser and training-set-size sections through AppTest, on the shipped runs: behind
buttons naming their time; once pressed, four grids from the same noises with their distances, the agreement chart,
and the sweep's grids, table and charts."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from diffusion.explore import analytic_comparison as an
from diffusion.explore.size_sweep import SWEEP_FOLDERS
from ui.jobs import shipped_runs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/mnist_digit.py").run()
    assert not at.exception, at.exception
    return at


def _open(at: AppTest, key: str) -> None:
    button = at.button(key=f"{key}_run")
    assert re.search(r"about \d+ (s|min) on this machine\)$", button.label), button.label
    button.click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def _captions(at: AppTest) -> list[str]:
    return [c for element in at.get("image") for c in element.captions]


def _charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))


def test_analytic_denoisers_and_agreement_on_demand():
    at = _page()
    images = len(at.get("image"))
    _open(at, "digit_analytic")
    captions = [c for c in _captions(at) if "median d1" in c]
    assert [c.split(":")[0] for c in captions] == [an.LABELS[k] for k in ("network", *an.ANALYTIC)]
    empirical = next(c for c in captions if c.startswith(an.LABELS["empirical"]))
    assert "median d1 0.00, d1 / typical 0.00" in empirical          # the optimal denoiser copies its training set
    assert len(at.get("image")) == images + 4 and len(at.dataframe) >= 1
    charts = _charts(at)
    _open(at, "digit_agreement")
    assert _charts(at) == charts + 1
    assert any("Closest at each t" in c.value for c in at.caption)


def test_size_sweep_on_demand():
    shipped = [f for f in SWEEP_FOLDERS.values() if (shipped_runs.SHIPPED_ROOT / f / "config.json").is_file()]
    assert shipped == list(SWEEP_FOLDERS.values()), shipped            # the sweep is shipped: it needs no training
    at = _page()
    charts = _charts(at)
    _open(at, "digit_sweep")
    captions = [c for c in _captions(at) if c.startswith("N = ")]
    assert [c.split(":")[0] for c in captions] == [f"N = {n:,}" for n in SWEEP_FOLDERS]
    assert _charts(at) == charts + 2                                  # copies and FID against N
    rows = [c.value for c in at.caption if c.value.startswith("N = ")]
    assert len(rows) == len(SWEEP_FOLDERS) and all("FID" in r and "floor" in r and "copies" in r for r in rows)
