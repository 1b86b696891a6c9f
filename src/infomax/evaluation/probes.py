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

>>> res = train_probe(train_x, train_y, test_x, test_y, kind="mlp")     # doctest: +SKIP
>>> res.test_acc                                                        # doctest: +SKIP
0.7321
"""

from __future__ import annotations

import math
import time
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
    "MIN_STEPS",
    "MLPProbe",
    "LinearProbe",
    "ProbeResult",
    "build_probe",
    "train_probe",
]

PROBE_KINDS = ("linear", "mlp")

# cuda_graph=None: capture the probe's training step in a CUDA graph on CUDA devices
_GRAPH_BY_DEFAULT = False

# with the default epochs, small datasets train for more epochs to reach this many steps
MIN_STEPS = 1000

# fast defaults on cached features (see the module docstring and docs/evaluation.md)
PROBE_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"epochs": 30, "lr": 1e-3, "batch_size": 256, "weight_decay": 0.0},
    "mlp": {"epochs": 30, "lr": 1e-3, "batch_size": 256, "weight_decay": 0.0},
}

# the settings of the reference code (rdevon/DIM): Adam 1e-4, batch 64, MultiStepLR [50, 100]
DIM_REFERENCE_MLP: dict[str, Any] = {
    "kind": "mlp",
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


def build_probe(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """A probe of kind ``linear`` or ``mlp``."""
    if kind == "linear":
        return LinearProbe(in_features, num_classes)
    if kind == "mlp":
        return MLPProbe(in_features, num_classes)
    raise ValueError(f"unknown probe kind {kind!r}; valid kinds: {', '.join(PROBE_KINDS)}")


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


class _EagerStep:
    """One optimiser step on the rows ``idx`` of the training features; returns the loss."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor):
        self.model, self.opt, self.x, self.y = model, opt, x, y

    def __call__(self, idx: Tensor) -> Tensor:
        loss = F.cross_entropy(self.model(self.x[idx]), self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


class _GraphStep:
    """The same step captured once in a CUDA graph and replayed with new indices.

    Capturing needs a few warm-up steps; their effect on the weights, BatchNorm statistics and
    Adam moments is undone before capture, so training starts from the same initial state.
    """

    def __init__(
        self, model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, batch: int
    ):
        self.idx = torch.arange(batch, device=x.device)
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[self.idx]), y[self.idx]).backward()
                opt.step()
        torch.cuda.current_stream(x.device).wait_stream(side)
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(initial[k])
            for state in opt.state.values():
                for t in state.values():
                    if isinstance(t, Tensor):
                        t.zero_()
        self.graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss = F.cross_entropy(model(x[self.idx]), y[self.idx])
            self.loss.backward()
            opt.step()

    def __call__(self, idx: Tensor) -> Tensor:
        self.idx.copy_(idx)
        self.graph.replay()
        return self.loss.detach()


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += (logits.argmax(1) == y[start : start + batch_size]).sum()
    return correct.double() / max(1, x.shape[0])


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
    cuda_graph: bool | None = None,
) -> ProbeResult:
    """Train a ``linear`` or ``mlp`` probe on fixed features and report train / test accuracy.

    Args:
        train_x, test_x: features ``(N, D)`` (higher dimensions are flattened); detached.
        train_y, test_y: int labels ``(N,)``; rows labelled -1 (unlabeled) are dropped.
        kind: ``linear`` (one linear layer) or ``mlp`` (the DIM 200-unit classifier).
        epochs, lr, batch_size, weight_decay: ``None`` takes ``PROBE_DEFAULTS[kind]``
            (default epochs are raised until training makes at least ``MIN_STEPS`` steps);
            ``batch_size=0`` trains full-batch.
        seed: seeds the probe's initialisation, dropout and minibatch order.
        device: where training runs (``None``: where ``train_x`` is).
        milestones: epochs at which the learning rate is multiplied by ``gamma`` (Adam with
            MultiStepLR, as in the reference); ``None``: at 60% and 85% of ``epochs``.
        num_classes: ``None``: ``1 + max label``.
        standardize: standardise features with the training mean and std.
        cuda_graph: replay one captured CUDA graph per training step (``None``: off for now,
            until measured). A step of these small probes costs far more in Python and kernel
            launches than on the GPU (an H100 spent 0.2 ms of each 1.5 ms MLP step); the graph
            removes that.

    Each epoch draws a fresh permutation and makes ``N // batch_size`` steps of exactly
    ``batch_size`` samples (the few left over take part in later epochs).

    Returns:
        a :class:`ProbeResult`; accuracies are measured in eval mode after training.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"unknown probe kind {kind!r}; valid kinds: {', '.join(PROBE_KINDS)}")
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

    dev = torch.device(device) if device is not None else train_x.device
    t0 = time.perf_counter()
    train_x, train_y = _labelled(train_x, train_y, "train")
    test_x, test_y = _labelled(test_x, test_y, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"train features have {train_x.shape[1]} columns but test features {test_x.shape[1]}"
        )
    xtr = train_x.to(dev, torch.float32)
    xte = test_x.to(dev, torch.float32)
    ytr = train_y.to(dev)
    yte = test_y.to(dev)
    if num_classes is None:
        num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    if standardize:
        mean = xtr.mean(0, keepdim=True)
        std = torch.ones_like(mean)
        if xtr.shape[0] > 1:
            std = xtr.std(0, keepdim=True).clamp_min(1e-6)
    else:
        mean = torch.zeros((1, xtr.shape[1]), device=dev)
        std = torch.ones_like(mean)
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std

    n = xtr.shape[0]
    bs = n if batch_size == 0 or batch_size >= n else batch_size
    # every step sees exactly bs samples (a fresh permutation each epoch; the n % bs left over
    # wait for the next epoch): one shape for CUDA graphs, and never a BatchNorm batch of one
    steps_per_epoch = n // bs
    use_graph = _GRAPH_BY_DEFAULT and dev.type == "cuda" if cuda_graph is None else cuda_graph
    if use_graph and dev.type != "cuda":
        raise ValueError("cuda_graph=True needs a CUDA device")
    if default_epochs:
        epochs = max(epochs, math.ceil(MIN_STEPS / steps_per_epoch))
    if milestones is None:
        milestones = sorted({m for m in (math.ceil(0.6 * epochs), math.ceil(0.85 * epochs))
                             if 0 < m < epochs})  # fmt: skip
    milestones = tuple(int(m) for m in milestones)

    cuda_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        model = build_probe(kind, xtr.shape[1], num_classes).to(dev)
        model.train()
        if use_graph:  # a tensor learning rate, so the captured step sees the schedule
            opt = torch.optim.Adam(
                model.parameters(), lr=torch.tensor(lr, device=dev), weight_decay=weight_decay,
                capturable=True,
            )  # fmt: skip
            step = _GraphStep(model, opt, xtr, ytr, bs)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            step = _EagerStep(model, opt, xtr, ytr)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        loss_sum = torch.zeros((), device=dev)
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(n, device=dev, generator=gen)
            loss_sum = torch.zeros((), device=dev)
            for s in range(steps_per_epoch):
                loss_sum += step(perm[s * bs : (s + 1) * bs])
            sched.step()
        eval_bs = max(bs, 4096)
        train_acc = _accuracy(model, xtr, ytr, eval_bs)
        test_acc = _accuracy(model, xte, yte, eval_bs)
    return ProbeResult(
        kind=kind,
        train_acc=float(train_acc),
        test_acc=float(test_acc),
        train_loss=float(loss_sum) / steps_per_epoch,
        epochs=epochs,
        lr=lr,
        batch_size=bs,
        weight_decay=weight_decay,
        milestones=milestones,
        num_train=n,
        num_test=int(xte.shape[0]),
        num_features=int(xtr.shape[1]),
        num_classes=num_classes,
        seconds=time.perf_counter() - t0,
        probe=model,
        mean=mean,
        std=std,
    )
