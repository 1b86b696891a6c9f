"""Normalisation and the augmentation pipelines of AMDIM and Deep InfoMax, on batches.

:class:`AmdimViews` reproduces the per-image torchvision pipelines of the AMDIM reference code
(Bachman et al. 2019, Philip-Bachman/amdim-public ``datasets.py``) on a whole batch at once: one
horizontal flip per source image shared by both views, then for each view independently a crop
(reflect-translation for CIFAR, a random resized crop for STL-10 / ImageNet), colour jitter
applied with probability 0.8, random grayscale, normalisation.

:class:`DimAugment` is the light augmentation of Deep InfoMax (Hjelm et al. 2019): the DIM
reference code trains CIFAR without augmentation; STL-10 is pretrained on random 64x64 crops of the
96x96 images and evaluated on the centre crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from infomax.rng import Gen
from infomax.transforms import functional as TF

__all__ = [
    "Normalize",
    "AmdimViews",
    "DimAugment",
    "EvalTransform",
    "AMDIM_AUGMENT_PRESETS",
    "DIM_AUGMENT_PRESETS",
    "amdim_views",
    "eval_transform",
]

# Normalisation constants of the AMDIM reference code (datasets.py), in [0, 1] units.
CIFAR_MEAN = (125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0)
CIFAR_STD = (63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0)
STL10_MEAN = (0.43, 0.42, 0.39)
STL10_STD = (0.27, 0.26, 0.27)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; uint8 input is first scaled to [0, 1].

    ``mean`` and ``std`` are in [0, 1] units (torchvision's convention). They are buffers, so the
    module follows ``.to(device)``. For uint8 input the scaling and normalisation are one fused
    multiply-add.

    Shape: ``(N, C, H, W)`` uint8 or float in [0, 1] -> ``(N, C, H, W)`` float (``dtype``).

    >>> norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    >>> norm(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))[0, 0, 0, 0].item()
    2.0
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float64).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float64).flatten()
        if mean_t.shape != std_t.shape or mean_t.numel() == 0:
            raise ValueError(
                f"mean and std need one value per channel, got {len(mean_t)} and {len(std_t)}"
            )
        if (std_t <= 0).any():
            raise ValueError(f"std must be positive, got {std_t.tolist()}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.dtype = dtype
        self.register_buffer("mean", mean_t.to(torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", std_t.to(torch.float32).view(1, -1, 1, 1))
        # fused constants: uint8 -> (x / 255 - mean) / std = x * a + b
        self.register_buffer("_a", (1.0 / (255.0 * std_t)).to(torch.float32).view(1, -1, 1, 1))
        self.register_buffer("_b", (-mean_t / std_t).to(torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        TF._check_batch(x)
        c = self.mean.shape[1]
        if x.shape[1] != c and c != 1:
            raise ValueError(
                f"Normalize has {c} channel statistics but the batch has {x.shape[1]} channels: "
                "pass one mean/std per channel (or a single value for all channels)"
            )
        if x.dtype == torch.uint8:
            return torch.addcmul(self._b.to(self.dtype), x.to(self.dtype), self._a.to(self.dtype))
        if not x.is_floating_point():
            raise ValueError(f"expected a uint8 or float batch, got dtype {x.dtype}")
        inv = (1.0 / self.std).to(self.dtype)
        return torch.addcmul((-self.mean * inv).to(self.dtype), x.to(self.dtype), inv)

    def extra_repr(self) -> str:
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        return f"mean={mean}, std={std}"


def _fit_size(x: Tensor, size: int, interpolation: str) -> Tensor:
    """Resize the smaller edge to ``size`` and centre-crop ``size x size`` when needed."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if min(x.shape[-2:]) != size:
        x = TF.resize(x, size, interpolation)
    return TF.center_crop(x, size)


