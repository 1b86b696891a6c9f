"""Channel means and standard deviations of known datasets, and of any :class:`ArrayDataset`."""

from __future__ import annotations

import torch

from infomax.data.dataset import ArrayDataset

__all__ = ["KNOWN_STATS", "dataset_stats", "compute_stats"]

# (mean, std) per channel in [0, 1] units, with their sources.
KNOWN_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # AMDIM reference code (amdim-public datasets.py, TransformsC10): 125.3/123.0/113.9 and
    # 63.0/62.1/66.7 over 255.
    "cifar10": (
        (125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0),
        (63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0),
    ),
    # CIFAR-100 train set statistics (commonly used values; AMDIM itself reuses the CIFAR-10 ones).
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    # AMDIM reference code (TransformsSTL10).
    "stl10": ((0.43, 0.42, 0.39), (0.27, 0.26, 0.27)),
    # MNIST train set.
    "mnist": ((0.1307,), (0.3081,)),
    # ImageNet (torchvision's values, also AMDIM's TransformsImageNet128).
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def compute_stats(
    dataset: ArrayDataset, chunk: int = 8192
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population, in [0, 1] units) over all pixels of a dataset.

    Accumulates sums in float64 chunk by chunk, so memory stays small for large datasets.
    """
    if len(dataset) == 0:
        raise ValueError("cannot compute statistics of an empty dataset")
    c = dataset.channels
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    count = 0
    for start in range(0, len(dataset), chunk):
        x = dataset.images[start : start + chunk].to(torch.float64).div_(255.0)
        s1 += x.sum(dim=(0, 2, 3)).cpu()
        s2 += x.square().sum(dim=(0, 2, 3)).cpu()
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / count
    std = (s2 / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def dataset_stats(
    name_or_dataset: str | ArrayDataset,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel in [0, 1] units.

    A name (``cifar10``, ``cifar100``, ``stl10``, ``mnist``, ``imagenet``) gives the known values
    (``KNOWN_STATS``; CIFAR-10 uses AMDIM's 125.3/123.0/113.9 and 63.0/62.1/66.7 over 255); an
    :class:`ArrayDataset` gives its measured statistics (:func:`compute_stats`).
    """
    if isinstance(name_or_dataset, ArrayDataset):
        return compute_stats(name_or_dataset)
    key = str(name_or_dataset).lower()
    if key in ("stl10", "stl-10"):
        key = "stl10"
    if key not in KNOWN_STATS:
        raise ValueError(
            f"no known statistics for {name_or_dataset!r}; known: {', '.join(KNOWN_STATS)}. "
            "Pass an ArrayDataset to compute them (compute_stats(load_dataset(...)))."
        )
    return KNOWN_STATS[key]
