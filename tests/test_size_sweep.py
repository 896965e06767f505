"""The shipped training-set-size sweep (explore.size_sweep): each run saw N images, and its samples pass from copies of
its training images at the smallest N to new images at the largest, with FID measured under the protocol."""

import pytest

from diffusion.explore import size_sweep as sw
from diffusion.sampling.sampler_config import SamplerConfig


@pytest.fixture(scope="module")
def runs():
    found = sw.sweep_runs()
    assert list(found) == list(sw.SWEEP_N), f"shipped sweep runs missing: {set(sw.SWEEP_N) - set(found)}"
    return found


def test_each_run_saw_its_n_images(runs):
    assert {n: sw.training_size(run) for n, run in runs.items()} == {n: n for n in sw.SWEEP_N}


def test_samples_move_from_copies_to_new_images(runs):
    ends = {n: runs[n] for n in (min(runs), max(runs))}
    table, sets = sw.sweep_table(ends, n=48, sampler=SamplerConfig("ddim", steps=20))
    small, large = table.iloc[0], table.iloc[1]
    assert small["copies"] > 0.25 and small["median d1 / typical"] < 0.5    # N = 10: half the samples copy an image
    assert large["copies_high"] < small["copies_low"] and large["median d1 / typical"] > 0.9   # N = 1,000: none
    assert small["median d1 / typical_high"] < large["median d1 / typical_low"]        # the medians' intervals apart
    assert (table["fid_low"] <= table["fid"]).all() and (table["fid"] <= table["fid_high"]).all()
    assert table["protocol"].str.startswith("fid·clf·n48·test·ddim20").all()
    assert [len(s.ratio) for s in sets.values()] == [48, 48]
