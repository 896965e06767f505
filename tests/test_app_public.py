"""The app as a public demo, through AppTest: hostile uploads, typed paths and oversized requests get an error box
and the app keeps working; no file outside the upload folder is touched; memory stays bounded; a queued job says
where it stands. Issue 14's cases, one by one."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from hostile_uploads import HOSTILE_CONFIG, good_checkpoint, hostile_zips
from hostile_uploads import members as _members
from hostile_uploads import zip_of as _zip
from streamlit.testing.v1 import AppTest

from diffusion.config import RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.training.trainer import Trainer
from ui.jobs.roots import confine, data_roots
from ui.jobs.scheduler import Ticket, scheduler
from ui.jobs.training import JOB_KEY

TOY2D, COMPARE, IMAGES32 = "app_pages/toy2d.py", "app_pages/compare.py", "app_pages/images32.py"
MEMORY_BOUND_MB = 300


def _app(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    return at.switch_page(page).run()


@pytest.fixture(scope="module")
def good_zip() -> bytes:
    return good_checkpoint()


def _upload(content: bytes) -> AppTest:
    at = _app(TOY2D)
    at.file_uploader(key="toy2d_upload").set_value(("run.zip", content, "application/zip")).run()
    at.button(key="toy2d_load").click().run()
    assert not at.exception
    return at


def _error(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def _config_with(good: bytes, **data) -> bytes:
    members = _members(good)
    config = json.loads(members["config.json"])
    config["data"].update(data)
    return _zip({**members, "config.json": json.dumps(config).encode()})


@pytest.mark.parametrize("case, message", [
    ("hostile config", "MLP num_classes=250000 is out of range"),
    ("huge but in range", "parameters is above this server's limit of 5,000,000"),
    ("2D n = 10,000,000", "a 2D training set of 10,000,000 points is above this server's limit"),
    ("commit marker", "unexpected file 'commit.json' in the zip; allowed: a run folder's files"),
    ("pending file", "unexpected file 'ema.safetensors.pending' in the zip"),
    ("path", "unexpected file '../victim' in the zip"),
])
def test_hostile_uploads_show_an_error_box_and_the_app_keeps_working(good_zip, case, message):
    members = _members(good_zip)
    huge = {**HOSTILE_CONFIG, "model": {"kind": "mlp", "width": 4096, "depth": 32, "num_classes": 1000}}
    content = {"hostile config": lambda: _zip({"config.json": json.dumps(HOSTILE_CONFIG).encode()}),
               "huge but in range": lambda: _zip({**members, "config.json": json.dumps(huge).encode()}),
               "2D n = 10,000,000": lambda: _config_with(good_zip, n=10_000_000),
               "commit marker": lambda: _zip({**members, "commit.json": b'{"step": 10, "files": ["../victim"]}'}),
               "pending file": lambda: _zip({**members, "ema.safetensors.pending": b"x"}),
               "path": lambda: _zip({**members, "../victim": b"x"})}[case]()
    at = _upload(content)
    assert "Could not load the checkpoint" in _error(at) and message in _error(at)
    assert JOB_KEY not in at.session_state or at.session_state[JOB_KEY] is None
    at.slider(key="toy2d_steps").set_value(100).run()          # the page still works
    assert not at.exception and at.button(key="toy2d_train").label == "Train"


def test_a_good_upload_still_loads(good_zip):
    at = _upload(good_zip)
    assert any("Loaded run.zip" in s.value for s in at.success)


LOAD_HOSTILE = """
import json, resource, sys, time
from ui.toy2d import data2d
from ui.jobs.checkpoint_io import load_trainer_zip
data = open(sys.argv[1], "rb").read()
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
try:
    load_trainer_zip(data, data2d.training_data)
except ValueError as e:
    print("refused:", e)
