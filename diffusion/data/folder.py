"""Image folders (`folder:PATH`): one subfolder of images per class, indexed and read defensively.

The walk never follows a symbolic link out of the folder nor into a linked folder (no cycles: torchvision's
ImageFolder follows links and never finishes on /proc), opens regular files with an image suffix only (a FIFO
named x.png would block), and gives up with a clear error past MAX_ENTRIES entries or MAX_DEPTH levels. Each image's
header is read and checked (verify) before it is kept: a file that is not an image, is damaged, or has more than
MAX_PIXELS pixels (a decompression bomb; PIL's own guard stays on) is skipped, and the index names it. Messages name
the folder typed and counts, never what else exists around it. Indexes are cached by the folders' mtimes.
"""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
MAX_FILES = 50_000          # images in a folder dataset
MAX_ENTRIES = 200_000       # directory entries the walk looks at, images or not
MAX_DEPTH = 6               # levels below a class folder
MAX_PIXELS = 4096 * 4096    # an image above this is skipped from its header, before decoding
NAMED_SKIPS = 5             # skipped files named in the notice (the rest are counted)


@dataclass(frozen=True)
class FolderIndex:
    """The images of a folder dataset: class names (subfolders, sorted), files and their labels, what was skipped."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    skipped: tuple[str, ...]          # "relative/path (why)" of every file left out

    @property
    def notice(self) -> str | None:
        if not self.skipped:
            return None
        more = len(self.skipped) - NAMED_SKIPS
        return (f"{len(self.skipped)} file(s) skipped in the image folder: {'; '.join(self.skipped[:NAMED_SKIPS])}"
                + (f"; and {more} more" if more > 0 else ""))


def _header_problem(path: Path) -> str:
    """Why the file is not a usable image ("" when it is), from its header and a structural check, no decoding."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                return f"{width}x{height} pixels, above the limit of {MAX_PIXELS:,}"
            img.verify()
    except Exception as e:  # noqa: BLE001 - PIL raises many types (UnidentifiedImageError, SyntaxError, bombs...)
        return f"not a readable image: {type(e).__name__}"
    return ""


class _Walk:
    """A bounded walk below root that never leaves it."""

    def __init__(self, root: Path, typed: str):
        self.root, self.typed, self.entries = root, typed, 0
        self.skipped: list[str] = []

    def _inside(self, path: Path) -> bool:
        try:
            return path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):        # a link loop
            return False

    def images(self, folder: Path, depth: int = 0) -> list[Path]:
        """Image files below folder (sorted per level); links are followed to files inside root only."""
        found: list[Path] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return found                       # unreadable folder: nothing in it
        for entry in entries:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise ValueError(f"image folder {self.typed!r} holds more than {MAX_ENTRIES:,} entries; allowed: a "
                                 f"folder of at most {MAX_FILES:,} images")
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False) and depth < MAX_DEPTH:
                found += self.images(path, depth + 1)
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                found += self._image(entry, path)
        return found

    def _image(self, entry: os.DirEntry, path: Path) -> list[Path]:
        name = str(path.relative_to(self.root))
        if entry.is_symlink() and not self._inside(path):
            self.skipped.append(f"{name} (a link out of the folder)")
            return []
        if not path.is_file():
            return []                          # a FIFO, a device, a link to a folder: never opened
        problem = _header_problem(path)
        if problem:
            self.skipped.append(f"{name} ({problem})")
            return []
        return [path]


def _stamp(root: Path) -> tuple:
    """mtimes of root and its subfolders: adding or removing a file in a class folder changes one of them."""
    try:
        return tuple(sorted((e.name, e.stat(follow_symlinks=False).st_mtime_ns) for e in os.scandir(root)))
    except OSError:
        return ()


def index_folder(typed: str | Path) -> FolderIndex:
    """The images of a folder dataset; ValueError naming the folder when it is missing or holds no image."""
    root = Path(typed).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"image folder {str(typed)!r} does not exist or is not a folder; expected folder:PATH with "
                         "one subfolder of images per class")
    return _index(root, str(typed), _stamp(root))


@lru_cache(maxsize=8)
def _index(root: Path, typed: str, stamp: tuple) -> FolderIndex:
    walk = _Walk(root, typed)
    classes, files, labels = [], [], []
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise ValueError(f"image folder {typed!r} cannot be read ({e.strerror})") from None
    for entry in top:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        found = walk.images(Path(entry.path))
        if found:
            labels += [len(classes)] * len(found)
            classes.append(entry.name)
            files += found
        if len(files) > MAX_FILES:
            raise ValueError(f"image folder {typed!r} holds more than {MAX_FILES:,} images; allowed: at most "
                             f"{MAX_FILES:,}")
    if not files:
        raise ValueError(f"image folder {typed!r} has no images in class subfolders ({len(walk.skipped)} unreadable "
                         "files skipped); expected folder:PATH with one subfolder of images per class")
    return FolderIndex(root, tuple(classes), tuple(files), tuple(labels), tuple(walk.skipped))


def read_image(index: FolderIndex, i: int) -> Tensor:
    """Image i of the index as uint8 (3, H, W); ValueError naming it when its pixels cannot be decoded."""
    path = index.files[i]
    try:
        with Image.open(path) as img:
            return pil_to_tensor(img.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - a damaged body shows only when decoding
        raise ValueError(f"image {str(path.relative_to(index.root))!r} of the image folder cannot be decoded "
                         f"({type(e).__name__}); remove or replace it") from None


def labels(index: FolderIndex) -> Tensor:
    return torch.tensor(index.labels, dtype=torch.long)
