"""Plotly figures of the 2D page: point clouds over a density's contours, vector fields over the noised density
(arrows scaled, coloured by magnitude), and paths. Every figure is square on the fixed window [-DOMAIN, DOMAIN]^2
and fills its column's width (st.plotly_chart(width="stretch")); ui.toy2d.animate2d builds the animated ones on these.

Plotly rather than Altair here: contours and client-side animation frames (Plotly.animate) are built in.
"""

import contourpy
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from diffusion.explore.densities import DensityGrid

from ui.views.charts import DOMAIN, wrap

HEIGHT = 460                  # pixels: legible on a laptop; the width is the column's
DENSITY_SCALE = [[0.0, "#ffffff"], [0.15, "#c6dbef"], [0.5, "#6baed6"], [1.0, "#08519c"]]   # filled maps
LINE_SCALE = [[0.0, "#6baed6"], [0.5, "#2171b5"], [1.0, "#08306b"]]    # contour lines: the lowest still visible
FIELD_SCALE = "Viridis"
FIELD_COLOURS = 8             # arrow shafts are drawn in this many magnitude bands (one Plotly trace each)
COLOURS = {"data": "#4c78a8", "noised": "#f58518", "samples": "#e45756", "x0_hat": "#54a24b", "path": "#777777"}


def figure(title: str, height: int = HEIGHT) -> go.Figure:
    """An empty square figure on the page's window: the title wrapped to fit a half column at 1,024 px, the legend
    in one row between the title and the plot (never over the data or the ticks), ticks every unit."""
    fig = go.Figure()
    lines = wrap(title, 46)
    axis = dict(range=[-DOMAIN, DOMAIN], zeroline=False, showgrid=True, gridcolor="#eeeeee", constrain="domain",
                dtick=1, tickfont=dict(size=12))
    top = 30 + 20 * len(lines) + 28
    fig.update_layout(title=dict(text="<br>".join(lines), x=0.01, xanchor="left", y=1.0, yanchor="top",
                                 pad=dict(t=10), font=dict(size=15)),
                      height=height + top - 40, margin=dict(l=10, r=10, t=top, b=10), template="plotly_white",
                      xaxis=axis, yaxis=dict(axis, scaleanchor="x", scaleratio=1),
                      legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0.0,
                                  font=dict(size=12)))
    return fig


def density_trace(grid: DensityGrid, name: str | None = None, fill: bool = False, levels: int = 12) -> go.Contour:
    """The density as contour lines (under points) or filled contours (a density map alone) at `levels` even levels
    from near 0 to its maximum, darker where it is higher (no colour bar: the shape is what matters)."""
    top = float(np.nanmax(grid.density)) or 1.0
    return go.Contour(x=grid.x, y=grid.y, z=grid.density, colorscale=DENSITY_SCALE if fill else LINE_SCALE,
                      showscale=False, zmin=0, zmax=top,
                      contours=dict(coloring="fill" if fill else "lines", start=top / levels, end=top,
                                    size=top / levels), line=dict(width=0.5 if fill else 1.5),
                      name=name or grid.label, hoverinfo="skip", showlegend=True)


def contour_lines(grid: DensityGrid, name: str | None = None, levels: int = 8) -> go.Scatter:
    """The density's contour lines at `levels` even levels below its maximum as one line trace (NaN between lines):
    unlike a Contour trace it survives Plotly's animation frames without a redraw, and frames can move it."""
    top = float(np.nanmax(grid.density)) or 1.0
    generator = contourpy.contour_generator(grid.x, grid.y, grid.density)
    pieces = [np.vstack([line, [np.nan, np.nan]]) for k in range(1, levels + 1)
              for line in generator.lines(top * k / (levels + 1))]
    xy = np.vstack(pieces) if pieces else np.full((1, 2), np.nan)
    return go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines", name=name or grid.label, hoverinfo="skip",
                      line=dict(color="#2171b5", width=1.4), opacity=0.85)


def points_trace(df: pd.DataFrame, name: str, color: str, size: float = 3.5, opacity: float = 0.45) -> go.Scatter:
    return go.Scatter(x=df["x"], y=df["y"], mode="markers", name=name, hoverinfo="skip",
                      marker=dict(size=size, color=color, opacity=opacity))


