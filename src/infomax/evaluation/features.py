"""Feature extraction from a trained method, with an on-disk cache.

:func:`extract_features` runs ``method.features`` over a dataset in batches (eval mode, no
gradients, optional bf16 autocast) and returns one ``(N, D)`` float32 matrix per tap (feature maps
are flattened). :class:`FeatureCache` stores those matrices on disk, one file per tap, under a key
made of the checkpoint's content hash, the dataset's content hash, the tap and the precision, so
evaluating the same checkpoint again (``infomax eval``, ``infomax neighbors``) reuses them; a
changed checkpoint file gets a new key and its stale entries are removed.

>>> feats = extract_features(method, test_set, taps=["y"])           # doctest: +SKIP
>>> feats["y"].shape                                                 # doctest: +SKIP
torch.Size([10000, 64])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from infomax.runtime import (
    PRECISIONS,
    atomic_save,
    atomic_write_text,
    autocast,
    resolve_device,
    resolve_precision,
)

__all__ = ["FeatureCache", "default_taps", "extract_features", "method_device"]

# bump when the way features are computed changes, so old cache entries are not reused
_CACHE_VERSION = 1


def method_device(method: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """``device`` as :func:`infomax.runtime.resolve_device` reads it (``auto``: CUDA, then MPS,
    then CPU); ``None``: where ``method``'s parameters (or buffers) are, the CPU without any."""
    if device is not None:
        return resolve_device(device)
    for t in (*method.parameters(), *method.buffers()):
        return t.device
    return torch.device("cpu")


def default_taps(method: nn.Module) -> tuple[str, ...] | None:
    """``method.encoder.probe_taps`` (or ``method.probe_taps``), ``None`` when neither exists."""
    for owner in (getattr(method, "encoder", None), method):
        taps = getattr(owner, "probe_taps", None)
        if taps:
            return tuple(taps)
    return None


def _dataset_images(dataset: Any) -> Tensor:
    images = getattr(dataset, "images", dataset)
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(
            "expected a dataset with .images, a uint8 tensor (N, C, H, W); got "
            f"{type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}"
        )
    return images


def _dataset_labels(dataset: Any) -> Tensor | None:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return None
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    return labels.long()


def _normalise_taps(taps: str | Iterable[str] | None, method: nn.Module) -> tuple[str, ...] | None:
    if taps is None:
        return default_taps(method)
    if isinstance(taps, str):
        taps = [taps]
    taps = tuple(dict.fromkeys(taps))  # unique, in order
    if not taps:
        raise ValueError("taps is empty; name at least one feature tap (or pass None for defaults)")
    return taps


def _run_features(method: nn.Module, x: Tensor) -> Mapping[str, Tensor]:
    out = method.features(x) if hasattr(method, "features") else method(x)
    if isinstance(out, Tensor):
        out = {"features": out}
    if not isinstance(out, Mapping):
        raise ValueError(
            f"method.features must return a dict of named tensors, got {type(out).__name__}"
        )
    return out


