"""The app through streamlit's AppTest: every page renders, two visitors train live at once and keep their own
models across page switches, checkpoints round-trip through upload, bad uploads and failed trainings show an
error box, and pages never touch torch (checked on their source with ast)."""

import ast
import io
import math
import re
import time
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from diffusion import __version__
from diffusion.training.trainer import Trainer
from ui.jobs import timing
from ui.jobs.training import JOB_KEY, TrainingJob, run_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120                 # seconds for one script run (the machine is shared and slow)
TRAIN_DEADLINE = 120          # seconds for a short training run to finish
PAGES_DIR = "app_pages"       # not pages/: Streamlit's legacy auto-discovery would run a deep-linked page
                              # without app.py on a fresh server, until some session calls st.navigation
TOY2D = f"{PAGES_DIR}/toy2d.py"
SHORT_STEPS, MEASURE_EVERY = 300, 100
W1_BOUND = 3.0                # data-scale units; N(0, I) vs moons is ~0.5, a diverged sampler is far above


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def _charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))


def _set_up_training(at: AppTest, T: int) -> AppTest:
    at.switch_page(TOY2D).run()
    at.select_slider(key="toy2d_T").set_value(T)
    at.slider(key="toy2d_steps").set_value(SHORT_STEPS)
    at.select_slider(key="toy2d_every").set_value(MEASURE_EVERY).run()
    return at


def _click_train(at: AppTest) -> TrainingJob:
    at.button(key="toy2d_train").click().run()
    return at.session_state[JOB_KEY]


def _poll_until_done(at: AppTest, job: TrainingJob) -> None:
    """AppTest never fires the fragment's run_every timer: rerun by hand, as a browser would, until done."""
    deadline = time.monotonic() + TRAIN_DEADLINE
    while job.running and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception
    assert not job.running, f"training did not finish within {TRAIN_DEADLINE} s"
    at.run()


@pytest.fixture(scope="module")
def visitors() -> tuple[AppTest, AppTest]:
    """Two sessions training at the same time (T=100 and T=1000), both polled until done."""
    a, b = _set_up_training(_app().run(), 100), _set_up_training(_app().run(), 1000)
    assert any(c.value.startswith("Expected: about") for c in a.caption)    # the promise, before training
    job_a, job_b = _click_train(a), _click_train(b)
    assert job_a.running and job_b.running
    assert b.get("progress") and b.button(key="toy2d_stop")          # the live panel, with the time left
    assert any(re.search(r"about \d+ s left", p.proto.text) for p in a.get("progress"))   # a has the slot
    _poll_until_done(a, job_a)
    _poll_until_done(b, job_b)
    return a, b


def test_every_page_renders_with_device_and_version_in_the_sidebar():
    at = _app().run()
    assert not at.exception
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert __version__ in sidebar and "Device: CPU" in sidebar
    for path in (f"{PAGES_DIR}/overview.py", TOY2D):
        at.switch_page(path).run()
        assert not at.exception, path


def test_overview_shows_the_corrected_equations_and_links_each_phase():
    at = _app().run()
    formulas = " ".join(latex.value for latex in at.latex)
    assert r"\frac{1}{\sqrt{\alpha_t}}\left(x_t - \frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}" in formulas   # eq. 11
    assert r"x_t = \sqrt{\bar\alpha_t}\,x_0" in formulas                                                      # eq. 4
    notation = " ".join(i.value for i in at.info)
    assert r"call these $\sigma_t$ and $\bar\sigma_t$" in notation and r"$\alpha_t = 1 - \beta_t$" in notation
    text = " ".join(e.value for e in [*at.markdown, *at.caption, *at.info])
    assert "Erratum" not in text            # no pointer to a document the visitor cannot see
    assert "Phase 1 · 2D toy data" in [link.value for link in at.get("page_link")]


def test_the_overview_picture_is_built_once_for_every_visitor(monkeypatch):
    """The reverse process on the first screen costs the server about 0.4 s of CPU to build (Plotly validates each
    frame): it is built once per server process, not once per visitor."""
    from ui.toy2d import animate2d
    built, real = [], animate2d.reverse
    monkeypatch.setattr(animate2d, "reverse", lambda *a, **k: built.append(1) or real(*a, **k))
    for _ in range(3):                       # three visitors' first pages
        at = _app().run()
        assert not at.exception and at.get("plotly_chart")
    assert len(built) <= 1                   # 0 when an earlier test of this process drew it already


def test_forward_section_warns_when_x_T_is_far_from_normal():
    at = _app().switch_page(TOY2D).run()
    assert not at.warning
    at.selectbox(key="toy2d_schedule").set_value("linear_unscaled")
    at.select_slider(key="toy2d_T").set_value(50).run()
    assert any("far from N(0, I)" in w.value for w in at.warning)


