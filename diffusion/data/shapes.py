"""A synthetic RGB dataset, always offline: 10 classes of coloured shapes on gradient/textured backgrounds.

Each shape is a signed distance function (SDF) in unit local coordinates; a pixel's coverage is
clamp(0.5 - d / pixel, 0, 1), so edges are antialiased at any size without supersampling. The random
parameters do not depend on image_size: one seed gives the same images at every resolution.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring", "diamond", "star", "horizontal bars", "vertical bars",
    "checker",
)
_TEXTURE_GRID = 6  # the background texture is a 6x6 random field, upsampled: the same look at every size


def _box(qx: Tensor, qy: Tensor, hx: float, hy: float) -> Tensor:
    """Exact SDF of an axis-aligned box with half-sizes (hx, hy)."""
    dx, dy = qx.abs() - hx, qy.abs() - hy
    return torch.hypot(dx.clamp(min=0), dy.clamp(min=0)) + torch.maximum(dx, dy).clamp(max=0)


def _stripes(t: Tensor, period: float = 0.68, half_width: float = 0.17) -> Tensor:
    """SDF of infinite bars centred at t = k * period (three of them fit inside a box of half-size 0.85)."""
    return ((t + period / 2).remainder(period) - period / 2).abs() - half_width


def _triangle(qx: Tensor, qy: Tensor) -> Tensor:
    """Equilateral triangle pointing up: intersection of three half-planes (exact inside, close outside)."""
    qy = qy + 0.25  # centre the bounding box
    s, c = math.sin(math.pi / 6), math.cos(math.pi / 6)
    return torch.maximum(-qy - 0.55, torch.maximum(c * qx + s * qy, -c * qx + s * qy) - 0.55)


def _star(qx: Tensor, qy: Tensor, rf: float = 0.45) -> Tensor:
    """Exact SDF of a five-pointed star of radius 1 (Inigo Quilez's sdStar5); rf = inner/outer radius."""
    k1x, k1y = 0.809016994375, -0.587785252292
    px, py = qx.abs(), qy
    for kx in (k1x, -k1x):  # fold the plane into one fifth of the star
        d = (kx * px + k1y * py).clamp(min=0)
        px, py = px - 2 * d * kx, py - 2 * d * k1y
    px, py = px.abs(), py - 1.0
    bax, bay = -rf * k1y, rf * k1x - 1.0
    h = ((px * bax + py * bay) / (bax**2 + bay**2)).clamp(0.0, 1.0)
    return torch.hypot(px - bax * h, py - bay * h) * torch.sign(py * bax - px * bay)


def _checker(qx: Tensor, qy: Tensor, half: float = 0.85, cells: int = 3) -> Tensor:
    """A cells x cells checkerboard inside a box; the centre cell is filled."""
    c = 2 * half / cells
    u, v = qx / c + 0.5, qy / c + 0.5
    i, j = u.floor(), v.floor()
    edge = torch.minimum(torch.minimum(u - i, 1 - u + i), torch.minimum(v - j, 1 - v + j)) * c
    filled = (i + j).remainder(2) == 0
    return torch.maximum(torch.where(filled, -edge, edge), _box(qx, qy, half, half))


def _sdf(label: int, qx: Tensor, qy: Tensor) -> Tensor:
    """Signed distance (negative inside) of shape `label` in unit local coordinates (shape radius ~1)."""
    r2 = math.sqrt(0.5)
    sdfs = (
        lambda: torch.hypot(qx, qy) - 1.0,
        lambda: _box(qx, qy, 0.8, 0.8),
        lambda: _triangle(qx, qy),
        lambda: torch.minimum(_box(qx, qy, 1.0, 0.3), _box(qx, qy, 0.3, 1.0)),
        lambda: (torch.hypot(qx, qy) - 0.72).abs() - 0.28,
        lambda: _box(r2 * (qx + qy), r2 * (qx - qy), 0.72, 0.72),
        lambda: _star(qx, qy),
        lambda: torch.maximum(_box(qx, qy, 0.85, 0.85), _stripes(qy)),
        lambda: torch.maximum(_box(qx, qy, 0.85, 0.85), _stripes(qx)),
        lambda: _checker(qx, qy),
    )
    return sdfs[label]()


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """(N,) hue, saturation, value in [0, 1] -> (N, 3) RGB in [0, 1]."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + 6 * h[:, None]).remainder(6)
    return v[:, None] * (1 - s[:, None] * torch.minimum(k, 4 - k).clamp(0, 1))


def _draw_params(n: int, g: torch.Generator) -> dict[str, Tensor]:
    """Every random choice for n images, drawn in a fixed order (independent of size and class)."""
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    light = u(n) < 0.5  # light shape on a dark background, or the reverse: always a clear contrast
    fg_v = torch.where(light, 0.8 + 0.2 * u(n), 0.15 + 0.25 * u(n))
    bg_v = torch.where(light[:, None], 0.1 + 0.3 * u(n, 2), 0.65 + 0.35 * u(n, 2))
    r = 0.45 + 0.35 * u(n)
    return {
        "fg": _hsv_to_rgb(u(n), 0.55 + 0.45 * u(n), fg_v),
        "bg0": _hsv_to_rgb(u(n), 0.7 * u(n), bg_v[:, 0]),
        "bg1": _hsv_to_rgb(u(n), 0.7 * u(n), bg_v[:, 1]),
        "grad_angle": 2 * math.pi * u(n),
        "texture": 0.1 * u(n, 1, 1, 1) * (2 * u(n, 1, _TEXTURE_GRID, _TEXTURE_GRID) - 1),
        "r": r,
        "cx": (0.95 - r) * (2 * u(n) - 1),
        "cy": (0.95 - r) * (2 * u(n) - 1),
        "angle": 0.4 * (u(n) - 0.5),  # small rotations keep square vs diamond and cross vs checker apart
    }


def _background(p: dict[str, Tensor], x: Tensor, y: Tensor, size: int) -> Tensor:
    """(N, 3, H, W) linear gradient between two colours in a random direction, plus a smooth texture."""
    cos, sin = p["grad_angle"].cos()[:, None, None], p["grad_angle"].sin()[:, None, None]
    w = ((x * cos + y * sin) / (2 * math.sqrt(2)) + 0.5)[:, None]                 # (N, 1, H, W) in [0, 1]
    bg0, bg1 = p["bg0"][:, :, None, None], p["bg1"][:, :, None, None]
    bg = torch.addcmul(bg0, bg1 - bg0, w)
    return bg.add_(F.interpolate(p["texture"], size=(size, size), mode="bilinear", antialias=True))


def make_shapes(n: int, image_size: int, generator: torch.Generator, index: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
    """Images (N, 3, S, S) float32 in [-1, 1] and balanced labels (N,) long: label k = SHAPE_CLASSES[k].

    Draws the parameters of n images; index (into 0..n-1) renders only those: make_shapes(...)[index], faster.
    """
    if n < 1 or image_size < 1:
        raise ValueError(f"make_shapes needs n >= 1 and image_size >= 1, got n={n}, image_size={image_size}")
    p, y = _draw_params(n, generator), torch.arange(n) % len(SHAPE_CLASSES)
    if index is not None:
        p, y = {k: v[index] for k, v in p.items()}, y[index]
    n = len(y)
    grid = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1  # pixel centres
    x, up = grid[None, None, :], -grid[None, :, None]                                # up: rows go down
    alpha = torch.empty(n, 1, image_size, image_size)                                 # shape coverage
    pixel = 2.0 / image_size
    for label in range(len(SHAPE_CLASSES)):
        idx = (y == label).nonzero().squeeze(1)
        r, cos, sin = (v[idx, None, None] for v in (p["r"], p["angle"].cos(), p["angle"].sin()))
        dx, dy = x - p["cx"][idx, None, None], up - p["cy"][idx, None, None]
        qx, qy = (cos * dx + sin * dy) / r, (cos * dy - sin * dx) / r              # rotate by -angle
        alpha[idx, 0] = (0.5 - _sdf(label, qx, qy) * (r / pixel)).clamp_(0, 1)
    bg = _background(p, x, up, image_size)                                           # (N, 3, S, S)
    image = torch.lerp(bg, p["fg"][:, :, None, None], alpha, out=bg)                 # in place: 3 fewer copies
    return image.clamp_(0, 1).mul_(2).sub_(1), y
