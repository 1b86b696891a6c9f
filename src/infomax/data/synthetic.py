"""A built-in, downloadable-free image dataset of 10 procedural pattern families.

Each class is a family of patterns (stripes, checkerboard, disc, ring, square, plus sign,
concentric rings, dots, triangle, diagonal plaid) drawn with random position, scale, rotation
jitter, spatial frequency, phase, foreground and background colours, a background gradient and
pixel noise. The class is therefore defined by shape and texture only, not by colour or position:
an encoder trained with instance-level MI maximisation under colour and crop augmentation should
separate the classes better than a randomly initialised one, which keeps the offline quick start
meaningful. All shapes are symmetric under a left-right flip, so flipping never changes a class.

Generation is vectorised (one loop over the 10 classes, none over images) and deterministic given
the seed: 6,000 images of 32x32 take well under a second on one CPU core.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infomax.data.dataset import ArrayDataset

__all__ = ["SYNTHETIC_CLASSES", "make_synthetic"]

SYNTHETIC_CLASSES = [
    "horizontal_stripes",
    "vertical_stripes",
    "checkerboard",
    "disc",
    "ring",
    "square",
    "plus",
    "concentric_rings",
    "dots",
    "triangle",
]

# default sizes used by load_dataset("synthetic", split)
SYNTHETIC_SPLITS = {"train": (5000, 0), "test": (1000, 1)}
_CHUNK = 512


def _soft(d: Tensor, sharp: Tensor) -> Tensor:
    """A smooth step: ~1 where d > 0, ~0 where d < 0, edge width ~1 pixel."""
    return torch.sigmoid(d * sharp)


def _pattern(k: int, u: Tensor, v: Tensor, freq: Tensor, phase: Tensor, sharp: Tensor) -> Tensor:
    """Mask in [0, 1] of class ``k`` at local coordinates (u, v) (shape unit = 1)."""
    two_pi = 2.0 * math.pi
    r = torch.sqrt(u * u + v * v + 1e-12)
    if k == 0:  # horizontal stripes
        return _soft(torch.sin(two_pi * freq * v + phase), sharp / (two_pi * freq))
    if k == 1:  # vertical stripes
        return _soft(torch.sin(two_pi * freq * u + phase), sharp / (two_pi * freq))
    if k == 2:  # checkerboard
        s = torch.sin(two_pi * freq * u + phase) * torch.sin(two_pi * freq * v + phase)
        return _soft(s, 2.0 * sharp / (two_pi * freq))
    if k == 3:  # filled disc
        return _soft(1.0 - r, sharp)
    if k == 4:  # ring
        return _soft(0.22 - (r - 0.75).abs(), sharp)
    if k == 5:  # filled square
        return _soft(0.8 - torch.maximum(u.abs(), v.abs()), sharp)
    if k == 6:  # plus sign
        bar_h = torch.minimum(0.25 - v.abs(), 1.0 - u.abs())
        bar_v = torch.minimum(0.25 - u.abs(), 1.0 - v.abs())
        return _soft(torch.maximum(bar_h, bar_v), sharp)
    if k == 7:  # concentric rings (a radial grating that fades out beyond the shape)
        rings = _soft(torch.sin(two_pi * freq * r + phase), sharp / (two_pi * freq))
        return rings * _soft(1.3 - r, sharp)
    if k == 8:  # lattice of dots
        s = torch.cos(two_pi * freq * u + phase) + torch.cos(two_pi * freq * v + phase)
        return _soft(s - 1.0, sharp / (two_pi * freq))
    if k == 9:  # upward triangle: three half-planes with normals at 90, 210, 330 degrees
        d = torch.full_like(u, float("inf"))
        for ang in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6):
            d = torch.minimum(d, 0.5 - (math.cos(ang) * u - math.sin(ang) * v))
        return _soft(d, sharp)
    raise ValueError(f"no pattern {k}")


def make_synthetic(
    n: int = 5000,
    seed: int = 0,
    image_size: int = 32,
    num_classes: int = 10,
) -> ArrayDataset:
    """``n`` RGB images ``image_size x image_size`` from ``num_classes`` (<= 10) pattern families.

    Labels are balanced (``arange(n) % num_classes``, shuffled): every class has ``n //
    num_classes`` or one more images. The same ``(n, seed, image_size, num_classes)`` always
    gives the same images.
    """
    if not 1 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must be in 1..{len(SYNTHETIC_CLASSES)}, got {num_classes}")
    if n < 0 or image_size < 4:
        raise ValueError(f"need n >= 0 and image_size >= 4, got n={n}, image_size={image_size}")
    g = torch.Generator().manual_seed(int(seed))

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, generator=g)

    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=g)]

    s = image_size
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2.0 - 1.0  # pixel centres
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    xx, yy = xx.view(1, s, s), yy.view(1, s, s)

    # per-image geometry
    cx = (rand(n) - 0.5) * 0.7
    cy = (rand(n) - 0.5) * 0.7
    scale = 0.45 + 0.4 * rand(n)  # half-size of the shape in image units
    theta = (rand(n) - 0.5) * math.radians(30)  # rotation jitter +-15 degrees
    freq = 0.7 + 0.8 * rand(n)  # cycles per shape unit for the textured classes
    phase = rand(n) * 2.0 * math.pi
    # colours: foreground and background with a luminance gap of at least 0.25
    fg = rand(n, 3)
    bg = rand(n, 3)
    lum = torch.tensor([0.299, 0.587, 0.114])
    gap = (fg @ lum) - (bg @ lum)
    bg = torch.where((gap.abs() < 0.25).view(-1, 1), 1.0 - fg * 0.8, bg)
    # background gradient, pixel noise
    grad_dir = rand(n) * 2.0 * math.pi
    grad_amp = 0.25 * rand(n)
    noise_sd = 0.02 + 0.06 * rand(n)

    mask = torch.empty(n, s, s)
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).flatten()
        if idx.numel() == 0:
            continue
        dx = xx - cx[idx].view(-1, 1, 1)
        dy = yy - cy[idx].view(-1, 1, 1)
        c, si = torch.cos(theta[idx]).view(-1, 1, 1), torch.sin(theta[idx]).view(-1, 1, 1)
        sc = scale[idx].view(-1, 1, 1)
        u = (c * dx + si * dy) / sc
        v = (-si * dx + c * dy) / sc
        sharp = sc * s  # one pixel = 2 / (s * scale) local units: edges ~2 px wide
        mask[idx] = _pattern(k, u, v, freq[idx].view(-1, 1, 1), phase[idx].view(-1, 1, 1), sharp)

    # compose in fixed chunks (small temporaries); the noise is drawn chunk by chunk in order,
    # so the output depends only on the arguments
    images = torch.empty((n, 3, s, s), dtype=torch.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        b = sl.stop - sl.start
        ramp = (
            torch.cos(grad_dir[sl]).view(-1, 1, 1) * xx
            + torch.sin(grad_dir[sl]).view(-1, 1, 1) * yy
        )
        ramp = (grad_amp[sl].view(-1, 1, 1) * ramp).unsqueeze(1)  # (b, 1, s, s)
        m = mask[sl].unsqueeze(1)
        back = bg[sl].view(b, 3, 1, 1) + ramp
        img = torch.lerp(back, fg[sl].view(b, 3, 1, 1).expand_as(back), m)
        noise = torch.rand((b, 3, s, s), generator=g).sub_(0.5)  # variance 1/12
        img.add_(noise.mul_(noise_sd[sl].view(-1, 1, 1, 1) * math.sqrt(12.0)))
        images[sl] = img.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return ArrayDataset(images, labels.to(torch.int64), SYNTHETIC_CLASSES[:num_classes])
