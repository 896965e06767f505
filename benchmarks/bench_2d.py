"""Phase 1 speed and quality: 30 s of training on two moons with the CLI's defaults, against the diffusers
library (DDPMScheduler / DDIMScheduler) training and sampling the same MLP for the same 30 s, in the same run.

    python benchmarks/bench_2d.py [--seconds 30] [--n 2000]

Quality is W1 under the protocol (diffusion.metrics.protocol): n samples against n fresh true points, in units of
the data's scale, with its 95% interval; the floor is n other fresh true points. Prints a Markdown table (the
README quotes it).
"""

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusers import DDIMScheduler, DDPMScheduler  # noqa: E402

from diffusion.cli import main as cli
from diffusion.data import load_data
from diffusion.config import DataConfig
from diffusion.metrics.evaluation import measure_samples
from diffusion.metrics.protocol import points_protocol
from diffusion.models.mlp import MLP
from diffusion.sampling.config import SamplerConfig
from diffusion.training.checkpoints import load_run


def train_ours(seconds: float, out: Path):
    code = cli(["train", "--dataset", "moons", "--minutes", str(seconds / 60), "--out", str(out)])
    assert code == 0
    run = load_run(out)
    return run, run.step / run.history[-1]["time"]


def train_peer(seconds: float, config):
    """The diffusers way: DDPMScheduler.add_noise, MSE on eps, AdamW; the same MLP, batch and lr, no EMA."""
    torch.manual_seed(0)
    net, scheduler = MLP(config.model), DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    opt = torch.optim.AdamW(net.parameters(), lr=config.train.lr)
    x = load_data(config.data).x
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x0 = x[torch.randint(0, x.shape[0], (config.train.batch_size,))]
        noise, t = torch.randn_like(x0), torch.randint(0, 1000, (x0.shape[0],))
        loss = F.mse_loss(net(scheduler.add_noise(x0, noise, t), t), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    return net.eval(), scheduler, steps / (time.perf_counter() - start)


@torch.no_grad()
def sample_peer(net, scheduler, n: int, steps: int):
    scheduler = copy.deepcopy(scheduler)
    scheduler.set_timesteps(steps)
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        x = scheduler.step(net(x, t.expand(n)), t, x).prev_sample
    return x


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)   # what the CLI uses for the MLP; the peer gets the same
    with tempfile.TemporaryDirectory() as tmp:
        run, ours_sps = train_ours(args.seconds, Path(tmp) / "moons")
    peer_net, peer_ddpm, peer_sps = train_peer(args.seconds, run.config)
    peer_ddim = DDIMScheduler.from_config(peer_ddpm.config)  # its defaults: leading spacing, set_alpha_to_one

    rows, protocol = [], points_protocol(args.n)
    for label, nfe, fn in [
        ("ours DDPM-1000", 1000, lambda: run.sample(args.n, SamplerConfig("ddpm", 1000))),
        ("ours DDIM-50 (trailing)", 50, lambda: run.sample(args.n, SamplerConfig("ddim", 50))),
        ("diffusers DDPMScheduler-1000", 1000, lambda: sample_peer(peer_net, peer_ddpm, args.n, 1000)),
        ("diffusers DDIMScheduler-50 (defaults)", 50, lambda: sample_peer(peer_net, peer_ddim, args.n, 50)),
    ]:
        samples, seconds = timed(fn)
        result = measure_samples(samples, protocol, DataConfig("moons"))
        rows.append((label, result, 1000 * seconds / nfe))
    floor = rows[0][1].floor["w1"]

    print(f"\n30 s budget: {args.seconds:.0f} s of training on moons, {args.n} samples vs {args.n} fresh true points "
          f"({protocol.name} with each sampler), 95% intervals, 1 torch thread, torch {torch.__version__}\n")
    print("| model and sampler | W1 (data scale) [95%] | reading | ms per network evaluation |")
    print("|---|---|---|---|")
    for label, result, ms in rows:
        print(f"| {label} | {result.metrics['w1'].text()} | {result.reading('w1')} | {ms:.2f} |")
    print(f"| floor ({args.n} other true points) | {floor.text()} | | |")
    w1 = [result.metrics["w1"].value for _, result, _ in rows]
    print(f"\ntraining: ours {ours_sps:.0f} steps/s (EMA included), diffusers {peer_sps:.0f} steps/s; "
          f"ours DDIM-50 / DDPM-1000 W1 ratio {w1[1] / w1[0]:.2f}")
    print(f"goal: ours DDPM-1000 W1 <= 0.10 -> {'met' if w1[0] <= 0.10 else 'NOT met'}; "
          f"DDIM-50 within 20% -> {'met' if w1[1] <= 1.2 * w1[0] else 'NOT met'}")


if __name__ == "__main__":
    main()
