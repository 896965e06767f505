"""Phases 2-3 speed and quality on 2 CPU cores, with the CLI's defaults:

    python benchmarks/bench_images.py speed          # U-Net train/sample images/s vs diffusers UNet2DModel
    python benchmarks/bench_images.py speed --device cuda --batch 256 --size 32 --channels 3   # bf16, layouts
    python benchmarks/bench_images.py digit0         # 5 min on MNIST zeros at 16x16, then the protocol's samples
    python benchmarks/bench_images.py conditional    # 10 min on all digits, accuracy vs guidance scale
    (--steps N instead of --minutes trains a fixed number of steps: the same model on any machine)

Quality is measured under the protocol (diffusion.metrics.protocol; 500 DDIM-50 samples, n capped by the held-out
images): FID on the shipped digit classifier's features (checkpoints/classifiers/mnist-16) against held-out digits,
the floor (training digits against the same ones) and the share of samples recognised as the requested digit, each
with its 95% interval.
"""

import argparse
from dataclasses import replace
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.cli import main as cli
from diffusion.metrics.evaluation import measure_run
from diffusion.metrics.intervals import Interval
from diffusion.metrics.protocol import MEASUREMENT_SAMPLER, image_protocol
from diffusion.models.model_config import unet_preset
from diffusion.models.unet import UNet
from diffusion.training.checkpoints import load_run


def _median_rate(fn, images: int, device: str, repeats: int = 5) -> float:
    def timed() -> float:
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    timed()  # warm-up
    return images / statistics.median(timed() for _ in range(repeats))


def _peer(size: int, channels: int):
    """A diffusers UNet2DModel shaped like our small-16 preset (widths 32, 64, 96, attention at the coarsest)."""
    from diffusers import UNet2DModel
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(32, 64, 96), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def _variants(device: str, size: int, channels: int):
    """(name, network, forward, autocast dtype or None, channels-last) to time; bf16 on CUDA only."""
    ours, peer = UNet(unet_preset("small-16", image_size=size, channels=channels)), _peer(size, channels)
    peer_forward = lambda x, t: peer(x, t).sample  # noqa: E731
    rows = [("ours small-16, NCHW", ours, ours, None, False),
            ("ours, channels-last (the CPU default)", ours, ours, None, True),
            ("diffusers UNet2DModel", peer, peer_forward, None, False)]
    if device == "cuda":
        rows += [("ours, bf16 autocast", ours, ours, torch.bfloat16, False),
                 ("ours, bf16 + channels-last", ours, ours, torch.bfloat16, True),
                 ("diffusers, bf16 autocast", peer, peer_forward, torch.bfloat16, False)]
    return rows


def speed(device: str, batch: int, size: int, channels: int) -> None:
    print(f"\nU-Net speed on {device}, {size}x{size}x{channels}, batch {batch}, {torch.get_num_threads()} CPU "
          "threads, medians of 5\n")
    print("| network | parameters | train images/s | sampling images/s (per network evaluation) |")
    print("|---|---|---|---|")
    for name, net, forward, dtype, channels_last in _variants(device, size, channels):
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net.to(device, memory_format=layout)
        x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=layout)
        t = torch.randint(0, 1000, (batch,), device=device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, foreach=True)

        def call():
            with torch.autocast(device, dtype or torch.float32, enabled=dtype is not None):
                return forward(x, t)

        def step():
            loss = call().float().square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        train = _median_rate(step, batch, device)
        with torch.no_grad():
            sample = _median_rate(call, batch, device)
        net.to("cpu", memory_format=torch.contiguous_format)
        params = sum(p.numel() for p in net.parameters())
        print(f"| {name} | {params / 1e6:.2f} M | {train:.0f} | {sample:.0f} |")


def _trained(out: Path, budget: list[str], *flags: str):
    assert cli(["train", "--dataset", "mnist", "--image-size", "16", "--model", "unet", *flags, *budget,
                "--out", str(out)]) == 0
    return load_run(out)


def digit0(budget: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = _trained(Path(tmp) / "zeros", budget, "--classes", "0")
    start = time.perf_counter()
    result, _ = measure_run(run, image_protocol(run.config.data, 500))
    zeros = Interval(**result.details["generated_class_shares"][0])
    print(f"\nMNIST zeros 16x16: {' '.join(budget)} of training ({run.step} steps), then {result.n} DDIM-50 samples "
          f"measured in {time.perf_counter() - start:.1f} s ({result.protocol.name}; {result.cap or 'no cap'})\n")
    print("| recognised as 0 [95%] | FID [95%] | FID floor [95%] | reading |")
    print("|---|---|---|---|")
    print(f"| {zeros.text()} | {result.metrics['fid'].text()} | {result.floor['fid'].text()} | {result.reading('fid')} |")
    print(f"\nclassifier mnist-16, held-out accuracy {result.details['classifier']['held_out_accuracy']:.3f}; "
          "goal: >= 95% and FID <= 40")


def conditional(budget: list[str], scales: tuple[float, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = _trained(Path(tmp) / "digits", budget, "--conditional")
    print(f"\nAll digits 16x16, conditional: {' '.join(budget)} of training ({run.step} steps), 500 DDIM-50 samples "
          "(50 per class) per guidance scale against 500 held-out digits; the floor: 500 training digits\n")
    print("| guidance w | requested digit recognised [95%] | FID [95%] | floor [95%] | reading | min class count |")
    print("|---|---|---|---|---|---|")
    for w in scales:
        result, _ = measure_run(run, image_protocol(run.config.data, 500, replace(MEASUREMENT_SAMPLER, guidance=w)))
        print(f"| {w:g} | {result.extra['accuracy'].text()} | {result.metrics['fid'].text()} | "
              f"{result.floor['fid'].text()} | {result.reading('fid')} | "
              f"{min(result.details['generated_class_histogram'])} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("speed", "digit0", "conditional"))
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--steps", type=int, help="train this many steps instead of --minutes")
    parser.add_argument("--scales", default="1,2,3,4")
    parser.add_argument("--device", default="cpu", help="speed: cpu or cuda")
    parser.add_argument("--batch", type=int, default=64, help="speed: batch size")
    parser.add_argument("--size", type=int, default=16, help="speed: image side")
    parser.add_argument("--channels", type=int, default=1, help="speed: image channels")
    args = parser.parse_args()
    if args.part == "speed":
        speed(args.device, args.batch, args.size, args.channels)
    else:
        default = 5.0 if args.part == "digit0" else 10.0
        budget = ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes or default)]
        if args.part == "digit0":
            digit0(budget)
        else:
            conditional(budget, tuple(float(s) for s in args.scales.split(",")))


if __name__ == "__main__":
    main()