class EvalTransform(nn.Module):
    """Test-time transform: optional ``Resize(resize)`` (smaller edge), ``CenterCrop(image_size)``,
    normalisation. With ``resize=None`` images whose size differs from ``image_size`` are resized
    to ``image_size`` (smaller edge) and centre-cropped; CIFAR-size input is only normalised."""

    def __init__(
        self,
        image_size: int | None,
        mean: Sequence[float],
        std: Sequence[float],
        resize: int | None = None,
        interpolation: str = "bicubic",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.resize = resize
        self.interpolation = interpolation
        self.normalize = Normalize(mean, std, dtype)

    def forward(self, x: Tensor) -> Tensor:
        TF._check_batch(x)
        if self.resize is not None:
            if min(x.shape[-2:]) != self.resize:
                x = TF.resize(x, self.resize, self.interpolation)
            if self.image_size is not None:
                x = TF.center_crop(x, self.image_size)
        elif self.image_size is not None:
            x = _fit_size(x, self.image_size, self.interpolation)
        return self.normalize(x)


@dataclass(frozen=True)
class _Preset:
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: str | None
    jitter: tuple[float, float, float, float]
    gray_p: float
    eval_resize: int | None


# AMDIM reference settings (amdim-public datasets.py; see docs/data.md).
AMDIM_AUGMENT_PRESETS: dict[str, _Preset] = {
    # TransformsC10: translate 4 px with reflection p=0.8, ColorJitter(.4,.4,.4,.2) p=0.8, gray .25
    "cifar": _Preset(32, CIFAR_MEAN, CIFAR_STD, "translate", (0.4, 0.4, 0.4, 0.2), 0.25, None),
    # TransformsSTL10: RandomResizedCrop(64, (0.3, 1), (0.7, 1.4), bicubic); test Resize(70),
    # CenterCrop(64)
    "stl10": _Preset(64, STL10_MEAN, STL10_STD, "resized_crop", (0.4, 0.4, 0.4, 0.2), 0.25, 70),
    # ImageNet 128: RandomResizedCrop(128, (0.3, 1), (0.7, 1.4)); hue 0.1 and gray 0.25 follow
    # docs REFERENCE (a stored datasets.py version has hue 0.2, gray 0.2); test Resize(146)+Crop
    "imagenet128": _Preset(
        128, IMAGENET_MEAN, IMAGENET_STD, "resized_crop", (0.4, 0.4, 0.4, 0.1), 0.25, 146
    ),
}
_PRESET_ALIASES = {"cifar10": "cifar", "cifar100": "cifar", "imagenet": "imagenet128"}


def _preset(name: str, table: dict) -> object:
    key = _PRESET_ALIASES.get(name.lower(), name.lower())
    if key not in table:
        names = sorted(set(table) | {a for a, k in _PRESET_ALIASES.items() if k in table})
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(names)}")
    return table[key]


