"""Captions computed from measured curves: what a sequence of measurements with 95% intervals shows, in words, so
that a page says what its data do rather than what they are expected to do."""

from collections.abc import Callable, Sequence


def moves(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[str]:
    """'up', 'down' or 'level' between consecutive points (len - 1 of them): a change counts only when the two
    intervals do not overlap."""
    out = []
    for i in range(1, len(values)):
        if lows[i] > highs[i - 1]:
            out.append("up")
        elif highs[i] < lows[i - 1]:
            out.append("down")
        else:
            out.append("level")
    return out


def _segments(steps: list[str]) -> list[tuple[str, int, int]]:
    """Runs of equal moves: (move, first point, last point)."""
    out: list[tuple[str, int, int]] = []
    for i, move in enumerate(steps):
        if out and out[-1][0] == move:
            out[-1] = (move, out[-1][1], i + 1)
        else:
            out.append((move, i, i + 1))
    return out


def describe(label: str, x_name: str, xs: Sequence[float], values: Sequence[float], lows: Sequence[float],
             highs: Sequence[float], fmt: Callable[[float], str] = "{:.3g}".format) -> str:
    """'label accuracy: 41% at w = 0, rises to 97% at w = 3, then stays level (within the 95% intervals) to w = 8'.
    A level run whose ends differ beyond their intervals drifts (up or down) gradually."""
    if not values:
        return f"{label}: no measurement"
    parts = [f"{label}: {fmt(values[0])} at {x_name} = {xs[0]:g}"]
    for k, (move, i, j) in enumerate(_segments(moves(values, lows, highs))):
        lead = "then " if k else ""
        if move == "level":
            drift = "up" if lows[j] > highs[i] else "down" if highs[j] < lows[i] else ""
            parts.append(f"{lead}drifts {drift} gradually to {fmt(values[j])} at {x_name} = {xs[j]:g}" if drift else
                         f"{lead}stays level (within the 95% intervals) to {x_name} = {xs[j]:g}")
        else:
            verb = "rises" if move == "up" else "falls"
            parts.append(f"{lead}{verb} to {fmt(values[j])} at {x_name} = {xs[j]:g}")
    return ", ".join(parts)


def describe_rows(rows: Sequence[dict], x: str, metric: str, label: str, x_name: str,
                  fmt: Callable[[float], str] = "{:.3g}".format) -> str:
    """describe() of metric (with its _low, _high) over rows sorted by x."""
    rows = sorted(rows, key=lambda r: r[x])
    return describe(label, x_name, [r[x] for r in rows], [r[metric] for r in rows],
                    [r[f"{metric}_low"] for r in rows], [r[f"{metric}_high"] for r in rows], fmt)
