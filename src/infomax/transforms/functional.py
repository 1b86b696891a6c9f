"""Batched image transforms: every image of a batch gets its own random parameters.

All functions take a batch ``(N, C, H, W)`` on any device and never loop over images in Python:
geometric transforms use integer gathers or one ``affine_grid``/``grid_sample`` call with a
per-image ``theta``; colour transforms broadcast per-image factors; "apply with probability p" is
a per-image ``torch.where`` mask.

Dtypes. Index-based transforms (:func:`random_hflip`, :func:`random_translate`,
:func:`random_crop`, :func:`center_crop`, :func:`random_grayscale`) keep the input dtype, so they
can run on the uint8 batch. Transforms that interpolate or mix colours (:func:`resize`,
:func:`random_resized_crop`, :func:`color_jitter` and the ``adjust_*`` functions) return floats in
``[0, 1]``: a uint8 input is first converted with :func:`to_float`. Float inputs are assumed to
lie in ``[0, 1]``.

Randomness. Every random function takes ``gen``: a :class:`torch.Generator` (reproducible),
``None`` for the global RNG (seed it with :func:`torch.manual_seed`), or an
:class:`infomax.rng.BatchRandom` (per-image draws that do not depend on how the batch is split
over processes). Parameters are drawn on the generator's device (the CPU for ``None``) and then
copied to the batch's device, so a CPU generator works for CUDA batches and the same seed gives
the same parameters on every device. All draws go through :mod:`infomax.rng`.

Colour definitions follow ``torchvision.transforms.functional`` (brightness multiplies, contrast
blends with the mean grey level, saturation blends with the grey image, hue rotates H in HSV,
grey is ITU-R 601-2 luma ``0.2989 R + 0.587 G + 0.114 B``), each step clamped to ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from infomax.rng import Gen, uniform

__all__ = [
    "to_float",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "hsv_to_rgb",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "hflip",
    "random_hflip",
    "translate",
    "random_translate",
    "random_crop",
    "center_crop",
    "resize",
    "resized_crop",
    "random_resized_crop",
    "sample_resized_crop_boxes",
    "color_jitter",
    "random_grayscale",
]

# ITU-R 601-2 luma weights, as in torchvision's rgb_to_grayscale.
LUMA_WEIGHTS = (0.2989, 0.587, 0.114)
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
_PAD_MODES = ("reflect", "replicate", "constant")


# --------------------------------------------------------------------------------------------
# helpers


def _check_batch(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be an image batch of shape (N, C, H, W), got {shape}")


def _check_prob(p: float, name: str = "p") -> None:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def _float_dtype(x: Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return x.dtype if x.is_floating_point() else torch.float32


def _rand(n: int | Sequence[int], gen: Gen, device: torch.device) -> Tensor:
    """Uniform [0, 1) float32 numbers drawn on the generator's device, returned on ``device``."""
    return uniform(n, gen, device)


def _bernoulli(p: float, n: int, gen: Gen, device: torch.device) -> Tensor:
    """A bool mask of ``n`` independent coin flips with probability ``p`` (drawn even for p in
    {0, 1}, so the random stream does not depend on p)."""
    return _rand(n, gen, device) < p


def _uniform(
    low: float, high: float, n: int, gen: Gen, device: torch.device
) -> Tensor:
    return low + (high - low) * _rand(n, gen, device)


