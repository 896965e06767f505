"""A small CNN per image dataset, trained on its training split: the feature space of the image metrics
(penultimate layer for FID/KID/precision-recall, logits for the Inception Score) and the judge of labels.

A classifier is a folder checkpoints/classifiers/<dataset>-<size>/: config.json + model.safetensors.
python -m diffusion.metrics.classifier --dataset mnist --image-size 16 --out checkpoints/classifiers/mnist-16
"""

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from diffusion import __version__
from diffusion.data.image_datasets import IMAGE_DATASETS, load_images
from diffusion.training.checkpoints import CHECKPOINTS_DIR, atomic_write

CLASSIFIERS_ROOT = CHECKPOINTS_DIR / "classifiers"
CONFIG, MODEL = "config.json", "model.safetensors"
MAX_SHIFT = 2  # augmentation: random translations of up to 2 pixels


@dataclass(frozen=True)
class FeatureCNNConfig:
    """Three conv stages (width, 2 width, 4 width) with 2x2 pooling between them, a 2x2 average pool,
    then feature_dim features and num_classes logits."""

    in_channels: int = 1
    image_size: int = 16
    num_classes: int = 10
    width: int = 16
    feature_dim: int = 128

    def __post_init__(self):
        for name, low, high in (("in_channels", 1, 4), ("image_size", 4, 64), ("num_classes", 2, 1000),
                                ("width", 4, 256), ("feature_dim", 8, 4096)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"classifier {name}={value!r} is out of range; allowed: integers {low}..{high}")


@dataclass(frozen=True)
class ClassifierInfo:
    """What a classifier was trained on and how well it does on the held-out test split."""

    dataset: str
    image_size: int
    accuracy: float        # held-out accuracy on split="test"
    n_train: int
    n_test: int
    source: str            # where the training images came from (and the offline notice, if any)
    epochs: int
    seed: int
    train_seconds: float
    command: str = ""      # the command line that produced the folder


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class FeatureCNN(nn.Module):
    """(B, C, H, W) in [-1, 1] -> logits (B, num_classes); `features` is the penultimate layer (B, feature_dim)."""

    def __init__(self, cfg: FeatureCNNConfig):
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.body = nn.Sequential(
            _conv(cfg.in_channels, w), _conv(w, w), nn.MaxPool2d(2),
            _conv(w, 2 * w), _conv(2 * w, 2 * w), nn.MaxPool2d(2),
            _conv(2 * w, 4 * w), _conv(4 * w, 4 * w), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16 * w, cfg.feature_dim), nn.ReLU())
        self.out = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)                                               # (B, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.features(x))                                 # (B, num_classes)


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by its own random (dy, dx) in -max_shift..max_shift, edges replicated."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1), generator=generator)
    rows = (torch.arange(h) + dy)[:, :, None]                             # (B, H, 1)
    cols = (torch.arange(w) + dx)[:, None, :]                             # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


@torch.no_grad()
def accuracy(model: FeatureCNN, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Fraction of images whose argmax logit is their label (model in eval mode)."""
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def _fit(model: FeatureCNN, x: Tensor, y: Tensor, epochs: int, batch_size: int, lr: float,
         generator: torch.Generator, max_seconds: float | None) -> int:
    """AdamW with a one-cycle learning rate over `epochs`, random shifts; returns the epochs completed."""
    steps_per_epoch = math.ceil(len(x) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            return epoch
        for idx in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(random_shift(x[idx], MAX_SHIFT, generator)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return epochs


def train_classifier(dataset: str, image_size: int, *, epochs: int = 15, max_seconds: float | None = None,
                     seed: int = 0, width: int = 16, batch_size: int = 64, lr: float = 3e-3,
                     data_dir: str | Path | None = None, download: bool = True) -> tuple[FeatureCNN, ClassifierInfo]:
    """Train a FeatureCNN on split="train" (random shifts of up to 2 px) and measure it on split="test"."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} is out of range; allowed: integers >= 1")
    train = load_images(dataset, image_size, split="train", data_dir=data_dir, download=download)
    test = load_images(dataset, image_size, split="test", data_dir=data_dir, download=download)
    cfg = FeatureCNNConfig(train.x.shape[1], image_size, train.num_classes, width)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's global RNG
        torch.manual_seed(seed)
        model = FeatureCNN(cfg)
    start = time.perf_counter()
    done = _fit(model, train.x, train.y, epochs, batch_size, lr, torch.Generator().manual_seed(seed), max_seconds)
    seconds = time.perf_counter() - start
    source = train.source + (f"; {train.notice}" if train.notice else "")
    info = ClassifierInfo(dataset, image_size, accuracy(model, test.x, test.y), len(train.x), len(test.x), source,
                          done, seed, round(seconds, 1))
    return model.eval(), info


