"""A trained run's encoder, set up to embed image files the same way every time.

:class:`RunEncoder` holds the method of a run folder, the feature tap, the image size and mode
the method was built for, the precision and the checkpoint's digest. The index records all of
them, so that an image given as a query later is embedded exactly like the indexed ones.

The retrieval tap (the default) is the encoder's last probe tap: the global code ``y`` (64
numbers) for Deep InfoMax, ``features`` (the flattened 1x1 embedding, ``n_rkhs`` numbers) for
AMDIM; the same tap that ``infomax neighbors`` draws, and the code whose neighbours the Deep
InfoMax write-up shows ("the 9 images on the right are the nearest neighbors using cosine
similarity").
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from infomax.evaluation import default_taps, extract_features

__all__ = ["RESIZE_POLICY", "RunEncoder", "file_digest", "retrieval_tap"]

#: how a file becomes the encoder's input (recorded in every index)
RESIZE_POLICY = (
    "EXIF orientation applied; converted to RGB (L for 1-channel encoders); smaller edge resized "
    "to the encoder's image size (bicubic; JPEGs decoded at the smallest DCT scale that covers "
    "it) and centre-cropped to a square"
)


def file_digest(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """BLAKE2b (20 bytes, hex) of a file's content, read in chunks."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def retrieval_tap(method: nn.Module) -> str:
    """The tap images are searched by: the last of the encoder's probe taps (DIM ``y``, AMDIM
    ``features``)."""
    taps = default_taps(method)
    if not taps:
        raise ValueError("the method names no probe taps; pass the tap to search by (--tap)")
    return taps[-1]


def _checkpoint_file(run_dir: Path, checkpoint: str | os.PathLike | None) -> Path:
    if checkpoint is None:
        path = run_dir / "last.pt"
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file() and (run_dir / path).is_file():
            path = run_dir / path
    if not path.is_file():
        have = sorted(p.name for p in run_dir.glob("*.pt"))
        raise FileNotFoundError(
            f"no checkpoint {str(path)!r}; "
            + (f"the run has {', '.join(have)}" if have else "the run has saved no checkpoint yet")
        )
    return path


@dataclass
class RunEncoder:
    """The method of a run, ready to embed uint8 images: see the module docstring."""

    method: nn.Module
    run: Path
    checkpoint: Path
    checkpoint_digest: str
    tap: str
    image_size: int
    channels: int
    device: torch.device
    precision: str
    batch_size: int = 256

    @classmethod
    def open(
        cls,
        run: str | os.PathLike,
        checkpoint: str | os.PathLike | None = None,
        tap: str | None = None,
        device: str | torch.device = "auto",
        precision: str | None = None,
        batch_size: int = 256,
    ) -> RunEncoder:
        """Open a run folder's checkpoint (``None``: ``last.pt``; or a file name in the run, or
        a path). ``precision`` ``None``: the run's ``train.precision``."""
        from infomax.runtime import resolve_device, resolve_precision
        from infomax.training import load_run

        run_dir = Path(run).expanduser()
        if not run_dir.is_dir():
            raise FileNotFoundError(f"no run folder {str(run_dir)!r}")
        ckpt = _checkpoint_file(run_dir, checkpoint)
        dev = resolve_device(device)
        method, cfg = load_run(run_dir, device=dev, checkpoint=str(ckpt))
        build = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True).get("build", {})
        prec = resolve_precision(precision or getattr(cfg.train, "precision", "fp32"), dev)
        return cls(
            method=method, run=run_dir.resolve(), checkpoint=ckpt.resolve(),
            checkpoint_digest=file_digest(ckpt), tap=tap or retrieval_tap(method),
            image_size=int(build.get("image_size") or cfg.data.image_size or 32),
            channels=int(build.get("in_channels", 3)), device=dev, precision=prec,
            batch_size=batch_size,
        )  # fmt: skip

    @property
    def mode(self) -> str:
        """The PIL mode files are decoded in: ``L`` for 1-channel encoders, else ``RGB``."""
        return "L" if self.channels == 1 else "RGB"

    def record(self) -> dict[str, Any]:
        """What made the vectors, as the index stores it."""
        return {
            "run": str(self.run),
            "checkpoint": str(self.checkpoint),
            "checkpoint_digest": self.checkpoint_digest,
            "method": type(self.method).__name__,
            "tap": self.tap,
            "image_size": self.image_size,
            "channels": self.channels,
            "precision": self.precision,
            "resize": RESIZE_POLICY,
        }

    def embed(self, images: list[np.ndarray] | Tensor) -> Tensor:
        """float32 ``(N, D)`` codes of decoded images (uint8 ``(H, W, C)`` arrays of the encoder's
        size, or a uint8 ``(N, C, H, W)`` tensor), on the CPU."""
        if not isinstance(images, Tensor):
            images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        feats = extract_features(
            self.method, images, taps=[self.tap], batch_size=self.batch_size, device=self.device,
            precision=self.precision,
        )  # fmt: skip
        return feats[self.tap]
