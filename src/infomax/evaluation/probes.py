"""Linear and MLP probes trained on frozen (cached, detached) features.

The MLP probe is the classifier of Deep InfoMax's evaluation (Hjelm et al., ICLR 2019, sec. 4.1;
rdevon/DIM ``cortex_DIM/models/classifier.py``): ``Linear(D, 200) -> BatchNorm1d -> Dropout(0.1)
-> ReLU -> Linear(200, classes)``, one per feature tap. The reference trains it with Adam 1e-4,
batch 64 and MultiStepLR([50, 100], gamma 0.1). On cached features we default to a shorter run
(``PROBE_DEFAULTS``: Adam 1e-3, batch 256, 30 epochs but at least ``MIN_STEPS`` optimiser steps, so
small datasets get more epochs; milestones at 60% and 85% of the epochs); ``DIM_REFERENCE_MLP``
holds the reference settings for a faithful (slower) evaluation.

The linear probe is one ``Linear(D, classes)`` layer. Both probes see features standardised with
the mean and standard deviation of the training features (for the MLP this is an affine map that
its first linear layer could absorb: it changes the optimisation, not the function class).

Training runs on ``device`` with the features held there; minibatches are drawn with a seeded
generator and no host-device synchronisation happens until the end of training.

>>> res = train_probe(train_x, train_y, test_x, test_y, kind="mlp200")     # doctest: +SKIP
>>> res.test_acc                                                        # doctest: +SKIP
0.7321
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DIM_REFERENCE_MLP",
    "PROBE_DEFAULTS",
    "PROBE_KINDS",
    "probe_kind",
    "MIN_STEPS",
    "MLPProbe",
    "LinearProbe",
    "ProbeResult",
    "build_probe",
    "train_probe",
]

#: offline probes: ``linear`` and ``mlp200``, Deep InfoMax's 200-unit MLP classifier (called
#: ``mlp`` in earlier versions; AMDIM's 1024-unit MLP is one of the trainer's online probes)
PROBE_KINDS = ("linear", "mlp200")
_OLD_PROBE_NAMES = {"mlp": "mlp200"}

# with the default epochs, small datasets train for more epochs to reach this many steps
MIN_STEPS = 1000

# fast defaults on cached features (see the module docstring and docs/evaluation.md)
PROBE_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"epochs": 30, "lr": 1e-3, "batch_size": 256, "weight_decay": 0.0},
    "mlp200": {"epochs": 30, "lr": 1e-3, "batch_size": 256, "weight_decay": 0.0},
}

# the settings of the reference code (rdevon/DIM): Adam 1e-4, batch 64, MultiStepLR [50, 100]
DIM_REFERENCE_MLP: dict[str, Any] = {
    "kind": "mlp200",
    # the reference's total is not stated (its last milestone is epoch 100): 150 is our choice
    "epochs": 150,
    "lr": 1e-4,
    "batch_size": 64,
    "weight_decay": 0.0,
    "milestones": (50, 100),
    "gamma": 0.1,
}


class LinearProbe(nn.Module):
    """One linear layer from features to class logits.

    Shape:
        input ``(N, in_features)``, output ``(N, num_classes)``.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class MLPProbe(nn.Module):
    """Deep InfoMax's evaluation classifier: Linear(200) -> BN -> Dropout(0.1) -> ReLU -> Linear.

    Shape:
        input ``(N, in_features)``, output ``(N, num_classes)``.
    """

    def __init__(self, in_features: int, num_classes: int, hidden: int = 200, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def probe_kind(name: str) -> str:
    """The probe kind ``name`` means: one of :data:`PROBE_KINDS`; the old name ``mlp`` is
    accepted with a :class:`FutureWarning` naming ``mlp200``. Anything else is a ValueError."""
    if name in _OLD_PROBE_NAMES:
        new = _OLD_PROBE_NAMES[name]
        warnings.warn(
            f"probe {name!r} is now called {new!r} (Deep InfoMax's 200-unit MLP probe); "
            f"the old name still works", FutureWarning, stacklevel=3,
        )  # fmt: skip
        return new
    if name not in PROBE_KINDS:
        raise ValueError(f"unknown probe {name!r}; valid probes: {', '.join(PROBE_KINDS)}")
    return name


def build_probe(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """A probe of kind ``linear`` or ``mlp200``."""
    kind = probe_kind(kind)
    if kind == "linear":
        return LinearProbe(in_features, num_classes)
    return MLPProbe(in_features, num_classes)


@dataclass
class ProbeResult:
    """Accuracies (fractions in [0, 1]) of a trained probe and the settings used."""

    kind: str
    train_acc: float
    test_acc: float
    train_loss: float  # mean cross-entropy over the last epoch
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    milestones: tuple[int, ...]
    num_train: int
    num_test: int
    num_features: int
    num_classes: int
    seconds: float
    probe: nn.Module | None = field(default=None, repr=False, compare=False)
    mean: Tensor | None = field(default=None, repr=False, compare=False)
    std: Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The numbers and settings (no tensors), for JSON."""
        return {
            "kind": self.kind,
            "train_acc": self.train_acc,
            "test_acc": self.test_acc,
            "train_loss": self.train_loss,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
            "milestones": list(self.milestones),
            "num_train": self.num_train,
            "num_test": self.num_test,
            "num_features": self.num_features,
            "num_classes": self.num_classes,
            "seconds": round(self.seconds, 3),
        }

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Class predictions for new features ``x`` (standardised like the training features)."""
        assert self.probe is not None and self.mean is not None and self.std is not None
        dev = self.mean.device
        self.probe.eval()
        return self.probe((x.to(dev, torch.float32) - self.mean) / self.std).argmax(1)


def _labelled(x: Tensor, y: Tensor, name: str) -> tuple[Tensor, Tensor]:
    if x.dim() != 2:
        x = x.flatten(1)
    y = torch.as_tensor(y).long().reshape(-1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: {x.shape[0]} feature rows but {y.shape[0]} labels")
    keep = y >= 0  # -1 marks unlabeled images
    if not bool(keep.all()):
        x, y = x[keep.to(x.device)], y[keep]
    if x.shape[0] == 0:
        raise ValueError(f"{name}: no labelled samples (labels -1 mean unlabeled)")
    return x, y


def _step(
    model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, idx: Tensor
) -> Tensor:
    """One optimiser step on the rows ``idx`` of the training features; returns the loss."""
    loss = F.cross_entropy(model(x[idx]), y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += (logits.argmax(1) == y[start : start + batch_size]).sum()
    return correct.double() / max(1, x.shape[0])


def _settings(
    kind: str, epochs: int | None, lr: float | None, batch_size: int | None,
    weight_decay: float | None,
) -> tuple[int, bool, float, int, float]:
    """``(epochs, default_epochs, lr, batch_size, weight_decay)`` with ``PROBE_DEFAULTS`` filled
    in and the ranges checked."""
    d = PROBE_DEFAULTS[kind]
    default_epochs = epochs is None
    epochs = d["epochs"] if epochs is None else int(epochs)
    lr = d["lr"] if lr is None else float(lr)
    batch_size = d["batch_size"] if batch_size is None else int(batch_size)
    weight_decay = d["weight_decay"] if weight_decay is None else float(weight_decay)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0: full batch), got {batch_size}")
    return epochs, default_epochs, lr, batch_size, weight_decay


def _standardiser(xtr: Tensor, standardize: bool) -> tuple[Tensor, Tensor]:
    """Mean and std of the training features (zeros and ones when ``standardize`` is off)."""
    if not standardize:
        mean = torch.zeros((1, xtr.shape[1]), device=xtr.device)
        return mean, torch.ones_like(mean)
    mean = xtr.mean(0, keepdim=True)
    std = xtr.std(0, keepdim=True).clamp_min(1e-6) if xtr.shape[0] > 1 else torch.ones_like(mean)
    return mean, std


def _fit(
    model: nn.Module, opt: torch.optim.Optimizer, sched: Any, xtr: Tensor, ytr: Tensor,
    epochs: int, bs: int, seed: int,
) -> Tensor:
    """Train for ``epochs`` epochs of ``len(xtr) // bs`` steps of exactly ``bs`` rows (a fresh
    seeded permutation each epoch); returns the summed loss of the last epoch (on the device)."""
    n = xtr.shape[0]
    gen = torch.Generator(device=xtr.device)
    gen.manual_seed(seed)
    loss_sum = torch.zeros((), device=xtr.device)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, device=xtr.device, generator=gen)
        loss_sum = torch.zeros((), device=xtr.device)
        for s in range(n // bs):
            loss_sum += _step(model, opt, xtr, ytr, perm[s * bs : (s + 1) * bs])
        sched.step()
    return loss_sum


def train_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    kind: str = "linear",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    milestones: Sequence[int] | None = None,
    gamma: float = 0.1,
    num_classes: int | None = None,
    standardize: bool = True,
) -> ProbeResult:
    """Train a ``linear`` or ``mlp200`` probe on fixed features; report train / test accuracy.

    Args:
        train_x, test_x: features ``(N, D)`` (higher dimensions are flattened); detached.
        train_y, test_y: int labels ``(N,)``; rows labelled -1 (unlabeled) are dropped.
        kind: ``linear`` (one linear layer) or ``mlp200`` (the DIM 200-unit classifier; the old
            name ``mlp`` still works).
        epochs, lr, batch_size, weight_decay: ``None`` takes ``PROBE_DEFAULTS[kind]``
            (default epochs are raised until training makes at least ``MIN_STEPS`` steps);
            ``batch_size=0`` trains full-batch.
        seed: seeds the probe's initialisation, dropout and minibatch order.
        device: where training runs (``None``: where ``train_x`` is).
        milestones: epochs at which the learning rate is multiplied by ``gamma`` (Adam with
            MultiStepLR, as in the reference); ``None``: at 60% and 85% of ``epochs``.
        num_classes: ``None``: ``1 + max label``.
        standardize: standardise features with the training mean and std.

    Each epoch draws a fresh permutation and makes ``N // batch_size`` steps of exactly
    ``batch_size`` samples (the rest take part in later epochs). Returns a :class:`ProbeResult`;
    accuracies are measured in eval mode after training.
    """
    kind = probe_kind(kind)
    epochs, default_epochs, lr, batch_size, weight_decay = _settings(
        kind, epochs, lr, batch_size, weight_decay
    )
    dev = torch.device(device) if device is not None else train_x.device
    t0 = time.perf_counter()
    train_x, train_y = _labelled(train_x, train_y, "train")
    test_x, test_y = _labelled(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train features have {train_x.shape[1]} columns but test features {test_x.shape[1]}"
        )
    xtr, xte = train_x.to(dev, torch.float32), test_x.to(dev, torch.float32)
    ytr, yte = train_y.to(dev), test_y.to(dev)
    if num_classes is None:
        num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    mean, std = _standardiser(xtr, standardize)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std

    n = xtr.shape[0]
    bs = n if batch_size == 0 or batch_size >= n else batch_size
    if default_epochs:
        epochs = max(epochs, math.ceil(MIN_STEPS / (n // bs)))
    if milestones is None:
        milestones = {math.ceil(0.6 * epochs), math.ceil(0.85 * epochs)} - {0, epochs}
    milestones = tuple(sorted(int(m) for m in milestones))

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build_probe(kind, xtr.shape[1], num_classes).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
        loss_sum = _fit(model, opt, sched, xtr, ytr, epochs, bs, seed)
        train_acc = _accuracy(model, xtr, ytr, max(bs, 4096))
        test_acc = _accuracy(model, xte, yte, max(bs, 4096))
    return ProbeResult(
        kind=kind, train_acc=float(train_acc), test_acc=float(test_acc),
        train_loss=float(loss_sum) / (n // bs), epochs=epochs, lr=lr, batch_size=bs,
        weight_decay=weight_decay, milestones=milestones, num_train=n,
        num_test=int(xte.shape[0]), num_features=int(xtr.shape[1]), num_classes=num_classes,
        seconds=time.perf_counter() - t0, probe=model, mean=mean, std=std,
    )  # fmt: skip