def cloud(df: pd.DataFrame, title: str, grid: DensityGrid | None = None, color: str = COLOURS["data"],
          name: str = "points", height: int = HEIGHT) -> go.Figure:
    """Points (columns x, y) over the contours of a density grid (filled when there are no points)."""
    fig = figure(title, height)
    if grid is not None:
        fig.add_trace(density_trace(grid, fill=df.empty))
    if not df.empty:
        fig.add_trace(points_trace(df, name, color))
    return fig


def _segments(x: np.ndarray, y: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments (x, y) -> (x2, y2) as one polyline broken by NaN (one Plotly trace for many arrows)."""
    gap = np.full_like(x, np.nan)
    return np.stack([x, x2, gap], 1).ravel(), np.stack([y, y2, gap], 1).ravel()


def field(df: pd.DataFrame, title: str, grid: DensityGrid | None = None, cmax: float | None = None) -> go.Figure:
    """A vector field (columns x, y, u, v, magnitude, x2, y2: explore.toy2d.denoising_fields) over a density: shafts
    and heads coloured by magnitude on one scale up to cmax (share it between fields drawn side by side)."""
    fig = figure(title)
    if grid is not None:
        fig.add_trace(density_trace(grid))
    mag = df["magnitude"].to_numpy()
    cmax = cmax or float(np.nanmax(mag)) or 1.0
    band = np.clip((mag / cmax * FIELD_COLOURS).astype(int), 0, FIELD_COLOURS - 1)
    colours = sample_colorscale(FIELD_SCALE, list(np.linspace(0, 1, FIELD_COLOURS)))
    cols = {c: df[c].to_numpy() for c in ("x", "y", "x2", "y2")}
    for k, colour in enumerate(colours):
        sel = band == k
        if sel.any():
            xs, ys = _segments(*(cols[c][sel] for c in ("x", "y", "x2", "y2")))
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=2.2), hoverinfo="skip",
                                     showlegend=False))
    angle = np.degrees(np.arctan2(cols["x2"] - cols["x"], cols["y2"] - cols["y"]))   # clockwise from up
    fig.add_trace(go.Scatter(
        x=cols["x2"], y=cols["y2"], mode="markers", name="arrow heads", showlegend=False, customdata=mag,
        hovertemplate="x_t = (%{x:.2f}, %{y:.2f})<br>length %{customdata:.3g}<extra></extra>",
        marker=dict(symbol="triangle-up", size=6, angle=angle, color=mag, colorscale=FIELD_SCALE, cmin=0,
                    cmax=cmax, colorbar=dict(title="length", thickness=10, len=0.8))))
    return fig


def paths(groups: dict[str, np.ndarray], title: str, colours: dict[str, str], grid: DensityGrid | None = None
          ) -> go.Figure:
    """Paths per group: name -> (K + 1, n, 2) points from x_T to the sample, drawn as lines with the end marked."""
    fig = figure(title)
    fig.update_layout(legend=dict(yanchor="top", y=-0.1), margin=dict(b=110))    # its entries take rows: below
    if grid is not None:
        fig.add_trace(density_trace(grid))
    for name, xs in groups.items():
        gap = np.full((1, xs.shape[1]), np.nan)
        fig.add_trace(go.Scatter(x=np.concatenate([xs[..., 0], gap]).T.ravel(),
                                 y=np.concatenate([xs[..., 1], gap]).T.ravel(), mode="lines", name=f"{name} paths",
                                 line=dict(color=colours[name], width=1.4), opacity=0.75, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xs[-1, :, 0], y=xs[-1, :, 1], mode="markers", name=f"{name} samples",
                                 marker=dict(color=colours[name], size=6, line=dict(width=0.5, color="white")),
                                 hoverinfo="skip"))
    return fig


def field_pair(learned: pd.DataFrame, exact: pd.DataFrame | None, t: int, grid: DensityGrid | None
               ) -> tuple[go.Figure, go.Figure | None]:
    """The learned and (when known) exact fields at paper step t over the noised density, on one colour scale."""
    both = learned if exact is None else pd.concat([learned, exact])
    cmax = float(np.nanpercentile(both["magnitude"], 99)) or 1.0
    first = field(learned, f"learned, t = {t}", grid, cmax)
    return first, None if exact is None else field(exact, f"exact E[x_0 | x_t], t = {t}", grid, cmax)
