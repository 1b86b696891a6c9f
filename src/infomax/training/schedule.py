"""Learning-rate schedule: linear warm-up, then step decay at epoch milestones.

AMDIM (Bachman et al. 2019, amdim-public ``task_self_supervised.py``) warms up linearly over 500
updates and multiplies the rate by 0.2 at epochs 250 and 280; DIM (Hjelm et al. 2019) uses a
constant rate. Both are :func:`warmup_multistep` with different settings (see ``configs/``).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch


def warmup_multistep(
    step: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """Learning-rate multiplier for optimiser step ``step`` (0-based).

    ``min(1, (step + 1) / warmup_steps) * gamma ** k`` where ``k`` is the number of epoch
    milestones reached by ``epoch = step // steps_per_epoch``.

    >>> warmup_multistep(0, 100, warmup_steps=500)
    0.002
    >>> warmup_multistep(25_000, 100, milestones=(250, 280), gamma=0.2)
    0.2
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    factor = 1.0
    if warmup_steps > 0:
        factor = min(1.0, (step + 1) / warmup_steps)
    epoch = step // steps_per_epoch
    k = bisect.bisect_right(sorted(milestones), epoch)
    return factor * gamma**k


class WarmupMultiStep:
    """Picklable ``lr_lambda`` for :class:`torch.optim.lr_scheduler.LambdaLR`."""

    def __init__(
        self,
        steps_per_epoch: int,
        warmup_steps: int = 0,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
    ) -> None:
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_steps = int(warmup_steps)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step: int) -> float:
        return warmup_multistep(
            step, self.steps_per_epoch, self.warmup_steps, self.milestones, self.gamma
        )


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    warmup_steps: int = 0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step :class:`LambdaLR` with :func:`warmup_multistep` (call ``.step()`` per update)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupMultiStep(steps_per_epoch, warmup_steps, milestones, gamma)
    )
