"""Strokes from the drawing canvas's Fabric.js JSON: drawn paths give their own points, moved/scaled/rotated ones are
mapped like Fabric maps them, clicked points give their centres, and hostile JSON is refused before it is converted."""

import numpy as np
import pytest

from diffusion.data.sources import MAX_STROKE_POINTS, MAX_STROKES, points_from_strokes
from ui.toy2d.canvas_strokes import canvas_strokes

PATH = [["M", 10.0, 20.0], ["Q", 30.0, 20.0, 40.0, 50.0], ["L", 40.0, 60.0]]   # points (10,20) (30,20) (40,50) (40,60)


def _path(**placement) -> dict:
    """A freehand path as streamlit-drawable-canvas sends it unedited (origin left/top, stroke width 3): left/top are
    the box corner less half the stroke, width/height the box of its points."""
    obj = {"type": "Path", "originX": "left", "originY": "top", "left": 10.0 - 1.5, "top": 20.0 - 1.5,
           "width": 30.0, "height": 40.0, "strokeWidth": 3, "scaleX": 1, "scaleY": 1, "angle": 0, "path": PATH}
    return {**obj, **placement}


def test_an_unedited_path_gives_its_own_points():
    (stroke,) = canvas_strokes({"objects": [_path()]})
    np.testing.assert_allclose(stroke, [[10, 20], [30, 20], [40, 50], [40, 60]])


def test_a_moved_scaled_and_rotated_path_is_mapped_about_its_centre():
    moved = canvas_strokes({"objects": [_path(left=108.5, top=-1.5)]})[0]
    np.testing.assert_allclose(moved, np.array([[10, 20], [30, 20], [40, 50], [40, 60]]) + [100, -20])
    # Scaled x2 about the same top-left corner: the box (stroke included) doubles, so its centre moves by half of it.
    scaled = canvas_strokes({"objects": [_path(scaleX=2, scaleY=2)]})[0]
    centre = np.array([8.5, 18.5]) + np.array([33.0, 43.0])            # corner + (box + stroke) x 2 / 2
    np.testing.assert_allclose(scaled, centre + 2 * (np.array([[10, 20], [30, 20], [40, 50], [40, 60]]) - [25, 40]))
    # Rotated 90 degrees about its centre (origin 'center': left/top are the centre).
    turned = canvas_strokes({"objects": [_path(originX="center", originY="center", left=25, top=40, angle=90)]})[0]
    np.testing.assert_allclose(turned, [[45, 25], [45, 45], [15, 55], [5, 55]], atol=1e-9)


def test_clicked_points_give_their_centres():
    # point mode: a circle of radius 2 and stroke 3 placed at left = x - (r + stroke / 2), origin left/center
    dots = [{"type": "Circle", "originX": "left", "originY": "center", "left": x - 3.5, "top": y, "radius": 2,
             "strokeWidth": 3} for x, y in [(5, 7), (100, 40)]]
    strokes = canvas_strokes({"objects": dots + [{"type": "Rect", "left": 0, "top": 0}]})
    np.testing.assert_allclose(np.concatenate(strokes), [[5, 7], [100, 40]])


def test_strokes_become_points_along_them():
    points = points_from_strokes(canvas_strokes({"objects": [_path()]}), n=400)
    assert points.shape == (400, 2)
    assert points[:, 0].min() >= 10 and points[:, 0].max() <= 40 and -points[:, 1].max() >= 20   # y flipped


@pytest.mark.parametrize("data, message", [
    (None, "nothing is drawn yet"),
    ({"objects": []}, "nothing is drawn yet"),
    ({"objects": [{"type": "Rect"}]}, "no strokes or points"),
    ({"objects": [_path()] * (MAX_STROKES + 1)}, f"allowed: at most {MAX_STROKES}"),
    ({"objects": [_path(path=[["L", 1.0, 2.0]] * (MAX_STROKE_POINTS + 1))]}, "more than 20,000 points"),
    ({"objects": [_path(path=[["M", "a", 2.0]])]}, "non-numeric or odd coordinates"),
    ({"objects": [_path(path=[["M", 1.0]])]}, "non-numeric or odd coordinates"),
    ({"objects": [_path(left=float("nan"))]}, "left=nan is not a finite number"),
    ({"objects": [_path(scaleX="2")]}, "scaleX='2' is not a finite number"),
])
def test_malformed_or_oversized_drawings_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        canvas_strokes(data)
