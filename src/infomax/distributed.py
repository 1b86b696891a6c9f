"""Data-parallel training on PyTorch's own distributed engine (``torch.distributed``, ``torchrun``).

One process per device (NCCL on CUDA, gloo on CPU). Every process holds a full copy of the model
and a slice of the global batch; this module owns what crosses processes:

- :class:`World`: rank, world size and local rank, read from the environment torchrun sets;
  :func:`init` starts the process group, :func:`shutdown` ends it.
- :class:`BatchGroup`: how the global batch is split (rank ``r`` holds images
  ``[r * n, (r + 1) * n)``), and :meth:`BatchGroup.gather`, an autograd-aware all-gather: the
  contrastive objectives score their local anchors against the candidates of every process, and
  the gradient of each gathered feature flows back to the process that computed it (a
  reduce-scatter of the gradients; an all-reduce on gloo).
- :func:`convert_sync_batchnorm`: batch-norm statistics over the global batch, PyTorch's
  :class:`torch.nn.SyncBatchNorm` on CUDA and :class:`CPUSyncBatchNorm` (the same statistics
  through autograd-aware all-reduces) on the CPU, where SyncBatchNorm refuses to run.
- :func:`average_gradients`: one all-reduce per parameter list, then a division by the world
  size. The trainer calls it for every optimiser (the encoder, the adversarial discriminator, the
  online probes) instead of wrapping the method in DistributedDataParallel, whose reducer expects
  one backward pass per forward, while a DIM step with the adversarial prior has two (one into
  the encoder, one into the discriminator).
- :func:`all_mean` / :func:`all_sum` of logged values, :func:`broadcast_object`, :func:`barrier`.

Why gradients come out right: a process's loss ``L_r`` is the mean over its own anchors, so the
one-process loss is ``L = mean_r L_r``. The all-gather's backward sums, on the process that owns a
feature, the gradients that every process's loss sends to it; batch-norm's all-reduces do the same
for the statistics; averaging parameter gradients over processes then gives exactly ``dL/dθ``:
nothing is scaled twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "SINGLE",
    "BatchGroup",
    "agree",
    "all_gather_object",
    "broadcast_module",
    "CPUSyncBatchNorm",
    "World",
    "all_mean",
    "all_sum",
    "average_gradients",
    "barrier",
    "broadcast_object",
    "convert_sync_batchnorm",
    "init",
    "shutdown",
]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``torchrun`` sets ``RANK``,
    ``WORLD_SIZE`` and ``LOCAL_RANK``; without them, one process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> World:
        def get(name: str, default: int) -> int:
            value = os.environ.get(name, "")
            return int(value) if value.strip() else default

        world = cls(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0))
        if not 0 <= world.rank < world.world_size:
            raise ValueError(f"RANK={world.rank} is outside 0..WORLD_SIZE-1={world.world_size - 1}")
        return world

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


# the gloo group of host-side decisions when the default group is NCCL (None: the default group)
_CONTROL: Any = None


def init(device: torch.device, world: World | None = None) -> World:
    """Start the default process group for ``world`` (from the environment by default): NCCL
    for CUDA devices, gloo otherwise. A no-op for one process or when already started."""
    world = world or World.from_env()
    global _CONTROL
    if world.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {}
        if device.type == "cuda":
            kwargs["device_id"] = device
        dist.init_process_group(backend, rank=world.rank, world_size=world.world_size, **kwargs)
        # small host-side decisions (time budget, checkpoints) travel on a CPU group, so they
        # never wait on a GPU stream
        _CONTROL = dist.new_group(backend="gloo") if backend != "gloo" else None
    return world



def shutdown() -> None:
    global _CONTROL
    if dist.is_initialized():
        dist.destroy_process_group()
    _CONTROL = None


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def agree(*flags: bool) -> tuple[bool, ...]:
    """The main process's ``flags`` on every process: decisions that depend on a clock (the time
    budget, a checkpoint every N minutes) are taken by one process and followed by all, so no
    process is left waiting in a collective that the others skipped."""
    if not _active():
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
    dist.broadcast(t, src=0, group=_CONTROL)
    return tuple(bool(v) for v in t.tolist())


def all_gather_object(obj: Any) -> list[Any]:
    """``obj`` of every process, in rank order (pickled; small host-side state)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy the parameters and buffers of process ``src`` to every process."""
    if not _active():
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of process ``src`` on every process (pickled; for configs and checkpoints)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_sum(t: Tensor) -> Tensor:
    """The element-wise sum over processes (no autograd), in place and returned."""
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_mean(t: Tensor) -> Tensor:
    """The element-wise mean over processes (no autograd). A NaN or inf on any process makes
    the mean non-finite on all of them, so a divergence stops every process at the same step."""
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= dist.get_world_size()
    return t


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over processes: one all-reduce of a flat buffer per
    dtype. Parameters without a gradient get zeros first, so every process sends the same
    layout (they run the same code, so they agree on which parameters were reached)."""
    if not _active():
        return
    params = [p for p in params if p.requires_grad]
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    world = dist.get_world_size()
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


