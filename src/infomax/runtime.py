"""The runtime rules every part of infomax follows, each written once: which device ``auto``
means, which precision names exist and what autocast they give, whether a CPU has native bf16,
and how files are written so that a crash never leaves a half-written one in place.

- Devices: ``auto`` is CUDA when available, else Apple MPS, else the CPU; ``cpu``, ``cuda``,
  ``cuda:N`` and ``mps`` are checked against what the machine has.
- Precisions: ``auto``, ``fp32`` (alias ``float32``), ``bf16`` (``bfloat16``), ``fp16``
  (``float16``). ``auto`` is bf16 on CUDA with bf16 and on CPUs with native bf16 (AVX-512 BF16 /
  AMX, as oneDNN reports it), float32 elsewhere: on a CPU without native bf16 a bf16 matmul is
  hundreds of times slower than float32 (docs/architecture.md).
- Atomic writes: the content goes to a hidden temporary file beside the target, which then
  replaces the target with :func:`os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "PRECISIONS",
    "atomic_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "autocast",
    "autocast_dtype",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_precision",
]

# accepted names -> canonical name
PRECISIONS: dict[str, str] = {
    "auto": "auto",
    "fp32": "fp32",
    "float32": "fp32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
}
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device ``name`` means on this machine.

    ``auto`` (or ``None``): CUDA if available, else Apple MPS, else CPU. An explicit CUDA or MPS
    device that the machine lacks is an error naming the alternatives.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name} asked for, but no CUDA device is available; use cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name} asked for, but this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name} asked for, but MPS is not available; use cpu or auto")
    return dev


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The canonical precision (``fp32``, ``bf16`` or ``fp16``) that ``precision`` means on
    ``device``; ``auto`` follows the module's rule. Errors name the fix."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    precision = PRECISIONS[precision]
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        if device.type == "cpu":
            return "bf16" if cpu_has_fast_bf16() else "fp32"
        return "fp32"
    if precision == "fp16" and device.type not in ("cuda", "mps"):
        raise ValueError("precision fp16 needs a CUDA (or MPS) device; use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU has no bf16; use precision fp16 or fp32")
    return precision


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; ``None`` means plain float32."""
    return _DTYPES.get(resolve_precision(precision, device))


def autocast(precision: str, device: torch.device):
    """The autocast context of ``precision`` on ``device`` (a no-op context for float32).
    Losses cast their inputs to float32 themselves, so they are exact under it."""
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a hidden temporary path beside ``path``, then move it into place.
    A crash part-way leaves the old file (if any) untouched; the temporary file is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
