"""A batch loader over an in-memory uint8 dataset, with exact resume and no worker processes.

In the spirit of airbench: the uint8 images live on the training device (moved once when they
fit), a batch is one ``index_select``, and augmentation runs afterwards on the device
(:mod:`infomax.transforms`). Shuffling uses a ``torch.Generator`` seeded from ``(seed, epoch)``,
so the order of every epoch is a pure function of the seed and the epoch number.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from infomax.data.dataset import ArrayDataset
from infomax.rng import mix_seed

__all__ = ["BatchLoader"]

# fraction of the free device memory the dataset may take when moved to the device at once
_DEVICE_FRACTION = 0.5


def _epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for (seed, epoch), mixed so that neighbouring seeds give unrelated orders."""
    return mix_seed(seed, epoch)


class BatchLoader:
    """Yields ``(images, labels)``: uint8 ``(B, C, H, W)`` and int64 ``(B,)``, both on ``device``.

    Args:
        dataset: an :class:`ArrayDataset`.
        batch_size: images per batch: the global batch, over all ranks.
        shuffle: a new random order each epoch (else the dataset order).
        drop_last: drop the last incomplete batch (default, so every step sees ``batch_size``).
        device: where batches are delivered. The whole uint8 dataset is copied there once when it
            takes at most half of the free device memory (always on the CPU); otherwise each batch
            is gathered on the host, pinned and copied with ``non_blocking=True``.
        seed: the order of epoch ``e`` comes from a generator seeded with ``(seed, e)``.
        rank, world_size: for data-parallel training: every rank cuts the same permutation
            into the same global batches and yields its contiguous slice of each, images
            ``[rank * b, (rank + 1) * b)`` with ``b = batch_size // world_size``: the global batch
            of every step, and its order, do not depend on the number of ranks (``drop_last``
            only; ``batch_size`` must divide by ``world_size``).
        on_device: force (``True``) or forbid (``False``) the one-off copy of the dataset to
            ``device``; ``None`` decides by size.

    Epochs and resume: iterating yields the rest of the current epoch, from ``position`` (the
    number of batches already delivered in it); when an epoch is exhausted the loader moves to the
    next epoch. ``set_epoch(e)`` selects epoch ``e`` (from its start, unless ``e`` is already the
    current epoch: then the position is kept, so a resumed loader continues where it stopped).
    ``state_dict()`` / ``load_state_dict()`` save and restore ``(epoch, position)``.

    >>> loader = BatchLoader(dataset, batch_size=256, device="cuda")       # doctest: +SKIP
    >>> for epoch in range(10):                                             # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for images, labels in loader:
    ...         v1, v2 = views(images)
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        on_device: bool | None = None,
    ) -> None:
        if not isinstance(dataset, ArrayDataset):
            raise ValueError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
        if int(batch_size) <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world={world_size}")
        if world_size > 1 and int(batch_size) % world_size:
            raise ValueError(
                f"the global batch of {batch_size} images does not divide over {world_size} "
                f"processes; use a batch size that is a multiple of {world_size}"
            )
        if world_size > 1 and not drop_last:
            raise ValueError("data-parallel loading needs drop_last=True")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self.position = 0
        n = len(dataset)
        self.local_batch_size = self.batch_size // self.world_size
        if self.drop_last:
            self._num_batches = n // self.batch_size
        else:
            self._num_batches = -(-n // self.batch_size)
        if self._num_batches == 0:
            raise ValueError(
                f"batch_size {batch_size} with drop_last=True leaves no batch from {n} images"
                + (f" over {world_size} ranks" if world_size > 1 else "")
                + ": use a smaller batch_size or drop_last=False"
            )
        if on_device is None:
            on_device = self._fits(dataset.images)
        self.on_device = bool(on_device) or self.device.type == "cpu"
        if self.on_device:
            self._images = dataset.images.to(self.device)
            self._labels = dataset.labels.to(self.device)
        else:
            self._images = dataset.images.cpu()
            self._labels = dataset.labels.cpu()
        self._pin = (not self.on_device) and self.device.type == "cuda"
        self._cached: tuple[int, Tensor | None] = (-1, None)  # (epoch, indices) for batch()

    def _fits(self, images: Tensor) -> bool:
        if self.device.type == "cpu":
            return True
        if self.device.type == "cuda" and torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(self.device)
            return images.numel() * images.element_size() <= _DEVICE_FRACTION * free
        return True  # other devices (mps, ...): try the one-off copy

    def __len__(self) -> int:
        """Batches per epoch (for this rank)."""
        return self._num_batches

    def set_epoch(self, epoch: int) -> None:
        """Use the order of epoch ``epoch``; a different epoch restarts at its first batch."""
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = 0

    def epoch_indices(self, epoch: int | None = None) -> Tensor:
        """The dataset indices of ``epoch`` (default: the current one) in delivery order, on the
        CPU: the whole epoch's global batches, one after the other (every rank's slices)."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        return order[: self._num_batches * self.batch_size] if self.drop_last else order

    def rank_indices(self, epoch: int | None = None) -> Tensor:
        """This rank's dataset indices of ``epoch``, in delivery order."""
        idx = self.epoch_indices(epoch)
        if self.world_size == 1:
            return idx
        b = self.local_batch_size
        return idx.view(-1, self.world_size, b)[:, self.rank].reshape(-1)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.position >= self._num_batches:  # a finished epoch that was not advanced
            self.epoch += 1
            self.position = 0
        while self.position < self._num_batches:
            out = self.batch(self.epoch, self.position)
            self.position += 1
            yield out
        self.epoch += 1
        self.position = 0

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        """Batch ``index`` of epoch ``epoch`` (this rank's slice), without moving the loader's
        own position: a trainer that knows its step needs no loader state to resume."""
        if not 0 <= index < self._num_batches:
            raise ValueError(f"batch {index} is outside 0..{self._num_batches - 1}")
        if self._cached[0] != epoch:
            idx = self.rank_indices(epoch)
            if self.on_device and self.device.type != "cpu":
                idx = idx.to(self.device, non_blocking=True)
            self._cached = (epoch, idx)
        b = self.local_batch_size
        idx = self._cached[1][index * b : (index + 1) * b]
        images = self._images.index_select(0, idx)
        labels = self._labels.index_select(0, idx)
        if not self.on_device:
            if self._pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
        return images, labels

    def state_dict(self) -> dict[str, Any]:
        """``epoch``, ``position`` (batches delivered in that epoch) and the settings that fix the
        order (checked on load). The order does not depend on the number of ranks, so a state
        saved with N ranks resumes with M."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_size": self.batch_size,
            "num_samples": len(self.dataset),
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where ``state`` was saved. Raises ``ValueError`` if the batch size,
        dataset size or seed differ (the order would not be the same)."""
        for key, mine in (
            ("batch_size", self.batch_size),
            ("num_samples", len(self.dataset)),
            ("seed", self.seed),
            ("shuffle", self.shuffle),
        ):
            if key in state and state[key] != mine:
                raise ValueError(
                    f"cannot resume the loader: saved {key}={state[key]!r} but this loader has "
                    f"{mine!r}; use the same settings to resume exactly"
                )
        position = int(state.get("position", 0))
        if not 0 <= position <= self._num_batches:
            raise ValueError(f"saved position {position} is outside 0..{self._num_batches}")
        self.epoch = int(state["epoch"])
        self.position = position
