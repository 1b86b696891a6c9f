"""The training loop: :func:`train` runs a method of the Method protocol on a dataset.

One step: ``out = method.training_losses(images_uint8)`` under autocast; ``out["loss"]`` is
back-propagated into every parameter except ``method.aux_parameters()``, ``out["aux_loss"]``
(if any) into those only, each with its own Adam optimiser; online probes (``train.online_probes``:
linear, and AMDIM's MLP) learn on the detached ``out["features"]`` and log their accuracy on each
batch before their update.

Nothing waits on the device inside a step: logged scalars go into a device buffer that is copied
to the host every ``train.log_every`` steps (one sync), where the metrics row is written and
non-finite values are detected (stopping the run with the step and the loss term named; the last
good checkpoint is kept). Checkpoints hold everything needed to continue bit for bit: model,
optimisers, scheduler, scaler, probe, loader position, RNG states.
"""

from __future__ import annotations

import csv
import math
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
from infomax.objectives.amdim import tanh_clip
from infomax.runtime import autocast as autocast_context
from infomax.runtime import cpu_has_fast_bf16, resolve_device, resolve_precision  # noqa: F401
from infomax.training.config import (
    RESUMABLE_KEYS,
    Config,
    config_differences,
    config_to_dict,
    load_config,
    method_signature,
    read_yaml,
    save_config,
)
from infomax.training.runs import (
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    atomic_save,
    build_method,
    create_run_dir,
    git_commit,
    load_checkpoint,
    read_run_config,
)
from infomax.training.schedule import make_scheduler

METRICS_FILE = "metrics.csv"
PLOT_FILE = "metrics.png"
LOG_FILE = "train.log"


class NonFiniteLossError(RuntimeError):
    """A logged loss term became NaN or infinite."""


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


# ----------------------------------------------------------------------------------------------
# data


def load_datasets(cfg: Config, splits: tuple[str, ...] = ("train",)) -> dict[str, Any]:
    """The datasets of ``cfg.data`` for the named roles: ``train``, ``test``, ``probe_train``."""
    from infomax.data import load_dataset

    d = cfg.data
    names = {"train": d.train_split, "test": d.test_split, "probe_train": cfg.eval.train_split}
    subsets = {"train": d.train_subset, "test": d.test_subset, "probe_train": d.train_subset}
    out: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    for role in splits:
        split = names[role] or d.train_split
        if split not in cache:
            cache[split] = load_dataset(
                d.dataset, split=split, root=d.root, download=d.download, image_size=d.image_size
            )
        ds = cache[split]
        n = subsets[role]
        if n is not None and n < len(ds.images):
            ds = type(ds)(ds.images[:n], ds.labels[:n], ds.classes)
        out[role] = ds
    return out


def fill_model_defaults(cfg: Config, train_set: Any) -> dict[str, Any]:
    """``cfg.model`` plus ``mean`` / ``std`` from the dataset when the method takes them and the
    config leaves them unset: the known statistics of a named dataset, else measured ones."""
    from infomax.data import compute_stats, dataset_stats

    model = dict(cfg.model)
    params, _, _ = method_signature(cfg.method)
    if "mean" in params and "std" in params and ("mean" not in model or "std" not in model):
        try:
            mean, std = dataset_stats(cfg.data.dataset)
        except ValueError:
            mean, std = compute_stats(train_set)
        if len(mean) != int(train_set.images.shape[1]):
            mean, std = compute_stats(train_set)
        model.setdefault("mean", [round(float(m), 6) for m in mean])
        model.setdefault("std", [round(float(s), 6) for s in std])
    return model


# ----------------------------------------------------------------------------------------------
# online probe


class OnlineProbe(nn.Module):
    """Linear classifier on detached features: BatchNorm (no affine) then a zero-initialised
    linear layer, so that it starts at chance and uses no random numbers."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False)
        self.linear = nn.Linear(in_features, num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class OnlineMLPProbe(nn.Module):
    """AMDIM's MLP probe (Bachman et al., NeurIPS 2019; amdim-public ``model.py``, the
    ``Evaluator``'s ``MLPClassifier`` with 1024 hidden units and dropout 0.2): Dropout -> Linear
    (no bias) -> BatchNorm -> ReLU -> Dropout -> Linear. The last layer starts at zero, so the
    probe starts at chance like the linear one."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 1024, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(in_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ONLINE_PROBES: dict[str, type[nn.Module]] = {"linear": OnlineProbe, "mlp": OnlineMLPProbe}


