"""Online probes: classifiers trained during training on the method's detached features.

They measure how linearly (or, with AMDIM's MLP, non-linearly) decodable the labels are as
training goes, at no cost to the representation (the features are detached). Their accuracy on
each batch, before the update, is logged as ``probe_acc`` (linear) and ``probe_mlp_acc``
(``amdim_mlp``). The probes are built on the first batch (the feature width is known then), train
with their own Adam optimiser and, with several processes, average their gradients and
synchronise their batch norm like the method.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from infomax.distributed import average_gradients, convert_sync_batchnorm
from infomax.objectives.amdim import tanh_clip

__all__ = [
    "ONLINE_PROBES",
    "OnlineMLPProbe",
    "OnlineProbe",
    "OnlineProbes",
    "online_probe_loss",
    "probe_column",
]


class OnlineProbe(nn.Module):
    """Linear classifier on detached features: BatchNorm (no affine) then a zero-initialised
    linear layer, so that it starts at chance and uses no random numbers."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features, affine=False)
        self.linear = nn.Linear(in_features, num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
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

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


ONLINE_PROBES: dict[str, type[nn.Module]] = {"linear": OnlineProbe, "amdim_mlp": OnlineMLPProbe}
# metrics columns: the names they always had
_COLUMNS = {"linear": "probe_acc", "amdim_mlp": "probe_mlp_acc"}


def probe_column(kind: str) -> str:
    """The metrics column of an online probe's accuracy (``probe_acc``, ``probe_mlp_acc``)."""
    return _COLUMNS.get(kind, f"probe_{kind}_acc")


def online_probe_loss(
    logits: Tensor, labels: Tensor, clip: float | None = None, logit_reg: float = 0.0
) -> Tensor:
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


class OnlineProbes:
    """The online probes of one run: their networks, optimiser, loss settings and state.

    Args:
        kinds: probe kinds (keys of :data:`ONLINE_PROBES`); empty: no probes (every call is a
            no-op and :meth:`stats` is an empty row).
        num_classes: label classes.
        device: where the probes live.
        lr, clip, logit_reg: Adam's learning rate and :func:`online_probe_loss`'s settings.
        sync: synchronise batch norm over processes (several processes).
    """

    def __init__(
        self,
        kinds: list[str],
        num_classes: int,
        device: torch.device,
        lr: float = 1e-3,
        clip: float | None = None,
        logit_reg: float = 0.0,
        sync: bool = False,
    ) -> None:
        self.kinds, self.num_classes, self.device = list(kinds), int(num_classes), device
        self.lr, self.clip, self.logit_reg, self.sync = lr, clip, logit_reg, sync
        self.nets: nn.ModuleDict | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.in_features: int | None = None

    @property
    def columns(self) -> list[str]:
        return [probe_column(k) for k in self.kinds]

    def _build(self, in_features: int) -> None:
        self.in_features = int(in_features)
        nets = nn.ModuleDict(
            {k: ONLINE_PROBES[k](in_features, self.num_classes) for k in self.kinds}
        ).to(self.device)
        self.nets = convert_sync_batchnorm(nets, self.device) if self.sync else nets
        self.optimizer = torch.optim.Adam(self.nets.parameters(), lr=self.lr)

    def losses(self, features: Tensor | None, labels: Tensor) -> tuple[Tensor | None, Tensor]:
        """The probes' summed loss on one (micro-)batch and its row of statistics: the number of
        labelled images, then each probe's correct predictions (before its update)."""
        stats = torch.zeros(1 + len(self.kinds), device=labels.device)
        if not self.kinds or features is None:
            return None, stats
        feats = features.detach().float().flatten(1)
        if self.nets is None:
            self._build(feats.shape[1])
        valid = labels >= 0
        stats[0] = valid.sum()
        total = feats.new_zeros(())
        for j, kind in enumerate(self.kinds):
            logits = self.nets[kind](feats)
            total = total + online_probe_loss(logits, labels, self.clip, self.logit_reg)
            stats[1 + j] = ((logits.detach().argmax(1) == labels) & valid).sum()
        return total, stats

    def zero_grad(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Average the accumulated gradients over processes and update."""
        if self.optimizer is not None:
            average_gradients(self.nets.parameters())
            self.optimizer.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "probe": self.nets.state_dict() if self.nets is not None else None,
            "probe_in_features": self.in_features,
            "probe_optimizer": self.optimizer.state_dict() if self.optimizer else None,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """The probes of a checkpoint (a no-op when it has none or this run has no probes).
        Checkpoints written before the probes had names hold one linear probe, and those before
        ``amdim_mlp`` was renamed call it ``mlp``."""
        state = ckpt.get("probe")
        if state is None or not self.kinds:
            return
        if "linear.weight" in state:
            state = {f"linear.{k}": v for k, v in state.items()}
        state = {(f"amdim_mlp.{k[4:]}" if k.startswith("mlp.") else k): v for k, v in state.items()}
        in_features = ckpt.get("probe_in_features") or int(state["linear.linear.weight"].shape[1])
        self._build(in_features)
        self.nets.load_state_dict(state)
        self.optimizer.load_state_dict(ckpt["probe_optimizer"])
