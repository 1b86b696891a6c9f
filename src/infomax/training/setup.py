"""What a run is built from: its device, its datasets, and the model arguments derived from them.

The user's config is never changed: what the data implies (the normalisation of a dataset
without known statistics, the input channels and size) is derived here and stored beside the
config (the checkpoint's ``build`` section, ``config.yaml``'s ``meta``), not written into it.
"""

from __future__ import annotations

from typing import Any

import torch

from infomax.distributed import World
from infomax.runtime import resolve_device
from infomax.training.config import Config, method_signature

__all__ = ["derive_model_kwargs", "load_datasets", "training_device"]


def training_device(name: str, world: World) -> torch.device:
    """The device of this process: ``train.device`` on one process; with several, each process
    takes GPU ``LOCAL_RANK`` (``auto`` / ``cuda``) or the CPU."""
    dev = resolve_device(name)
    if not world.distributed:
        return dev
    if dev.type == "cuda":
        if name not in ("auto", "cuda"):
            raise ValueError(
                f"train.device={name}: with several processes each one uses GPU LOCAL_RANK; "
                "set train.device=auto (or cuda)"
            )
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"process LOCAL_RANK={world.local_rank} has no GPU of its own: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per machine "
                "(--nproc / --nproc-per-node), or train on the CPU (train.device=cpu)"
            )
        dev = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"data-parallel training runs on CUDA or the CPU, not {dev.type}")
    return dev


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


def derive_model_kwargs(cfg: Config, train_set: Any) -> dict[str, Any]:
    """``cfg.model`` plus ``mean`` / ``std`` from the dataset when the method takes them and the
    config leaves them unset: the known statistics of a named dataset, else measured ones. A new
    dict; ``cfg`` is not changed."""
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
