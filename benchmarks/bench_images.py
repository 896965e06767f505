"""Phases 2-3 speed and quality on 2 CPU cores, with the CLI's defaults:

    python benchmarks/bench_images.py speed          # U-Net train/sample images/s vs diffusers UNet2DModel
    python benchmarks/bench_images.py speed --device cuda --batch 256 --size 32 --channels 3   # bf16, layouts
    python benchmarks/bench_images.py digit0         # 5 min on MNIST zeros at 16x16, 500 DDIM-50 samples
    python benchmarks/bench_images.py conditional    # 10 min on all digits, accuracy vs guidance scale

Quality uses the shipped digit classifier (checkpoints/classifiers/mnist-16): the fraction of samples it
recognises as the requested digit, and the FID on its features against real digits, with the FID floor.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusion.cli import main as cli
from diffusion.data.images import load_images, to_uint8
from diffusion.metrics.classifier import load_classifier
from diffusion.metrics.images import class_histogram, fid_floor, image_metrics, label_accuracy
from diffusion.models.config import unet_preset
from diffusion.models.unet import UNet
from diffusion.sampling.config import SamplerConfig
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


def _real_digits(classes) -> torch.Tensor:
    """The real digits of these classes, train and test splits together (500 per class offline)."""
    parts = [load_images("mnist", 16, classes=classes, split=s, download=False).x for s in ("train", "test")]
    return to_uint8(torch.cat(parts))


def digit0(minutes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "zeros"
        assert cli(["train", "--dataset", "mnist", "--classes", "0", "--image-size", "16", "--model", "unet",
                    "--minutes", str(minutes), "--out", str(out)]) == 0
        run = load_run(out)
        start = time.perf_counter()
        samples = to_uint8(run.sample(500, SamplerConfig("ddim", 50)))
        seconds = time.perf_counter() - start
    clf, info = load_classifier("mnist", 16)
    real = _real_digits([0])
    zeros = label_accuracy(samples, torch.zeros(500, dtype=torch.long), clf)
    fid = image_metrics(samples, real[:500], ("fid",), dataset="mnist")["fid"]
    floor = fid_floor(real[:500], dataset="mnist")["fid"]
    print(f"\nMNIST zeros 16x16: {minutes:g} min of training ({run.step} steps), 500 DDIM-50 samples in "
          f"{seconds:.1f} s\n")
    print("| recognised as 0 | FID (classifier features, 500 vs 500 real zeros) | FID floor (250 vs 250 real) |")
    print("|---|---|---|")
    print(f"| {zeros:.1%} | {fid:.1f} | {floor:.1f} |")
    print(f"\nclassifier mnist-16, held-out accuracy {info.accuracy:.3f}; goal: >= 95% and FID <= 40")


def conditional(minutes: float, scales: tuple[float, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "digits"
        assert cli(["train", "--dataset", "mnist", "--image-size", "16", "--model", "unet", "--conditional",
                    "--minutes", str(minutes), "--out", str(out)]) == 0
        run = load_run(out)
        clf, _ = load_classifier("mnist", 16)
        real = _real_digits(None)
        y = torch.arange(10).repeat(50)
        print(f"\nAll digits 16x16, conditional: {minutes:g} min of training ({run.step} steps), 500 DDIM-50 "
              "samples (50 per class) per guidance scale\n")
        print("| guidance w | requested digit recognised | FID (vs 500 real) | min class count |")
        print("|---|---|---|---|")
        for w in scales:
            samples = to_uint8(run.sample(500, SamplerConfig("ddim", 50, guidance=w), y=y))
            acc = label_accuracy(samples, y, clf)
            fid = image_metrics(samples, real[torch.randperm(len(real))[:500]], ("fid",), dataset="mnist")["fid"]
            print(f"| {w:g} | {acc:.1%} | {fid:.1f} | {int(class_histogram(samples, clf, 10).min())} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("speed", "digit0", "conditional"))
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--scales", default="1,2,3,4")
    parser.add_argument("--device", default="cpu", help="speed: cpu or cuda")
    parser.add_argument("--batch", type=int, default=64, help="speed: batch size")
    parser.add_argument("--size", type=int, default=16, help="speed: image side")
    parser.add_argument("--channels", type=int, default=1, help="speed: image channels")
    args = parser.parse_args()
    if args.part == "speed":
        speed(args.device, args.batch, args.size, args.channels)
    elif args.part == "digit0":
        digit0(args.minutes or 5.0)
    else:
        conditional(args.minutes or 10.0, tuple(float(s) for s in args.scales.split(",")))


if __name__ == "__main__":
    main()