class AmdimViews(nn.Module):
    """Two augmented views of a uint8 batch, as in AMDIM, each image with its own parameters.

    ``views(x)`` first flips each source image left-right with probability ``flip_p`` (one flip
    shared by both views), then augments the batch twice independently:

    1. crop: ``"translate"`` (shift by up to ``translate_px`` pixels with reflection, with
       probability ``translate_p``), ``"resized_crop"`` (``RandomResizedCrop(image_size,
       crop_scale, crop_ratio, interpolation)``) or ``None``;
    2. colour jitter ``jitter = (brightness, contrast, saturation, hue)`` with probability
       ``jitter_p``, the four steps in a random order per image (``jitter_order="fixed"`` for
       the fixed order brightness, contrast, saturation, hue);
    3. grayscale with probability ``gray_p``;
    4. normalisation with ``mean``/``std`` ([0, 1] units).

    Each ``enable_*`` switch turns one step off. Both views are computed in one pass over a
    batch of ``2N`` images. Randomness comes from ``gen`` (an :data:`infomax.rng.Gen`: a
    :class:`torch.Generator` on any device, a :class:`~infomax.rng.BatchRandom`)
    or the global RNG.

    Shape: ``(N, C, H, W)`` uint8 (or float in [0, 1]) -> two ``(N, C, S, S)`` float tensors with
    ``S = image_size``.

    >>> aug = AmdimViews.preset("cifar")
    >>> v1, v2 = aug(torch.zeros(8, 3, 32, 32, dtype=torch.uint8))
    >>> v1.shape, v1.dtype
    (torch.Size([8, 3, 32, 32]), torch.float32)
    """

    def __init__(
        self,
        image_size: int = 32,
        mean: Sequence[float] = CIFAR_MEAN,
        std: Sequence[float] = CIFAR_STD,
        crop: str | None = "translate",
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_ratio: tuple[float, float] = (0.7, 1.4),
        interpolation: str = "bicubic",
        translate_px: int = 4,
        translate_p: float = 0.8,
        translate_mode: str = "reflect",
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.2),
        jitter_p: float = 0.8,
        jitter_order: str = "random",
        gray_p: float = 0.25,
        flip_p: float = 0.5,
        enable_flip: bool = True,
        enable_crop: bool = True,
        enable_jitter: bool = True,
        enable_gray: bool = True,
        eval_resize: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if crop not in ("translate", "resized_crop", None):
            raise ValueError(f"crop must be 'translate', 'resized_crop' or None, got {crop!r}")
        if image_size <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        if len(jitter) != 4:
            raise ValueError(
                f"jitter must be (brightness, contrast, saturation, hue), got {jitter}"
            )
        if jitter_order not in ("random", "fixed"):
            raise ValueError(f"jitter_order must be 'random' or 'fixed', got {jitter_order!r}")
        for name, p in (
            ("translate_p", translate_p),
            ("jitter_p", jitter_p),
            ("gray_p", gray_p),
            ("flip_p", flip_p),
        ):
            TF._check_prob(p, name)
        TF._check_interp(interpolation)
        if translate_mode not in TF._PAD_MODES:
            raise ValueError(
                f"translate_mode must be one of {TF._PAD_MODES}, got {translate_mode!r}"
            )
        # validate the jitter ranges now rather than at the first batch
        for value, name, center, bound in zip(
            jitter,
            ("brightness", "contrast", "saturation", "hue"),
            (1, 1, 1, 0),
            (float("inf"),) * 3 + (0.5,),
        ):
            TF._jitter_range(value, name, center, bound)
        self.image_size = int(image_size)
        self.crop = crop
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.interpolation = interpolation
        self.translate_px = int(translate_px)
        self.translate_p = float(translate_p)
        self.translate_mode = translate_mode
        self.jitter = tuple(float(j) for j in jitter)
        self.jitter_p = float(jitter_p)
        self.jitter_order = jitter_order
        self.gray_p = float(gray_p)
        self.flip_p = float(flip_p)
        self.enable_flip = enable_flip
        self.enable_crop = enable_crop
        self.enable_jitter = enable_jitter
        self.enable_gray = enable_gray
        self.eval_resize = eval_resize
        self.dtype = dtype
        self.normalize = Normalize(mean, std, dtype)

    @classmethod
    def preset(cls, name: str, **overrides) -> AmdimViews:
        """The AMDIM settings for ``cifar`` (also ``cifar10``, ``cifar100``), ``stl10`` or
        ``imagenet128``; keyword arguments override single settings."""
        p = _preset(name, AMDIM_AUGMENT_PRESETS)
        kwargs = dict(
            image_size=p.image_size,
            mean=p.mean,
            std=p.std,
            crop=p.crop,
            jitter=p.jitter,
            gray_p=p.gray_p,
            eval_resize=p.eval_resize,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def augment(self, x: Tensor, gen: Gen = None) -> Tensor:
        """One augmented view (no flip): crop, jitter, grayscale, normalise."""
        TF._check_batch(x)
        if self.enable_crop and self.crop == "resized_crop":
            x = TF.random_resized_crop(
                x,
                self.image_size,
                self.crop_scale,
                self.crop_ratio,
                self.interpolation,
                gen,
                self.dtype,
            )
        else:
            x = _fit_size(x, self.image_size, self.interpolation)
            if self.enable_crop and self.crop == "translate":
                x = TF.random_translate(
                    x, self.translate_px, self.translate_mode, self.translate_p, gen
                )
        if self.enable_jitter and self.jitter_p > 0:
            b, c, s, h = self.jitter
            x = TF.color_jitter(
                x, b, c, s, h, p=self.jitter_p, gen=gen, order=self.jitter_order, dtype=self.dtype
            )
        if self.enable_gray and self.gray_p > 0:
            x = TF.random_grayscale(x, self.gray_p, gen)
        return self.normalize(x)

    def views(self, x: Tensor, gen: Gen = None) -> tuple[Tensor, Tensor]:
        """``(view1, view2)``: one shared flip per image, then two independent augmentations."""
        TF._check_batch(x)
        if self.enable_flip and self.flip_p > 0:
            x = TF.random_hflip(x, self.flip_p, gen)
        n = x.shape[0]
        both = self.augment(torch.cat((x, x), dim=0), gen)
        return both[:n], both[n:]

    def forward(self, x: Tensor, gen: Gen = None) -> tuple[Tensor, Tensor]:
        return self.views(x, gen)

    def eval_transform(self, x: Tensor) -> Tensor:
        """The test-time transform of the preset: optional resize (``eval_resize``), centre crop
        to ``image_size``, normalisation. No randomness."""
        TF._check_batch(x)
        if self.eval_resize is not None:
            if min(x.shape[-2:]) != self.eval_resize:
                x = TF.resize(x, self.eval_resize, self.interpolation, dtype=self.dtype)
            return self.normalize(TF.center_crop(x, self.image_size))
        return self.normalize(_fit_size(x, self.image_size, self.interpolation))

    def extra_repr(self) -> str:
        parts = [f"image_size={self.image_size}", f"crop={self.crop!r}"]
        if self.crop == "resized_crop":
            parts.append(f"scale={self.crop_scale}, ratio={self.crop_ratio}, {self.interpolation}")
        elif self.crop == "translate":
            parts.append(f"translate_px={self.translate_px}, translate_p={self.translate_p}")
        parts += [
            f"jitter={self.jitter}, jitter_p={self.jitter_p}, order={self.jitter_order}",
            f"gray_p={self.gray_p}",
            f"flip_p={self.flip_p}",
        ]
        off = [s for s in ("flip", "crop", "jitter", "gray") if not getattr(self, f"enable_{s}")]
        if off:
            parts.append(f"disabled={off}")
        return ", ".join(parts)


def amdim_views(name: str, **overrides) -> AmdimViews:
    """``AmdimViews.preset(name, **overrides)``."""
    return AmdimViews.preset(name, **overrides)


@dataclass(frozen=True)
class _DimPreset:
    crop_size: int | None
    padding: int
    flip_p: float


DIM_AUGMENT_PRESETS: dict[str, _DimPreset] = {
    # the DIM reference code trains CIFAR without augmentation
    "cifar": _DimPreset(None, 0, 0.0),
    # light CIFAR augmentation: pad 4 and crop 32 (zero padding), flip
    "cifar_light": _DimPreset(32, 4, 0.5),
    # STL-10: random 64x64 crop of the 96x96 images, centre crop at test time
    "stl10": _DimPreset(64, 0, 0.0),
}


class DimAugment(nn.Module):
    """Deep InfoMax augmentation: optional random crop (with padding) and flip, normalisation.

    ``crop_size=None`` keeps the images whole; otherwise ``augment`` takes a random ``crop_size``
    crop of the image padded by ``padding`` on every side (``pad_mode`` ``constant`` zero,
    ``reflect`` or ``replicate``) and ``eval_transform`` takes the centre crop. ``flip_p`` flips
    left-right per image. ``mean``/``std`` default to 0.5, mapping [0, 1] to [-1, 1] (a choice of
    this library, not a setting confirmed from the DIM code).

    Shape: ``(N, C, H, W)`` uint8 -> ``(N, C, S, S)`` float, ``S = crop_size or H``.
    """

    def __init__(
        self,
        crop_size: int | None = None,
        padding: int = 0,
        flip_p: float = 0.0,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        pad_mode: str = "constant",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        TF._check_prob(flip_p, "flip_p")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if crop_size is not None and crop_size <= 0:
            raise ValueError(f"crop_size must be positive or None, got {crop_size}")
        if pad_mode not in TF._PAD_MODES:
            raise ValueError(f"pad_mode must be one of {TF._PAD_MODES}, got {pad_mode!r}")
        self.crop_size = crop_size
        self.padding = int(padding)
        self.flip_p = float(flip_p)
        self.pad_mode = pad_mode
        self.dtype = dtype
        self.normalize = Normalize(mean, std, dtype)

    @classmethod
    def preset(cls, name: str, **overrides) -> DimAugment:
        """``cifar`` (no augmentation, the DIM reference setting), ``cifar_light`` (pad 4 + crop
        32, flip 0.5) or ``stl10`` (random 64x64 crops, centre crop at test time)."""
        key = name.lower()
        key = {"cifar10": "cifar", "cifar100": "cifar"}.get(key, key)
        if key not in DIM_AUGMENT_PRESETS:
            raise ValueError(
                f"unknown DIM preset {name!r}; valid presets: cifar, cifar10, cifar100, "
                f"{', '.join(k for k in DIM_AUGMENT_PRESETS if k != 'cifar')}"
            )
        p = DIM_AUGMENT_PRESETS[key]
        kwargs = dict(crop_size=p.crop_size, padding=p.padding, flip_p=p.flip_p)
        kwargs.update(overrides)
        return cls(**kwargs)

    def augment(self, x: Tensor, gen: Gen = None) -> Tensor:
        TF._check_batch(x)
        if self.flip_p > 0:
            x = TF.random_hflip(x, self.flip_p, gen)
        if self.crop_size is not None:
            x = TF.random_crop(x, self.crop_size, self.padding, self.pad_mode, gen)
        return self.normalize(x)

    def forward(self, x: Tensor, gen: Gen = None) -> Tensor:
        return self.augment(x, gen)

    def eval_transform(self, x: Tensor) -> Tensor:
        TF._check_batch(x)
        if self.crop_size is not None and min(x.shape[-2:]) > self.crop_size:
            x = TF.center_crop(x, self.crop_size)
        return self.normalize(x)


def eval_transform(name: str, **overrides) -> EvalTransform:
    """The test-time transform of an AMDIM preset (``cifar``: normalise; ``stl10``: Resize(70),
    CenterCrop(64), normalise; ``imagenet128``: Resize(146), CenterCrop(128), normalise)."""
    p = _preset(name, AMDIM_AUGMENT_PRESETS)
    kwargs = dict(image_size=p.image_size, mean=p.mean, std=p.std, resize=p.eval_resize)
    kwargs.update(overrides)
    return EvalTransform(**kwargs)
