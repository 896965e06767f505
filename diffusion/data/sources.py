"""Where a custom 2D set's raw points come from: a CSV file, strokes drawn on a canvas, a silhouette image, a typed
word. Inputs are untrusted (the app is public): sizes are checked before anything is parsed or decoded, and every bad
input raises ValueError naming the problem. Outputs are raw points (N, 2) float64 (y up) for data.custom.custom_data.
"""

import csv
import io

import numpy as np

from diffusion.config import MAX_CUSTOM_POINTS, MIN_CUSTOM_POINTS

MAX_CSV_BYTES, MAX_IMAGE_BYTES = 1_000_000, 5_000_000
MAX_IMAGE_PIXELS = 4_000_000         # width x height, read from the header before the image is decoded
MASK_SIDE = 256                      # silhouettes are thresholded at most this many pixels on their long side
SILHOUETTE_POINTS = 2000             # points drawn from an image, drawing or word silhouette
MIN_SILHOUETTE_PIXELS = 20
MAX_WORD_CHARS, WORD_FONT_SIZE = 24, 96
MAX_STROKES, MAX_STROKE_POINTS = 200, 20_000
HEADER = {"x": 0, "y": 1, "label": 2, "class": 2}


def _number(text: str, row: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"CSV row {row}: {text.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise ValueError(f"CSV row {row}: {text.strip()!r} is NaN or infinite; allowed: finite numbers")
    return value


def _columns(first: list[str]) -> bool:
    """True when the first row is a header naming x, y and optionally label; ValueError for other names."""
    try:
        [float(v) for v in first]
        return False
    except ValueError:
        names = [v.strip().lower() for v in first]
        if [HEADER.get(n) for n in names] not in ([0, 1], [0, 1, 2]):
            raise ValueError(f"CSV columns {names} are not allowed; allowed: x, y and optionally label") from None
        return True


def points_from_csv(data: bytes | str) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (N, 2) and integer labels (N,) or None from CSV text: columns x, y[, label] with an optional header,
    comma-separated, at most MAX_CSV_BYTES and MAX_CUSTOM_POINTS rows."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CSV_BYTES:
        raise ValueError(f"the CSV file has {len(raw):,} bytes; allowed: at most {MAX_CSV_BYTES:,}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the CSV file is not UTF-8 text") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(v.strip() for v in r)]
    if rows and _columns(rows[0]):
        rows = rows[1:]
    if not MIN_CUSTOM_POINTS <= len(rows) <= MAX_CUSTOM_POINTS:
        raise ValueError(f"the CSV file has {len(rows)} points; allowed: {MIN_CUSTOM_POINTS} to {MAX_CUSTOM_POINTS}")
    width = len(rows[0])
    if width not in (2, 3) or any(len(r) != width for r in rows):
        bad = next(i for i, r in enumerate(rows, 1) if len(r) != width or width not in (2, 3))
        raise ValueError(f"CSV row {bad} has {len(rows[bad - 1])} columns; allowed: 2 (x, y) or 3 (x, y, label) in "
                         "every row")
    values = np.array([[_number(v, i) for v in r] for i, r in enumerate(rows, 1)])
    if width == 2:
        return values, None
    labels = values[:, 2]
    if not np.all(labels == np.round(labels)):
        raise ValueError("CSV labels must be integers")
    return values[:, :2], labels.astype(np.int64)