def test_two_visitors_train_at_once_each_with_their_own_model(visitors):
    a, b = visitors
    job_a, job_b = a.session_state[JOB_KEY], b.session_state[JOB_KEY]
    assert job_a is not job_b
    assert (job_a.config.schedule.timesteps, job_b.config.schedule.timesteps) == (100, 1000)
    for job in (job_a, job_b):
        assert job.run is not None and job.run.step == SHORT_STEPS
        assert job.snapshot().result.reason == "steps"


def test_training_draws_loss_and_metric_charts_with_sane_values(visitors):
    for at in visitors:
        assert not at.exception and not at.error
        assert _charts(at) >= 2
        snap = at.session_state[JOB_KEY].snapshot()
        assert [m["step"] for m in snap.metrics] == [100, 200, 300]
        assert all(m["protocol"].startswith("2d·n1000·fresh·ddim") and m["n"] == 1000 for m in snap.metrics)
        assert all(math.isfinite(v) for m in snap.metrics for k, v in m.items() if k != "protocol")
        assert snap.metrics[-1]["w1_low"] <= snap.metrics[-1]["w1"] < W1_BOUND
        assert len(snap.loss) == SHORT_STEPS and all(math.isfinite(v) for v in snap.loss)


def test_switching_pages_and_back_keeps_the_trained_model(visitors):
    at = visitors[0]
    job = at.session_state[JOB_KEY]
    at.switch_page(f"{PAGES_DIR}/overview.py").run()
    at.switch_page(TOY2D).run()
    assert not at.exception
    assert at.session_state[JOB_KEY] is job and job.run.step == SHORT_STEPS
    assert "Continue training from step 300" in at.button(key="toy2d_train").label


def test_samplers_section_sweeps_step_counts_with_the_floor(visitors):
    at = visitors[0]          # T = 100: sweeps 5..100 steps
    at.radio(key="toy2d_sampler").set_value("ddim")
    at.toggle(key="toy2d_sweep").set_value(True).run()
    assert not at.exception and not at.error
    sweep = next(d.value for d in at.dataframe if "steps" in d.value.columns)
    assert list(sweep["steps"]) == [5, 10, 20, 50, 100]
    w1 = [float(cell.split(" [")[0]) for cell in sweep["W1"]]             # "value [low, high]"
    assert all(0 <= v < W1_BOUND for v in w1) and all("[" in cell for cell in sweep["W1"])
    assert any("floor (labelled) at the same n" in c.value for c in at.caption)


def test_checkpoint_round_trips_through_upload(visitors):
    job = visitors[0].session_state[JOB_KEY]
    at = _app().switch_page(TOY2D).run()
    at.file_uploader(key="toy2d_upload").set_value(("run.zip", job.checkpoint_zip(), "application/zip")).run()
    at.button(key="toy2d_load").click().run()
    assert not at.exception and not at.error
    loaded = at.session_state[JOB_KEY]
    assert loaded.trainer.step == SHORT_STEPS and loaded.config == job.config
    assert any("Loaded run.zip" in s.value for s in at.success)


def _rezipped(good: bytes, edit) -> bytes:
    """The zip `good` with edit(name, data) -> data | None applied to each member (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = edit(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
    return out.getvalue()


CORRUPT = {
    "not a zip": lambda good: b"not a zip at all",
    "cut in half": lambda good: good[: len(good) // 2],
    "no config.json": lambda good: _rezipped(good, lambda name, data: None if name == "config.json" else data),
    "truncated weights": lambda good: _rezipped(good, lambda name, data: data[:40] if name == "ema.safetensors"
                                                else data),
    "config of a bad value": lambda good: _rezipped(good, lambda name, data: data.replace(b'"linear"', b'"cubic"')
                                                    if name == "config.json" else data),
}


@pytest.mark.parametrize("damage", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_upload_shows_an_error_and_keeps_the_model(visitors, damage):
    at = visitors[1]
    job = at.session_state[JOB_KEY]
    content = damage(job.checkpoint_zip())
    at.file_uploader(key="toy2d_upload").set_value(("broken.zip", content, "application/zip")).run()
    at.button(key="toy2d_load").click().run()
    assert not at.exception
    assert any("Could not load the checkpoint" in e.value for e in at.error)
    assert at.session_state[JOB_KEY] is job


TINY = run_config("moons", "linear", 100, 32, 1, 1e-3, 64, 50)


def _finished_job(x: torch.Tensor, promise: timing.Estimate | None = None) -> TrainingJob:
    job = TrainingJob(Trainer(TINY, x))
    job.start(50, None, 0, promise)
    assert job.wait(60)
    return job


def test_a_job_that_ran_its_promised_budget_teaches_the_record_and_a_diverged_one_does_not():
    """The live ETA's inputs (the promise, the wall time in the slot) are in the snapshot, frozen once the job ends;
    the server's record learns observed / promised from a job that ran its steps, not from one that diverged."""
    done = _finished_job(torch.randn(64, 2), timing.Estimate("test: 50 steps", 0.5, 0.25))
    snap = done.snapshot()
    assert snap.expected == 0.5 and 0 < snap.wall == done.snapshot().wall
    low, high = timing.CORRECTION_RANGE
    assert timing.RECORD.correction("test: 50 steps") == pytest.approx(min(max(snap.wall / 0.25, low), high))
    _finished_job(torch.full((64, 2), math.nan), timing.Estimate("test: diverged", 0.5, 0.25))
    assert timing.RECORD.correction("test: diverged") == 1.0


