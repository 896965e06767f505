"""A run folder under attack and under accidents: commit.json cannot rename anything outside its folder, a second
writer fails at once (and a writer killed with -9 leaves no lock behind), readers racing commits always read a whole
checkpoint, write errors are one line and keep the previous checkpoint, and a diverging run never writes garbage."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from safetensors import SafetensorError

from diffusion.cli import main
from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.training import checkpoints
from diffusion.training.checkpoints import CheckpointWriteError, load_run
from diffusion.training.trainer import Trainer

X = load_data(DataConfig("moons", n=2000)).x


def _saved(tmp_path, steps: int = 5) -> Trainer:
    trainer = Trainer(RunConfig(), X)
    trainer.run(steps=steps, run_dir=tmp_path)
    return trainer


@pytest.mark.parametrize("commit", [
    {"step": 5, "files": ["../victim"]},
    {"step": 5, "files": ["/tmp/x"]},
    {"step": 5},
    [1, 2],
    {"step": 5, "files": "config.json"},
])
def test_commit_json_names_only_run_files(tmp_path, commit):
    run = tmp_path / "run"
    _saved(run)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (run / "../victim.pending").write_text("replacement")        # what a hostile commit would move into place
    (run / "commit.json").write_text(json.dumps(commit))
    with pytest.raises(ValueError, match="corrupt checkpoint .*commit.json must list files among config.json"):
        load_run(run)
    assert victim.read_text() == "precious"


def test_a_second_writer_fails_at_once_and_a_killed_one_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom diffusion.training import runlock\n"
                               f"with runlock.hold({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    cmd = [sys.executable, "-m", "diffusion", "train", "--steps", "20", "--out", str(out)]
    start = time.monotonic()
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and time.monotonic() - start < 60
    assert f"run folder '{out}' is in use by another training (process {holder.pid})" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert main(cmd[3:]) == 0                           # in this process: the dead holder's lock is gone
    assert load_run(out).step == 20


def test_readers_racing_commits_always_read_a_whole_checkpoint(tmp_path):
    """A writer process saves every step while this process loads in a loop: never FileNotFoundError or a mix."""
    out = tmp_path / "run"
    writer = subprocess.Popen([sys.executable, "-m", "diffusion", "train", "--steps", "100000", "--checkpoint-every",
                               "1", "--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out / "ema.safetensors").exists():
            assert time.monotonic() < deadline and writer.poll() is None, "the writer did not start"
            time.sleep(0.05)
        first, loads, stop = load_run(out).step, 0, time.monotonic() + 3.0
        while time.monotonic() < stop:
            load_run(out)                                   # any exception fails the test
            loads += 1
        assert writer.poll() is None, writer.stderr.read()  # still saving when the reader stopped
    finally:
        writer.kill()
        writer.wait()
    assert loads > 20 and load_run(out).step > first + 20


FINISHER = """
import sys, time
from pathlib import Path
from diffusion.training import checkpoints, runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(1.0)
    checkpoints._finish(Path(sys.argv[1]))     # the live writer completes its own commit
"""


def test_a_reader_waits_for_a_live_writers_commit(tmp_path, monkeypatch):
    trainer = _saved(tmp_path)
    trainer.run(steps=3)
    monkeypatch.setattr(checkpoints, "_finish", lambda run_dir, discard_uncommitted=False: None)
    trainer.save(tmp_path)                                  # stopped right after the commit point
    monkeypatch.undo()
    writer = subprocess.Popen([sys.executable, "-c", FINISHER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "held"
    start = time.monotonic()
    assert load_run(tmp_path).step == 8                     # waited for the writer, did not race its renames
    assert time.monotonic() - start > 0.3
    assert writer.wait(timeout=60) == 0


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), SafetensorError("I/O error: disk full")])
def test_a_failed_write_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    trainer = _saved(tmp_path)
    trainer.run(steps=3)

    def full(*args, **kwargs):
        raise error
    monkeypatch.setattr(checkpoints, "save_file", full)
    with pytest.raises(CheckpointWriteError, match="cannot write a checkpoint in .*(No space left|disk full).*intact"):
        trainer.save(tmp_path)
    monkeypatch.undo()
    assert load_run(tmp_path).step == 5
    trainer.save(tmp_path)                  # the stale pending files are discarded, the save goes through
    assert load_run(tmp_path).step == 8


def test_a_diverging_run_keeps_its_last_good_checkpoint(tmp_path):
    trainer = Trainer(RunConfig(train=TrainConfig(checkpoint_every=50)), X)
    assert trainer.run(steps=100, run_dir=tmp_path).reason == "steps"
    good = load_run(tmp_path).sample(64, seed=0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.mul_(1e4)                         # weights blown up (as a too-high learning rate does)
    result = trainer.run(steps=50, run_dir=tmp_path)
    assert result.reason == "diverged" and "keeps step 100, its last good checkpoint" in result.message
    assert load_run(tmp_path).step == 100
    torch.testing.assert_close(load_run(tmp_path).sample(64, seed=0), good, rtol=0, atol=0)


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = _saved(tmp_path)
    with torch.no_grad():
        next(trainer.ema.parameters())[0].fill_(math.nan)
    assert "the EMA's weights are not finite" in trainer.health()
    with pytest.raises(ValueError, match="checkpoint not written: the EMA's weights are not finite"):
        trainer.save(tmp_path)
    assert load_run(tmp_path).step == 5


def test_checking_health_changes_nothing_in_the_run():
    """The probe has its own generator: a run checked every step trains exactly as one never checked."""
    a, b = Trainer(RunConfig(), X), Trainer(RunConfig(), X)
    a.run(steps=20)
    for _ in range(20):
        b.run(steps=1)
        assert b.health() == ""
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_cli_divergence_at_a_huge_learning_rate_stops_before_poisoning(tmp_path, capsys):
    """Issue 14: --lr 1 reached loss 5e7 and overwrote the good checkpoint. Now it stops within a few steps,
    writes nothing after the divergence, and says so (exit 1)."""
    out = tmp_path / "run"
    assert main(["train", "--lr", "1", "--checkpoint-every", "100", "--steps", "3000", "--out", str(out)]) == 1
    done = capsys.readouterr()
    assert "exploded" in done.err and "fail the check" in done.err and len(done.err.strip().splitlines()) == 1
    assert not (out / "ema.safetensors").exists() and "nothing saved" in done.out


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT from a background start"])
def test_a_stopped_training_saves_where_it_stopped(tmp_path, how):
    """kill (SIGTERM), or Ctrl-C's SIGINT to a run the shell started with `nohup ... &` (which ignores SIGINT): the
    run saves its current step and exits 130, so nothing trained since the last periodic checkpoint is lost."""
    out = tmp_path / "run"
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if how.startswith("SIGINT") else None
    proc = subprocess.Popen([sys.executable, "-m", "diffusion", "train", "--steps", "1000000", "--checkpoint-every",
                             "50", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=ignore)
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists() and time.monotonic() < deadline:   # the first checkpoint: training
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted at step" in stdout
    step = int(stdout.split("interrupted at step ")[1].split(";")[0])
    assert step > 0 and load_run(out).step == step
