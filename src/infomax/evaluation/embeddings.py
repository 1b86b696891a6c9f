"""Write (and read back) embeddings: ``.npy``, ``.npz``, ``.pt`` or ``.csv`` by file extension.

Layouts:

- ``.npz``: one float32 array per tap, named after the tap, plus ``labels`` (int64).
- ``.pt``: ``{"features": {tap: Tensor}, "labels": Tensor}`` (``torch.load(weights_only=True)``).
- ``.npy``: the features of a single tap only (no labels); more taps raise ``ValueError``.
- ``.csv``: a header line, then one row per image: ``label`` then ``TAP_0 .. TAP_{D-1}`` for each
  tap (floats with 9 significant digits, so float32 values round-trip exactly). The file also
  loads with ``infomax mi`` (numeric CSV with a header).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from infomax.runtime import atomic_write

__all__ = ["EMBEDDING_FORMATS", "read_embeddings", "write_embeddings"]

EMBEDDING_FORMATS = (".npy", ".npz", ".pt", ".csv")


def _format_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in EMBEDDING_FORMATS:
        raise ValueError(
            f"cannot tell the format of {str(path)!r}: use one of the extensions "
            f"{', '.join(EMBEDDING_FORMATS)}"
        )
    return ext


def write_embeddings(
    features: Mapping[str, Tensor] | Tensor,
    labels: Tensor | np.ndarray | None,
    path: str | os.PathLike,
    overwrite: bool = True,
) -> Path:
    """Write ``{tap: (N, D)}`` features and ``(N,)`` labels to ``path`` (format by extension).

    A single tensor is stored as the tap ``features``. ``overwrite=False`` raises
    :class:`FileExistsError` when ``path`` exists. The file is written to a temporary name and then
    renamed, so an interrupted write leaves no partial file. Returns the path.
    """
    path = Path(path)
    ext = _format_of(path)
    if isinstance(features, Tensor | np.ndarray):
        features = {"features": features}
    if not features:
        raise ValueError("no features to write")
    arrays: dict[str, np.ndarray] = {}
    n = None
    for tap, f in features.items():
        a = torch.as_tensor(f).detach().cpu().float()
        a = a.reshape(a.shape[0], -1).numpy()
        if n is not None and a.shape[0] != n:
            raise ValueError(f"tap {tap!r} has {a.shape[0]} rows, the others {n}")
        n = a.shape[0]
        arrays[tap] = a
    if "labels" in arrays:
        raise ValueError("a tap named 'labels' would clash with the labels; rename it")
    lab = None
    if labels is not None:
        lab = torch.as_tensor(labels).detach().cpu().long().reshape(-1).numpy()
        if lab.shape[0] != n:
            raise ValueError(f"{lab.shape[0]} labels for {n} rows of features")
    if ext == ".npy" and len(arrays) != 1:
        raise ValueError(
            f".npy holds one array but {len(arrays)} taps were given ({', '.join(arrays)}): "
            "choose one tap, or write .npz / .pt / .csv"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; choose another file or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: _WRITERS[ext](tmp, arrays, lab))
    return path


def read_embeddings(path: str | os.PathLike) -> tuple[dict[str, Tensor], Tensor | None]:
    """Read a file written by :func:`write_embeddings`: ``({tap: Tensor (N, D)}, labels | None)``.

    A ``.npy`` file comes back as the tap ``features``; a ``.csv`` file's taps are recovered from
    the column names ``TAP_j``.
    """
    path = Path(path)
    ext = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"no embeddings file {str(path)!r}")
    if ext == ".npy":
        return {"features": torch.from_numpy(np.load(path))}, None
    if ext == ".npz":
        with np.load(path) as z:
            feats = {k: torch.from_numpy(z[k]) for k in z.files if k != "labels"}
            labels = torch.from_numpy(z["labels"]) if "labels" in z.files else None
        return feats, labels
    if ext == ".pt":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return dict(obj["features"]), obj.get("labels")
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    labels = None
    feats: dict[str, list[int]] = {}
    for j, name in enumerate(header):
        if name == "label":
            labels = torch.from_numpy(table[:, j].astype(np.int64))
            continue
        tap = name.rsplit("_", 1)[0]
        feats.setdefault(tap, []).append(j)
    return {
        t: torch.from_numpy(table[:, cols].astype(np.float32)) for t, cols in feats.items()
    }, labels


def _save_npy(tmp: Path, arrays: dict[str, np.ndarray], lab: np.ndarray | None) -> None:
    np.save(tmp, next(iter(arrays.values())))


def _save_npz(tmp: Path, arrays: dict[str, np.ndarray], lab: np.ndarray | None) -> None:
    np.savez(tmp, **arrays, **({"labels": lab} if lab is not None else {}))


def _save_pt(tmp: Path, arrays: dict[str, np.ndarray], lab: np.ndarray | None) -> None:
    obj = {"features": {t: torch.from_numpy(a) for t, a in arrays.items()}}
    obj["labels"] = torch.from_numpy(lab) if lab is not None else None
    torch.save(obj, tmp)


def _save_csv(tmp: Path, arrays: dict[str, np.ndarray], lab: np.ndarray | None) -> None:
    cols: list[str] = []
    blocks = []
    if lab is not None:
        cols.append("label")
        blocks.append(lab[:, None].astype(np.float64))
    for tap, a in arrays.items():
        cols += [f"{tap}_{j}" for j in range(a.shape[1])]
        blocks.append(a.astype(np.float64))
    table = np.concatenate(blocks, axis=1)
    fmt = (["%d"] if lab is not None else []) + ["%.9g"] * (table.shape[1] - (lab is not None))
    np.savetxt(tmp, table, fmt=fmt, delimiter=",", header=",".join(cols), comments="")


_WRITERS = {".npy": _save_npy, ".npz": _save_npz, ".pt": _save_pt, ".csv": _save_csv}
