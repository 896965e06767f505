"""Bring your own 2D distribution: CSV, strokes, image and word -> points on fixed inputs; bad inputs -> ValueError
naming the problem; a custom set standardised like the presets and usable wherever they are (training, metrics,
floors, densities, a checkpoint reloaded in a fresh process registry)."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.data import toy_datasets as toy2d
from diffusion.data.custom import KERNEL_STD, custom_data, custom_set
from diffusion.data.sources import (
    MAX_CSV_BYTES,
    points_from_csv,
    points_from_image,
    points_from_strokes,
    points_from_word,
)
from diffusion.data.toy_datasets import toy_dataset
from diffusion.explore.densities import density_grid
from diffusion.metrics.evaluation import measure_run
from diffusion.metrics.protocol import points_protocol
from diffusion.models.model_config import MLPConfig
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training.checkpoints import load_run
from diffusion.training.trainer import Trainer


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _disc(background="white", ink="black", mode="RGB") -> bytes:
    """A 200 x 100 image with a disc of radius 30 centred at pixel (60, 50)."""
    image = Image.new(mode, (200, 100), background)
    ImageDraw.Draw(image).ellipse((30, 20, 90, 80), fill=ink)
    return _png(image)


def test_csv_with_and_without_header_and_labels():
    rows = [(i * 0.5, (-1) ** i * i, i % 3) for i in range(12)]
    body = "\n".join(f"{x},{y}" for x, y, _ in rows)
    points, labels = points_from_csv(body)
    np.testing.assert_array_equal(points, [[x, y] for x, y, _ in rows])
    assert labels is None
    points, labels = points_from_csv(("X, Y ,label\n" + "\n".join(f"{x},{y},{c}" for x, y, c in rows)).encode())
    np.testing.assert_array_equal(points, [[x, y] for x, y, _ in rows])
    np.testing.assert_array_equal(labels, [c for _, _, c in rows])


@pytest.mark.parametrize("text, match", [
    ("a,b\n" + "1,2\n" * 20, r"columns \['a', 'b'\] are not allowed"),
    ("x,y\n" + "1,2\n" * 19 + "1,nan\n", "row 20: 'nan' is NaN"),
    ("x,y\n" + "1,2\n" * 19 + "1,two\n", "row 20: 'two' is not a number"),
    ("x,y\n" + "1,2\n" * 5, "has 5 points; allowed: 10 to 5000"),
    ("1,2\n" * 5001, "has 5001 points"),
    ("1,2\n" * 19 + "1,2,3,4\n", "row 20 has 4 columns"),
    ("x,y,label\n" + "1,2,0.5\n" * 20, "labels must be integers"),
])
def test_bad_csv_names_the_problem(text, match):
    with pytest.raises(ValueError, match=match):
        points_from_csv(text)


def test_csv_is_bounded_before_it_is_read():
    with pytest.raises(ValueError, match="bytes; allowed: at most"):
        points_from_csv(b"1" * (MAX_CSV_BYTES + 1))
    with pytest.raises(ValueError, match="not UTF-8"):
        points_from_csv(b"\xff\xfe\x00" * 20)


@pytest.mark.parametrize("background, ink, mode", [("white", "black", "RGB"), ("black", "white", "L"),
                                                   ((0, 0, 0, 0), (200, 0, 0, 255), "RGBA")])
def test_image_silhouette_points_lie_in_the_shape(background, ink, mode):
    points = points_from_image(_disc(background, ink, mode), n=500, seed=1)
    assert points.shape == (500, 2)
    centre = np.array([60.0, -50.0])                                   # y flipped: up is positive
    assert np.linalg.norm(points - centre, axis=1).max() < 31.5        # inside the disc (plus a pixel)
    assert np.linalg.norm(points.mean(axis=0) - centre) < 3.0          # and spread over all of it
    np.testing.assert_array_equal(points, points_from_image(_disc(background, ink, mode), n=500, seed=1))


@pytest.mark.parametrize("data, match", [
    (b"not an image at all" * 10, "not an image"),
    (_png(Image.new("L", (2001, 2000), 255)), "2001 x 2000 pixels"),
    (_png(Image.new("L", (50, 50), 255)), "no silhouette found"),
    (b"x" * 5_000_001, "at most 5,000,000 bytes"),
])
def test_bad_images_name_the_problem(data, match):
    with pytest.raises(ValueError, match=match):
        points_from_image(data)


def test_word_points_follow_the_letters():
    points = points_from_word("IL", n=1000)
    assert points.shape == (1000, 2)
    x = points[:, 0]
    # "I" then "L": two separate strokes with a gap between them, the L's foot at the bottom right
    gap = np.sort(x)[1:] - np.sort(x)[:-1]
    assert gap.max() > 5
    foot = points[x > np.median(x) + 10]
    assert foot[:, 1].mean() < points[:, 1].mean()
    with pytest.raises(ValueError, match="printable characters"):
        points_from_word("x" * 25)
    with pytest.raises(ValueError, match="printable characters"):
        points_from_word("   ")


def test_strokes_are_resampled_evenly_by_arc_length():
    square = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]               # perimeter 40
    points = points_from_strokes([square, [[5, 5]]], n=41)              # 40 along the square + 1 dot
    assert len(points) == 41 and [5, -5] in points.tolist()
    along = points[:-1]
    on_edge = np.isclose(along[:, 0] % 10, 0) | np.isclose(-along[:, 1] % 10, 0)
    assert on_edge.all()
    with pytest.raises(ValueError, match="at least 10"):
        points_from_strokes([[[1, 1]]])
    with pytest.raises(ValueError, match="finite points"):
        points_from_strokes([[[0, 0], [np.nan, 1]]])


def test_custom_set_is_standardised_named_and_reloadable(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(300, 2)) * [30, 5] + [100, -40]
    config = custom_data("blob", raw, labels=(raw[:, 0] > 100).astype(int))
    assert config.dataset.startswith("custom:blob:") and len(config.points) == 300
    law = custom_set(config).mixture
    torch.testing.assert_close(law.mean(), torch.zeros(2, dtype=torch.float64), rtol=0, atol=1e-5)
    assert float(law.covariance().trace() / 2) == pytest.approx(1.0, abs=1e-4)
    assert float(law.covs[0, 0, 0].sqrt()) == pytest.approx(KERNEL_STD)
    assert custom_data("blob", raw, labels=(raw[:, 0] > 100).astype(int)).dataset == config.dataset
    assert custom_data("blob", raw * 2).dataset != config.dataset   # same standardised points, no labels
    round_trip = RunConfig.from_dict(json.loads(json.dumps(RunConfig(data=config).to_dict()))).data
    assert round_trip == config
    tampered = DataConfig(config.dataset, points=config.points[:-1] + ((9.0, 9.0),), labels=config.labels)
    with pytest.raises(ValueError, match="does not match its points"):
        custom_set(tampered)

    data = load_data(config)
    assert data.num_classes == 2 and data.y is not None and data.x.shape == (100_000, 2)
    trainer = Trainer(RunConfig(config, model=MLPConfig(width=32, depth=2), train=TrainConfig(steps=30)), data.x)
    trainer.run(run_dir=tmp_path / "run")
    toy2d._CUSTOM.clear()                                               # a fresh process knows no custom set
    with pytest.raises(ValueError, match="not loaded in this process"):
        toy_dataset(config.dataset)
    run = load_run(tmp_path / "run")                                    # the points travel in config.json
    result = measure_run(run, points_protocol(200, SamplerConfig("ddim", 10)))[0]
    assert result.floor["w1"].value > 0 and np.isfinite(result.metrics["w1"].value)
    assert density_grid(config.dataset, size=20).exact


@pytest.mark.parametrize("slug, points, labels, match", [
    ("Bad Name", np.zeros((20, 2)), None, "custom set name 'Bad Name' is invalid"),
    ("ok", np.ones((20, 2)), None, "all the same"),
    ("ok", np.zeros((5, 2)), None, "5 points; allowed: 10 to 5000"),
    ("ok", np.zeros((20, 3)), None, r"shape \(20, 3\)"),
    ("ok", np.arange(40.0).reshape(20, 2), np.arange(20), "20 classes; allowed: at most 10"),
    ("ok", np.arange(40.0).reshape(20, 2), np.zeros(19, dtype=int), "one integer per point"),
])
def test_bad_custom_sets_name_the_problem(slug, points, labels, match):
    with pytest.raises(ValueError, match=match):
        custom_data(slug, points, labels)


def test_data_config_bounds_custom_points():
    with pytest.raises(ValueError, match="custom sets"):
        DataConfig("moons", points=((0.0, 0.0),) * 20)
    with pytest.raises(ValueError, match="needs its points"):
        DataConfig("custom:x:0123456789")
    with pytest.raises(ValueError, match="NaN or inf"):
        DataConfig("custom:x:0123456789", points=((0.0, float("nan")),) * 20)
    with pytest.raises(ValueError, match="5001 points"):
        DataConfig("custom:x:0123456789", points=((0.0, 1.0),) * 5001)
    with pytest.raises(ValueError, match=r"custom points reach 1e\+07; allowed: standardised points .* within 6.3 of 0 "
                                         "for 20 points"):
        DataConfig("custom:x:0123456789", points=((0.0, 1e7),) * 20)


def test_values_near_the_largest_float_are_refused_not_standardised_to_zero():
    """Issue 20: 20 rows like 1.26e307,-1.32e306 passed the spread check (the variance overflowed to inf) and every
    point was standardised to (0, 0)."""
    rng = np.random.default_rng(0)
    rows = [f"{1.26e307 * rng.uniform(0.5, 1):.3g},{-1.32e306 * rng.uniform(0.5, 1):.3g}" for _ in range(20)]
    points, _ = points_from_csv("\n".join(rows))
    assert np.isinf(points.var(axis=0).sum())               # what the old check computed
    with pytest.raises(ValueError, match=r"points hold 20 rows with a value beyond 1e\+150 \(the largest is "
                                         r"1\.\d+e\+307\); allowed: values of magnitude at most 1e\+150"):
        custom_data("huge", points)
    scaled = custom_data("scaled", points * 1e-160).points   # the same shape at a size float64 can measure
    spread = np.asarray(scaled)
    assert np.isfinite(spread).all() and spread.std(axis=0).sum() > 0.5