def save_classifier(model: FeatureCNN, info: ClassifierInfo, out_dir: str | Path) -> None:
    """Write out_dir/config.json (architecture + info) and out_dir/model.safetensors, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(out_dir / MODEL, lambda tmp: save_file(tensors, str(tmp)))
    config = {"version": __version__, "architecture": asdict(model.config), **asdict(info)}
    atomic_write(out_dir / CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))


def classifier_dir(dataset: str, image_size: int, root: str | Path | None = None) -> Path:
    """The folder of the classifier for dataset at image_size: root/<dataset>-<image_size>."""
    return Path(root or CLASSIFIERS_ROOT) / f"{dataset}-{image_size}"


def load_classifier_dir(path: str | Path) -> tuple[FeatureCNN, ClassifierInfo]:
    """Rebuild a classifier from path/config.json and load path/model.safetensors (nothing unpickled)."""
    path = Path(path)
    missing = [name for name in (CONFIG, MODEL) if not (path / name).is_file()]
    if missing:
        raise ValueError(f"classifier folder {str(path)!r} is incomplete: {', '.join(missing)} missing")
    try:
        raw = json.loads((path / CONFIG).read_text())
        model = FeatureCNN(FeatureCNNConfig(**raw.pop("architecture")))
        raw.pop("version", None)
        info = ClassifierInfo(**raw)
        model.load_state_dict(load_file(str(path / MODEL)))
    except Exception as err:  # json, dataclass and safetensors errors alike: a damaged folder

        raise ValueError(f"classifier folder {str(path)!r} is corrupt ({err})") from None
    return model.eval().requires_grad_(False), info


def load_classifier(dataset: str, image_size: int, root: str | Path | None = None
                    ) -> tuple[FeatureCNN, ClassifierInfo]:
    """The shipped (or locally trained) classifier for dataset at image_size, in eval mode."""
    path = classifier_dir(dataset, image_size, root)
    if not path.is_dir():
        raise ValueError(f"no classifier for {dataset!r} at {image_size}x{image_size}: folder {str(path)!r} is "
                         f"missing; create it with: python -m diffusion.metrics.classifier --dataset {dataset} "
                         f"--image-size {image_size} --out {path}")
    return load_classifier_dir(path)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """Train, report and save one classifier folder."""
    argv = sys.argv[1:] if argv is None else list(argv)
    p = _Parser(prog="python -m diffusion.metrics.classifier", description="Train the classifier the image metrics use.")
    p.add_argument("--dataset", required=True, choices=IMAGE_DATASETS)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--max-seconds", type=float, help="stop after the epoch that passes this time budget")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: a good neighbour)")
    p.add_argument("--out", required=True, help="classifier folder, e.g. checkpoints/classifiers/mnist-16")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        model, info = train_classifier(args.dataset, args.image_size, epochs=args.epochs,
                                       max_seconds=args.max_seconds, seed=args.seed, width=args.width)
    except ValueError as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    info = replace(info, command=shlex.join(["python", "-m", "diffusion.metrics.classifier", *argv]))
    save_classifier(model, info, args.out)
    print(f"{args.out}: held-out accuracy {info.accuracy:.4f} on {info.n_test} test images "
          f"({info.epochs} epochs, {info.train_seconds:.1f} s, {info.n_train} train images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