def points_from_strokes(strokes, n: int = SILHOUETTE_POINTS) -> np.ndarray:
    """Points spread evenly along polylines (a list of (k_i, 2) arrays, e.g. canvas strokes; a stroke of one point is
    a dot): n points in proportion to arc length, dots one point each. Canvas coordinates (y down) are flipped."""
    if not isinstance(strokes, (list, tuple)) or not 1 <= len(strokes) <= MAX_STROKES:
        raise ValueError(f"strokes: allowed 1 to {MAX_STROKES} polylines, each an array of (x, y) points")
    lines = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    if sum(len(s) for s in lines) > MAX_STROKE_POINTS or not all(np.isfinite(s).all() and len(s) for s in lines):
        raise ValueError(f"strokes: allowed at most {MAX_STROKE_POINTS} finite points in all")
    segments = np.concatenate([np.stack([s[:-1], s[1:]], 1) for s in lines if len(s) > 1] or [np.empty((0, 2, 2))])
    dots = np.concatenate([s for s in lines if len(s) == 1] or [np.empty((0, 2))])
    lengths = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)
    along = np.empty((0, 2))
    if lengths.sum() > 0:
        u = (np.arange(max(n - len(dots), 0)) + 0.5) / max(n - len(dots), 1) * lengths.sum()  # even arc positions
        i = np.minimum(np.searchsorted(np.cumsum(lengths), u), len(lengths) - 1)
        frac = ((u - (np.cumsum(lengths) - lengths)[i]) / np.maximum(lengths[i], 1e-12))[:, None]
        along = segments[i, 0] + np.clip(frac, 0, 1) * (segments[i, 1] - segments[i, 0])
    points = np.concatenate([along, dots]) * [1.0, -1.0]
    if len(points) < MIN_CUSTOM_POINTS:
        raise ValueError(f"the drawing gives {len(points)} points; allowed: at least {MIN_CUSTOM_POINTS} (draw more)")
    return points


def points_from_mask(mask: np.ndarray, n: int = SILHOUETTE_POINTS, seed: int = 0) -> np.ndarray:
    """n points uniform on the True pixels of a (H, W) mask (row 0 at the top): a uniform pixel, then a uniform
    position inside it; y points up."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.nonzero(mask)
    if len(rows) < MIN_SILHOUETTE_PIXELS or len(rows) > 0.95 * mask.size:
        raise ValueError(f"no silhouette found: {len(rows)} of {mask.size} pixels are foreground; allowed: a shape on "
                         f"a plain background (at least {MIN_SILHOUETTE_PIXELS} pixels, at most 95%)")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(rows), n)
    jitter = rng.random((n, 2))
    return np.stack([cols[pick] + jitter[:, 0], -(rows[pick] + jitter[:, 1])], axis=1)


def silhouette(gray: np.ndarray) -> np.ndarray:
    """Foreground of a grey image (H, W) in [0, 1]: the side of the mid-grey threshold that the border is not on."""
    threshold = (gray.min() + gray.max()) / 2
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return gray < threshold if np.median(border) >= threshold else gray >= threshold


def points_from_image(data: bytes, n: int = SILHOUETTE_POINTS, seed: int = 0) -> np.ndarray:
    """n points on the silhouette of an image file (PNG, JPEG...): transparent background -> alpha is the shape;
    else the grey levels, thresholded midway, the border's side being background."""
    from PIL import Image, UnidentifiedImageError
    if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"the image must be a file of at most {MAX_IMAGE_BYTES:,} bytes")
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size                       # from the header: nothing decoded yet
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"the image has {width} x {height} pixels; allowed: at most {MAX_IMAGE_PIXELS:,}")
        image.draft("L", (MASK_SIDE, MASK_SIDE))         # JPEG: decode at reduced size
        image.thumbnail((MASK_SIDE, MASK_SIDE))
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise ValueError("the file is not an image PIL can read (PNG, JPEG, GIF, BMP, WebP...)") from None
    alpha = rgba[..., 3]
    if alpha.min() < 0.5 < alpha.max():
        return points_from_mask(alpha >= 0.5, n, seed)
    return points_from_mask(silhouette(rgba[..., :3].mean(axis=2)), n, seed)


def points_from_word(text: str, n: int = SILHOUETTE_POINTS, seed: int = 0) -> np.ndarray:
    """n points on a word rendered in PIL's default font (1 to MAX_WORD_CHARS printable characters)."""
    from PIL import Image, ImageDraw, ImageFont
    if not (isinstance(text, str) and 1 <= len(text.strip()) <= MAX_WORD_CHARS and text.isprintable()):
        raise ValueError(f"word {text!r} is invalid; allowed: 1 to {MAX_WORD_CHARS} printable characters")
    font = ImageFont.load_default(size=WORD_FONT_SIZE)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text.strip(), font=font)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(image).text((4 - left, 4 - top), text.strip(), fill=255, font=font)
    return points_from_mask(np.asarray(image) >= 128, n, seed)
