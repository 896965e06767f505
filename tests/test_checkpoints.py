import os
import pickle
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from conftest import ROOT

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.sampling.sampler_config import SamplerConfig
from diffusion.training import checkpoints
from diffusion.training.checkpoints import load_run
from diffusion.training.trainer import Trainer

X = load_data(DataConfig("moons", n=2000)).x


def test_round_trip_gives_identical_samples(tmp_path):
    trainer = Trainer(RunConfig(train=TrainConfig(steps=50)), X)
    trainer.run(run_dir=tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors", "ema.safetensors",
                                                     "optimizer.safetensors", "metrics.csv", ".lock"}
    sampler = SamplerConfig("ddpm", 100)
    loaded = load_run(tmp_path)
    assert loaded.step == 50 and len(loaded.history) == 50
    torch.testing.assert_close(loaded.sample(64, sampler, seed=5), trainer.as_run().sample(64, sampler, seed=5),
                               rtol=0, atol=0)


def test_resume_continues_exactly(tmp_path):
    straight = Trainer(RunConfig(), X)
    straight.run(steps=40)
    first = Trainer(RunConfig(), X)
    first.run(steps=25, run_dir=tmp_path)
    resumed = Trainer.resume(tmp_path, X)
    assert resumed.step == 25 and [r["step"] for r in resumed.history] == list(range(1, 26))
    resumed.run(steps=15)
    for a, b in zip(straight.ema.parameters(), resumed.ema.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [r["loss"] for r in straight.history] == pytest.approx([r["loss"] for r in resumed.history])


def test_loading_unpickles_nothing(tmp_path, monkeypatch):
    Trainer(RunConfig(), X).run(steps=5, run_dir=tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("checkpoint loading must not unpickle")
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    assert load_run(tmp_path).step == 5
    assert Trainer.resume(tmp_path, X).step == 5


def test_damaged_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint in .*config.json is missing"):
        load_run(tmp_path)
    trainer = Trainer(RunConfig(), X)
    trainer.run(steps=5, run_dir=tmp_path)
    (tmp_path / "ema.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint .*ema.safetensors cannot be read"):
        load_run(tmp_path)
    trainer.save(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint .*config.json is unreadable"):
        load_run(tmp_path)
    trainer.save(tmp_path)
    model = (tmp_path / "model.safetensors").read_bytes()
    trainer.run(steps=3)
    trainer.save(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(model)  # a file from an older step
    with pytest.raises(ValueError, match=r"inconsistent checkpoint .*steps \[5, 8\]"):
        Trainer.resume(tmp_path, X)


def test_kill_9_mid_run_resumes_with_history_intact(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "diffusion", "train", "--dataset", "moons", "--steps", "1000000",
           "--checkpoint-every", "25", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        if (out / "metrics.csv").exists() and checkpoints._step_of(out / "ema.safetensors") >= 100:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step = load_run(out).step
    assert step >= 100 and step % 25 == 0
    done = subprocess.run(cmd[:6] + ["--steps", str(step + 30), "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming {out} from step {step}" in done.stdout
    history = pd.read_csv(out / "metrics.csv")
    assert history["step"].tolist() == list(range(1, step + 31))


def test_interrupted_saves_roll_back_or_forward(tmp_path, monkeypatch):
    trainer = Trainer(RunConfig(), X)
    trainer.run(steps=5, run_dir=tmp_path)
    trainer.run(steps=3)
    real_atomic = checkpoints.atomic_write

    def die_at_commit(path, write):
        if path.name == checkpoints.COMMIT:
            raise KeyboardInterrupt  # killed after writing every file, before the commit point
        real_atomic(path, write)
    monkeypatch.setattr(checkpoints, "atomic_write", die_at_commit)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(tmp_path)
    monkeypatch.setattr(checkpoints, "atomic_write", real_atomic)
    assert load_run(tmp_path).step == 5                      # the previous checkpoint stands
    assert Trainer.resume(tmp_path, X).step == 5
    trainer.save(tmp_path)                                   # discards the stale pending files first
    assert load_run(tmp_path).step == 8

    trainer.run(steps=2)
    monkeypatch.setattr(checkpoints, "_finish", lambda run_dir, discard_uncommitted=False: None)
    trainer.save(tmp_path)                                   # killed right after the commit point
    monkeypatch.undo()
    assert (tmp_path / checkpoints.COMMIT).exists()
    assert load_run(tmp_path).step == 10 and Trainer.resume(tmp_path, X).step == 10
    assert not (tmp_path / checkpoints.COMMIT).exists()
