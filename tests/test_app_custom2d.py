"""The 2D page's own distributions and its guidance section, through AppTest: a CSV, an image and a word become sets
that are selected, trained, measured and exported like a preset; bad uploads show an error box naming the problem and
the page keeps working; the guidance section trains a conditional model and reads its numbers. (Drawing on the canvas
needs a real browser: tests/test_browser.py.)"""

import io
import math
import time

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from diffusion.data.sources import MAX_IMAGE_PIXELS
from ui.toy2d.data2d import CUSTOM_KEY
from ui.jobs.training import JOB_KEY

from hostile_uploads import OVERFLOW_CSV
from test_app import TOY2D, _app, _poll_until_done

GUIDED_JOB = "toy2d_guided_job"
CENTRES = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])


def _csv(n_per_class: int = 30, labels: bool = True, seed: int = 0) -> bytes:
    """Three labelled clusters as CSV text with a header."""
    rng = np.random.default_rng(seed)
    rows = ["x,y,label" if labels else "x,y"]
    for k, centre in enumerate(CENTRES):
        for x, y in centre + 0.3 * rng.standard_normal((n_per_class, 2)):
            rows.append(f"{x:.4f},{y:.4f}" + (f",{k}" if labels else ""))
    return "\n".join(rows).encode()


def _png(size: tuple[int, int] = (64, 64), disc: bool = True) -> bytes:
    """A black disc on white (or a blank white image), as PNG bytes."""
    yy, xx = np.mgrid[: size[1], : size[0]]
    inside = (xx - size[0] / 2) ** 2 + (yy - size[1] / 2) ** 2 < (min(size) / 3) ** 2
    pixels = np.where(inside & disc, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _add(at: AppTest, source: str, **inputs) -> AppTest:
    """Choose a source, give it its input (upload=(name, bytes) or word=...), click 'Use this distribution'."""
    at.radio(key="toy2d_custom_source").set_value(source).run()
    if "upload" in inputs:
        name, content = inputs["upload"]
        at.file_uploader(key=f"toy2d_custom_{source}").set_value((name, content, "application/octet-stream"))
    if "word" in inputs:
        at.text_input(key="toy2d_custom_word").set_value(inputs["word"])
    at.text_input(key="toy2d_custom_name").set_value(inputs.get("name", ""))
    at.button(key="toy2d_custom_add").click().run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def csv_visitor() -> AppTest:
    """A visitor who added a labelled CSV set and trained the page's model on it (100 steps, measured once)."""
    at = _add(_app().switch_page(TOY2D).run(), "csv", upload=("three blobs.csv", _csv()))
    at.select_slider(key="toy2d_T").set_value(100)
    at.slider(key="toy2d_steps").set_value(100)
    at.select_slider(key="toy2d_every").set_value(100).run()
    at.button(key="toy2d_train").click().run()
    _poll_until_done(at, at.session_state[JOB_KEY])
    return at


def test_a_csv_set_is_selected_trained_and_measured_like_a_preset(csv_visitor):
    at = csv_visitor
    assert not at.error
    dataset = at.session_state["toy2d_dataset"]
    assert dataset.startswith("custom:three-blobs:")
    assert "three-blobs (yours): 90 points, 3 classes" in at.selectbox(key="toy2d_dataset").options
    job = at.session_state[JOB_KEY]
    assert job.config.data.dataset == dataset and len(job.config.data.points) == 90
    assert job.run.step == 100
    metrics = job.snapshot().metrics[-1]
    assert math.isfinite(metrics["w1"]) and metrics["w1_low"] <= metrics["w1"] <= metrics["w1_high"]
    assert metrics["w1_floor"] > 0                           # the floor of the custom set, from its own law


def test_a_custom_model_round_trips_through_a_checkpoint_in_a_new_session(csv_visitor):
    job = csv_visitor.session_state[JOB_KEY]
    at = _app().switch_page(TOY2D).run()                    # another visitor, who never saw the CSV
    at.file_uploader(key="toy2d_upload").set_value(("blobs.zip", job.checkpoint_zip(), "application/zip")).run()
    at.button(key="toy2d_load").click().run()
    assert not at.exception and not at.error
    assert at.session_state[JOB_KEY].config == job.config
    assert at.session_state["toy2d_dataset"] == job.config.data.dataset      # selected, with its points
    assert job.config.data.dataset in at.session_state[CUSTOM_KEY]


def test_a_labelled_csv_set_is_offered_for_guidance(csv_visitor):
    dataset = csv_visitor.session_state["toy2d_dataset"]
    options = csv_visitor.selectbox(key="toy2d_guided_dataset").options
    assert options[:6] == ["8gaussians: 8 classes", "25gaussians: 25 classes", "moons: 2 classes",
                           "circles: 2 classes", "spirals: 2 classes", "checkerboard: 8 classes"]
    assert options[-1] == "three-blobs: 3 classes" and dataset.startswith("custom:three-blobs:")


@pytest.mark.parametrize("source, inputs, points", [
    ("image", {"upload": ("disc.png", _png())}, 2000),
    ("word", {"word": "Hi", "name": "greeting"}, 2000),
    ("csv", {"upload": ("plain.csv", _csv(labels=False))}, 90),
])
def test_an_image_a_word_and_an_unlabelled_csv_become_sets(source, inputs, points):
    at = _add(_app().switch_page(TOY2D).run(), source, **inputs)
    assert not at.error
    dataset = at.session_state["toy2d_dataset"]
    config = at.session_state[CUSTOM_KEY][dataset]
    assert len(config.points) == points and config.labels is None
    assert dataset.split(":")[1] == {"image": "disc", "word": "greeting", "csv": "plain"}[source]
    points = np.array(config.points)
    np.testing.assert_allclose(points.mean(axis=0), 0, atol=1e-4)                        # standardised
    assert any("Added" in s.value for s in at.success)


def _rows(n: int) -> bytes:
    return ("x,y\n" + "\n".join(f"{i},{i % 7}" for i in range(n))).encode()


BAD = {
    "wrong columns": ("csv", ("a.csv", b"a,b\n1,2\n3,4\n"), "CSV columns ['a', 'b'] are not allowed"),
    "NaN": ("csv", ("nan.csv", _rows(20) + b"\nnan,1"), "is NaN or infinite"),
    "too few points": ("csv", ("few.csv", _rows(5)), "the CSV file has 5 points; allowed: 10 to 5000"),
    "too many points": ("csv", ("many.csv", _rows(5001)), "the CSV file has 5001 points; allowed: 10 to 5000"),
    "near the largest float": ("csv", ("huge.csv", OVERFLOW_CSV),
                               "points hold 20 rows with a value beyond 1e+150 (the largest is 1.26e+307)"),
    "a column too many": ("csv", ("wide.csv", b"1,2,3,4\n" * 20), "has 4 columns; allowed: 2 (x, y) or 3"),
    "not an image": ("image", ("fake.png", b"this is not an image"), "the file is not an image PIL can read"),
    "too many pixels": ("image", ("huge.png", _png((2100, 2000), disc=False)),
                        f"allowed: at most {MAX_IMAGE_PIXELS:,}"),
    "no silhouette": ("image", ("blank.png", _png(disc=False)), "no silhouette found"),
    "no file": ("csv", None, "choose a file first"),
}


@pytest.mark.parametrize("case", BAD, ids=BAD)
def test_a_bad_upload_shows_an_error_box_and_the_page_keeps_working(case):
    source, upload, message = BAD[case]
    at = _add(_app().switch_page(TOY2D).run(), source, **({"upload": upload} if upload else {}))
    errors = " ".join(e.value for e in at.error)
    assert "Could not use this distribution" in errors and message in errors
    assert at.session_state["toy2d_dataset"] == "moons" and not at.session_state[CUSTOM_KEY]
    _add(at, "word", word="ok")                               # the page still works
    assert not at.error and at.session_state["toy2d_dataset"].startswith("custom:ok:")


def test_a_bad_word_shows_an_error_box():
    at = _add(_app().switch_page(TOY2D).run(), "word", word="")
    assert any("word '' is invalid" in e.value for e in at.error)


@pytest.fixture(scope="module")
def guided() -> AppTest:
    """A visitor who trained the guidance section's conditional model on 8gaussians (300 steps)."""
    at = _app().switch_page(TOY2D).run()
    assert at.selectbox(key="toy2d_guided_dataset").value == "8gaussians"
    at.select_slider(key="toy2d_guided_steps_8gaussians").set_value(300).run()
    at.button(key="toy2d_guided_train").click().run()
    job = at.session_state[GUIDED_JOB]
    deadline = time.monotonic() + 120
    while job.running and time.monotonic() < deadline:
        time.sleep(0.5)
    at.run()
    assert not at.exception and not at.error
    return at


def test_the_guidance_section_trains_a_conditional_model_with_label_dropout(guided):
    job = guided.session_state[GUIDED_JOB]
    assert job.run.step == 300 and job.run.num_classes == 8
    assert job.config.train.label_dropout == 0.1 and job.config.train.objective == "v"
    assert guided.session_state.get(JOB_KEY) is None          # the page's own model is untouched


def test_guidance_shows_each_class_beside_the_exact_law_with_its_numbers(guided):
    guided.select_slider(key="toy2d_guided_w").set_value(4.0).run()
    assert not guided.exception and not guided.error
    table = guided.table[-1].value
    assert list(table["model"].unique()) == ["learned", "exact"]
    assert list(table[table["model"] == "exact"]["class"]) == ["all", *map(str, range(8))]
    w1, floor = (table[c].str.split(" ").str[0].astype(float) for c in ("W1 [95%]", "floor [95%]"))
    rounding = w1 / floor * (0.0005 / w1 + 0.0005 / floor) + 0.005          # shown to 3 and 2 decimals
    assert (abs(table["W1 / floor"].astype(float) - w1 / floor) <= rounding).all()
    off = table["off the data [95%]"].str.extract(r"([\d.]+)% \[([\d.]+)%, ([\d.]+)%\]").astype(float)
    assert ((off[1] <= off[0]) & (off[0] <= off[2])).all() and (off[0] < 100).all()
    reading = guided.markdown[-1].value
    assert reading.startswith("Measured at w = 4 against w = 1 on 2,000 samples")
    assert "sharpens each class" in reading           # spread 0.24 -> 0.05 at 300 steps: far beyond noise
    guided.select_slider(key="toy2d_guided_w").set_value(1.0).run()
    assert guided.markdown[-1].value.startswith("At w = 1 the model samples each class as it learned it")


def test_the_exact_guided_sampler_is_bounded_by_samples_times_components():
    from diffusion.data.custom import custom_data
    from ui.toy2d.guided2d import EXACT_MIN_N, EXACT_WORK, N, exact_n
    rng = np.random.default_rng(0)
    sizes = {k: custom_data(f"blob{k}", rng.standard_normal((k, 2)), rng.integers(0, 3, k)).dataset
             for k in (90, 1000, 1001)}
    assert exact_n("8gaussians") == exact_n("25gaussians") == N and exact_n("moons") == 0
    assert exact_n(sizes[90]) == N and exact_n(sizes[1000]) == EXACT_MIN_N == EXACT_WORK // 1000
    assert exact_n(sizes[1001]) == 0
