"""Loading paired sample files for mutual-information estimation (``infomax mi``).

Supported files (rows are samples, columns are coordinates):

- ``.npy``: one numeric array (loaded without pickle);
- ``.npz``: an archive holding exactly one array, or any archive with the key named after a
  colon, ``samples.npz:x``;
- ``.csv`` / ``.tsv`` / ``.txt``: numeric text; the delimiter is the first of comma, semicolon
  and tab found in the first 50 lines (tab for ``.tsv``), else runs of whitespace; lines starting
  with ``#`` are skipped and a first line that is not numeric is taken as a header.

1-D arrays become one column ``(N, 1)``; arrays with more than two dimensions are flattened to
``(N, prod(rest))`` (e.g. images as samples). Values are returned as float64 NumPy arrays.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

__all__ = [
    "MIN_SAMPLES",
    "check_pair",
    "check_samples",
    "load_pair",
    "load_samples",
    "load_table",
]

#: fewer paired samples than this cannot support any estimate
MIN_SAMPLES = 10

_TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
_EXTENSIONS = (".npy", ".npz") + _TEXT_EXTENSIONS


def _split_key(spec: str) -> tuple[str, str | None]:
    """``"a.npz:key"`` -> ``("a.npz", "key")``; anything else -> ``(spec, None)``."""
    head, sep, key = str(spec).rpartition(":")
    if sep and head.lower().endswith(".npz") and key and not os.path.exists(spec):
        return head, key
    return str(spec), None


def load_samples(spec: str | os.PathLike) -> np.ndarray:
    """Load one sample file (see the module docstring) as a float64 array of shape (N, D).

    Same errors as :func:`load_table`.
    """
    return load_table(spec)[0]


def load_table(spec: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Load one sample file as ``(array (N, D) float64, column names)``.

    Names come from a text file's header line, else ``col0, col1, ...``.

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        ValueError: unknown extension, missing ``.npz`` key, non-numeric values, NaN or infinite
            values, or an empty array.
    """
    path_str, key = _split_key(os.fspath(spec))
    path = Path(path_str)
    if not path.exists():
        raise FileNotFoundError(f"sample file not found: {path_str}")
    if path.is_dir():
        raise ValueError(f"{path_str} is a folder; give a .npy, .npz or .csv file")
    ext = path.suffix.lower()
    if ext not in _EXTENSIONS:
        raise ValueError(
            f"unknown sample file extension {ext or '(none)'!r} for {path_str}; "
            f"use one of {', '.join(_EXTENSIONS)}"
        )
    if key is not None and ext != ".npz":  # pragma: no cover - _split_key only splits .npz
        raise ValueError(f"a ':key' suffix only applies to .npz files, got {spec}")
    header = None
    if ext == ".npy":
        arr = _load_npy(path)
    elif ext == ".npz":
        arr = _load_npz(path, key)
    else:
        arr, header = _load_text(path)
    arr = check_samples(arr, name=os.fspath(spec))
    if header is None or len(header) != arr.shape[1]:
        header = [f"col{j}" for j in range(arr.shape[1])]
    return arr, header


def _load_npy(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is an empty file (0 bytes); save a numeric array with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except (EOFError, OSError) as exc:  # truncated or not a .npy file at all
        raise ValueError(
            f"cannot read {path} as a .npy array ({exc or type(exc).__name__}); the file is "
            "truncated or not a .npy file: save it again with numpy.save"
        ) from None
    except ValueError as exc:  # object arrays need pickle; corrupt files
        raise ValueError(
            f"cannot read {path} as a numeric .npy array ({exc}): the file is truncated, not a "
            ".npy file, or holds Python objects; save a numeric array with numpy.save"
        ) from None


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {path} as a .npz archive ({exc})") from None
    with archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise ValueError(
                    f"{path} holds {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                    f"name one as {path}:KEY"
                )
            key = keys[0]
        if key not in keys:
            raise ValueError(
                f"{path} has no array named {key!r}; available: {', '.join(keys) or 'none'}"
            )
        try:
            return archive[key]
        except ValueError as exc:
            raise ValueError(f"cannot read array {key!r} of {path} ({exc})") from None


def _parse_row(fields: list[str]) -> list[float] | None:
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


def _load_text(path: Path) -> tuple[np.ndarray, list[str] | None]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file; give numeric .csv text") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{path} holds no data rows")
    delimiter: str | None = None  # None: runs of whitespace
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        sample = "\n".join(lines[:50])
        delimiter = next((d for d in (",", ";", "\t") if d in sample), None)
    if delimiter is None:
        rows = [ln.split() for ln in lines]
    else:
        rows = [
            [f.strip() for f in r]
            for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
        ]
    start, header = 0, None
    if _parse_row(rows[0]) is None:  # a header line
        start, header = 1, [f.strip() for f in rows[0]]
    values = []
    width = None
    for lineno, fields in enumerate(rows[start:], start=start + 1):
        parsed = _parse_row(fields)
        if parsed is None:
            bad = next(f for f in fields if _parse_row([f]) is None)
            raise ValueError(
                f"{path}: non-numeric value {bad!r} on data line {lineno}; the file must hold "
                "numbers only (an optional header line first)"
            )
        if width is None:
            width = len(parsed)
        elif len(parsed) != width:
            raise ValueError(
                f"{path}: data line {lineno} has {len(parsed)} columns, expected {width}"
            )
        values.append(parsed)
    if not values:
        raise ValueError(f"{path} holds a header but no data rows")
    return np.asarray(values, dtype=np.float64), header


def check_samples(arr: np.ndarray, name: str = "samples") -> np.ndarray:
    """Validate one sample array and return it as float64 of shape (N, D)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; convert it to float first"
        )
    if arr.ndim == 0:
        raise ValueError(f"{name} holds a single number; rows must be samples")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.argwhere(~finite)[0, 0])
        raise ValueError(
            f"{name} contains {int((~finite).sum())} NaN or infinite values (first in row {row});"
            " remove or impute them first"
        )
    return arr


def check_pair(
    x: np.ndarray, y: np.ndarray, names: tuple[str, str] = ("X", "Y")
) -> tuple[np.ndarray, np.ndarray]:
    """Validate paired samples: same number of rows, finite numbers, at least ``MIN_SAMPLES``."""
    x = check_samples(x, names[0])
    y = check_samples(y, names[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} has {x.shape[0]} samples (rows) but {names[1]} has {y.shape[0]}; "
            "row i of both must be the same sample"
        )
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(
            f"only {x.shape[0]} paired samples; mutual-information estimation needs at least "
            f"{MIN_SAMPLES} (thousands for a useful figure)"
        )
    return x, y


def load_pair(
    x_spec: str | os.PathLike, y_spec: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate the two sample files of ``infomax mi``."""
    x = load_samples(x_spec)
    y = load_samples(y_spec)
    return check_pair(x, y, names=(os.fspath(x_spec), os.fspath(y_spec)))
