"""Issue 14's bad inputs through the CLI: every one is a single line naming the value, exit code 2, before any
work; zero and empty values are refused, never replaced by defaults; resuming refuses every flag that would change
the saved run, naming the saved value; outputs are checked before the work; I/O failures during it are one line."""

import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from diffusion.cli import main
from diffusion.training import checkpoints


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("inputs") / "moons"
    assert main(["train", "--dataset", "moons", "--steps", "30", "--checkpoint-every", "10", "--out", str(out)]) == 0
    return out


def _one_line(capsys, args: list[str]) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return code, err


@pytest.mark.parametrize("args, message", [
    (["train", "--threads", "-1"], "--threads -1 is out of range; allowed: 1 to"),
    (["train", "--dataset", ""], "unknown dataset ''"),
    (["train", "--steps", "0"], "train steps=0 is out of range"),
    (["train", "--lr", "0"], "train lr=0.0 is out of range"),
    (["train", "--batch-size", "0"], "train batch_size=0 is out of range"),
    (["train", "--timesteps", "0"], "schedule timesteps=0 is out of range"),
    (["train", "--checkpoint-every", "0"], "train checkpoint_every=0 is out of range"),
    (["train", "--dataset", "mnist", "--image-size", "0"], "data image_size=0 is out of range"),
    (["train", "--measure-every", "0"], "--measure-every 0 is out of range"),
    (["train", "--seed", "99999999999999"], "--seed 99999999999999 is out of range; allowed: 0 to 4294967295"),
    (["train", "--dataset", "swissroll", "--conditional"], "--conditional: dataset 'swissroll' has no labels"),
    (["train", "--dataset", "moons", "--image-size", "16"], "--image-size: for image datasets only"),
])
def test_bad_train_flags_are_refused_before_anything(tmp_path, capsys, args, message):
    out = tmp_path / "new"
    code, err = _one_line(capsys, [*args, "--out", str(out)])
    assert code == 2 and message in err
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("flags, saved", [
    (["--ema-decay", "0.9"], "--ema-decay 0.9 (the run has 0.999)"),
    (["--checkpoint-every", "7"], "--checkpoint-every 7 (the run has 10)"),
    (["--precision", "bfloat16"], "--precision bfloat16 (the run has float32)"),
    (["--zero-terminal-snr", "--objective", "x0"], "--zero-terminal-snr True (the run has False); --objective x0"),
    (["--no-channels-last"], "--channels-last False (the run has None)"),
    (["--seed", "3"], "--seed 3 (the run has 0)"),
])
def test_resume_refuses_every_flag_that_would_change_the_run(run_dir, capsys, flags, saved):
    code, err = _one_line(capsys, ["train", *flags, "--out", str(run_dir)])
    assert code == 2 and "holds a run with other settings" in err and saved in err


def test_resume_of_an_image_run_refuses_preset_conditioning_and_conditional(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert main(["train", "--dataset", "shapes", "--image-size", "8", "--preset", "tiny", "--steps", "2",
                 "--batch-size", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    code, err = _one_line(capsys, ["train", "--preset", "small-16", "--conditional", "--conditioning", "cross",
                                   "--out", str(out)])
    assert code == 2
    for clash in ("--conditional True (the run has False)", "--conditioning cross (the run has add)",
                  "--preset small-16 (the run has tiny)"):
        assert clash in err


@pytest.mark.parametrize("args, message", [
    (["sample", "--checkpoint", "RUN", "--seed", "99999999999999", "--out", "OUT/s.npy"], "--seed 99999999999999"),
    (["sample", "--checkpoint", "RUN", "--sampler", "euler", "--s-noise", "inf", "--out", "OUT/s.npy"],
     "S_noise=inf is out of range"),
    (["sample", "--checkpoint", "RUN", "--out", "OUT"], "--out"),
    (["sample", "--checkpoint", "RUN", "--out", "FILE/s.npy"], "cannot write in"),
    (["evaluate", "--checkpoint", "RUN", "--n", "1"], "--n 1 is out of range; allowed: 2 to 1000000"),
    (["study", "--checkpoint", "RUN", "--device", "tpu", "--out", "OUT/s.csv"], "--device 'tpu' is unknown"),
    (["study", "--checkpoint", "RUN", "--out", "FILE/s.csv"], "cannot write in"),
    (["data", "--out", "FILE/d.npy"], "cannot write in"),
    (["data", "--out", "OUT/d.png"], "2D points are written as .npy or .csv"),
    (["train", "--steps", "5", "--out", "FILE"], "is a file; allowed: a run folder"),
    (["train", "--steps", "5", "--out", "FILE/run"], "cannot write in"),
])
def test_outputs_and_sampling_flags_are_checked_before_the_work(run_dir, tmp_path, capsys, args, message):
    (tmp_path / "file").write_text("not a folder")
    paths = {"RUN": str(run_dir), "OUT": str(tmp_path), "FILE": str(tmp_path / "file")}
    args = ["/".join(paths.get(p, p) for p in a.split("/")) for a in args]
    code, err = _one_line(capsys, args)
    assert code == 2 and message in err


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()),
                                                          "data": "moons"})),
     "config section 'data' must be an object"),
    (lambda d: (d / "config.json").write_text(json.dumps({**json.loads((d / "config.json").read_text()),
                                                          "model": {"kind": "mlp", "num_classes": 10**8}})),
     "MLP num_classes=100000000 is out of range"),
    (lambda d: (d / "metrics.csv").write_text("loss,lr\n1,2\n"), "metrics.csv has no step column"),
    (lambda d: (d / "metrics.csv").write_bytes(b'step,loss\n1,"2\n3'), "metrics.csv cannot be read"),
    (lambda d: (d / "commit.json").write_text("[1, 2]"), "commit.json must list files"),
    (lambda d: (d / "commit.json").write_text('{"step": 3}'), "commit.json must list files"),
])
def test_damaged_run_folders_are_one_line(run_dir, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    damage(broken)
    code, err = _one_line(capsys, ["sample", "--checkpoint", str(broken), "--n", "5", "--out", str(tmp_path / "s.npy")])
    assert code == 2 and message in err and str(broken) in err


def test_a_full_disk_is_one_line_exit_1(run_dir, tmp_path, capsys, monkeypatch):
    """Writing the samples hits ENOSPC (/dev/full), and a checkpoint's write too: one line each, exit 1."""
    (tmp_path / "full.npy").symlink_to("/dev/full")
    code, err = _one_line(capsys, ["sample", "--checkpoint", str(run_dir), "--n", "5", "--out",
                                   str(tmp_path / "full.npy")])
    assert code == 1 and "No space left on device" in err

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(checkpoints, "save_file", full)
    code, err = _one_line(capsys, ["train", "--steps", "5", "--out", str(tmp_path / "run")])
    assert code == 1 and "cannot write a checkpoint in" in err and "No space left on device" in err


def test_no_room_for_one_checkpoint_is_refused_before_training(tmp_path, capsys, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10_000))
    code, err = _one_line(capsys, ["train", "--steps", "5", "--out", str(tmp_path / "run")])
    assert code == 2 and "0 MB free on its disk; one checkpoint of this model needs 1 MB" in err   # 19 k parameters
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_folder_dataset_of_proc_ends_quickly(tmp_path):
    """Issue 14: this walked /proc's links forever (100% of a core, memory growing, SIGTERM ignored)."""
    root = "/proc/self"
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "diffusion", "data", "--dataset", f"folder:{root}", "--n", "5",
                           "--out", str(tmp_path / "d.npy")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"image folder '{root}' has no images" in done.stderr
    assert time.monotonic() - start < 60
