"""The analytic-denoiser sections of Phase 2 and Phase 3 and Phase 2's training-set-size section through AppTest, on
the shipped runs: behind buttons naming their time; once pressed, four grids from the same noises with their
distances (Phase 3: one sample per class, classes named), the agreement chart, and the sweep's grids, table and
charts."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from diffusion.explore import analytic_comparison as an
from diffusion.explore.size_sweep import SWEEP_FOLDERS
from ui.images import image_analytic
from ui.jobs import shipped_runs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def _page(page: str = "mnist_digit") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page}.py").run()
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
    assert "median d1 / typical 0.00 [0.00, 0.00]" in empirical       # the optimal denoiser copies its training set
    assert len(at.get("image")) == images + 4
    table = next(t.value for t in at.table if "RMS to network" in t.value.columns)   # a row per denoiser, wrapped
    assert list(table.index) == [an.LABELS[k] for k in ("network", *an.ANALYTIC)]
    assert table.loc[an.LABELS["empirical"], "median d1 / typical"] == "0.00 [0.00, 0.00]"     # it copies, always
    assert table.loc[an.LABELS["network"], "RMS to network"] == "—"
    assert all(re.fullmatch(r"\d+% \[\d+%, \d+%\]", cell) for cell in table["copies"])
    number = r"[\d.e+-]+ \[[\d.e+-]+, [\d.e+-]+\]"                            # every number with its interval
    assert all(re.fullmatch(number, cell) for column in ("median d1", "median d1 / typical") for cell in table[column])
    assert all(re.fullmatch(number, cell) for cell in table["RMS to network"].iloc[1:])
    assert any("95% intervals (medians: order statistics" in c.value for c in at.caption)
    charts = _charts(at)
    _open(at, "digit_agreement")
    assert _charts(at) == charts + 1
    assert any("Closest at each t" in c.value for c in at.caption)


def test_class_conditional_analytic_denoisers_on_phase_3(monkeypatch):
    """The shipped mnist16-cond run: one sample per digit for each denoiser, the digits named in reading order, the
    optimal denoiser's samples copies (of their own class's images, tests/test_explore_analytic.py checks)."""
    monkeypatch.setattr(image_analytic, "SIDE_STEPS", 4)              # small: seconds, not tens
    at = _page("mnist_conditional")
    _open(at, "cond_analytic")
    captions = [c for c in _captions(at) if "median d1" in c]
    assert [c.split(":")[0] for c in captions] == [an.LABELS[k] for k in ("network", *an.ANALYTIC)]
    assert "median d1 / typical 0.00 [0.00, 0.00]" in next(c for c in captions if c.startswith(an.LABELS["empirical"]))
    assert any("one per class: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9; w = 1" in c.value for c in at.caption)
    assert at.button(key="cond_agreement_run")                         # the agreement waits behind its own button


def test_size_sweep_on_demand():
    shipped = [f for f in SWEEP_FOLDERS.values() if (shipped_runs.SHIPPED_ROOT / f / "config.json").is_file()]
    assert shipped == list(SWEEP_FOLDERS.values()), shipped            # the sweep is shipped: it needs no training
    at = _page()
    charts = _charts(at)
    _open(at, "digit_sweep")
    captions = [c for c in _captions(at) if c.startswith("N = ")]
    assert [c.split(":")[0] for c in captions] == [f"N = {n:,}" for n in SWEEP_FOLDERS]
    assert all(re.search(r"median d1 / typical [\d.]+ \[[\d.]+, [\d.]+\]$", c) for c in captions), captions
    assert _charts(at) == charts + 2                                  # copies and FID against N
    rows = [c.value for c in at.caption if c.value.startswith("N = ")]
    assert len(rows) == len(SWEEP_FOLDERS) and all("FID" in r and "floor" in r and "copies" in r for r in rows)
