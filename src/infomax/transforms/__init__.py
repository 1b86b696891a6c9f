"""Batched, on-device image augmentation (AMDIM views, Deep InfoMax crops) and normalisation.

Every transform works on a whole batch ``(N, C, H, W)`` on the training device (CPU or CUDA),
uint8 or float in [0, 1], and gives each image its own random parameters without a per-image
Python loop. Randomness comes from a ``torch.Generator`` passed as ``gen`` or the global RNG.

>>> import torch
>>> from infomax.transforms import AmdimViews
>>> aug = AmdimViews.preset("cifar")                       # AMDIM's CIFAR settings
>>> x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
>>> v1, v2 = aug.views(x, gen=torch.Generator().manual_seed(0))
>>> v1.shape
torch.Size([4, 3, 32, 32])

See ``docs/data.md`` for the parameters and the measured throughput.
"""

from infomax.transforms.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    center_crop,
    color_jitter,
    hflip,
    hsv_to_rgb,
    random_crop,
    random_grayscale,
    random_hflip,
    random_resized_crop,
    random_translate,
    resize,
    resized_crop,
    rgb_to_grayscale,
    rgb_to_hsv,
    sample_resized_crop_boxes,
    to_float,
    translate,
)
from infomax.transforms.views import (
    AMDIM_AUGMENT_PRESETS,
    DIM_AUGMENT_PRESETS,
    AmdimViews,
    DimAugment,
    EvalTransform,
    Normalize,
    amdim_views,
    eval_transform,
)

__all__ = [
    "AMDIM_AUGMENT_PRESETS",
    "DIM_AUGMENT_PRESETS",
    "AmdimViews",
    "DimAugment",
    "EvalTransform",
    "Normalize",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "amdim_views",
    "center_crop",
    "color_jitter",
    "eval_transform",
    "hflip",
    "hsv_to_rgb",
    "random_crop",
    "random_grayscale",
    "random_hflip",
    "random_resized_crop",
    "random_translate",
    "resize",
    "resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "sample_resized_crop_boxes",
    "to_float",
    "translate",
]
