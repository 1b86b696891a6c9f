"""The training loop: :func:`train` runs a method of the Method protocol on a dataset, in one
process or as one of several data-parallel processes started by ``torchrun`` (or
``infomax train --nproc N``).

The loop only composes the parts, each in its own module: the step
(:mod:`~infomax.training.step`), the online probes (:mod:`~infomax.training.online_probes`),
metrics and logs (:mod:`~infomax.training.metrics`), checkpoints
(:mod:`~infomax.training.checkpoints`), and process-wide collectives (:mod:`infomax.distributed`).
``train.batch_size`` is the global batch; the number of processes changes the speed, not the
maths. Checkpoints hold everything needed to continue bit for bit: model, optimisers,
scheduler, scaler, probes, step, the RNG state of every process.
"""

from __future__ import annotations

import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import infomax
from infomax import distributed
from infomax.distributed import BatchGroup, World
from infomax.objectives.base import check_method
from infomax.runtime import resolve_precision
from infomax.training.checkpoints import Checkpointer
from infomax.training.config import (
    Config,
    config_to_dict,
    read_yaml,
    save_config,
)
from infomax.training.launch import prepare_run, resume_config
from infomax.training.metrics import (
    LOG_FILE,
    METRICS_FILE,
    PLOT_FILE,
    MetricsLog,
    NonFiniteLossError,
    Progress,
    TrainLog,
    plot_metrics,
)
from infomax.training.online_probes import OnlineProbes
from infomax.training.runs import (
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    build_method,
    git_commit,
)
from infomax.training.setup import derive_model_kwargs, load_datasets, training_device
from infomax.training.step import TrainStep

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer", "resume_config", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    step: int  # optimiser steps done (in total, over resumes)
    epoch: float  # step / steps_per_epoch
    stopped: str  # completed | max_steps | time_budget | nonfinite
    message: str  # a one-line summary
    seconds: float  # wall time of this call
    last_metrics: dict[str, float] = field(default_factory=dict)
    method: nn.Module | None = None  # the trained method (train mode)
    checkpoint: Path | None = None  # the last checkpoint written
    rank: int = 0  # this process's rank (0: the one that wrote the run folder)


