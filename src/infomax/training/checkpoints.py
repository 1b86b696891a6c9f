"""Checkpoints of a run: when they are written, how, and how a run is resumed from one.

- When: every ``train.checkpoint_every`` steps, every ``train.checkpoint_minutes`` minutes (the
  main process's clock decides, every process follows), at the end, and ``epoch_NNNN.pt`` every
  ``train.keep_every_epochs`` epochs.
- How: after every process has finished the step (a barrier), the main process writes
  ``last.pt`` atomically (:func:`infomax.runtime.atomic_save`): a crash, or a worker killed
  mid-write, leaves the previous checkpoint intact. Non-finite weights are never written.
- Resume: the main process reads the checkpoint and broadcasts it, so with several machines only
  the main process's machine needs the run folder (every machine needs the dataset).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infomax.distributed import barrier, broadcast_object
from infomax.runtime import atomic_save, atomic_write
from infomax.training.config import TrainConfig
from infomax.training.metrics import NonFiniteLossError
from infomax.training.runs import LAST_CHECKPOINT, load_checkpoint

__all__ = ["Checkpointer"]


class Checkpointer:
    """The checkpoint policy and files of one run.

    Args:
        run_dir: the run folder.
        train: the run's training settings.
        steps_per_epoch: optimiser steps per epoch.
        main: whether this process writes files (the main process).
    """

    def __init__(self, run_dir: Path, train: TrainConfig, steps_per_epoch: int, main: bool):
        self.run_dir, self.train, self.main = run_dir, train, main
        self.steps_per_epoch = steps_per_epoch
        self.path = run_dir / LAST_CHECKPOINT
        self.last: Path | None = None  # the last checkpoint written (or resumed from)
        self.last_step = -1
        self.last_time = time.monotonic()

    def minutes_due(self, now: float) -> bool:
        """Whether ``train.checkpoint_minutes`` have passed since the last checkpoint."""
        m = self.train.checkpoint_minutes
        return bool(m) and now - self.last_time >= 60 * m

    def steps_due(self, step: int) -> tuple[bool, str | None]:
        """Whether ``step`` is due by ``train.checkpoint_every``, and the kept file's name when
        it ends an epoch that ``train.keep_every_epochs`` keeps."""
        t = self.train
        every = bool(t.checkpoint_every) and step % t.checkpoint_every == 0
        keep = None
        if t.keep_every_epochs and step % self.steps_per_epoch == 0:
            epoch = step // self.steps_per_epoch
            if epoch % t.keep_every_epochs == 0:
                keep = f"epoch_{epoch:04d}.pt"
        return every, keep

    def save(self, state: dict[str, Any], model: nn.Module, keep_as: str | None = None) -> Path:
        """Write ``state`` as ``last.pt`` (and ``keep_as``) once every process is done with the
        step. Collective: every process calls it."""
        params = list(model.parameters())
        if params and not bool(torch.stack([p.detach().isfinite().all() for p in params]).all()):
            raise NonFiniteLossError(
                f"the model has non-finite weights at step {state['step']}; the checkpoint was "
                "not written"
            )
        barrier()
        if self.main:
            atomic_save(state, self.path)
            if keep_as:
                atomic_write(self.run_dir / keep_as, lambda tmp: shutil.copyfile(self.path, tmp))
        barrier()
        self.last, self.last_step, self.last_time = self.path, int(state["step"]), time.monotonic()
        return self.path

    def load(self) -> dict[str, Any]:
        """The run's ``last.pt``, read by the main process and broadcast to every process."""
        ckpt: dict[str, Any] | Exception | None = None
        if self.main:
            try:
                if not self.path.is_file():
                    raise FileNotFoundError(
                        f"cannot resume: {str(self.path)!r} does not exist (the run saved no "
                        "checkpoint yet); start a new run instead"
                    )
                ckpt = load_checkpoint(self.path, device="cpu")
            except (OSError, ValueError, RuntimeError) as exc:
                ckpt = exc
        ckpt = broadcast_object(ckpt)
        if isinstance(ckpt, Exception):
            raise ckpt
        self.last, self.last_step = self.path, int(ckpt["step"])
        return ckpt
