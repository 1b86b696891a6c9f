"""The training step: the method's losses, the backward passes, gradient averaging, the updates.

One optimiser step over ``train.accumulate_steps`` micro-batches (each this process's slice of a
global micro-batch): under autocast, ``method.training_losses(images, context)``; ``loss`` is
back-propagated into every parameter but ``method.aux_parameters()``, ``aux_loss`` (if any) into
those only, each with its own Adam optimiser; the online probes learn on the detached features.
With several processes the gradients of each optimiser are then averaged over processes
(:func:`infomax.distributed.average_gradients`), and every random draw of the step comes from
``(train.seed, step, micro-batch)`` per image of the global batch
(:class:`infomax.rng.BatchRandom`), so the step is the same maths whatever the number of
processes. Nothing here waits on the device.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from infomax.distributed import BatchGroup, average_gradients
from infomax.objectives.base import StepContext, TrainingLosses, as_training_losses
from infomax.rng import BatchRandom
from infomax.runtime import autocast
from infomax.training.config import TrainConfig
from infomax.training.online_probes import OnlineProbes
from infomax.training.schedule import make_scheduler

__all__ = ["TrainStep"]


def _takes_context(method: nn.Module) -> bool:
    """Whether ``method.training_losses`` accepts the step context (methods written before it
    existed take the images only; they train, but their random draws depend on the number of
    processes)."""
    try:
        params = inspect.signature(method.training_losses).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return True
    kinds = [p.kind for p in params]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Parameter.VAR_POSITIONAL in kinds or sum(k in positional for k in kinds) >= 2


class TrainStep:
    """The optimisers of a method and the step that updates them.

    Args:
        method: the method (a :class:`infomax.objectives.base.Method`), on ``device``.
        train: the run's training settings.
        device, precision: where and in which autocast precision (``fp32``, ``bf16``, ``fp16``;
            fp16 with a gradient scaler).
        probes: the run's online probes.
        group: how each global (micro-)batch is split over processes.
        steps_per_epoch: for the learning-rate schedule (epoch milestones).
    """

    def __init__(
        self,
        method: nn.Module,
        train: TrainConfig,
        device: torch.device,
        precision: str,
        probes: OnlineProbes,
        group: BatchGroup,
        steps_per_epoch: int,
    ) -> None:
        self.method, self.train, self.device, self.precision = method, train, device, precision
        self.probes, self.group = probes, group
        aux_ids = {id(p) for p in method.aux_parameters()}
        self.main_params = [
            p for p in method.parameters() if p.requires_grad and id(p) not in aux_ids
        ]
        self.aux_params = [p for p in method.aux_parameters() if p.requires_grad]
        if not self.main_params:
            raise ValueError("the method has no trainable parameters")
        self.optimizer = self._adam(self.main_params, train.lr)
        self.aux_optimizer = self._adam(self.aux_params, train.aux_lr or train.lr)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.scheduler = make_scheduler(
            self.optimizer, steps_per_epoch, train.warmup_steps, train.lr_milestones,
            train.lr_gamma,
        )  # fmt: skip
        self.checked: set[str] = set()  # logged names whose non-finite value stops training
        self.takes_context = _takes_context(method)

    def _adam(self, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer | None:
        if not params:
            return None
        t = self.train
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.Adam(
            params, lr=lr, betas=t.betas, eps=t.eps, weight_decay=t.weight_decay, **fused
        )

    def _context(self, step: int, micro: int, n_local: int) -> StepContext:
        k = self.train.accumulate_steps
        start = self.group.offset(n_local)
        rng = BatchRandom(self.train.seed, step * k + micro, n_local * self.group.world_size,
                          start, start + n_local)  # fmt: skip
        return StepContext(step=step, rng=rng, group=self.group)

    def _losses(self, images: Tensor, context: StepContext) -> TrainingLosses:
        if self.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            if self.takes_context:
                out = self.method.training_losses(images, context)
            else:  # a method written for the one-argument contract
                out = self.method.training_losses(images)
            out = as_training_losses(out)
        self.checked = out.checked()
        return out

    def _backward(self, out: TrainingLosses, labels: Tensor, scale: float) -> Tensor:
        """Both backward passes and the probes' of one micro-batch; returns the probe counts."""
        has_aux = out.aux_loss is not None and self.aux_optimizer is not None
        torch.autograd.backward(
            self.scaler.scale(out.loss * scale), inputs=self.main_params, retain_graph=has_aux
        )
        if has_aux:
            torch.autograd.backward(self.scaler.scale(out.aux_loss * scale), inputs=self.aux_params)
        probe_loss, stats = self.probes.losses(out.features, labels)
        if probe_loss is not None:
            (probe_loss * scale).backward()
        return stats

    def _update(self) -> float:
        """Average the gradients over processes, clip, step; returns the learning rate used."""
        t = self.train
        average_gradients(self.main_params)
        average_gradients(self.aux_params)
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.main_params, t.grad_clip, foreach=True)
        self.scaler.step(self.optimizer)
        if self.aux_optimizer is not None:
            self.scaler.step(self.aux_optimizer)
        self.scaler.update()
        self.probes.step()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return lr

    def run(
        self, batches: list[tuple[Tensor, Tensor]], step: int
    ) -> tuple[dict[str, Tensor], Tensor, float]:
        """One optimiser step over ``batches`` (the micro-batches of step ``step``).

        Returns the logged scalars (means over the micro-batches, on the device), the probe
        counts (sums) and the learning rate the step used.
        """
        for opt in (self.optimizer, self.aux_optimizer):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        self.probes.zero_grad()
        scale = 1.0 / len(batches)
        logged: dict[str, Tensor] = {}
        stats = None
        for micro, (images, labels) in enumerate(batches):
            out = self._losses(images, self._context(step, micro, images.shape[0]))
            counts = self._backward(out, labels, scale)
            stats = counts if stats is None else stats + counts
            for name, value in out.logged().items():
                v = value.detach().float().reshape(()) * scale
                logged[name] = logged[name] + v if name in logged else v
        lr = self._update()
        return logged, stats, lr

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict() if self.aux_optimizer else None,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, ckpt: dict) -> None:
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.aux_optimizer is not None and ckpt.get("aux_optimizer"):
            self.aux_optimizer.load_state_dict(ckpt["aux_optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
