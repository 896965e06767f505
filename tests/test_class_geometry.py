"""explore.guidance2d.class_geometry: the spread of each class and the distance between class centroids, on points
whose answer is known by hand."""

import numpy as np
import pandas as pd
import pytest

from diffusion.explore.guidance2d import class_geometry


def test_class_geometry_measures_spread_and_separation():
    # class 0: (0, 0) +- (1, 0); class 1: (4, 3) +- (0, 2): spread sqrt((1 + 1 + 4 + 4) / 4), centroids 5 apart
    frame = pd.DataFrame({"x": [-1.0, 1.0, 4.0, 4.0], "y": [0.0, 0.0, 1.0, 5.0], "label": [0, 0, 1, 1]})
    spread, separation = class_geometry(frame)
    assert spread == pytest.approx(np.sqrt(2.5)) and separation == pytest.approx(5.0)
    assert np.isnan(class_geometry(frame[frame["label"] == 0])[1])
