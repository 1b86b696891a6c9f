"""An in-memory image dataset: one uint8 tensor of images, one int64 tensor of labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["ArrayDataset"]


class ArrayDataset:
    """Images as one uint8 tensor ``(N, C, H, W)``, labels as int64 ``(N,)`` (-1 = unlabeled).

    Args:
        images: uint8 tensor ``(N, C, H, W)`` (C is 1 or 3 for the transforms, any C is stored).
        labels: int64 tensor ``(N,)`` with values in ``[-1, len(classes))``; ``None`` means
            all unlabeled.
        classes: class names, index = label.

    >>> ds = ArrayDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, -1]),
    ...                   ["cat", "dog"])
    >>> len(ds), ds.num_classes, ds.image_size, ds.channels
    (4, 2, 8, 3)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, Tensor):
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {type(images)}")
        if images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got dtype {images.dtype}; convert floats in "
                "[0, 1] with (x * 255).round().to(torch.uint8)"
            )
        if images.dim() != 4:
            raise ValueError(
                f"images must have shape (N, C, H, W), got {tuple(images.shape)}; add a channel "
                "dimension for grayscale (images[:, None])"
            )
        n = images.shape[0]
        if labels is None:
            labels = torch.full((n,), -1, dtype=torch.int64)
        if isinstance(labels, np.ndarray):
            labels = torch.from_numpy(labels)
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        labels = labels.to(torch.int64).flatten() if labels.dim() <= 1 else labels
        if labels.dim() != 1 or labels.shape[0] != n:
            raise ValueError(
                f"labels must have shape ({n},) to match {n} images, got {tuple(labels.shape)}"
            )
        classes = [str(c) for c in classes] if classes is not None else []
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must be unique, got {classes}")
        if n > 0:
            lo, hi = int(labels.min()), int(labels.max())
            if lo < -1:
                raise ValueError(f"labels must be >= -1 (-1 = unlabeled), found {lo}")
            if hi >= len(classes):
                raise ValueError(
                    f"label {hi} has no class name: {len(classes)} classes given; pass classes "
                    "with one name per label"
                )
        self.images = images
        self.labels = labels
        self.classes = classes

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        labeled = int((self.labels >= 0).sum())
        return (
            f"ArrayDataset({n} images {c}x{h}x{w} uint8, {labeled} labeled, "
            f"{self.num_classes} classes)"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    @property
    def image_size(self) -> int | tuple[int, int]:
        """The side ``H`` for square images (the usual case), else ``(H, W)``."""
        h, w = int(self.images.shape[2]), int(self.images.shape[3])
        return h if h == w else (h, w)

    @property
    def labeled(self) -> Tensor:
        """Bool mask of the labeled images."""
        return self.labels >= 0

    def subset(self, indices: Sequence[int] | Tensor | np.ndarray) -> ArrayDataset:
        """A dataset of the images at ``indices`` (ints or a bool mask), same classes."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise ValueError(f"a bool mask must have shape ({len(self)},), got {idx.shape}")
            idx = torch.nonzero(idx).flatten()
        idx = idx.to(torch.int64).flatten()
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ValueError(f"subset indices out of range for a dataset of {len(self)} images")
        return ArrayDataset(self.images[idx], self.labels[idx], list(self.classes))

    def save_npz(self, path: str | Path) -> Path:
        """Save as ``.npz`` with ``images`` (N, C, H, W), ``labels`` and ``classes``; readable by
        ``load_dataset(path)``. Writes to a temporary file first, then renames."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            images=self.images.cpu().numpy(),
            labels=self.labels.cpu().numpy(),
            classes=np.asarray(self.classes, dtype=str),
        )
        tmp.replace(path)
        return path