def extract_features(
    method: nn.Module,
    dataset: Any,
    taps: str | Iterable[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
    precision: str = "fp32",
    out_device: str | torch.device | None = "cpu",
    cache: FeatureCache | str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> dict[str, Tensor]:
    """Features of every image of ``dataset``: ``{tap: float32 Tensor (N, D)}``, maps flattened.

    Args:
        method: a method (``method.features(images_uint8) -> dict``) or any module returning a
            dict of taps (or a single tensor, named ``features``) from uint8 images.
        dataset: an object with ``.images``, a uint8 tensor ``(N, C, H, W)`` (an
            :class:`infomax.data.ArrayDataset`), or that tensor itself.
        taps: names of the taps to keep; ``None``: ``method.encoder.probe_taps`` (or every tap
            the method returns when it has none).
        batch_size: images per forward pass.
        device: where the forward pass runs; ``None``: where the method's parameters are. The
            method is moved there (``method.to(device)``).
        progress: show a tqdm progress bar.
        precision: ``fp32`` (default), ``bf16`` (autocast) or ``auto`` (bf16 on CUDA and on CPUs
            with native bf16). The features are returned in float32 either way.
        out_device: where the returned matrices live (default cpu, in pinned memory when the
            forward pass runs on CUDA so the copies overlap with compute); ``None``: ``device``.
        cache: a :class:`FeatureCache` (or its folder): taps found there are loaded instead of
            computed, computed taps are stored.
        checkpoint: the checkpoint file the method was loaded from, used for the cache key (the
            key then follows the file's content); ``None``: a hash of ``method.state_dict()``.

    The method is put in eval mode for the pass and its previous mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    images = _dataset_images(dataset)
    wanted = _normalise_taps(taps, method)
    dev = method_device(method, device)
    precision = resolve_precision(precision, dev)  # the cache key names what actually ran
    if isinstance(cache, str | os.PathLike):
        cache = FeatureCache(cache)

    result: dict[str, Tensor] = {}
    keys: dict[str, str] = {}
    if cache is not None and wanted is not None:
        keys = cache.keys(method, images, wanted, checkpoint=checkpoint, precision=precision)
        for tap in wanted:
            hit = cache.load(keys[tap])
            if hit is not None:
                result[tap] = hit
        missing = tuple(t for t in wanted if t not in result)
    else:
        missing = wanted

    if missing is None or missing:
        computed = _compute(
            method, images, missing, batch_size, dev, progress, precision, out_device
        )
        if cache is not None:
            if not keys:  # taps were unknown before the pass
                keys = cache.keys(
                    method, images, tuple(computed), checkpoint=checkpoint, precision=precision
                )
            for tap, feats in computed.items():
                cache.save(keys[tap], feats, meta=cache.last_meta(tap))
            cache.prune(checkpoint)
        result.update(computed)
    order = wanted if wanted is not None else tuple(result)
    out = {tap: result[tap] for tap in order}
    if out_device is not None:
        target = torch.device(out_device)
        out = {t: v.to(target) for t, v in out.items()}
    return out


def _compute(
    method: nn.Module,
    images: Tensor,
    taps: tuple[str, ...] | None,
    batch_size: int,
    dev: torch.device,
    progress: bool,
    precision: str,
    out_device: str | torch.device | None,
) -> dict[str, Tensor]:
    n = images.shape[0]
    if n == 0:
        raise ValueError("the dataset is empty: no features to extract")
    store = dev if out_device is None else torch.device(out_device)
    pin = store.type == "cpu" and dev.type == "cuda"
    method.to(dev)
    was_training = method.training
    method.eval()
    out: dict[str, Tensor] = {}
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="features", unit="batch", leave=False)
    try:
        with torch.no_grad():
            for start in starts:
                stop = min(start + batch_size, n)
                x = images[start:stop].to(dev, non_blocking=True)
                with autocast(precision, dev):
                    taps_out = _run_features(method, x)
                if taps is None:
                    taps = tuple(taps_out)
                for tap in taps:
                    if tap not in taps_out:
                        raise ValueError(
                            f"the method has no feature tap {tap!r}; "
                            f"available taps: {', '.join(taps_out)}"
                        )
                    f = taps_out[tap].detach().flatten(1).float()
                    if tap not in out:
                        out[tap] = torch.empty(
                            (n, f.shape[1]), dtype=torch.float32, device=store, pin_memory=pin
                        )
                    out[tap][start:stop].copy_(f, non_blocking=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    finally:
        method.train(was_training)
    return out


# ---------------------------------------------------------------------------------------- cache


def _hash_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _hash_tensor(h: Any, t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)


def tensor_fingerprint(*tensors: Tensor) -> str:
    """A content hash of tensors (dtype, shape and bytes)."""
    h = hashlib.blake2b(digest_size=20)
    for t in tensors:
        _hash_tensor(h, t)
    return h.hexdigest()


def state_fingerprint(module: nn.Module) -> str:
    """A content hash of ``module.state_dict()`` (names, dtypes, shapes, values)."""
    h = hashlib.blake2b(digest_size=20)
    for name, t in module.state_dict().items():
        h.update(name.encode())
        if isinstance(t, Tensor):
            _hash_tensor(h, t)
    return h.hexdigest()


class FeatureCache:
    """Extracted features on disk, one ``.pt`` file (plus a ``.json`` description) per tap.

    The key of an entry hashes: the checkpoint file's content (or the method's state dict when no
    checkpoint is named), the dataset's images, the tap name, the precision and the class name of
    the method. Content hashes of checkpoint files are remembered by (path, size, mtime) in
    ``checkpoints.json``, so an unchanged file is not read again; a file whose size or mtime
    changed is hashed again, and entries of the old content are deleted (:meth:`prune`).

    ``hits`` and ``misses`` count the taps loaded and not found since the cache was opened.
    """

    def __init__(self, cache_dir: str | os.PathLike):
        self.dir = Path(cache_dir)
        self.hits = 0
        self.misses = 0
        self._meta: dict[str, dict[str, Any]] = {}
        self._data_hashes: dict[tuple[int, int, tuple[int, ...]], str] = {}

    # -- fingerprints ---------------------------------------------------------------------------

    def checkpoint_fingerprint(self, path: str | os.PathLike) -> str:
        """The content hash of a checkpoint file, recomputed only when its size or mtime change."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
        st = path.stat()
        index_path = self.dir / "checkpoints.json"
        index: dict[str, Any] = {}
        if index_path.is_file():
            try:
                index = json.loads(index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                index = {}
        key = str(path.resolve())
        entry = index.get(key)
        if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return entry["hash"]
        digest = _hash_file(path)
        index[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": digest}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(index_path, json.dumps(index, indent=1))
        return digest

    def data_fingerprint(self, images: Tensor) -> str:
        """The content hash of a uint8 image tensor (memoised per tensor object)."""
        memo = (id(images), images.data_ptr(), tuple(images.shape))
        if memo not in self._data_hashes:
            self._data_hashes[memo] = tensor_fingerprint(images)
        return self._data_hashes[memo]

    def keys(
        self,
        method: nn.Module,
        images: Tensor,
        taps: Sequence[str],
        checkpoint: str | os.PathLike | None = None,
        precision: str = "fp32",
    ) -> dict[str, str]:
        """``{tap: key}`` for these features; remembers a description of each for :meth:`save`."""
        if checkpoint is not None:
            model_hash = "ckpt-" + self.checkpoint_fingerprint(checkpoint)
        else:
            model_hash = "state-" + state_fingerprint(method)
        data_hash = self.data_fingerprint(images)
        prec = PRECISIONS.get(precision, precision)
        out = {}
        for tap in taps:
            text = "|".join(
                [str(_CACHE_VERSION), type(method).__name__, model_hash, data_hash, tap, prec]
            )
            key = hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
            safe_tap = "".join(c if c.isalnum() or c in "-_" else "_" for c in tap)
            key = f"{safe_tap}-{key}"
            out[tap] = key
            self._meta[tap] = {
                "key": key,
                "tap": tap,
                "method": type(method).__name__,
                "checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
                "model_hash": model_hash,
                "data_hash": data_hash,
                "num_images": int(images.shape[0]),
                "precision": prec,
                "version": _CACHE_VERSION,
            }
        return out

    def last_meta(self, tap: str) -> dict[str, Any]:
        return dict(self._meta.get(tap, {}))

    # -- storage --------------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.pt"

    def load(self, key: str) -> Tensor | None:
        """The stored matrix for ``key``, or ``None`` (counted in ``hits`` / ``misses``)."""
        p = self.path(key)
        if not p.is_file():
            self.misses += 1
            return None
        try:
            t = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # a truncated or foreign file: recompute
            self.misses += 1
            return None
        self.hits += 1
        return t

    def save(self, key: str, features: Tensor, meta: Mapping[str, Any] | None = None) -> Path:
        """Store ``features`` under ``key`` (atomically: a temporary file, then a rename)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        atomic_save(features.detach().cpu().contiguous(), p)
        info = dict(meta or {})
        info.update(shape=list(features.shape), created=time.strftime("%Y-%m-%dT%H:%M:%S"))
        atomic_write_text(p.with_suffix(".json"), json.dumps(info, indent=1))
        return p

    def entries(self) -> list[dict[str, Any]]:
        """Descriptions of the stored entries."""
        out = []
        for j in sorted(self.dir.glob("*.json")):
            if j.name == "checkpoints.json":
                continue
            try:
                out.append(json.loads(j.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out

    def prune(self, checkpoint: str | os.PathLike | None) -> int:
        """Delete entries made from an earlier content of ``checkpoint``; returns how many."""
        if checkpoint is None or not self.dir.is_dir():
            return 0
        current = "ckpt-" + self.checkpoint_fingerprint(checkpoint)
        where = str(Path(checkpoint).resolve())
        removed = 0
        for info in self.entries():
            if info.get("checkpoint") == where and info.get("model_hash") != current:
                key = info.get("key")
                if not key:
                    continue
                for p in (self.path(key), self.path(key).with_suffix(".json")):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                removed += 1
        return removed

    def clear(self) -> None:
        """Delete every entry (the folder itself stays)."""
        if not self.dir.is_dir():
            return
        for p in list(self.dir.glob("*.pt")) + list(self.dir.glob("*.json")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

