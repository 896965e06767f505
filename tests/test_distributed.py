"""Data-parallel training under torchrun with two CPU processes on gloo: the CLI end to end, and the Trainer API
checked across ranks by this file itself, run by torchrun as a script (see _worker)."""

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from conftest import ROOT

from diffusion.config import DataConfig, RunConfig, TrainConfig
from diffusion.data import load_data
from diffusion.training import distributed
from diffusion.training.checkpoints import load_run
from diffusion.training.trainer import Trainer

RUN_FILES = {"config.json", "model.safetensors", "ema.safetensors", "optimizer.safetensors", "metrics.csv"}


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node 2 ARGS` on one thread a process; killed whole if it hangs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers: a disagreeing stop deadlocks them
            out, err = proc.communicate()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_cli_train_and_resume_under_torchrun(tmp_path):
    out = tmp_path / "moons"
    train = ("-m", "diffusion", "train", "--dataset", "moons", "--batch-size", "64", "--checkpoint-every", "30",
             "--out", str(out))
    done = torchrun(*train, "--steps", "60")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("step 60, loss") == 1, done.stdout  # printed by rank 0 only
    assert {p.name for p in out.iterdir()} == RUN_FILES | {".lock"}  # one checkpoint (and its lock), nothing pending
    run = load_run(out)
    assert run.step == 60 and run.config.train.batch_size == 64
    assert list(pd.read_csv(out / "metrics.csv")["step"]) == list(range(1, 61))

    done = torchrun(*train, "--steps", "70")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming") == 1 and done.stdout.count("step 70, loss") == 1, done.stdout
    assert load_run(out).step == 70 and len(pd.read_csv(out / "metrics.csv")) == 70


def test_trainer_api_across_two_ranks(tmp_path):
    done = torchrun(__file__, str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("worker ok") == 2, done.stdout


# --- what each rank runs (torchrun ... tests/test_distributed.py RUN_DIR) ---

def _gather(t: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return parts


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _assert_same_on_every_rank(t: torch.Tensor) -> None:
    for other in _gather(t):
        assert torch.equal(other, t)


def _check_one_step_is_a_step_on_the_global_batch(x: torch.Tensor) -> None:
    """The averaged gradient of the per-rank mean losses is the gradient of the mean over the global batch."""
    cfg = RunConfig(train=TrainConfig(warmup_steps=0, grad_clip=0.0, batch_size=32, lr=1e-2))
    trainer = Trainer(cfg, x)
    net = copy.deepcopy(trainer.model)
    g = distributed.rank_generator(torch.Generator().manual_seed(cfg.train.seed))
    idx = torch.randint(0, x.shape[0], (16,), generator=g)                  # this rank's half of the batch
    t = torch.randint(0, 1000, (16,), generator=g)
    eps = torch.randn(16, 2, generator=g)
    ab = trainer.schedule.alpha_bar[t][:, None]
    x_t = torch.cat(_gather(ab.sqrt() * x[idx] + (1 - ab).sqrt() * eps))   # (32, 2): both ranks' halves
    t_all, eps_all = torch.cat(_gather(t)), torch.cat(_gather(eps))
    assert not torch.equal(t_all[:16], t_all[16:])                          # the ranks drew different noise
    loss = F.mse_loss(net(x_t, t_all), eps_all)
    loss.backward()
    library_loss, why = trainer.train_step()
    assert why == "" and abs(library_loss - loss.item()) <= 1e-6 * loss.item()
    for p_lib, p_ref in zip(trainer.model.parameters(), net.parameters()):
        torch.testing.assert_close(p_lib.grad, p_ref.grad)


def _check_weights_stay_equal_and_resume_is_exact(x: torch.Tensor, run_dir: Path) -> None:
    trainer = Trainer(RunConfig(train=TrainConfig(batch_size=64, steps=20, checkpoint_every=10)), x)
    assert trainer.run(run_dir=run_dir).reason == "steps"
    assert load_run(run_dir).step == 20                       # rank 0 wrote it before anyone returned
    _assert_same_on_every_rank(_flat(trainer.model))
    _assert_same_on_every_rank(_flat(trainer.ema))
    resumed = Trainer.resume(run_dir, x)
    trainer.run(steps=5)
    resumed.run(steps=5)
    assert torch.equal(_flat(resumed.model), _flat(trainer.model))
    assert torch.equal(_flat(resumed.ema), _flat(trainer.ema))


def _check_stops_agree(x: torch.Tensor) -> None:
    """Rank 0's clock decides (rank 1 asks for a budget of 0); a loss exploding on rank 1 stops both ranks."""
    trainer = Trainer(RunConfig(train=TrainConfig(batch_size=64, objective="x0", steps=10_000)), x)
    result = trainer.run(seconds=0.3 if distributed.is_main() else 0.0)
    assert result.reason == "time" and result.steps > 0
    _assert_same_on_every_rank(torch.tensor([trainer.step]))
    trainer.run(steps=60)
    before = trainer.step
    if not distributed.is_main():
        trainer.x = trainer.x * 1e6  # this rank's data off by orders of magnitude: its loss explodes
    result = trainer.run(steps=10)
    assert result.reason == "diverged" and "exploded" in result.message and trainer.step == before


def _worker(run_dir: Path) -> None:
    assert distributed.setup() == "cpu" and distributed.world_size() == 2
    x = load_data(DataConfig("moons", n=1000)).x
    with pytest.raises(ValueError, match="batch_size=63 cannot be split over 2 processes"):
        Trainer(RunConfig(train=TrainConfig(batch_size=63)), x)
    _check_one_step_is_a_step_on_the_global_batch(x[:100])
    _check_weights_stay_equal_and_resume_is_exact(x, run_dir)
    _check_stops_agree(x)
    print(f"rank {distributed.rank()}: worker ok")
    distributed.teardown()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
