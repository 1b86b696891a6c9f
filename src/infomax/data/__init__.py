"""Datasets held in memory as uint8 tensors, and a batch loader that keeps them on the device.

>>> from infomax.data import load_dataset, BatchLoader
>>> train = load_dataset("synthetic", split="train")        # built in, no download
>>> train.images.shape, train.num_classes
(torch.Size([5000, 3, 32, 32]), 10)
>>> loader = BatchLoader(train, batch_size=256, device="cpu", seed=0)
>>> images, labels = next(iter(loader))
>>> images.dtype, images.shape
(torch.uint8, torch.Size([256, 3, 32, 32]))

Named datasets: ``cifar10``, ``cifar100``, ``stl10``, ``mnist`` (through torchvision) and
``synthetic``; paths to ``.npz`` archives or image folders are accepted too. See ``docs/data.md``.
"""

from infomax.data.dataset import ArrayDataset
from infomax.data.loader import BatchLoader
from infomax.data.sources import (
    DATASETS,
    IMAGE_EXTENSIONS,
    check_splits,
    decode_image,
    default_root,
    load_dataset,
    load_image_folder,
    load_npz,
    resize_images,
)
from infomax.data.stats import KNOWN_STATS, compute_stats, dataset_stats
from infomax.data.synthetic import SYNTHETIC_CLASSES, make_synthetic

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "KNOWN_STATS",
    "SYNTHETIC_CLASSES",
    "ArrayDataset",
    "BatchLoader",
    "check_splits",
    "compute_stats",
    "dataset_stats",
    "decode_image",
    "default_root",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "make_synthetic",
    "resize_images",
]