@pytest.mark.parametrize("x, shown", [
    (torch.full((64, 2), math.nan), "Training diverged"),   # NaN loss at the first step
    (torch.zeros(64, 3), "Training failed"),               # the MLP expects 2 coordinates
])
def test_a_failed_or_diverged_training_shows_an_error_box(x, shown):
    at = _app().switch_page(TOY2D).run()
    at.session_state[JOB_KEY] = _finished_job(x)
    at.run()
    assert not at.exception
    assert any(shown in e.value for e in at.error)


def test_stop_keeps_what_was_learned_and_training_continues_from_there():
    at = _app().switch_page(TOY2D).run()
    at.radio(key="toy2d_budget").set_value("seconds").run()
    job = _click_train(at)
    time.sleep(1.0)
    at.button(key="toy2d_stop").click().run()
    _poll_until_done(at, job)
    stopped = job.snapshot()
    assert stopped.result.reason == "callback" and stopped.step > 0 and job.run.step == stopped.step
    assert any(f"Stopped at step {stopped.step:,}" in i.value for i in at.info)
    assert at.button(key="toy2d_train").label == f"Continue training from step {stopped.step:,}"
    at.radio(key="toy2d_budget").set_value("steps").run()
    at.slider(key="toy2d_steps").set_value(100).run()
    assert _click_train(at) is job
    _poll_until_done(at, job)
    assert job.run.step == stopped.step + 100 and len(job.snapshot().loss) == stopped.step + 100


FORBIDDEN_IMPORTS = {"torch", "numpy", "scipy"}
TENSOR_METHODS = {"sqrt", "exp", "log", "cumprod", "matmul", "randn", "tensor", "numpy", "detach", "item",
                  "backward", "no_grad"}


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "__import__", "import_module"):
            names.add("<dynamic import>")
    return names


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / PAGES_DIR).glob("*.py")))
def test_pages_never_import_torch_nor_do_tensor_math(page):
    """Pages call ui and the package; all tensor work stays behind them."""
    tree = ast.parse((ROOT / PAGES_DIR / page).read_text())
    assert not _imports(tree) & (FORBIDDEN_IMPORTS | {"<dynamic import>"})
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Attribute) and node.attr in TENSOR_METHODS), f"{page}: .{node.attr}"
        assert not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)), f"{page}: @"


def test_the_package_never_imports_streamlit():
    for path in (ROOT / "diffusion").rglob("*.py"):
        assert "streamlit" not in _imports(ast.parse(path.read_text())), path


def test_no_legacy_pages_directory_beside_app_py():
    """With a pages/ folder, a fresh server runs a deep-linked page (/toy2d) without app.py (no frame, no
    navigation) until some session calls st.navigation: pages live in app_pages/ and are listed in ui/views/pages.py."""
    assert not (ROOT / "pages").exists()


def test_a_run_far_above_its_floor_is_called_too_short_to_judge():
    from ui.views.training_view import too_short

    def row(metric, value, low, floor):
        return {"step": 300, metric: value, f"{metric}_low": low, f"{metric}_high": value * 1.2,
                f"{metric}_floor": floor, f"{metric}_floor_low": floor * 0.8, f"{metric}_floor_high": floor * 1.2}
    verdict = too_short(row("fid", 426.0, 400.0, 1.8))
    assert verdict.startswith("Too short to judge: at step 300 FID is 426, 236.7x its floor (1.8)")
    assert too_short(row("fid", 6.1, 0.9, 3.4)) is None           # 1.8x, and its interval reaches the floor
    assert too_short(row("w1", 0.47, 0.40, 0.086)) and too_short(row("w1", 0.1, 0.08, 0.086)) is None
    assert too_short(None) is None and too_short({"step": 5, "loss": 1.0}) is None
