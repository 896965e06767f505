"""Strokes and points out of a drawing canvas's Fabric.js JSON (streamlit-drawable-canvas's json_data), in canvas
pixels (y down), for data.sources.points_from_strokes. The JSON comes from a visitor's browser: its size is checked
before anything is converted, and anything malformed raises ValueError.

A freehand path's commands are in the coordinates it was drawn in; when the visitor has moved, scaled or rotated it
(the toolbar's edit toggle), Fabric keeps those commands and changes the object's left/top/scale/angle, so every
point is mapped p -> centre + R(angle) diag(scale) (p - path centre), the path centre being the middle of its
points' bounding box (Fabric's pathOffset up to the curves' bulge between points, under a pixel for hand strokes).
"""

import math

import numpy as np

from diffusion.data.sources import MAX_STROKE_POINTS, MAX_STROKES

ORIGIN = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


def _number(obj: dict, name: str, default: float) -> float:
    value = obj.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"the drawing could not be read: {name}={value!r} is not a finite number")
    return float(value)


def _placement(obj: dict, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """(centre (2,), linear map (2, 2)) of a Fabric object whose untransformed box is width x height."""
    angle = math.radians(_number(obj, "angle", 0.0))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    scale = np.diag([_number(obj, "scaleX", 1.0), _number(obj, "scaleY", 1.0)])
    origin = np.array([ORIGIN.get(obj.get("originX"), 0.0), ORIGIN.get(obj.get("originY"), 0.0)])
    stroke = _number(obj, "strokeWidth", 0.0)
    box = scale @ np.array([width + stroke, height + stroke])
    corner = np.array([_number(obj, "left", 0.0), _number(obj, "top", 0.0)])
    return corner + rotation @ ((0.5 - origin) * box), rotation @ scale


def _path_points(obj: dict) -> np.ndarray:
    """The points of a freehand path's commands (M x y, Q cx cy x y, L x y ...), (k, 2)."""
    commands = obj.get("path")
    if not isinstance(commands, list):
        raise ValueError("the drawing could not be read: a path without commands")
    values = [v for c in commands if isinstance(c, list) for v in c[1:]]
    if len(values) > 2 * MAX_STROKE_POINTS:
        raise ValueError(f"the drawing has more than {MAX_STROKE_POINTS:,} points; allowed: at most that many")
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise ValueError("the drawing could not be read: a path with non-numeric or odd coordinates") from None


def canvas_strokes(json_data: dict | None) -> list[np.ndarray]:
    """Polylines (k_i, 2) in canvas pixels: one per freehand path, and one point per dot ('point' mode circles);
    other shapes are ignored. ValueError when there is nothing drawn, too much, or malformed data."""
    objects = (json_data or {}).get("objects") if isinstance(json_data, dict) else None
    if not isinstance(objects, list) or not objects:
        raise ValueError("nothing is drawn yet: draw strokes or click points on the canvas")
    if len(objects) > MAX_STROKES:
        raise ValueError(f"the drawing has {len(objects)} strokes and points; allowed: at most {MAX_STROKES}")
    strokes = []
    for obj in objects:
        kind = str(obj.get("type", "")).lower() if isinstance(obj, dict) else ""
        if kind == "path":
            p = _path_points(obj)
            if not len(p):
                continue
            centre, linear = _placement(obj, _number(obj, "width", 0.0), _number(obj, "height", 0.0))
            middle = (p.min(axis=0) + p.max(axis=0)) / 2
            strokes.append(centre + (p - middle) @ linear.T)
        elif kind == "circle":
            diameter = 2 * _number(obj, "radius", 0.0)
            strokes.append(_placement(obj, diameter, diameter)[0][None, :])
    if not strokes:
        raise ValueError("the drawing holds no strokes or points (only other shapes)")
    return strokes