# ----------------------------------------------------------------------------------------------
# RNG states (tensors and plain values only, so checkpoints load with weights_only=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    cuda = state.get("cuda")
    if device.type == "cuda" and cuda is not None:
        torch.cuda.set_rng_state(cuda[0] if isinstance(cuda, list | tuple) else cuda, device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Holds the state of one run (of this process); :meth:`fit` trains. Most users call
    :func:`train`."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        train_set: Any = None,
        progress: bool = True,
        echo: bool = True,
    ) -> None:
        t = cfg.train
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.world = World.from_env()
        self.device = training_device(t.device, self.world)
        distributed.init(self.device, self.world)
        self.group = BatchGroup.current()
        self.precision = resolve_precision(t.precision, self.device)
        self.log = TrainLog(self.run_dir / LOG_FILE, echo=echo, main=self.world.is_main)
        self.train_set = train_set if train_set is not None else load_datasets(cfg)["train"]
        self.in_channels, self.image_size = _check_images(self.train_set, t.batch_size)
        self.model_kwargs = derive_model_kwargs(cfg, self.train_set)
        self.method = self._build_method()
        self.num_classes = len(getattr(self.train_set, "classes", None) or [])
        self.probes = OnlineProbes(
            self._probe_kinds(), self.num_classes, self.device, t.probe_lr, t.probe_clip,
            t.probe_logit_reg, sync=self.group.distributed and t.sync_batchnorm,
        )  # fmt: skip
        from infomax.data import BatchLoader

        self.loader = BatchLoader(
            self.train_set, batch_size=t.batch_size // t.accumulate_steps, shuffle=True,
            drop_last=True, device=self.device, seed=t.seed, rank=self.world.rank,
            world_size=self.world.world_size,
        )  # fmt: skip
        self.steps_per_epoch = len(self.loader) // t.accumulate_steps
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(self.loader)} micro-batches per epoch do not fill one step of "
                f"train.accumulate_steps={t.accumulate_steps}; lower it or the batch size"
            )
        total = t.epochs * self.steps_per_epoch
        self.total_steps = min(total, t.max_steps) if t.max_steps is not None else total
        self.step_fn = TrainStep(self.method, t, self.device, self.precision, self.probes,
                                 self.group, self.steps_per_epoch)  # fmt: skip
        self.metrics = MetricsLog(
            self.run_dir if self.world.is_main else None, t.log_every, self.probes.columns,
            t.batch_size, self.device,
        )  # fmt: skip
        self.checkpoints = Checkpointer(self.run_dir, t, self.steps_per_epoch, self.world.is_main)
        self.step = 0
        self._saved_names: list[str] | None = None
        self._last_plot = time.monotonic()
        self.last_row: dict[str, float] = {}
        if resume:
            self._load()
        if t.compile:
            getattr(self.method, "encoder", self.method).compile()

    def _build_method(self) -> nn.Module:
        t = self.cfg.train
        seed_everything(t.seed)  # the same initial weights on every process
        method = build_method(self.cfg, self.in_channels, self.image_size, self.model_kwargs)
        check_method(method, f"method {self.cfg.method!r}")
        method = method.to(self.device)
        if t.channels_last:
            method.to(memory_format=torch.channels_last)
        if self.group.distributed and t.sync_batchnorm:
            method = distributed.convert_sync_batchnorm(method, self.device)
        distributed.broadcast_module(method)
        return method

    def _probe_kinds(self) -> list[str]:
        t, labels = self.cfg.train, getattr(self.train_set, "labels", None)
        has_labels = labels is not None and len(labels) and bool((labels >= 0).any())
        on = t.online_probe and self.num_classes >= 2 and has_labels
        return list(t.online_probes) if on else []

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (collective: gathers every process's
        RNG state)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "infomax_version": infomax.__version__,
            "config": config_to_dict(self.cfg),
            "build": {"in_channels": self.in_channels, "image_size": self.image_size,
                      "num_classes": self.num_classes, "model": self.model_kwargs},  # fmt: skip
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.world.world_size,
            "model": self.method.state_dict(),
            **self.step_fn.state_dict(),
            **self.probes.state_dict(),
            "loader": self._loader_state(),
            "rng": distributed.all_gather_object(rng_state(self.device)),
            "metric_names": self.metrics.names,
        }

    def _loader_state(self) -> dict[str, Any]:
        """The loader's settings and, for the record, where the next step reads (the trainer
        itself reads the batches of a step from the step number)."""
        epoch, i = divmod(self.step, self.steps_per_epoch)
        position = i * self.cfg.train.accumulate_steps
        return {**self.loader.state_dict(), "epoch": epoch, "position": position}

    def _load(self) -> None:
        ckpt = self.checkpoints.load()
        if ckpt["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(
                f"cannot resume: the run had {ckpt['steps_per_epoch']} steps per epoch, this "
                f"config gives {self.steps_per_epoch} (different data or batch size)"
            )
        self.method.load_state_dict(ckpt["model"])
        self.step_fn.load_state_dict(ckpt)
        self.probes.load_state_dict(ckpt)
        self.loader.load_state_dict(ckpt["loader"])  # checks the order is the same
        rng = ckpt["rng"]  # a list, one per process (a dict before several processes)
        rng = rng if isinstance(rng, dict) else rng[min(self.world.rank, len(rng) - 1)]
        set_rng_state(rng, self.device)
        self.step = int(ckpt["step"])
        self._saved_names = ckpt.get("metric_names")
        self.metrics.truncate_after(self.step)  # rows after the checkpoint are logged again

    def save_checkpoint(self, keep_as: str | None = None) -> Path:
        """Write ``last.pt`` (and ``keep_as``); refuses non-finite weights (collective)."""
        path = self.checkpoints.save(self.state_dict(), self.method, keep_as)
        if self.world.is_main and time.monotonic() - self._last_plot >= 60:
            self.plot()  # ~1 s: at most once a minute
        return path

    def plot(self) -> Path | None:
        self._last_plot = time.monotonic()
        if not self.world.is_main:
            return None
        return plot_metrics(self.run_dir / METRICS_FILE, self.run_dir / PLOT_FILE)

    # -- the loop ------------------------------------------------------------------------------

    def _batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The micro-batches of the next step (a pure function of the step)."""
        k = self.cfg.train.accumulate_steps
        epoch, i = divmod(self.step, self.steps_per_epoch)
        return [self.loader.batch(epoch, i * k + j) for j in range(k)]

    def _record(self, logged: dict[str, torch.Tensor], probe_stats: torch.Tensor) -> None:
        if self.metrics.names is None:
            head = [k for k in ("loss", "aux_loss") if k in logged]
            names = head + sorted(k for k in logged if k not in head)
            self.metrics.set_names(names, self.step_fn.checked, self._saved_names)
        if set(logged) != set(self.metrics.names):
            raise ValueError(
                f"training_losses() returned {sorted(logged)} at step {self.step}, earlier "
                f"{sorted(self.metrics.names)}"
            )
        values = torch.stack([logged[k] for k in self.metrics.names])
        self.metrics.record(values, probe_stats, self.step)

    def _after_step(self, lr: float, start: float, progress: Progress, done: int) -> str | None:
        """Metrics, checkpoints and the stopping rule after a step; the reason to stop, if any.
        Every decision is the same on every process (clocks: the main process's)."""
        t, now = self.cfg.train, time.monotonic()
        budget = t.time_budget_minutes * 60 if t.time_budget_minutes else None
        over_budget, by_minutes = distributed.agree(
            budget is not None and now - start >= budget, self.checkpoints.minutes_due(now)
        )
        every, keep = self.checkpoints.steps_due(self.step)
        at_end = self.step >= self.total_steps
        save = every or by_minutes or keep is not None
        if self.metrics.pending == t.log_every or save or at_end or over_budget:
            row = self.metrics.flush(self.step, self.steps_per_epoch, lr, now - start,
                                     self.world.world_size)  # fmt: skip
            if row:
                self.last_row = {k: v for k, v in row.items() if isinstance(v, int | float)}
                progress.refresh(self.step, now - start, done, _postfix(row, self.probes))
        if at_end or over_budget or save:
            self.save_checkpoint(keep_as=keep)
        if at_end:
            return "completed" if self.step >= t.epochs * self.steps_per_epoch else "max_steps"
        return "time_budget" if over_budget else None

    def fit(self) -> TrainResult:
        """Train until the step limit, the epochs or the time budget; returns the result."""
        start, first = time.monotonic(), self.step
        self.method.train()
        progress = Progress(self.progress and self.world.is_main, self.total_steps, self.step,
                            (self.cfg.train.time_budget_minutes or 0) * 60 or None,
                            self.cfg.name or self.cfg.method)  # fmt: skip
        self.log.bar = progress.bar
        stopped = None if self.step < self.total_steps else self._finished_reason()
        try:
            while stopped is None:
                logged, probe_stats, lr = self.step_fn.run(self._batches(), self.step)
                self.step += 1
                self._record(logged, probe_stats)
                progress.update()
                stopped = self._after_step(lr, start, progress, self.step - first)
        except NonFiniteLossError as exc:
            stopped, message = "nonfinite", self._nonfinite_message(exc)
        except KeyboardInterrupt:
            progress.close()
            self.log.bar = None
            self.log(f"interrupted at step {self.step}; {self._where_to_continue()}")
            raise
        finally:
            progress.close()
            self.log.bar = None
        if stopped != "nonfinite":
            message = self._summary(stopped, time.monotonic() - start)
        self.log(message)
        self.plot()
        return TrainResult(
            run_dir=self.run_dir, step=self.step, epoch=self.step / self.steps_per_epoch,
            stopped=stopped, message=message, seconds=time.monotonic() - start,
            last_metrics=self.last_row, method=self.method, checkpoint=self.checkpoints.last,
            rank=self.world.rank,
        )  # fmt: skip

    # -- messages ------------------------------------------------------------------------------

    def _finished_reason(self) -> str:
        full = self.step >= self.cfg.train.epochs * self.steps_per_epoch
        return "completed" if full else "max_steps"

    def _summary(self, stopped: str, seconds: float) -> str:
        t = self.cfg.train
        why = {
            "completed": f"finished {t.epochs} epochs",
            "max_steps": f"reached train.max_steps={t.max_steps}",
            "time_budget": f"stopped by the time budget ({t.time_budget_minutes} min)",
        }[stopped]
        return (
            f"{why}: step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}), "
            f"{seconds:.1f} s; checkpoint {self.checkpoints.last}"
        )

    def _nonfinite_message(self, exc: Exception) -> str:
        last = self.checkpoints.last
        kept = (
            f"the last good checkpoint {last.name} (step {self.checkpoints.last_step}) was kept"
            if last is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"training stopped: {exc}; {kept}. Try a lower train.lr, train.grad_clip=1.0 or "
            "train.precision=fp32"
        )

    def _where_to_continue(self) -> str:
        if self.checkpoints.last is None:
            return "no checkpoint was written"
        return (
            f"the last checkpoint is at step {self.checkpoints.last_step}; continue with "
            f"'infomax train --resume {self.run_dir}'"
        )


def _check_images(train_set: Any, batch_size: int) -> tuple[int, int]:
    images = train_set.images
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError(
            f"training images must be a uint8 tensor (N, C, H, W), got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if len(images) < batch_size:
        raise ValueError(
            f"the training set has {len(images)} images, fewer than train.batch_size="
            f"{batch_size}; lower the batch size or use more data"
        )
    return int(images.shape[1]), int(images.shape[-1])


def _postfix(row: dict[str, Any], probes: OnlineProbes) -> dict[str, str]:
    post = {"loss": f"{row['loss']:.4f}", "img/s": f"{row['images_per_sec']:.0f}"}
    for kind, col in zip(probes.kinds, probes.columns):
        if row.get(col, "") != "":
            post[f"probe_{kind}"] = f"{row[col]:.3f}"
    return post


# ----------------------------------------------------------------------------------------------
# entry points


def run_meta(cfg: Config, trainer: Trainer | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "infomax_version": infomax.__version__,
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "command": " ".join(["infomax", *sys.argv[1:]]) if sys.argv else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if trainer is not None:
        derived = {f"model.{k}": v for k, v in trainer.model_kwargs.items() if k not in cfg.model}
        meta.update(
            device=str(trainer.device),
            precision=trainer.precision,
            processes=trainer.world.world_size,
            train_images=len(trainer.train_set.images),
            image_shape=list(trainer.train_set.images.shape[1:]),
            steps_per_epoch=trainer.steps_per_epoch,
            derived=derived,
        )
    return meta


def train(
    cfg: Config,
    *,
    run_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    echo: bool = True,
    train_set: Any = None,
    callback: Callable[[Trainer], None] | None = None,
) -> TrainResult:
    """Train ``cfg`` in a fresh run folder, or continue the run folder ``resume``.

    A fresh folder is ``run_dir`` if given (it must be empty or absent), else
    ``cfg.run_dir/cfg.name`` with a ``-2``, ``-3`` ... suffix if that name is taken. Under
    ``torchrun`` (several processes, or restarts) ``run_dir`` must be given, and a ``run_dir``
    that holds a checkpoint is continued: a worker restarted after a failure resumes the run
    instead of starting another. The main process decides and tells the others.
    """
    world = World.from_env()
    if world.distributed and run_dir is None and resume is None:
        raise ValueError(
            "with several processes, name the run folder with --run-dir DIR (or "
            "train(..., run_dir=DIR)): a worker that torchrun restarts then continues the same run"
        )
    distributed.init(training_device(cfg.train.device, world), world)
    folder, resuming, cfg = prepare_run(cfg, run_dir, resume)
    try:
        trainer = Trainer(
            cfg, folder, resume=resuming, train_set=train_set, progress=progress, echo=echo
        )
    except BaseException:
        if world.is_main and not resuming and folder.is_dir():
            if all(p.name == LOG_FILE for p in folder.iterdir()):
                shutil.rmtree(folder)  # nothing useful was written: leave no empty run behind
        raise
    _record_start(trainer, cfg, folder, resuming)
    if callback is not None:
        callback(trainer)
    return trainer.fit()


def _record_start(trainer: Trainer, cfg: Config, folder: Path, resuming: bool) -> None:
    """config.yaml (the user's config, and what was derived, under ``meta``) and the first log
    line; main process only."""
    if not trainer.world.is_main:
        return
    if resuming:
        meta = read_yaml(folder / CONFIG_FILE).get("meta") or {}
        resumed = list(meta.get("resumed", []))
        resumed.append({"step": trainer.step, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "processes": trainer.world.world_size})  # fmt: skip
        meta.update(resumed=resumed)
        save_config(cfg, folder / CONFIG_FILE, meta)
        trainer.log(f"resumed {folder} at step {trainer.step} of {trainer.total_steps}")
        return
    save_config(cfg, folder / CONFIG_FILE, run_meta(cfg, trainer))
    procs = trainer.world.world_size
    trainer.log(
        f"run folder {folder}: {cfg.method} on {cfg.data.dataset} "
        f"({len(trainer.train_set.images)} images), {trainer.total_steps} steps, "
        f"device {trainer.device}, precision {trainer.precision}"
        + (f", {procs} processes" if procs > 1 else "")
    )