def to_float(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 ``[0, 255]`` -> float ``[0, 1]``; a float input is only cast to ``dtype``."""
    if x.dtype == torch.uint8:
        return x.to(dtype).div_(255.0)
    if not x.is_floating_point():
        raise ValueError(f"expected a uint8 or float image tensor, got dtype {x.dtype}")
    return x.to(dtype)


def _as_float(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    return to_float(x, _float_dtype(x, dtype))


def _per_image(v: Tensor | float, x: Tensor) -> Tensor:
    """A scalar or an (N,) tensor -> a tensor broadcastable to x (N, 1, 1, 1)."""
    t = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        return t
    if t.shape != (x.shape[0],):
        raise ValueError(f"per-image factors must have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, 1, 1, 1)


# --------------------------------------------------------------------------------------------
# colour


def rgb_to_grayscale(x: Tensor, num_output_channels: int = 1) -> Tensor:
    """ITU-R 601-2 luma ``0.2989 R + 0.587 G + 0.114 B`` (torchvision's weights).

    A uint8 input gives a uint8 output (rounded); a float input a float output. One-channel input
    is returned as is (replicated to ``num_output_channels``).
    """
    _check_batch(x)
    if x.shape[1] == 1:
        gray = x
    elif x.shape[1] == 3:
        xf = x if x.is_floating_point() else x.float()
        w0, w1, w2 = LUMA_WEIGHTS
        # on contiguous channel planes: one multiply and two fused multiply-adds
        gray = xf[:, 0].mul(w0).add_(xf[:, 1], alpha=w1).add_(xf[:, 2], alpha=w2).unsqueeze(1)
        if x.dtype == torch.uint8:
            gray = gray.round_().clamp_(0, 255).to(torch.uint8)
    else:
        raise ValueError(f"grayscale needs 1 or 3 channels, got {x.shape[1]}")
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}")
    return (
        gray.expand(-1, num_output_channels, -1, -1).contiguous()
        if num_output_channels == 3
        else gray
    )


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB in ``[0, 1]`` -> HSV with H, S, V in ``[0, 1]`` (H in turns; H = 0 for greys)."""
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    v = maxc
    s = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # hue sector: red is max -> (g - b), green -> (b - r) + 2, blue -> (r - g) + 4 (in sixths)
    hr = (g - b) / safe
    hg = (b - r) / safe + 2.0
    hb = (r - g) / safe + 4.0
    h = torch.where(maxc == r, hr, torch.where(maxc == g, hg, hb))
    h = torch.where(delta > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack((h, s, v), dim=1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV (all in ``[0, 1]``) -> RGB, with ``c_n = V - V S clamp(min(k, 4 - k), 0, 1)`` and
    ``k = (n + 6 H) mod 6`` for n = 5, 3, 1 (R, G, B)."""
    h, s, v = x.unbind(1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    w = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(1) * (1.0 - s.unsqueeze(1) * w)


def _blend(x: Tensor, other: Tensor | float, factor: Tensor | float) -> Tensor:
    """``clamp(factor * x + (1 - factor) * other, 0, 1)`` (torchvision's ``_blend`` for floats),
    computed as one ``lerp`` from ``other`` towards ``x``."""
    if not isinstance(other, Tensor):
        if other == 0.0:
            return (x * factor).clamp_(0.0, 1.0)
        other = torch.full((), float(other), dtype=x.dtype, device=x.device)
    if not isinstance(factor, Tensor):
        factor = torch.full((), float(factor), dtype=x.dtype, device=x.device)
    return torch.lerp(other.to(x.dtype), x, factor.to(x.dtype)).clamp_(0.0, 1.0)


def adjust_brightness(
    x: Tensor, factor: Tensor | float, dtype: torch.dtype | None = None
) -> Tensor:
    """Multiply by ``factor`` (a scalar or one per image) and clamp to [0, 1]."""
    _check_batch(x)
    x = _as_float(x, dtype)
    return _blend(x, 0.0, _per_image(factor, x))


def adjust_contrast(x: Tensor, factor: Tensor | float, dtype: torch.dtype | None = None) -> Tensor:
    """Blend with the image's mean grey level: ``factor * x + (1 - factor) * mean(gray(x))``."""
    _check_batch(x)
    x = _as_float(x, dtype)
    mean = rgb_to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, _per_image(factor, x))


def adjust_saturation(
    x: Tensor, factor: Tensor | float, dtype: torch.dtype | None = None
) -> Tensor:
    """Blend with the grey image: ``factor * x + (1 - factor) * gray(x)`` (no-op on 1 channel)."""
    _check_batch(x)
    x = _as_float(x, dtype)
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_grayscale(x), _per_image(factor, x))


def adjust_hue(x: Tensor, factor: Tensor | float, dtype: torch.dtype | None = None) -> Tensor:
    """Rotate the hue by ``factor`` turns (in [-0.5, 0.5]) in HSV space (no-op on 1 channel)."""
    _check_batch(x)
    x = _as_float(x, dtype)
    if x.shape[1] == 1:
        return x
    f = _per_image(factor, x)
    if f.dim() == 0 and not -0.5 <= float(f) <= 0.5:
        raise ValueError(f"hue factor must be in [-0.5, 0.5], got {float(f)}")
    return _rotate_hue(x, f)


def _rotate_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Hue rotation by ``shift`` turns without the explicit HSV round trip.

    With ``M = max(R, G, B)``, ``m = min(R, G, B)`` and ``H`` the hue in sixths, HSV -> RGB
    gives ``c_n = M - (M - m) clamp(min(k, 4 - k), 0, 1)``, ``k = (n + H) mod 6``, n = 5, 3, 1:
    the same result as ``hsv_to_rgb(rgb_to_hsv(x))`` with H shifted, in fewer passes.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    is_r = maxc == r
    is_g = maxc == g
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    offset = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0))
    # greys (delta = 0) have num = 0; their hue does not matter since the output is M
    h6 = (num / delta.clamp_min(1e-12)).add_(offset).add_(6.0 * shift)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(h6 + n, 6.0)
    w = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc - delta * w


def _jitter_range(value: float | Sequence[float], name: str, center: float, bound: float):
    """torchvision's parameter convention: v -> [center - v, center + v] clipped, or (lo, hi)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        lo, hi = center - value, center + value
        if name != "hue":
            lo = max(lo, 0.0)
    else:
        lo, hi = (float(v) for v in value)
    if name == "hue" and not -bound <= lo <= hi <= bound:
        raise ValueError(f"hue must give a range inside [-0.5, 0.5], got ({lo}, {hi})")
    if name != "hue" and not 0 <= lo <= hi:
        raise ValueError(f"{name} range must satisfy 0 <= low <= high, got ({lo}, {hi})")
    return float(lo), float(hi)


def _stage_blend(x: Tensor, op: Tensor, factors: Tensor, channels: int) -> Tensor:
    """One colour step per image, chosen by ``op`` (0 brightness, 1 contrast, 2 saturation,
    3 none): a blend ``clamp(f x + (1 - f) t, 0, 1)`` towards t = 0, the image's mean grey level
    or its grey image, with ``f = factors[i, op[i]]`` (1 for op 3)."""
    is_c = (op == 1).view(-1, 1, 1, 1)
    is_s = (op == 2).view(-1, 1, 1, 1)
    f = torch.gather(factors, 1, op.clamp(max=2).view(-1, 1)).view(-1, 1, 1, 1)
    f = torch.where((op == 3).view(-1, 1, 1, 1), 1.0, f)
    if channels == 1:  # saturation does nothing on one channel
        f = torch.where(is_s, 1.0, f)
    gray = rgb_to_grayscale(x)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    target = torch.where(is_s, gray, torch.where(is_c, mean, 0.0))
    return torch.lerp(target, x, f).clamp_(0.0, 1.0)


def color_jitter(
    x: Tensor,
    brightness: float | Sequence[float] = 0.0,
    contrast: float | Sequence[float] = 0.0,
    saturation: float | Sequence[float] = 0.0,
    hue: float | Sequence[float] = 0.0,
    p: float = 1.0,
    gen: Gen = None,
    order: str = "random",
    dtype: torch.dtype | None = None,
) -> Tensor:
    """torchvision's ``ColorJitter`` on a batch, each image with its own factors and order.

    Factors follow torchvision: a value ``v`` means brightness/contrast/saturation factors
    uniform in ``[max(0, 1 - v), 1 + v]`` and a hue shift uniform in ``[-v, v]``; a pair gives the
    range directly. With probability ``1 - p`` an image is left unchanged (``RandomApply``).

    ``order="random"`` (default) applies the four adjustments in an independent random order per
    image, as torchvision does per call (one call per image in a per-image pipeline); ``"fixed"``
    uses brightness, contrast, saturation, hue for every image (torchvision's order when its
    random permutation happens to be the identity). Both cost about the same: in ``"random"``
    order each of the four stages is one fused blend (brightness, contrast and saturation are
    blends towards 0, the mean grey level and the grey image), and the hue rotation runs once per
    image, on the images whose hue step falls in that stage (selected on the parameters'
    device: the CPU for a CPU generator, so no host-device synchronisation).

    Returns a float batch in [0, 1] (``dtype``, default float32 for uint8 input).
    """
    _check_batch(x)
    _check_prob(p)
    if order not in ("random", "fixed"):
        raise ValueError(f"order must be 'random' or 'fixed', got {order!r}")
    x = _as_float(x, dtype)
    n, c = x.shape[0], x.shape[1]
    dev = x.device
    b_lo, b_hi = _jitter_range(brightness, "brightness", 1.0, math.inf)
    c_lo, c_hi = _jitter_range(contrast, "contrast", 1.0, math.inf)
    s_lo, s_hi = _jitter_range(saturation, "saturation", 1.0, math.inf)
    h_lo, h_hi = _jitter_range(hue, "hue", 0.0, 0.5)

    # All random numbers are drawn whatever the settings, so that the stream is stable.
    # drawn on the generator's device (the CPU unless a device generator is given): the hue
    # step's image indices below are then computed without a host-device synchronisation
    src = gen.device if isinstance(gen, torch.Generator) else torch.device("cpu")
    u = uniform((n, 5), gen, src)
    keys = uniform((n, 4), gen, src)
    apply = u[:, 4] < p
    one = torch.ones_like(u[:, 0])
    fb = torch.where(apply, b_lo + (b_hi - b_lo) * u[:, 0], one)
    fc = torch.where(apply, c_lo + (c_hi - c_lo) * u[:, 1], one)
    fs = torch.where(apply, s_lo + (s_hi - s_lo) * u[:, 2], one)
    fh = torch.where(apply, h_lo + (h_hi - h_lo) * u[:, 3], torch.zeros_like(one))
    used = (
        b_lo != 1.0 or b_hi != 1.0,
        c_lo != 1.0 or c_hi != 1.0,
        c == 3 and (s_lo != 1.0 or s_hi != 1.0),
        c == 3 and (h_lo != 0.0 or h_hi != 0.0),
    )  # brightness, contrast, saturation, hue
    factors = torch.stack((fb, fc, fs), dim=1).to(dev, x.dtype, non_blocking=True)  # (N, 3)
    if order == "fixed":
        return _jitter_fixed_order(x, factors, fh, used)
    # op index 0 brightness, 1 contrast, 2 saturation, 3 hue; perm[i, s] is the op image i
    # applies at stage s (argsort of uniform keys = a uniform random permutation)
    return _jitter_random_order(x, factors, fh, used, torch.argsort(keys, dim=1), apply)


def _jitter_fixed_order(x: Tensor, factors: Tensor, fh: Tensor, used: tuple[bool, ...]) -> Tensor:
    """Brightness, contrast, saturation, hue: each a full-batch step (factor 1 / shift 0 where
    the jitter is not applied)."""
    n, c, dev = x.shape[0], x.shape[1], x.device
    for k in range(3):
        if used[k]:
            x = _stage_blend(x, torch.full((n,), k, device=dev), factors, c)
    if used[3]:
        x = _rotate_hue(x, fh.to(dev, x.dtype).view(-1, 1, 1, 1))
    return x


def _jitter_random_order(
    x: Tensor, factors: Tensor, fh: Tensor, used: tuple[bool, ...], perm: Tensor, apply: Tensor
) -> Tensor:
    """Four stages; at each, every image applies the op ``perm[i, stage]`` (one fused blend for
    brightness / contrast / saturation; the hue rotation on the images whose hue step it is)."""
    c, dev = x.shape[1], x.device
    perm_dev = perm.to(dev, non_blocking=True)
    owned = False  # whether x is a tensor of ours (safe to modify in place)
    for stage in range(4):
        if any(used[:3]):
            x = _stage_blend(x, perm_dev[:, stage], factors, c)
            owned = True
        if not used[3]:
            continue
        # the images whose hue step is this stage; indices computed on the parameters' device
        # (the CPU for CPU generators: no host-device synchronisation)
        idx = torch.nonzero(apply & (perm[:, stage] == 3)).flatten()
        if idx.numel() > 0:
            idx_dev = idx.to(dev, non_blocking=True)
            shifted = _rotate_hue(
                x.index_select(0, idx_dev), fh[idx].to(dev, x.dtype).view(-1, 1, 1, 1)
            )
            if not owned:
                x, owned = x.clone(), True
            x.index_copy_(0, idx_dev, shifted)
    return x


def random_grayscale(x: Tensor, p: float = 0.1, gen: Gen = None) -> Tensor:
    """With probability ``p`` per image, replace an RGB image by its luma replicated to 3
    channels (torchvision's ``RandomGrayscale``). Keeps the dtype (uint8 luma is rounded)."""
    _check_batch(x)
    _check_prob(p)
    mask = _bernoulli(p, x.shape[0], gen, x.device)
    if x.shape[1] == 1:
        return x
    gray = rgb_to_grayscale(x)
    if x.is_floating_point():  # exact: lerp with weight 0 / 1 returns start / end
        return torch.lerp(x, gray, mask.view(-1, 1, 1, 1).to(x.dtype))
    return torch.where(mask.view(-1, 1, 1, 1), gray, x)


# --------------------------------------------------------------------------------------------
# geometry


def hflip(x: Tensor) -> Tensor:
    """Flip every image left-right."""
    return x.flip(-1)


def random_hflip(x: Tensor, p: float = 0.5, gen: Gen = None) -> Tensor:
    """Flip each image left-right with probability ``p`` (a per-image mask)."""
    _check_batch(x)
    _check_prob(p)
    mask = _bernoulli(p, x.shape[0], gen, x.device)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def _source_index(idx: Tensor, size: int, mode: str) -> tuple[Tensor, Tensor | None]:
    """Map possibly out-of-range pixel indices into [0, size) by reflection (edge not repeated,
    like ``numpy.pad(mode="reflect")``), replication, or mark them invalid (``constant``)."""
    if mode == "reflect":
        if size == 1:
            return torch.zeros_like(idx), None
        period = 2 * (size - 1)
        m = torch.remainder(idx, period)
        return torch.where(m >= size, period - m, m), None
    if mode == "replicate":
        return idx.clamp(0, size - 1), None
    valid = (idx >= 0) & (idx < size)
    return idx.clamp(0, size - 1), valid


def translate(x: Tensor, dx: Tensor, dy: Tensor, mode: str = "reflect") -> Tensor:
    """Shift image i by ``(dx[i], dy[i])`` pixels (right, down), filling uncovered pixels by
    ``mode``: ``reflect`` (mirror without repeating the edge), ``replicate`` or ``constant`` (0).
    One gather for the whole batch; keeps the dtype."""
    _check_batch(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
    n, c, h, w = x.shape
    dev = x.device
    dx = dx.to(dev).long().view(-1)
    dy = dy.to(dev).long().view(-1)
    rows, vr = _source_index(torch.arange(h, device=dev).view(1, h) - dy.view(n, 1), h, mode)
    cols, vc = _source_index(torch.arange(w, device=dev).view(1, w) - dx.view(n, 1), w, mode)
    return _gather_window(x, rows, cols, vr, vc)


def _gather_window(
    x: Tensor, rows: Tensor, cols: Tensor, vr: Tensor | None, vc: Tensor | None
) -> Tensor:
    """out[i, c, y, x] = x[i, c, rows[i, y], cols[i, x]] in one gather over flattened planes
    (zero where ``vr``/``vc`` mark an index as outside the image)."""
    n, c, h, w = x.shape
    th, tw = rows.shape[1], cols.shape[1]
    flat = (rows.view(n, th, 1) * w + cols.view(n, 1, tw)).view(n, 1, th * tw)
    out = torch.gather(x.reshape(n, c, h * w), 2, flat.expand(n, c, th * tw)).view(n, c, th, tw)
    if vr is not None and vc is not None:
        valid = vr.view(n, 1, th, 1) & vc.view(n, 1, 1, tw)
        out = torch.where(valid, out, torch.zeros((), dtype=out.dtype, device=out.device))
    return out


def random_translate(
    x: Tensor,
    max_px: int = 4,
    mode: str = "reflect",
    p: float = 1.0,
    gen: Gen = None,
) -> Tensor:
    """AMDIM's CIFAR translation: with probability ``p`` shift each image by integers ``dx, dy``
    drawn independently and uniformly from ``[-max_px, max_px]``, filling by reflection.

    Equivalent to reflect-padding by ``max_px`` and cropping back to ``H x W`` at a uniformly
    random offset, per image. ``max_px=0`` or ``p=0`` is the identity. Keeps the dtype.
    """
    _check_batch(x)
    _check_prob(p)
    if max_px < 0:
        raise ValueError(f"max_px must be >= 0, got {max_px}")
    n, dev = x.shape[0], x.device
    u = _rand((n, 3), gen, dev)
    shift = torch.floor(u[:, :2] * (2 * max_px + 1)).long().clamp_(max=2 * max_px) - max_px
    shift = torch.where((u[:, 2] < p).view(-1, 1), shift, torch.zeros_like(shift))
    if max_px == 0:
        return x
    return translate(x, shift[:, 0], shift[:, 1], mode)


def random_crop(
    x: Tensor,
    size: int | tuple[int, int],
    padding: int = 0,
    mode: str = "constant",
    gen: Gen = None,
) -> Tensor:
    """torchvision's ``RandomCrop(size, padding, padding_mode)`` per image: pad every side by
    ``padding`` (``constant`` zero, ``reflect`` or ``replicate``), then crop ``size`` at a uniform
    random offset. Keeps the dtype; one gather for the batch."""
    _check_batch(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
    th, tw = (size, size) if isinstance(size, int) else size
    n, c, h, w = x.shape
    if th > h + 2 * padding or tw > w + 2 * padding:
        raise ValueError(f"crop size {(th, tw)} is larger than the padded image {(h, w)}")
    dev = x.device
    u = _rand((n, 2), gen, dev)
    top = torch.floor(u[:, 0] * (h + 2 * padding - th + 1)).long().clamp_(max=h + 2 * padding - th)
    left = torch.floor(u[:, 1] * (w + 2 * padding - tw + 1)).long().clamp_(max=w + 2 * padding - tw)
    rows, vr = _source_index(top.view(n, 1) - padding + torch.arange(th, device=dev), h, mode)
    cols, vc = _source_index(left.view(n, 1) - padding + torch.arange(tw, device=dev), w, mode)
    return _gather_window(x, rows, cols, vr, vc)


def center_crop(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Crop the central ``size`` (torchvision's rounding of the offsets); keeps the dtype."""
    _check_batch(x)
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"center_crop size {(th, tw)} is larger than the images {(h, w)}")
    top = int(round((h - th) / 2.0))
    left = int(round((w - tw) / 2.0))
    return x[..., top : top + th, left : left + tw]


def _check_interp(interpolation: str) -> None:
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")


def resize(
    x: Tensor,
    size: int | tuple[int, int],
    interpolation: str = "bilinear",
    antialias: bool = True,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """torchvision's ``Resize``: an int resizes the smaller edge to ``size`` keeping the aspect
    ratio, a pair ``(h, w)`` sets both. Returns float in [0, 1] (bicubic output is clamped)."""
    _check_batch(x)
    _check_interp(interpolation)
    h, w = x.shape[-2:]
    if isinstance(size, int):
        if h <= w:
            oh, ow = size, int(size * w / h)
        else:
            oh, ow = int(size * h / w), size
    else:
        oh, ow = size
    xf = _as_float(x, dtype)
    if (oh, ow) == (h, w):
        return xf
    kwargs = {} if interpolation == "nearest" else {"align_corners": False, "antialias": antialias}
    out = F.interpolate(xf, size=(oh, ow), mode=interpolation, **kwargs)
    return out.clamp_(0.0, 1.0) if interpolation == "bicubic" else out


def resized_crop(
    x: Tensor,
    boxes: Tensor,
    size: int | tuple[int, int],
    interpolation: str = "bilinear",
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Crop box i = ``(top, left, height, width)`` (pixels, float or int) from image i and resize
    it to ``size``, all images at once with ``affine_grid``/``grid_sample``.

    Sampling matches ``F.interpolate(align_corners=False)`` on the cropped pixels: output pixel
    centre ``j`` reads input position ``left + (j + 0.5) * width / out_w - 0.5``; pixels outside
    the image repeat the border. There is no antialiasing filter, so strong downscaling aliases
    more than torchvision's antialiased resize (the AMDIM crops downscale at most 1.5x).
    """
    _check_batch(x)
    _check_interp(interpolation)
    oh, ow = (size, size) if isinstance(size, int) else size
    xf = _as_float(x, dtype)
    n, _, h, w = xf.shape
    b = boxes.to(xf.device, xf.dtype)
    top, left, bh, bw = b.unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=xf.dtype, device=xf.device)
    # normalised coordinates (align_corners=False): u = (2 * px + 1) / W - 1
    theta[:, 0, 0] = bw / w
    theta[:, 0, 2] = (2.0 * left + bw) / w - 1.0
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2.0 * top + bh) / h - 1.0
    grid = F.affine_grid(theta, [n, xf.shape[1], oh, ow], align_corners=False)
    out = F.grid_sample(xf, grid, mode=interpolation, padding_mode="border", align_corners=False)
    return out.clamp_(0.0, 1.0) if interpolation == "bicubic" else out


def sample_resized_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    gen: Gen = None,
    attempts: int = 10,
) -> Tensor:
    """torchvision's ``RandomResizedCrop.get_params`` for ``n`` images at once -> (n, 4) long
    ``(top, left, h, w)``.

    Per image: up to ``attempts`` draws of area ``U(scale) * H * W`` and log-uniform aspect ratio;
    the first draw that fits is used, with ``w = round(sqrt(area * r))``, ``h = round(sqrt(area /
    r))`` and a uniform integer offset; if none fits, the central crop with the ratio clamped to
    ``ratio`` (torchvision's fallback). Returned on the generator's device (the CPU by default).
    """
    lo, hi = float(scale[0]), float(scale[1])
    if not 0 < lo <= hi:
        raise ValueError(f"scale must satisfy 0 < low <= high, got {tuple(scale)}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {tuple(ratio)}")
    src = gen.device if isinstance(gen, torch.Generator) else torch.device("cpu")
    u = uniform((n, attempts, 4), gen, src, dtype=torch.float64)
    area = height * width * (lo + (hi - lo) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    cw = torch.round(torch.sqrt(area * r))
    ch = torch.round(torch.sqrt(area / r))
    ok = (cw > 0) & (ch > 0) & (cw <= width) & (ch <= height)
    # first attempt that fits (argmax of a bool picks the first True)
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    any_ok = ok.any(dim=1)
    cw1 = torch.gather(cw, 1, first).squeeze(1)
    ch1 = torch.gather(ch, 1, first).squeeze(1)
    top = torch.floor(torch.gather(u[..., 2], 1, first).squeeze(1) * (height - ch1 + 1))
    left = torch.floor(torch.gather(u[..., 3], 1, first).squeeze(1) * (width - cw1 + 1))
    top = torch.minimum(top, height - ch1)
    left = torch.minimum(left, width - cw1)
    # fallback: central crop with the aspect ratio clamped into `ratio`
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fh, fw = height, int(round(height * ratio[1]))
    else:
        fw, fh = width, height
    ftop, fleft = (height - fh) // 2, (width - fw) // 2
    boxes = torch.stack((top, left, ch1, cw1), dim=1)
    fallback = torch.tensor([ftop, fleft, fh, fw], dtype=boxes.dtype, device=src)
    boxes = torch.where(any_ok.view(-1, 1), boxes, fallback)
    return boxes.long()


def random_resized_crop(
    x: Tensor,
    size: int | tuple[int, int],
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (0.7, 1.4),
    interpolation: str = "bicubic",
    gen: Gen = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """torchvision's ``RandomResizedCrop`` per image (defaults: AMDIM's scale (0.3, 1) and ratio
    (0.7, 1.4), bicubic): boxes from :func:`sample_resized_crop_boxes`, resampling by
    :func:`resized_crop`. Returns float in [0, 1]."""
    _check_batch(x)
    n, _, h, w = x.shape
    boxes = sample_resized_crop_boxes(n, h, w, scale, ratio, gen)
    return resized_crop(x, boxes, size, interpolation, dtype)
