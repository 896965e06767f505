"""Animations that play in the browser: Plotly figures with one frame per step, Play and Pause buttons and a frame
slider (Plotly.animate runs client-side: no server round trip per frame). The forward process (x_0 to x_T over the
noised density) and the reverse process (particles from x_T to x_0, the current frame marked on the paths).
"""

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from diffusion.explore.densities import DensityGrid

from ui.toy2d.plots2d import COLOURS, contour_lines, figure, points_trace

SPEEDS = {"0.5×": 200, "1×": 100, "2×": 50, "4×": 25}     # milliseconds per frame
MAX_FRAMES = 100               # frames kept in one animation (the last always)


def thin(frames: np.ndarray, most: int = MAX_FRAMES) -> np.ndarray:
    """At most `most` of the sorted frame numbers, evenly spaced, the first and last kept."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(most, len(frames))).round().astype(int))
    return frames[idx]


def controls(labels: list[str], names: list[str], duration: int, prefix: str) -> dict:
    """Play/Pause buttons and a frame slider for frames `names` (slider labels `labels`): layout fields. Frames
    move scatter traces only, so no redraw is needed (the densities are drawn as line traces for that)."""
    play = dict(frame=dict(duration=duration, redraw=False), transition=dict(duration=0), fromcurrent=True,
                mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    buttons = [dict(label="▶ Play", method="animate", args=[None, play]),
               dict(label="❚❚ Pause", method="animate", args=[[None], pause])]
    steps = [dict(label=label, method="animate", args=[[name], pause]) for label, name in zip(labels, names)]
    return dict(margin=dict(b=150),             # the buttons on one row, the slider and its ticks on the next
                legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.02),   # right of the square
                updatemenus=[dict(type="buttons", direction="left", x=0.0, y=0.0, xanchor="left", yanchor="top",
                                  pad=dict(r=8, t=34), showactive=False, buttons=buttons)],   # below the x ticks
                sliders=[dict(active=0, steps=steps, x=0.0, len=1.0, y=0.0, yanchor="top", pad=dict(t=74, b=4),
                              currentvalue=dict(prefix=prefix, font=dict(size=13), xanchor="right"),
                              font=dict(color="rgba(0,0,0,0)"),   # no step labels: Plotly shows every k-th one, so
                                                                  # they stop short of the end (833 of 1,000)
                              transition=dict(duration=0))])


def _xy(df: pd.DataFrame, x: str = "x", y: str = "y") -> dict:
    return dict(x=df[x].to_numpy(), y=df[y].to_numpy())


def forward(frames: pd.DataFrame, grids: list[DensityGrid] | None, duration: int) -> go.Figure:
    """The forward process (explore.toy2d.forward_frame: columns frame, t, point, x, y), each frame's cloud over the
    exact (or kernel-estimate) density of x_t at that t when grids (one per frame) are given."""
    fig = figure("Forward process: x_0 → x_T (press Play)", height=520)
    numbers = np.sort(frames["frame"].unique())
    first = frames[frames["frame"] == numbers[0]]
    if grids is not None:
        fig.add_trace(contour_lines(grids[0], "density of x_t"))
    fig.add_trace(points_trace(first, "x_t", COLOURS["noised"]))
    traces = [0, 1] if grids is not None else [0]
    out, labels = [], []
    for i, k in enumerate(numbers):
        rows = frames[frames["frame"] == k]
        data = [go.Scatter(**_xy(rows))]
        if grids is not None:
            data = [contour_lines(grids[i], "density of x_t"), *data]      # its own levels: the peak falls
        out.append(go.Frame(data=data, traces=traces, name=str(k)))
        labels.append(str(int(rows["t"].iloc[0])))
    fig.frames = out
    fig.update_layout(**controls(labels, [f.name for f in out], duration, "t = "))
    return fig


def reverse(traj: pd.DataFrame, n_paths: int, grid: DensityGrid | None, duration: int, height: int = 520
            ) -> go.Figure:
    """The reverse process (explore.toy2d.trajectory_frame: columns frame, t, point, x, y, x0_x, x0_y): particles
    x_t from x_T to x_0 and their x̂_0, with the first n_paths particles' whole paths drawn and their current
    position marked on them. Frames thinned to MAX_FRAMES."""
    fig = figure("Reverse process: x_T → x_0 (press Play)", height=height)
    numbers = thin(np.sort(traj["frame"].unique()))
    shown = traj[traj["frame"].isin(numbers)]
    if grid is not None:
        fig.add_trace(contour_lines(grid, "data density"))
    lines = shown[shown["point"] < n_paths].sort_values(["point", "frame"])
    gap = pd.DataFrame({"point": range(n_paths), "frame": np.inf, "x": np.nan, "y": np.nan})
    lines = pd.concat([lines, gap]).sort_values(["point", "frame"])
    fig.add_trace(go.Scatter(**_xy(lines), mode="lines", name=f"{n_paths} paths", hoverinfo="skip",
                             line=dict(color=COLOURS["path"], width=1), opacity=0.6))
    first = shown[shown["frame"] == numbers[0]]
    fig.add_trace(points_trace(first, "x_t", COLOURS["data"]))
    fig.add_trace(go.Scatter(**_xy(first, "x0_x", "x0_y"), mode="markers", name="x̂_0 (predicted)",
                             visible="legendonly", hoverinfo="skip", marker=dict(size=3, color=COLOURS["x0_hat"])))
    marked = first[first["point"] < n_paths]
    fig.add_trace(go.Scatter(**_xy(marked), mode="markers", name="now, on the paths", hoverinfo="skip",
                             marker=dict(size=8, color=COLOURS["samples"], line=dict(width=1, color="black"))))
    base = 2 if grid is not None else 1
    out, labels = [], []
    for k in numbers:
        rows = shown[shown["frame"] == k]
        data = [go.Scatter(**_xy(rows)), go.Scatter(**_xy(rows, "x0_x", "x0_y")),
                go.Scatter(**_xy(rows[rows["point"] < n_paths]))]
        out.append(go.Frame(data=data, traces=[base, base + 1, base + 2], name=str(k)))
        t = int(rows["t"].iloc[0])
        labels.append(str(t))                  # 0: the output x_0
    fig.frames = out
    fig.update_layout(**controls(labels, [f.name for f in out], duration, "t = "))
    return fig
