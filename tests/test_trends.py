"""Captions computed from measured curves (diffusion.explore.trends): a change is named only when the intervals of
two neighbouring points do not overlap; a level run whose ends differ beyond their intervals drifts."""

import pytest

from diffusion.explore import trends

W = [0, 1, 2, 3, 5, 8]


def _describe(values, half):
    return trends.describe("diversity", "w", W, values, [v - half for v in values], [v + half for v in values])


def test_the_guidance_issue_case_falls_then_rises():
    """The issue's caption said diversity falls with w while the measured curve rose from w = 3 to 8."""
    text = _describe([10.0, 8.0, 7.0, 7.2, 8.0, 9.0], half=0.3)
    assert text == ("diversity: 10 at w = 0, falls to 7 at w = 2, then stays level (within the 95% intervals) to "
                    "w = 3, then rises to 9 at w = 8")


def test_noise_is_level_and_a_slow_climb_drifts():
    assert _describe([5.0, 5.2, 4.9, 5.1, 5.0, 5.2], half=0.5) == \
        "diversity: 5 at w = 0, stays level (within the 95% intervals) to w = 8"
    assert _describe([5.0, 5.4, 5.8, 6.2, 6.6, 7.0], half=0.5) == \
        "diversity: 5 at w = 0, drifts up gradually to 7 at w = 8"


def test_moves_need_disjoint_intervals():
    assert trends.moves([1.0, 2.0, 1.9, 1.0], [0.9, 1.5, 1.4, 0.9], [1.1, 3.0, 2.4, 1.1]) == ["up", "level", "down"]
    assert trends.moves([1.0], [0.9], [1.1]) == []


def test_rows_are_read_in_order_of_x():
    rows = [{"w": 3.0, "acc": 0.9, "acc_low": 0.85, "acc_high": 0.95},
            {"w": 0.0, "acc": 0.3, "acc_low": 0.25, "acc_high": 0.35}]
    assert trends.describe_rows(rows, "w", "acc", "accuracy", "w", "{:.0%}".format) == \
        "accuracy: 30% at w = 0, rises to 90% at w = 3"


@pytest.mark.parametrize("values", [[], [1.0]])
def test_one_point_or_none(values):
    text = trends.describe("FID", "w", W[:len(values)], values, values, values)
    assert text == ("FID: no measurement" if not values else "FID: 1 at w = 0")