print("seconds", time.perf_counter() - start)
print("grew_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def _load_hostile(upload: Path) -> tuple[str, float, float]:
    """(what the refusal said, seconds, MB the peak memory grew) of loading upload in a fresh process."""
    done = subprocess.run([sys.executable, "-c", LOAD_HOSTILE, str(upload)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "refused:" in done.stdout, done.stderr
    said = done.stdout.split("refused:")[1].split("\nseconds")[0].strip()
    return said, float(done.stdout.split("seconds")[1].split()[0]), float(done.stdout.split("grew_mb")[1])


def test_the_939_byte_upload_allocates_nothing(tmp_path):
    """Issue 14: this zip made the server grow from 962 to 5,045 MB. Loaded in a fresh process, the peak memory
    now grows by less than MEMORY_BOUND_MB, and nothing is written outside the upload's temporary folder."""
    upload = tmp_path / "hostile.zip"
    upload.write_bytes(_zip({"config.json": json.dumps(HOSTILE_CONFIG).encode()}))
    assert upload.stat().st_size < 1200
    before = sorted(p.name for p in tmp_path.iterdir())
    said, _, grew = _load_hostile(upload)
    assert said.startswith("invalid config.json in the zip: MLP num_classes=250000 is out of range")
    assert grew < MEMORY_BOUND_MB
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.fixture(scope="module")
def hostile(good_zip) -> dict[str, bytes]:
    return hostile_zips(good_zip)


@pytest.mark.parametrize("name, said", [
    ("60 MB config (10,000,000 points)",
     r"config.json of the zip has 60,\d{3},\d{3} bytes; allowed: at most 1,000,000"),
    ("100,000 points under the size bound",
     "config.json of the zip holds an array of more than 5,000 items; allowed: at most 5,000"),
    ("36 MB history (3,000,000 rows)", r"metrics.csv in the zip has 39,\d{3},\d{3} bytes; allowed: at most 16,000,000"),
    ("1,300,000 history rows under the size bound",
     "metrics.csv in the zip has 1,300,001 rows; allowed: at most 200,000 logged steps"),
])
def test_oversized_uploads_are_refused_before_they_are_parsed(tmp_path, hostile, name, said):
    """Issue 20: 10,000,000 custom points in config.json (60 MB, ~1 MB zipped) took 16 s and 1 GB; a 36 MB
    metrics.csv a minute and 1.3 GB. Each is refused in a fresh process within 2 s and MEMORY_BOUND_MB, by a message
    naming the size or count found and the limit (ui/checkpoint_io, training/bounded_json)."""
    upload = _write(tmp_path / "hostile.zip", hostile[name])
    assert upload.stat().st_size < 2_000_000              # far under the 40 MB an upload may have
    refusal, seconds, grew = _load_hostile(upload)
    assert re.fullmatch(said, refusal), refusal
    assert seconds < 2.0 and grew < MEMORY_BOUND_MB, (seconds, grew)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Path:
    """A runs root and a data root of this test's own."""
    for name, variable in (("runs", "DIFFUSION_RUNS_DIRS"), ("data", "DIFFUSION_DATA_DIR")):
        (tmp_path / name).mkdir()
        monkeypatch.setenv(variable, str(tmp_path / name))
    return tmp_path


def _add(at: AppTest, typed: str) -> str:
    at.text_input(key="compare_path").input(typed)
    at.button(key="compare_add").click().run()
    assert not at.exception
    return _error(at)


def test_compare_confines_typed_folders_and_never_tells_what_exists_outside(roots):
    at = _app(COMPARE)
    rows = len(at.dataframe[0].value) if at.dataframe else 0
    outside = {typed: _add(at, typed) for typed in ("/", "/etc", "/no/such/folder", "../../..", str(roots))}
    for typed, error in outside.items():
        assert f"run folder {typed!r} is not a folder inside the folders this server allows; allowed: folders under " \
               f"{roots / 'runs'}/" in error
    assert (len(at.dataframe[0].value) if at.dataframe else 0) == rows


def test_compare_reads_a_run_without_a_step_column_as_an_error_row(roots):
    trainer = Trainer(RunConfig(train=TrainConfig(steps=5)), load_data(RunConfig().data).x)
    trainer.run(run_dir=roots / "runs" / "stepless")
    (roots / "runs" / "stepless" / "metrics.csv").write_text("loss,lr\n1.0,0.001\n")
    at = _app(COMPARE)
    assert _add(at, "stepless") == ""
    row = at.dataframe[1].value.set_index("name").loc["stepless"]          # every column, in its expander
    assert "metrics.csv has no step column" in row["error"]


def _folder(at: AppTest, typed: str) -> AppTest:
    at.selectbox(key="img32_dataset").set_value("folder").run()
    at.text_input(key="img32_folder").input(typed).run()
    assert not at.exception
    return at


@pytest.mark.parametrize("typed", ["/proc", "/etc", "/usr/share"])
def test_phase_4_refuses_folders_outside_the_data_root_without_listing_them(roots, typed):
    at = _folder(_app(IMAGES32), typed)
    error = _error(at)
    assert f"image folder {typed!r} is not a folder inside the folders this server allows" in error
    assert "passwd" not in error and "self" not in error and "doc" not in error


@pytest.mark.parametrize("typed", ["evil_link", "data/evil_link", "{data}/evil_link", "evil_link/passwd", "loop",
                                   "missing", "data/missing", "a_file", "", "{data}/../runs"])
def test_every_refused_path_gets_one_message_links_included(roots, typed):
    """Issue 20: a link inside the data root gave "'.../data/data/evil_link' does not exist" (the root joined twice);
    now a link out, a loop, a missing path, a file, an empty string and a sibling root all read the same."""
    data = roots / "data"
    (data / "evil_link").symlink_to("/etc")
    (data / "loop").symlink_to(data / "loop")
    (data / "a_file").write_text("not a folder")
    (data / "real").mkdir()
    (data / "good_link").symlink_to(data / "real")
    typed = typed.format(data=data)
    with pytest.raises(ValueError) as refused:
        confine(typed, data_roots(), "image folder")
    assert str(refused.value) == (f"image folder {typed!r} is not a folder inside the folders this server allows; "
                                  f"allowed: folders under {data}/")
    assert confine("good_link", data_roots(), "image folder") == confine("real", data_roots(), "x") == data / "real"


def test_phase_4_names_an_imageless_folder_without_listing_it(roots):
    (roots / "data" / "empty" / "sub").mkdir(parents=True)
    (roots / "data" / "empty" / "sub" / "notes.txt").write_text("no images here")
    at = _folder(_app(IMAGES32), "empty")
    assert "has no images in class subfolders" in _error(at)
    assert "'sub'" not in _error(at) and "notes" not in _error(at)


def test_a_training_over_the_time_budget_is_refused(monkeypatch):
    monkeypatch.setenv("DIFFUSION_JOB_SECONDS", "1")
    at = _app(TOY2D)
    at.slider(key="toy2d_steps").set_value(20_000).run()
    at.button(key="toy2d_train").click().run()
    assert not at.exception
    assert "Could not start training" in _error(at) and "a job may take at most 1 s on this server" in _error(at)
    assert at.session_state[JOB_KEY] is None if JOB_KEY in at.session_state else True


def test_a_queued_job_says_where_it_stands_then_runs():
    """With every slot taken, Train queues: the live panel says 'you are 1st in line', then the job runs."""
    slots, held = scheduler(), []
    for i in range(scheduler().slots):
        held.append(Ticket(f"other visitor {i}", 300.0))   # longer than the page takes to load on a busy machine
        assert slots.acquire(held[-1])
    try:
        at = _app(TOY2D)
        at.slider(key="toy2d_steps").set_value(100).run()
        at.button(key="toy2d_train").click().run()
        job = at.session_state[JOB_KEY]
        time.sleep(0.5)
        at.run()
        assert not at.exception
        texts = " ".join(p.proto.text for p in at.get("progress"))
        wait = re.search(r"Queued, waiting for a free slot: you are 1st in line; about (\d+) s", texts)
        assert wait and 0 < int(wait.group(1)) <= 300, texts        # the other job's 300 s, less what it ran
        assert job.running and job.trainer is None          # a waiting job holds no network
    finally:
        for ticket in held:
            slots.release(ticket)
    assert job.wait(120) and job.trainer.step == 100
