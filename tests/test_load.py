"""The load test of issue 14, small: three visitors of a real server limited to one job press Train (one long
job, two short ones); at most one job runs at a time, the others queue and say so, then finish; new visitors'
Overview renders in under 3 s meanwhile (the faster of two new visitors: on a shared CI machine one render can
catch a busy moment), in a browser and Playwright driver of their own while the training visitors' run nicer, as on
their own machines; closing the training visitor's page ends its job within 10 s.
benchmarks/bench_load.py runs the same with eight visitors (figures in docs/public-demo.md)."""

import os
from pathlib import Path

import pytest

from streamlit_server import CHROMIUM

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from load_visitors import LONG_SECONDS, run_load  # noqa: E402

OVERVIEW_S, CLOSE_S = 3.0, 10.0      # the goals
pytestmark = pytest.mark.alone       # it times a new visitor's page: no other test beside it (conftest)


def test_three_visitors_one_slot(tmp_path):
    result = run_load(visitors=3, slots=1, log=tmp_path / "jobs.jsonl", visitors_nice=19)
    assert result.max_running == 1 and result.started == 3
    assert sorted(set(result.positions)) == [1, 2], result
    assert min(result.overview_seconds) < OVERVIEW_S, result
    assert result.close_to_stop < CLOSE_S and result.closed_job_ran < LONG_SECONDS / 2, result
    assert result.finished_short == 2
