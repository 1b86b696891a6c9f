"""An image index: the codes of every image under a folder, with the paths and what made them.

The index is one file (a NumPy ``.npz`` archive, written atomically) holding

- ``vectors``: float32 ``(N, D)``, one row per image, in the order of ``paths``;
- ``paths`` (relative to the indexed folder, POSIX separators, sorted), ``sizes``, ``mtimes``
  (nanoseconds) and ``digests`` (BLAKE2b of the content), stored as JSON;
- ``meta``: the folder, the run, the checkpoint and its digest, the tap, the image size and mode,
  the precision, the resize policy, the damaged files skipped, the times of creation and update;
- optionally ``ivf``: a serialised faiss inverted-file index over the vectors (approximate
  search), with its settings and measured recall in ``meta["ivf"]``.

:func:`index_folder` builds it, or brings an existing one up to date: files whose size and
modification time are unchanged keep their vectors (``check="digest"`` compares the content
instead), a new or changed file whose content is already indexed (renamed, copied) reuses that
vector, other new or changed files are embedded, removed files are dropped, and everything is
embedded again when the run's checkpoint changed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from infomax.runtime import atomic_write
from infomax.search.encoder import RunEncoder
from infomax.search.files import FileStamp, list_images, read_images

__all__ = ["FORMAT", "ImageIndex", "IndexReport", "index_folder"]

FORMAT = "infomax-image-index"
VERSION = 1
CHECKS = ("mtime", "digest")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _json_array(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


@dataclass
class ImageIndex:
    """The content of an index file (see the module docstring)."""

    vectors: Tensor
    paths: list[str]
    sizes: list[int]
    mtimes: list[int]
    digests: list[str]
    meta: dict[str, Any]
    ivf: bytes | None = None
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = self.vectors.shape[0]
        if not len(self.paths) == len(self.sizes) == len(self.mtimes) == len(self.digests) == n:
            raise ValueError(f"a damaged index: {n} vectors but {len(self.paths)} paths")
        self._rows = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def root(self) -> Path:
        """The indexed folder."""
        return Path(self.meta["root"])

    @property
    def tap(self) -> str:
        return self.meta["tap"]

    def file(self, i: int) -> Path:
        """The file of row ``i``."""
        return self.root / self.paths[i]

    def row(self, path: str | os.PathLike) -> int | None:
        """The row of ``path``: a path relative to the indexed folder, or a path to a file inside
        it (absolute or relative to the working directory); ``None`` when it is not indexed."""
        text = os.fspath(path)
        if text in self._rows:
            return self._rows[text]
        p = Path(text).expanduser()
        try:
            rel = p.resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError):
            return None
        return self._rows.get(rel)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageIndex:
        """Read an index file written by :meth:`save`."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no index file {str(path)!r}; make one with 'infomax index'")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("format") != FORMAT:
                    raise ValueError("not an index")
                files = json.loads(z["files"].tobytes())
                vectors = torch.from_numpy(np.ascontiguousarray(z["vectors"]))
                ivf = z["ivf"].tobytes() if "ivf" in z.files else None
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(
                f"{str(path)!r} is not an infomax image index ({exc}); make one with "
                "'infomax index RUN FOLDER -o INDEX'"
            ) from exc
        if meta.get("version", 0) > VERSION:
            raise ValueError(
                f"{str(path)!r} was written by a newer infomax (index version "
                f"{meta['version']}); upgrade infomax to read it"
            )
        return cls(vectors, files["paths"], files["sizes"], files["mtimes"], files["digests"],
                   meta, ivf)  # fmt: skip

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to ``path`` atomically (a crash leaves the previous file intact)."""
        files = {"paths": self.paths, "sizes": self.sizes, "mtimes": self.mtimes,
                 "digests": self.digests}  # fmt: skip
        arrays = {
            "vectors": self.vectors.detach().cpu().float().contiguous().numpy(),
            "files": _json_array(files),
            "meta": _json_array({**self.meta, "count": len(self.paths)}),
        }
        if self.ivf is not None:
            arrays["ivf"] = np.frombuffer(self.ivf, dtype=np.uint8)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, write)


@dataclass
class IndexReport:
    """What :func:`index_folder` did."""

    path: Path
    total: int  # images in the index now
    embedded: int  # files decoded and embedded in this call
    reused: int  # vectors kept from the earlier index (unchanged, renamed or copied files)
    removed: int  # entries of files that no longer exist
    skipped: list[tuple[str, str]]  # damaged files: (path, reason)
    reembed_all: str | None  # why every file was embedded again (None: incremental)
    seconds: float

    @property
    def images_per_sec(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else float("nan")


def _compatible(old: ImageIndex, enc: RunEncoder, root: Path) -> str | None:
    """Why ``old`` cannot be brought up to date with ``enc`` (an error), or ``None``."""
    m = old.meta
    if Path(m["root"]) != root:
        return f"it indexes another folder ({m['root']})"
    for key, now in (("run", str(enc.run)), ("tap", enc.tap)):
        if m.get(key) != now:
            return f"it was made with {key} {m.get(key)!r}, not {now!r}"
    return None


def _plan(
    stamps: list[FileStamp], old: ImageIndex | None, check: str
) -> tuple[dict[str, int], list[str]]:
    """``({path: old row}, paths to read)``: files kept as they are, and the others."""
    keep: dict[str, int] = {}
    todo: list[str] = []
    for s in stamps:
        row = old.row(s.path) if old is not None else None
        unchanged = (
            row is not None
            and check == "mtime"
            and old.sizes[row] == s.size
            and old.mtimes[row] == s.mtime_ns
        )
        if unchanged:
            keep[s.path] = row
        else:
            todo.append(s.path)
    return keep, todo


def index_folder(
    encoder: RunEncoder | str | os.PathLike,
    folder: str | os.PathLike,
    index_path: str | os.PathLike,
    check: str = "mtime",
    rebuild: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    **open_kwargs: Any,
) -> IndexReport:
    """Embed every image under ``folder`` into the index file ``index_path`` (see the module
    docstring), creating it or bringing it up to date.

    Args:
        encoder: a :class:`RunEncoder`, or a run folder (opened with ``open_kwargs``: ``tap``,
            ``checkpoint``, ``device``, ``precision``, ``batch_size``).
        check: ``mtime`` (a file is unchanged when its size and modification time are) or
            ``digest`` (when its content is; reads every file).
        rebuild: embed everything again, and allow replacing an index of another folder, run or
            tap.
        progress: a progress bar on stderr. ``log``: called with a line per damaged file and
            notable event.

    Damaged files are reported (``log`` and :attr:`IndexReport.skipped`) and left out, never
    fatal. An existing file at ``index_path`` that is not an index is never replaced.

    >>> report = index_folder("runs/dim-cifar10", "~/photos", "photos.index")   # doctest: +SKIP
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {check!r}")
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    root = Path(folder).expanduser().resolve()
    index_path = Path(index_path).expanduser()
    old = ImageIndex.load(index_path) if index_path.exists() else None  # refuses non-indexes
    enc = encoder if isinstance(encoder, RunEncoder) else RunEncoder.open(encoder, **open_kwargs)
    reason = _reembed_reason(old, enc, root, rebuild, index_path)
    base = None if (old is None or reason) else old
    stamps = list_images(root)
    keep, todo = _plan(stamps, base, check)
    known = {} if base is None else {d: i for i, d in enumerate(base.digests)}
    vectors, digests, skipped, embedded = _embed(enc, root, todo, known, base, progress, say)
    if not vectors and not keep:
        raise ValueError(
            f"no readable images under {str(root)!r}"
            + (f" ({len(skipped)} damaged files skipped)" if skipped else "")
        )
    rows, digs, kept = [], [], []
    for s in stamps:
        if s.path in keep:
            rows.append(base.vectors[keep[s.path]])
            digs.append(base.digests[keep[s.path]])
        elif s.path in vectors:
            rows.append(vectors[s.path])
            digs.append(digests[s.path])
        else:
            continue  # damaged
        kept.append(s)
    meta = {
        "format": FORMAT, "version": VERSION, "root": str(root), **enc.record(),
        "dim": int(rows[0].shape[0]),
        "created": old.meta["created"] if base is not None else _now(), "updated": _now(),
        "skipped": [{"path": p, "error": e} for p, e in skipped],
    }  # fmt: skip
    new = ImageIndex(torch.stack(rows), [s.path for s in kept], [s.size for s in kept],
                     [s.mtime_ns for s in kept], digs, meta)  # fmt: skip
    _carry_ivf(base, new, say)
    new.save(index_path)
    removed = 0 if base is None else sum(1 for p in base.paths if new.row(p) is None)
    return IndexReport(
        index_path, len(new), embedded, len(new) - embedded, removed, skipped, reason,
        time.perf_counter() - t0,
    )  # fmt: skip


