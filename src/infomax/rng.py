"""Random numbers that do not depend on how a batch is split over processes.

Data-parallel training gives every process a slice of the global batch. For the maths to be the
same with 1, 2 or N processes, an image must get the same random draws (augmentation parameters,
AMDIM's source locations, the prior's samples) whichever process handles it. :class:`BatchRandom`
does that: every draw is made for the *global* batch from a generator seeded by ``(seed, step,
draw number)``, and each process keeps the rows of its own images. Processes make the same draws
in the same order (they run the same code), so the draw numbers agree without communication.
Drawing the whole global batch costs a few random numbers per image, nothing next to the step.

Every random function of :mod:`infomax.transforms` and :mod:`infomax.objectives` takes ``gen``:
a :class:`BatchRandom`, a :class:`torch.Generator`, or ``None`` (the global torch RNG), and draws
through :func:`uniform`, :func:`normal` and :func:`randint` here, the one place that knows the
three kinds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["BatchRandom", "Gen", "mix_seed", "normal", "randint", "uniform"]

_MASK64 = (1 << 64) - 1


def mix_seed(seed: int, *values: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``values`` (splitmix64's finaliser), so that
    neighbouring inputs give unrelated streams. ``mix_seed(s, e)`` is the batch loader's epoch
    seed."""
    x = int(seed) & _MASK64
    for i, v in enumerate(values):
        c = 0xBF58476D1CE4E5B9 if i == 0 else 0xD1B54A32D192ED03
        x = (x * (0x9E3779B97F4A7C15 if i == 0 else 1) + int(v) * c + 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
        x = (x * 0xD6E8FEB86659FD93) & _MASK64
        x ^= x >> 29
    return x & ((1 << 63) - 1)


class BatchRandom:
    """The random numbers of one training step, drawn per image of the global batch.

    Args:
        seed: the run's seed.
        step: the optimiser step (with gradient accumulation: ``step * accumulate + micro``).
        global_size: images in the global batch (of this micro-batch).
        start, stop: this process's images are ``global[start:stop]`` (default: all of them).

    A per-image draw of shape ``(k * n, ...)``, with ``n = stop - start`` local images, is ``k``
    stacked blocks of the local batch (AMDIM augments the two views as one batch of ``2n``): each
    block gets rows ``start:stop`` of its own global draw of ``global_size`` rows. A *shared* draw
    (one value for the whole batch, such as the shift of the concat critic's negatives) is the
    same on every process.
    """

    def __init__(
        self, seed: int, step: int, global_size: int, start: int = 0, stop: int | None = None
    ) -> None:
        stop = global_size if stop is None else int(stop)
        if not 0 <= start < stop <= global_size:
            raise ValueError(
                f"need 0 <= start < stop <= global_size, got {start}, {stop}, {global_size}"
            )
        self.key = mix_seed(seed, step)
        self.global_size, self.start, self.stop = int(global_size), int(start), stop
        self.draws = 0
        self._generators: dict[torch.device, torch.Generator] = {}

    @property
    def local_size(self) -> int:
        return self.stop - self.start

    def _generator(self, device: torch.device) -> torch.Generator:
        g = self._generators.get(device)
        if g is None:
            g = self._generators[device] = torch.Generator(device=device)
        g.manual_seed(mix_seed(self.key, self.draws))  # host-side: no device synchronisation
        self.draws += 1
        return g

    def _blocks(self, shape: Sequence[int]) -> int:
        n = self.local_size
        if not shape or shape[0] % n:
            raise ValueError(
                f"a per-image draw needs a leading size that is a multiple of the local batch "
                f"({n}); got shape {tuple(shape)}"
            )
        return shape[0] // n

    def _per_image(self, draw, shape: Sequence[int], device: torch.device) -> Tensor:
        shape = tuple(int(s) for s in shape)
        k = self._blocks(shape)
        full = draw((k, self.global_size, *shape[1:]), self._generator(device))
        return full[:, self.start : self.stop].reshape(shape)

    def uniform(self, shape: Sequence[int], device: torch.device, dtype=torch.float32) -> Tensor:
        """Uniform [0, 1) numbers, per image."""
        return self._per_image(
            lambda s, g: torch.rand(s, generator=g, device=device, dtype=dtype), shape, device
        )

    def normal(self, shape: Sequence[int], device: torch.device, dtype=torch.float32) -> Tensor:
        """Standard normal numbers, per image."""
        return self._per_image(
            lambda s, g: torch.randn(s, generator=g, device=device, dtype=dtype), shape, device
        )

    def randint(self, low: int, high: int, shape: Sequence[int], device: torch.device) -> Tensor:
        """Integers in ``[low, high)``, per image."""
        return self._per_image(
            lambda s, g: torch.randint(low, high, s, generator=g, device=device), shape, device
        )

    def shared_randint(
        self, low: int, high: int, shape: Sequence[int], device: torch.device
    ) -> Tensor:
        """Integers in ``[low, high)``, the same on every process (not per image)."""
        g = self._generator(device)
        return torch.randint(low, high, tuple(shape), generator=g, device=device)


#: what the random functions of infomax accept as ``gen``
Gen = BatchRandom | torch.Generator | None


def _src(gen: torch.Generator | None) -> torch.device:
    return gen.device if gen is not None else torch.device("cpu")


def uniform(
    shape: int | Sequence[int], gen: Gen, device: torch.device, dtype=torch.float32
) -> Tensor:
    """Uniform [0, 1) numbers on ``device``. A :class:`torch.Generator` (or ``None``, the global
    CPU RNG) draws on its own device and the result is copied, so the same seed gives the same
    numbers on every device."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if isinstance(gen, BatchRandom):
        return gen.uniform(shape, device, dtype)
    out = torch.rand(shape, generator=gen, device=_src(gen), dtype=dtype)
    return out.to(device, non_blocking=True)


def normal(shape: Sequence[int], gen: Gen, device: torch.device, dtype=torch.float32) -> Tensor:
    """Standard normal numbers on ``device`` (``None``: the global RNG of ``device``, as
    ``torch.randn_like``)."""
    shape = tuple(shape)
    if isinstance(gen, BatchRandom):
        return gen.normal(shape, device, dtype)
    src = gen.device if gen is not None else device
    return torch.randn(shape, generator=gen, device=src, dtype=dtype).to(device, non_blocking=True)


def randint(
    low: int, high: int, shape: Sequence[int], gen: Gen, device: torch.device, shared=False
) -> Tensor:
    """Integers in ``[low, high)`` on ``device`` (``None``: the global RNG of ``device``).
    ``shared=True``: one draw for the whole global batch, not per image."""
    shape = tuple(shape)
    if isinstance(gen, BatchRandom):
        if shared:
            return gen.shared_randint(low, high, shape, device)
        return gen.randint(low, high, shape, device)
    src = gen.device if gen is not None else device
    return torch.randint(low, high, shape, generator=gen, device=src).to(device, non_blocking=True)