class BatchGroup:
    """How the global batch of a step is split over the processes: process ``r`` holds global
    images ``[r * n, (r + 1) * n)`` of ``n * world_size``. With one process every method is the
    identity and :meth:`positive_mask` is ``None`` (the diagonal)."""

    def __init__(self, rank: int = 0, world_size: int = 1) -> None:
        self.rank, self.world_size = int(rank), int(world_size)

    @classmethod
    def current(cls) -> BatchGroup:
        if _active():
            return cls(dist.get_rank(), dist.get_world_size())
        return SINGLE

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def gather(self, t: Tensor) -> Tensor:
        """The tensors of all processes concatenated along dim 0 (the global batch), with
        gradients flowing back to the process that computed each slice."""
        if not self.distributed:
            return t
        return _GatherBatch.apply(t)

    def offset(self, n_local: int) -> int:
        """The global index of this process's first image."""
        return self.rank * int(n_local)

    def positive_mask(self, n_local: int, device: torch.device, trailing: int = 0) -> Tensor | None:
        """``(n, n * world_size, 1, ...)`` bool: local anchor ``i`` is paired with global
        candidate ``offset + i``; ``None`` (the diagonal) with one process."""
        if not self.distributed:
            return None
        cols = torch.arange(n_local * self.world_size, device=device)
        rows = torch.arange(n_local, device=device) + self.offset(n_local)
        mask = rows[:, None] == cols[None, :]
        return mask.view(*mask.shape, *([1] * trailing))


SINGLE = BatchGroup()


class _GatherBatch(torch.autograd.Function):
    """All-gather along dim 0 (equal slices); the backward pass sums the gradients that every
    process's loss sends to each slice and returns this process's (a reduce-scatter)."""

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        ctx.rank, ctx.n = rank, t.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = grad.new_empty((ctx.n, *grad.shape[1:]))
            dist.reduce_scatter_tensor(out, grad)
            return out
        dist.all_reduce(grad)  # gloo has no reduce-scatter
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


# ----------------------------------------------------------------------------- batch norm


class CPUSyncBatchNorm(_BatchNorm):
    """Batch norm whose training statistics cover the batches of all processes (any input
    rank: ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)``), for the gloo backend on the CPU.

    Each process computes its mean and biased variance; one autograd-aware all-gather of these
    per-channel statistics (and the counts) gives the global mean and variance by Chan et al.'s
    exact combination, so the gradient reaching every process is that of the global statistics;
    the normalisation is one fused multiply-add. Running statistics use the unbiased global
    variance, as :class:`torch.nn.BatchNorm2d`. Outside training, or with one process, it is
    plain batch norm.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {x.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and _active()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        # each process's mean and biased variance (one fused pass), gathered with gradients and
        # combined exactly (Chan et al. 1979): with w_r = n_r / n, mean = sum_r w_r m_r and
        # var = sum_r w_r (v_r + (m_r - mean)^2)
        var_r, mean_r = torch.var_mean(x.float(), dim=dims, correction=0)
        count = mean_r.new_full(mean_r.shape, float(x.numel() // x.shape[1]))
        parts = _GatherBatch.apply(torch.stack([mean_r, var_r, count])[None])  # (W, 3, C)
        means, variances, counts = parts[:, 0], parts[:, 1], parts[:, 2].detach()
        n = counts.sum(0)
        w = counts / n
        mean = (w * means).sum(0)
        var = (w * (variances + (means - mean).square())).sum(0)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
            shift = self.bias - mean * scale
        else:
            shift = -mean * scale
        y = torch.addcmul(shift.view(shape), x.float(), scale.view(shape))  # one fused pass
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), n[0].detach())
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, n: Tensor) -> None:
        self.num_batches_tracked += 1
        if self.momentum is None:  # cumulative moving average
            m = 1.0 / float(self.num_batches_tracked)
        else:
            m = self.momentum
        unbiased = var * n / (n - 1).clamp(min=1)
        self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
        self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every batch norm synchronised over processes: PyTorch's
    :class:`torch.nn.SyncBatchNorm` on CUDA, :class:`CPUSyncBatchNorm` elsewhere. Weights,
    buffers and train/eval mode are kept."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        with torch.no_grad():
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
        if module.track_running_stats:
            out.running_mean, out.running_var = module.running_mean, module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
