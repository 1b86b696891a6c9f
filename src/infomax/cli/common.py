"""Helpers that several commands share: options to open a trained run, opening it, messages.

Used by ``infomax eval``, ``infomax neighbors`` and ``infomax embed`` (and any command that reads
a run folder). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_device_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device`` with the meaning of :func:`infomax.runtime.resolve_device` (default auto)."""
    parser.add_argument(
        "--device", default="auto",
        help="auto (CUDA, then Apple MPS, then the CPU; default), cpu, cuda, cuda:N or mps",
    )  # fmt: skip


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options to load a run: --checkpoint, --device, --batch-size, --precision."""
    parser.add_argument(
        "--checkpoint", default="last",
        help="checkpoint: last (default), an epoch number, a file name in the run, or a path",
    )  # fmt: skip
    add_device_argument(parser)
    parser.add_argument(
        "--batch-size", type=int,
        help="images per forward pass when extracting features (default: the run's "
        "eval.batch_size, 256)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16"),
        help="feature extraction precision (default: the run's train.precision; auto: bf16 on "
        "CUDA and on CPUs with native bf16, else fp32)",
    )  # fmt: skip


class OpenRun:
    """A trained run opened for evaluation: ``method`` (eval mode, on ``device``), ``cfg``,
    ``checkpoint`` (the file), ``build`` (``{"in_channels", "image_size"}``), ``device``,
    ``precision`` (resolved) and ``batch_size``."""

    def __init__(self, args: argparse.Namespace) -> None:
        from infomax.runtime import resolve_device, resolve_precision
        from infomax.training.report import run_build
        from infomax.training.runs import checkpoint_path, load_run

        run_dir = Path(args.run)
        if not run_dir.is_dir():
            raise FileNotFoundError(f"no run folder {str(run_dir)!r}")
        self.run_dir = run_dir
        self.device = resolve_device(args.device)
        self.checkpoint = checkpoint_path(run_dir, args.checkpoint)
        self.method, self.cfg = load_run(run_dir, device=self.device, checkpoint=self.checkpoint)
        # read (memory-mapped, cheap) after load_run, which names a damaged file clearly
        self.build: dict[str, Any] = run_build(self.cfg, self.checkpoint)
        self.precision = resolve_precision(
            args.precision or self.cfg.train.precision, self.device
        )
        self.batch_size = args.batch_size or self.cfg.eval.batch_size
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")


def check_output(path: str | Path, force: bool, suffixes: tuple[str, ...] = ()) -> Path:
    """The output file a user named, checked before any work: one of ``suffixes`` (if given),
    and not an existing file unless ``force`` (``--force``): nothing a user made is replaced
    silently."""
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise ValueError(f"{str(out)!r}: use one of the extensions {', '.join(suffixes)}")
    if out.exists() and not force:
        raise ValueError(f"{str(out)!r} exists; pass --force to replace it, or choose another file")
    return out


def eprint(*a: Any) -> None:
    """Print a progress message on stderr (stdout stays for results)."""
    print(*a, file=sys.stderr, flush=True)
