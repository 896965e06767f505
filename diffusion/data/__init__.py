"""Training data for a run: 2D toy sets (points) or image datasets, behind one loader."""

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from diffusion.config import CUSTOM_PREFIX, DataConfig
from diffusion.data.toy_datasets import TOY_DATASETS, Toy2D, toy_dataset

TOY_TRAIN_SIZE = 100_000  # default number of points drawn once for a 2D training set


@dataclass(frozen=True, eq=False)
class TrainingData:
    x: Tensor                  # (N, 2) points or (N, C, H, W) images in [-1, 1]
    y: Tensor | None           # (N,) labels; None for unlabelled 2D sets
    num_classes: int
    source: str                # one line: where the data came from
    notice: str | None = None  # shown to users, e.g. an offline fallback


def is_toy(name: str) -> bool:
    """A 2D set: a preset or a custom set ("custom:...")."""
    return name in TOY_DATASETS or name.startswith(CUSTOM_PREFIX)


def toy_for(cfg: DataConfig) -> Toy2D:
    """The 2D set a DataConfig names; a custom set is rebuilt from the points it carries (and registered)."""
    if cfg.dataset.startswith(CUSTOM_PREFIX):
        from diffusion.data.custom import custom_set
        return custom_set(cfg)
    return toy_dataset(cfg.dataset)


def load_data(cfg: DataConfig) -> TrainingData:
    """The training set a DataConfig describes (2D: cfg.n points drawn with cfg.seed)."""
    if is_toy(cfg.dataset):
        n, toy = cfg.n or TOY_TRAIN_SIZE, toy_for(cfg)
        x, y = toy.sample_labelled(n, torch.Generator().manual_seed(cfg.seed))
        return TrainingData(x, y if toy.num_classes else None, toy.num_classes,
                            f"{n:,} points of {cfg.dataset} drawn with seed {cfg.seed}")
    from diffusion.data.image_datasets import load_images
    if cfg.image_size is None:
        raise ValueError(f"dataset {cfg.dataset!r} is an image dataset: give an image size")
    images = load_images(cfg.dataset, cfg.image_size, classes=cfg.classes, class_weights=cfg.class_weights,
                         n=cfg.n, seed=cfg.seed)
    return TrainingData(images.x, images.y, images.num_classes, images.source, images.notice)


@lru_cache(maxsize=64)
def data_radius(cfg: DataConfig) -> float:
    """max |x0| over the 2D training set cfg describes: the ball 2D x0_hat is projected onto when sampling."""
    if not is_toy(cfg.dataset):
        raise ValueError(f"dataset {cfg.dataset!r} is not a 2D set; the data radius is defined for 2D sets only")
    return float(load_data(cfg).x.norm(dim=1).max())
