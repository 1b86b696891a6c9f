"""Run folders, checkpoints, and :func:`load_run` (a trained method back from its folder).

A run folder holds::

    config.yaml        the resolved config (loadable with --config) and a `meta` section
                       (infomax and torch versions, git commit, command, dataset shape)
    metrics.csv        one row every train.log_every steps
    metrics.png        loss / accuracy curves
    last.pt            the latest checkpoint (everything needed to resume exactly)
    epoch_NNNN.pt      kept checkpoints (train.keep_every_epochs)
    train.log          what the trainer printed
    eval/              evaluation results (results.json, results.md, neighbors.png, cache/)

Checkpoints are written atomically (:func:`infomax.runtime.atomic_save`), so a crash never leaves
a half-written ``last.pt``; with several processes only rank 0 writes
(:mod:`infomax.training.checkpoints`).
"""

from __future__ import annotations

import inspect
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infomax.runtime import atomic_save  # noqa: F401  (re-exported)
from infomax.training.config import (
    BUILD_KWARGS,
    Config,
    config_from_dict,
    get_method_factory,
    read_yaml,
)

CHECKPOINT_FORMAT = 1
CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = "last.pt"


def build_method(
    cfg: Config, in_channels: int, image_size: int, model: dict[str, Any] | None = None
) -> nn.Module:
    """``factory(**model, in_channels=..., image_size=...)`` for the method of ``cfg``.

    ``model``: the method's keyword arguments (default ``cfg.model``; the trainer passes them
    with the values derived from the dataset, :func:`infomax.training.setup.derive_model_kwargs`).
    ``in_channels`` and ``image_size`` are passed only if the constructor accepts them.
    """
    factory = get_method_factory(cfg.method)
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    extra = {"in_channels": int(in_channels), "image_size": int(image_size)}
    kwargs = dict(cfg.model if model is None else model)
    for k in BUILD_KWARGS:
        if takes_any or k in params:
            kwargs[k] = extra[k]
    return factory(**kwargs)


def git_commit() -> str | None:
    """The git commit of the infomax source tree (``+dirty`` if modified), or None."""
    src = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=src.parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def create_run_dir(cfg: Config, run_dir: str | os.PathLike | None = None) -> Path:
    """Make a fresh folder for a new run and return it; never reuses a non-empty folder.

    With ``run_dir`` given, that exact folder is used; if it exists and is not empty this raises
    :class:`ValueError` (continue it with ``--resume``, or pick another folder). Otherwise the
    folder is ``cfg.run_dir / cfg.name``, suffixed ``-2``, ``-3``, ... when the name is taken.
    """
    if run_dir is not None:
        path = Path(run_dir).expanduser()
        if path.exists() and not _is_empty_dir(path):
            raise ValueError(
                f"run folder {str(path)!r} already exists and is not empty; continue that run "
                f"with --resume {path}, or choose another --run-dir"
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
    parent = Path(cfg.run_dir).expanduser()
    parent.mkdir(parents=True, exist_ok=True)
    name = cfg.name or cfg.method
    for i in range(1, 10_000):
        path = parent / (name if i == 1 else f"{name}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            if _is_empty_dir(path):
                return path
    raise ValueError(f"too many runs named {name!r} in {str(parent)!r}; set another name")


def checkpoint_path(run_dir: str | os.PathLike, checkpoint: str | int = "last") -> Path:
    """Resolve ``"last"``, an epoch number, a file name in the run folder, or a path."""
    run_dir = Path(run_dir)
    if isinstance(checkpoint, int) or (isinstance(checkpoint, str) and checkpoint.isdigit()):
        candidates = [run_dir / f"epoch_{int(checkpoint):04d}.pt"]
    else:
        name = str(checkpoint)
        candidates = [
            run_dir / (name if name.endswith(".pt") else f"{name}.pt"),
            Path(name).expanduser(),
        ]
    for c in candidates:
        if c.is_file():
            return c
    have = sorted(p.name for p in run_dir.glob("*.pt")) if run_dir.is_dir() else []
    raise FileNotFoundError(
        f"no checkpoint {checkpoint!r} in {str(run_dir)!r}; "
        + (f"available: {', '.join(have)}" if have else "the run has saved no checkpoint yet")
    )


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by the trainer (tensors and plain Python values only).

    A file torch cannot read (truncated by a full disk or a copy cut short) is a ValueError that
    names the file and the other checkpoints of its folder that can be used instead.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # RuntimeError, EOFError, UnpicklingError ... for a damaged file
        others = sorted(p.name for p in path.parent.glob("*.pt") if p.name != path.name)
        if others:
            hint = (
                f"older checkpoints in {str(path.parent)!r}: {', '.join(others)}; evaluate one "
                f"with --checkpoint {Path(others[-1]).stem}, or copy it to {path.name} to resume "
                "from it"
            )
        else:
            hint = "the run has no other checkpoint; train it again (a new run)"
        raise ValueError(
            f"checkpoint {str(path)!r} is damaged and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
            + hint
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an infomax checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def read_run_config(run_dir: str | os.PathLike) -> Config:
    """The resolved :class:`Config` stored in a run folder."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(run_dir)!r} is not a run folder: it has no {CONFIG_FILE}")
    return config_from_dict(read_yaml(path))


def load_run(
    run_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    checkpoint: str | int = "last",
) -> tuple[nn.Module, Config]:
    """The trained method of a run folder (eval mode, weights loaded) and its config.

    ``checkpoint``: ``"last"`` (default), an epoch number (``epoch_NNNN.pt``), a file name in the
    run folder, or a path to a checkpoint file.

    >>> method, cfg = load_run("runs/quickstart")          # doctest: +SKIP
    >>> feats = method.features(images_uint8)["fc"]        # doctest: +SKIP
    """
    cfg = read_run_config(run_dir)
    ckpt = load_checkpoint(checkpoint_path(run_dir, checkpoint), device="cpu")
    build = ckpt["build"]
    method = build_method(cfg, build["in_channels"], build["image_size"], build.get("model"))
    method.load_state_dict(ckpt["model"])
    method.to(device)
    method.eval()
    return method, cfg