def probe_column(kind: str) -> str:
    """The metrics column of an online probe's accuracy: ``probe_acc`` for the linear probe (the
    name it always had), ``probe_<kind>_acc`` for the others."""
    return "probe_acc" if kind == "linear" else f"probe_{kind}_acc"


def online_probe_loss(
    logits: torch.Tensor, labels: torch.Tensor, clip: float | None = None, logit_reg: float = 0.0
) -> torch.Tensor:
    """Loss of an online probe: cross-entropy of the soft-clipped logits ``c tanh(z / c)`` plus
    ``logit_reg * mean(z^2)``, in float32; labels ``-1`` (unlabelled images) are left out of the
    cross-entropy, and a batch without labels gives 0 there rather than NaN (STL-10's
    train+unlabeled batches are mostly unlabelled; no host-device synchronisation).

    ``clip=None, logit_reg=0`` is plain cross-entropy. AMDIM's reference code trains its probes
    with ``clip=10, logit_reg=1e-3`` (amdim-public ``costs.py``, ``loss_xent``), which bounds the
    logits of a probe that sees features far larger than at initialisation.
    """
    z = logits.float()
    per_image = nn.functional.cross_entropy(
        tanh_clip(z, clip), labels, ignore_index=-1, reduction="none"
    )  # 0 where ignored
    loss = per_image.sum() / (labels >= 0).sum().clamp(min=1)
    if logit_reg:
        loss = loss + logit_reg * z.square().mean()
    return loss


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
        state["cuda"] = torch.cuda.get_rng_state_all()
    if device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"].cpu())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ----------------------------------------------------------------------------------------------
# metrics file and plots