def _reembed_reason(
    old: ImageIndex | None, enc: RunEncoder, root: Path, rebuild: bool, index_path: Path
) -> str | None:
    """Why every file must be embedded again (``None``: an update is enough, or no index)."""
    if old is None:
        return None
    if rebuild:
        return "rebuild asked for"
    problem = _compatible(old, enc, root)
    if problem:
        raise ValueError(
            f"{str(index_path)!r} cannot be updated: {problem}; pass --rebuild (rebuild=True) "
            "to replace it, or write another index file"
        )
    if old.meta.get("checkpoint_digest") != enc.checkpoint_digest:
        return "the run's checkpoint changed since the index was made"
    if (old.meta.get("image_size"), old.meta.get("precision")) != (enc.image_size, enc.precision):
        return "the image size or precision changed"
    return None


def _embed(
    enc: RunEncoder,
    root: Path,
    todo: list[str],
    known: dict[str, int],
    base: ImageIndex | None,
    progress: bool,
    say: Callable[[str], None],
) -> tuple[dict[str, Tensor], dict[str, str], list[tuple[str, str]], int]:
    """Read ``todo``; reuse the vectors of contents already in ``base``, embed the rest."""
    vectors: dict[str, Tensor] = {}
    digests: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    embedded = 0
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="indexing", unit="img", leave=False)
        say = bar.write
    chunk = max(64, enc.batch_size)
    for results in read_images(root, todo, enc.image_size, enc.mode, frozenset(known), chunk=chunk):
        fresh = []
        for r in results:
            if r.error is not None:
                skipped.append((r.path, r.error))
                say(f"skipped {r.path}: {r.error}")
            elif r.image is None:  # same content as an indexed file
                vectors[r.path] = base.vectors[known[r.digest]]
                digests[r.path] = r.digest
            else:
                fresh.append(r)
        if fresh:
            codes = enc.embed([r.image for r in fresh])
            for r, v in zip(fresh, codes):
                vectors[r.path] = v
                digests[r.path] = r.digest
            embedded += len(fresh)
        if bar is not None:
            bar.update(len(results))
    if bar is not None:
        bar.close()
    return vectors, digests, skipped, embedded


def _carry_ivf(base: ImageIndex | None, new: ImageIndex, say: Callable[[str], None]) -> None:
    """Keep the approximate index when the vectors are exactly those it was built on."""
    if base is None or base.ivf is None or "ivf" not in base.meta:
        return
    if base.paths == new.paths and torch.equal(base.vectors, new.vectors):
        new.ivf, new.meta["ivf"] = base.ivf, base.meta["ivf"]
    else:
        say("the approximate (IVF) index is out of date and was dropped; build it again with "
            "'infomax index ... --approximate'")  # fmt: skip
