"""folder: datasets read defensively: links out of the folder, link loops, FIFOs, decompression bombs, damaged and
non-image files are skipped and named (never followed, opened or decoded), walks are bounded, and a folder that
holds no image is one clear error. Real PNG files written by PIL, real links and FIFOs."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion.data import folder
from diffusion.data.image_datasets import load_images


def _png(path: Path, size=(12, 10), seed=0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _claims_size(path: Path, width: int, height: int) -> None:
    """A small PNG whose header claims width x height pixels (how a decompression bomb announces itself)."""
    _png(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]                                  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.fixture
def hostile(tmp_path) -> Path:
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            _png(root / c / f"{i}.png", seed=i)
    _claims_size(root / "cat" / "bomb.png", 20000, 20000)        # above PIL's own guard
    _claims_size(root / "cat" / "big.png", 5000, 5000)           # under PIL's guard, above ours
    (root / "dog" / "cut.png").write_bytes((root / "dog" / "0.png").read_bytes()[:60])
    (root / "dog" / "text.jpg").write_text("not an image")
    secret = tmp_path / "secret.png"
    _png(secret)
    (root / "dog" / "escape.png").symlink_to(secret)              # a link out of the folder
    (root / "cat" / "loop").symlink_to(root)                      # a cycle
    os.mkfifo(root / "cat" / "pipe.png")                          # opening it would block forever
    (root / "cat" / "inside.png").symlink_to(root / "cat" / "0.png")   # a link that stays inside: kept
    return root


def test_only_readable_images_inside_the_folder_are_kept_and_the_rest_named(hostile):
    index = folder.index_folder(str(hostile))
    kept = sorted(str(p.relative_to(hostile)) for p in index.files)
    assert kept == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/inside.png", "dog/0.png", "dog/1.png", "dog/2.png"]
    assert index.classes == ("cat", "dog") and index.labels == (0, 0, 0, 0, 1, 1, 1)
    skipped = " ".join(index.skipped)
    for name in ("cat/bomb.png", "cat/big.png (5000x5000 pixels, above the limit", "dog/cut.png", "dog/text.jpg",
                 "dog/escape.png (a link out of the folder)"):
        assert name in skipped
    assert "pipe" not in skipped and "loop" not in skipped and "secret" not in skipped
    assert "5 file(s) skipped" in index.notice


def test_loading_the_hostile_folder_trains_on_the_good_images(hostile):
    data = load_images(f"folder:{hostile}", 8)
    assert data.x.shape == (7, 3, 8, 8) and data.num_classes == 2
    assert data.notice.startswith("5 file(s) skipped in the image folder")


def test_a_damaged_body_is_reported_by_name_when_decoded(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    _png(root / "a" / "ok.png")
    index = folder.index_folder(str(root))
    data = bytearray((root / "a" / "ok.png").read_bytes())
    (root / "a" / "ok.png").write_bytes(bytes(data[:-40]))       # truncated after indexing
    with pytest.raises(ValueError, match="image 'a/ok.png' of the image folder cannot be decoded"):
        folder.read_image(index, 0)


def test_walks_are_bounded(tmp_path, monkeypatch):
    root = tmp_path / "many"
    (root / "a").mkdir(parents=True)
    for i in range(30):
        (root / "a" / f"{i}.txt").write_text("x")
    monkeypatch.setattr(folder, "MAX_ENTRIES", 20)
    with pytest.raises(ValueError, match="image folder '.*many' holds more than 20 entries"):
        folder.index_folder(str(root))


@pytest.mark.parametrize("typed, message", [
    ("/proc/self", "image folder '/proc/self' has no images in class subfolders"),
    ("/no/such/folder", "image folder '/no/such/folder' does not exist"),
])
def test_missing_or_imageless_folders_are_one_message_naming_only_the_typed_path(typed, message):
    with pytest.raises(ValueError, match=message) as info:
        folder.index_folder(typed)
    assert "self/" not in str(info.value) and "fd" not in str(info.value)


def test_the_index_is_cached_until_the_folder_changes(tmp_path):
    root = tmp_path / "c"
    (root / "a").mkdir(parents=True)
    _png(root / "a" / "0.png")
    first = folder.index_folder(str(root))
    assert folder.index_folder(str(root)) is first
    (root / "b").mkdir()
    _png(root / "b" / "0.png")
    assert folder.index_folder(str(root)).classes == ("a", "b")