def read_metrics(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def plot_metrics(csv_path: str | os.PathLike, png_path: str | os.PathLike) -> Path | None:
    """Curves of every logged column against the step (matplotlib Agg, no pyplot state)."""
    header, rows = read_metrics(csv_path)
    if not rows:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    skip = {"step", "epoch", "images_per_sec", "elapsed_s"}
    cols = [c for c in header if c not in skip]
    steps = [int(r["step"]) for r in rows]
    n = len(cols)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.8 * nrows))
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.92, wspace=0.3, hspace=0.6)
    FigureCanvasAgg(fig)
    for i, c in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        xs, ys = [], []
        for s, r in zip(steps, rows):
            v = r.get(c, "")
            if v not in ("", None):
                xs.append(s)
                ys.append(float(v))
        ax.plot(xs, ys, lw=1.2)
        ax.set_title(c, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if c == "lr" and ys and min(ys) > 0 and max(ys) / min(ys) > 20:
            ax.set_yscale("log")
    tmp = Path(png_path).with_name(f".{Path(png_path).name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, png_path)
    return Path(png_path)


class _Log:
    """Print (through tqdm when a bar is shown) and append to the run's train.log."""

    def __init__(self, path: Path | None, echo: bool = True) -> None:
        self.path = path
        self.echo = echo
        self.bar = None

    def __call__(self, msg: str) -> None:
        if self.echo:
            if self.bar is not None:
                self.bar.write(msg)
            else:
                print(msg, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")


# ----------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Holds the state of one run; :meth:`fit` trains. Most users call :func:`train`."""

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
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.log = _Log(self.run_dir / LOG_FILE, echo=echo)
        t = cfg.train
        self.device = resolve_device(t.device)
        self.precision = resolve_precision(t.precision, self.device)

        if train_set is None:
            train_set = load_datasets(cfg, ("train",))["train"]
        self.train_set = train_set
        images = train_set.images
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"training images must be a uint8 tensor (N, C, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        self.in_channels, self.image_size = int(images.shape[1]), int(images.shape[-1])
        if len(images) < t.batch_size:
            raise ValueError(
                f"the training set has {len(images)} images, fewer than train.batch_size="
                f"{t.batch_size}; lower the batch size or use more data"
            )
        labels = getattr(train_set, "labels", None)
        classes = getattr(train_set, "classes", None) or []
        self.num_classes = len(classes)
        has_labels = labels is not None and len(labels) and bool((labels >= 0).any())
        probes_on = bool(t.online_probe and self.num_classes >= 2 and has_labels)
        self.probe_kinds = list(t.online_probes) if probes_on else []  # empty: no online probes

        self.cfg.model = fill_model_defaults(cfg, train_set)
        seed_everything(t.seed)
        self.method = build_method(cfg, self.in_channels, self.image_size).to(self.device)
        if t.channels_last:
            self.method.to(memory_format=torch.channels_last)
        aux = list(self.method.aux_parameters()) if hasattr(self.method, "aux_parameters") else []
        aux_ids = {id(p) for p in aux}
        self.main_params = [
            p for p in self.method.parameters() if p.requires_grad and id(p) not in aux_ids
        ]
        self.aux_params = [p for p in aux if p.requires_grad]
        if not self.main_params:
            raise ValueError(f"method {cfg.method!r} has no trainable parameters")
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizer = torch.optim.Adam(
            self.main_params, lr=t.lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay,
            **fused,
        )  # fmt: skip
        self.aux_optimizer = None
        if self.aux_params:
            self.aux_optimizer = torch.optim.Adam(
                self.aux_params, lr=t.aux_lr or t.lr, betas=t.betas, eps=t.eps,
                weight_decay=t.weight_decay, **fused,
            )  # fmt: skip
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

        from infomax.data import BatchLoader

        self.loader = BatchLoader(
            train_set, batch_size=t.batch_size, shuffle=True, drop_last=True,
            device=self.device, seed=t.seed,
        )  # fmt: skip
        self.steps_per_epoch = len(self.loader)
        self.scheduler = make_scheduler(
            self.optimizer, self.steps_per_epoch, t.warmup_steps, t.lr_milestones, t.lr_gamma
        )
        total = t.epochs * self.steps_per_epoch
        self.total_steps = min(total, t.max_steps) if t.max_steps is not None else total
        self.probe: nn.ModuleDict | None = None  # kind -> probe, built on the first batch
        self.probe_in_features: int | None = None
        self.probe_optimizer: torch.optim.Optimizer | None = None
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step = -1
        self._last_plot = time.monotonic()
        self.metric_names: list[str] | None = None
        self.csv_header: list[str] | None = None
        if resume:
            self._load(self.run_dir / LAST_CHECKPOINT)
        if t.compile:
            target = getattr(self.method, "encoder", self.method)
            target.compile()

    # -- probe ---------------------------------------------------------------------------------

    def _make_probe(self, in_features: int) -> None:
        self.probe_in_features = in_features
        self.probe = nn.ModuleDict(
            {k: ONLINE_PROBES[k](in_features, self.num_classes) for k in self.probe_kinds}
        ).to(self.device)
        self.probe_optimizer = torch.optim.Adam(self.probe.parameters(), lr=self.cfg.train.probe_lr)

    def _load_probe(self, ckpt: dict[str, Any]) -> None:
        """The online probes of a checkpoint (resume keeps ``train.online_probes``). Checkpoints
        written before probes had names hold one linear probe."""
        state = ckpt["probe"]
        if "linear.weight" in state:
            state = {f"linear.{k}": v for k, v in state.items()}
        in_features = ckpt.get("probe_in_features") or int(state["linear.linear.weight"].shape[1])
        self._make_probe(in_features)
        self.probe.load_state_dict(state)
        self.probe_optimizer.load_state_dict(ckpt["probe_optimizer"])

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "infomax_version": infomax.__version__,
            "config": config_to_dict(self.cfg),
            "build": {
                "in_channels": self.in_channels,
                "image_size": self.image_size,
                "num_classes": self.num_classes,
            },
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict() if self.aux_optimizer else None,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "probe": self.probe.state_dict() if self.probe is not None else None,
            "probe_in_features": self.probe_in_features,
            "probe_optimizer": (
                self.probe_optimizer.state_dict() if self.probe_optimizer is not None else None
            ),
            "loader": self.loader.state_dict(),
            "rng": rng_state(self.device),
            "metric_names": self.metric_names,
        }

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(
                f"cannot resume: {str(path)!r} does not exist (the run saved no checkpoint yet); "
                "start a new run instead"
            )
        ckpt = load_checkpoint(path, device="cpu")
        if ckpt["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(
                f"cannot resume: the run had {ckpt['steps_per_epoch']} steps per epoch, this "
                f"config gives {self.steps_per_epoch} (different data or batch size)"
            )
        self.method.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.aux_optimizer is not None and ckpt.get("aux_optimizer"):
            self.aux_optimizer.load_state_dict(ckpt["aux_optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("probe") is not None and self.probe_kinds:
            self._load_probe(ckpt)
        self.loader.load_state_dict(ckpt["loader"])
        set_rng_state(ckpt["rng"], self.device)
        self.step = int(ckpt["step"])
        self.metric_names = ckpt.get("metric_names")
        self.last_checkpoint = path
        self.last_checkpoint_step = self.step
        # drop metric rows logged after the checkpoint: they are about to be recomputed
        header, rows = read_metrics(self.run_dir / METRICS_FILE)
        if header:
            self.csv_header = header
            keep = [r for r in rows if int(r["step"]) <= self.step]
            self._write_rows(keep, mode="w")

    def _all_finite(self) -> bool:
        params = list(self.method.parameters())
        if not params:
            return True
        return bool(torch.stack([p.detach().isfinite().all() for p in params]).all())

    def save_checkpoint(self, keep_as: str | None = None) -> Path | None:
        """Write ``last.pt`` (and ``keep_as`` if given); refuses non-finite weights."""
        if not self._all_finite():
            raise NonFiniteLossError(
                f"the model has non-finite weights at step {self.step}; the checkpoint was not "
                "written"
            )
        path = self.run_dir / LAST_CHECKPOINT
        atomic_save(self.state_dict(), path)
        if keep_as:
            shutil.copyfile(path, self.run_dir / f".{keep_as}.tmp")
            os.replace(self.run_dir / f".{keep_as}.tmp", self.run_dir / keep_as)
        self.last_checkpoint = path
        self.last_checkpoint_step = self.step
        if time.monotonic() - self._last_plot >= 60:  # plots cost ~1 s: at most once a minute
            self.plot()
        return path

    def plot(self) -> Path | None:
        self._last_plot = time.monotonic()
        return plot_metrics(self.run_dir / METRICS_FILE, self.run_dir / PLOT_FILE)

    # -- metrics -------------------------------------------------------------------------------

    def _write_rows(self, rows: list[dict[str, Any]], mode: str = "a") -> None:
        path = self.run_dir / METRICS_FILE
        new = mode == "w" or not path.is_file() or path.stat().st_size == 0
        with open(path, mode, newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.csv_header, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow(r)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        dev = self.device
        start_time = time.monotonic()
        budget = t.time_budget_minutes * 60 if t.time_budget_minutes else None
        log_every = t.log_every
        method = self.method
        method.train()
        n_names = len(self.metric_names) if self.metric_names else 0
        buf: torch.Tensor | None = None
        # per step: labelled images, then the correct predictions of each online probe
        probe_buf = torch.zeros(log_every, 1 + len(self.probe_kinds), device=dev)
        rows_in_buf = 0
        lr_used = self.optimizer.param_groups[0]["lr"]
        window_start_time = time.monotonic()
        window_start_step = self.step
        last_ckpt_time = time.monotonic()
        last_row: dict[str, float] = {}
        stopped = "running"
        message = ""

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                desc=cfg.name or cfg.method, file=sys.stderr,
            )  # fmt: skip
            self.log.bar = bar

        def flush() -> None:
            """Copy the buffered scalars to the host (one sync), write a metrics row."""
            nonlocal rows_in_buf, window_start_time, window_start_step, last_row
            if rows_in_buf == 0 or buf is None:
                return
            k = rows_in_buf
            host = torch.cat([buf[:k], probe_buf[:k]], dim=1).cpu().double()
            vals, probe = host[:, :n_names], host[:, n_names:]
            # only the optimised terms stop a run; a logged estimate (an MI bound) may be infinite
            # while its loss is finite
            optimised = torch.tensor(
                [n in ("loss", "aux_loss") or n.startswith("loss_") for n in self.metric_names]
            )
            bad = ~torch.isfinite(vals)
            if bool((bad & optimised).any()):
                i = int((bad & optimised).any(dim=1).nonzero()[0])
                step = window_start_step + i + 1
                terms = ", ".join(
                    f"{name}={float(vals[i, j])}"
                    for j, name in enumerate(self.metric_names)
                    if bool(bad[i, j])
                )
                raise NonFiniteLossError(
                    f"non-finite loss at step {step} (epoch {step / self.steps_per_epoch:.2f}): "
                    f"{terms}"
                )
            now = time.monotonic()
            steps = self.step - window_start_step
            row: dict[str, Any] = {
                "step": self.step,
                "epoch": round(self.step / self.steps_per_epoch, 4),
                "lr": lr_used,  # the rate of the last step of the window
            }
            for j, name in enumerate(self.metric_names):
                row[name] = float(vals[:, j].mean())
            count = float(probe[:, 0].sum())
            for j, kind in enumerate(self.probe_kinds):
                acc = float(probe[:, 1 + j].sum()) / count if count else ""
                row[probe_column(kind)] = acc
            row["images_per_sec"] = round(
                steps * t.batch_size / max(now - window_start_time, 1e-9), 1
            )
            row["elapsed_s"] = round(now - start_time, 2)
            if self.csv_header is None:
                self.csv_header = list(row)
            self._write_rows([row])
            last_row = {k: v for k, v in row.items() if isinstance(v, int | float)}
            if bar is not None:
                post = {"loss": f"{row['loss']:.4f}", "img/s": f"{row['images_per_sec']:.0f}"}
                for kind in self.probe_kinds:
                    if row.get(probe_column(kind), "") != "":
                        post[f"probe_{kind}"] = f"{row[probe_column(kind)]:.3f}"
                bar.set_postfix(post, refresh=False)
            rows_in_buf = 0
            window_start_time = now
            window_start_step = self.step

        epoch_done = False
        try:
            while self.step < self.total_steps:
                epoch = self.step // self.steps_per_epoch
                if self.step % self.steps_per_epoch == 0:
                    self.loader.set_epoch(epoch)
                batches = 0
                for images, labels in self.loader:
                    batches += 1
                    if t.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with autocast_context(self.precision, dev):
                        out = method.training_losses(images)
                    if "loss" not in out:
                        raise ValueError("training_losses() must return a dict with a 'loss' entry")
                    loss = out["loss"]
                    aux_loss = out.get("aux_loss")
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.aux_optimizer is not None:
                        self.aux_optimizer.zero_grad(set_to_none=True)
                    torch.autograd.backward(
                        self.scaler.scale(loss),
                        inputs=self.main_params,
                        retain_graph=aux_loss is not None,
                    )
                    if aux_loss is not None and self.aux_optimizer is not None:
                        torch.autograd.backward(self.scaler.scale(aux_loss), inputs=self.aux_params)
                    if t.grad_clip:
                        self.scaler.unscale_(self.optimizer)
                        nn.utils.clip_grad_norm_(self.main_params, t.grad_clip, foreach=True)
                    self.scaler.step(self.optimizer)
                    if self.aux_optimizer is not None and aux_loss is not None:
                        self.scaler.step(self.aux_optimizer)
                    self.scaler.update()
                    lr_used = self.optimizer.param_groups[0]["lr"]
                    self.scheduler.step()

                    # logged scalars -> device buffer (no sync)
                    scalars = {
                        k: v
                        for k, v in out.items()
                        if k != "features"
                        and (not torch.is_tensor(v) or v.numel() == 1)
                        and isinstance(v, torch.Tensor | float | int)
                    }
                    if self.metric_names is None:
                        rest = sorted(k for k in scalars if k not in ("loss", "aux_loss"))
                        head = [k for k in ("loss", "aux_loss") if k in scalars]
                        self.metric_names = head + rest
                    if buf is None:
                        n_names = len(self.metric_names)
                        buf = torch.zeros(log_every, n_names, device=dev)
                    if set(scalars) != set(self.metric_names):
                        raise ValueError(
                            f"training_losses() returned {sorted(scalars)} at step "
                            f"{self.step + 1}, earlier {sorted(self.metric_names)}"
                        )
                    row_vals = [
                        scalars[k].detach().float().reshape(())
                        if torch.is_tensor(scalars[k])
                        else torch.tensor(float(scalars[k]), device=dev)
                        for k in self.metric_names
                    ]
                    buf[rows_in_buf] = torch.stack(row_vals)

                    # online probe on detached features
                    feats = out.get("features")
                    if self.probe_kinds and feats is not None:
                        feats = feats.detach().float().flatten(1)
                        if self.probe is None:
                            self._make_probe(feats.shape[1])
                        valid = labels >= 0
                        probe_buf[rows_in_buf, 0] = valid.sum().float()
                        probe_loss = feats.new_zeros(())
                        for j, kind in enumerate(self.probe_kinds):
                            logits = self.probe[kind](feats)
                            probe_loss = probe_loss + online_probe_loss(
                                logits, labels, t.probe_clip, t.probe_logit_reg
                            )
                            correct = ((logits.detach().argmax(1) == labels) & valid).sum()
                            probe_buf[rows_in_buf, 1 + j] = correct.float()
                        self.probe_optimizer.zero_grad(set_to_none=True)
                        probe_loss.backward()
                        self.probe_optimizer.step()
                    else:
                        probe_buf[rows_in_buf].zero_()
                    rows_in_buf += 1
                    self.step += 1
                    if bar is not None:
                        bar.update(1)

                    epoch_done = self.step % self.steps_per_epoch == 0
                    now = time.monotonic()
                    over_budget = budget is not None and now - start_time >= budget
                    at_end = self.step >= self.total_steps
                    due = (t.checkpoint_every and self.step % t.checkpoint_every == 0) or (
                        t.checkpoint_minutes and now - last_ckpt_time >= 60 * t.checkpoint_minutes
                    )
                    keep = None
                    if epoch_done and t.keep_every_epochs:
                        e = self.step // self.steps_per_epoch
                        if e % t.keep_every_epochs == 0:
                            keep = f"epoch_{e:04d}.pt"
                    if rows_in_buf == log_every or due or keep or at_end or over_budget:
                        flush()
                    if (due or keep) and not at_end and not over_budget:
                        self.save_checkpoint(keep_as=keep)
                        last_ckpt_time = time.monotonic()
                    if at_end or over_budget:
                        if at_end:
                            full = self.step >= t.epochs * self.steps_per_epoch
                            stopped = "completed" if full else "max_steps"
                        else:
                            stopped = "time_budget"
                        self.save_checkpoint(keep_as=keep)
                        break
                if batches == 0:
                    raise RuntimeError(f"the batch loader yielded no batch in epoch {epoch}")
                if self.step >= self.total_steps or stopped == "time_budget":
                    break
        except NonFiniteLossError as exc:
            stopped = "nonfinite"
            kept = (
                f"the last good checkpoint {self.last_checkpoint.name} (step "
                f"{self.last_checkpoint_step}) was kept"
                if self.last_checkpoint is not None
                else "no checkpoint had been written yet"
            )
            message = (
                f"training stopped: {exc}; {kept}. Try a lower train.lr, train.grad_clip=1.0 "
                "or train.precision=fp32"
            )
            self.log(message)
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
                self.log.bar = None
            where = (
                f"the last checkpoint is at step {self.last_checkpoint_step}; continue with "
                f"'infomax train --resume {self.run_dir}'"
                if self.last_checkpoint is not None
                else "no checkpoint was written"
            )
            self.log(f"interrupted at step {self.step}; {where}")
            raise
        finally:
            if bar is not None:
                bar.close()
                self.log.bar = None
        if stopped == "running":  # nothing left to do (resumed a finished run)
            stopped = "completed" if self.step >= t.epochs * self.steps_per_epoch else "max_steps"
        if stopped != "nonfinite":
            why = {
                "completed": f"finished {t.epochs} epochs",
                "max_steps": f"reached train.max_steps={t.max_steps}",
                "time_budget": f"stopped by the time budget ({t.time_budget_minutes} min)",
            }[stopped]
            message = (
                f"{why}: step {self.step} (epoch {self.step / self.steps_per_epoch:.2f}), "
                f"{time.monotonic() - start_time:.1f} s; checkpoint {self.last_checkpoint}"
            )
            self.log(message)
        self.plot()
        return TrainResult(
            run_dir=self.run_dir,
            step=self.step,
            epoch=self.step / self.steps_per_epoch,
            stopped=stopped,
            message=message,
            seconds=time.monotonic() - start_time,
            last_metrics=last_row,
            method=self.method,
            checkpoint=self.last_checkpoint,
        )


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
        meta.update(
            device=str(trainer.device),
            precision=trainer.precision,
            train_images=len(trainer.train_set.images),
            image_shape=list(trainer.train_set.images.shape[1:]),
            steps_per_epoch=trainer.steps_per_epoch,
        )
    return meta


def resume_config(
    run_dir: str | os.PathLike, config: str | os.PathLike | None = None, overrides=()
) -> Config:
    """The config to continue ``run_dir`` with: its own, plus overrides of resumable keys.

    Raises ValueError listing every difference that would change what is trained.
    """
    old = read_run_config(run_dir)
    if config is not None:
        new = load_config(config, overrides)
    else:
        base = read_yaml(Path(run_dir) / CONFIG_FILE)
        base.pop("meta", None)
        new = load_config(None, overrides, base=base)
    for key in ("mean", "std"):  # filled from the dataset when the run started
        if key in old.model and key not in new.model:
            new.model[key] = old.model[key]
    diffs = config_differences(old, new, ignore=RESUMABLE_KEYS)
    if diffs:
        allowed = ", ".join(k for k in RESUMABLE_KEYS if k.startswith("train."))
        raise ValueError(
            f"cannot resume {str(run_dir)!r} with a different config:\n  "
            + "\n  ".join(diffs)
            + f"\nonly these may change on resume: {allowed} (and eval.*); start a new run to "
            "change anything else"
        )
    new.name, new.run_dir = old.name, old.run_dir
    return new


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
    ``cfg.run_dir/cfg.name`` with a ``-2``, ``-3`` ... suffix if that name is taken.
    """
    if resume is not None:
        folder = Path(resume)
        if not (folder / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"cannot resume {str(folder)!r}: it has no {CONFIG_FILE}")
        trainer = Trainer(
            cfg, folder, resume=True, train_set=train_set, progress=progress, echo=echo
        )
        meta = read_yaml(folder / CONFIG_FILE).get("meta") or {}
        resumed = list(meta.get("resumed", []))
        resumed.append({"step": trainer.step, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        meta.update(resumed=resumed)
        save_config(cfg, folder / CONFIG_FILE, meta)
        trainer.log(f"resumed {folder} at step {trainer.step} of {trainer.total_steps}")
    else:
        folder = create_run_dir(cfg, run_dir)
        try:
            trainer = Trainer(cfg, folder, train_set=train_set, progress=progress, echo=echo)
        except BaseException:
            if folder.is_dir() and all(p.name == LOG_FILE for p in folder.iterdir()):
                shutil.rmtree(folder)  # nothing useful was written: leave no empty run behind
            raise
        save_config(cfg, folder / CONFIG_FILE, run_meta(cfg, trainer))
        trainer.log(
            f"run folder {folder}: {cfg.method} on {cfg.data.dataset} "
            f"({len(trainer.train_set.images)} images), {trainer.total_steps} steps, "
            f"device {trainer.device}, precision {trainer.precision}"
        )
    if callback is not None:
        callback(trainer)
    return trainer.fit()
