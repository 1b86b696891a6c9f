"""Searching an index: queries (indexed paths or image files) to their nearest indexed images.

>>> from infomax.search import search
>>> for r in search("photos.index", ["~/new/cat.jpg", "2019/beach.png"], k=9):  # doctest: +SKIP
...     print(r.query, r.paths[:3], r.scores[:3])
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from infomax.search.encoder import RunEncoder
from infomax.search.engine import ExactSearcher, IVFSearcher, build_ivf, drop_excluded
from infomax.search.files import read_image
from infomax.search.index import ImageIndex

__all__ = ["SearchResult", "Searcher", "search"]


@dataclass
class SearchResult:
    """The neighbours of one query, nearest first. ``scores``: cosine similarities, or Euclidean
    distances for ``metric="euclidean"``. ``row``: the query's row when it is indexed."""

    query: str
    row: int | None
    indices: list[int]
    paths: list[str]
    scores: list[float]
    metric: str

    def to_dict(self, index: ImageIndex) -> dict[str, Any]:
        key = "similarity" if self.metric == "cosine" else "distance"
        file = index.file(self.row) if self.row is not None else Path(self.query).expanduser()
        return {
            "query": self.query,
            "query_file": str(file),
            "in_index": self.row is not None,
            "neighbors": [
                {"rank": r + 1, "path": p, "file": str(index.root / p), key: round(s, 6)}
                for r, (p, s) in enumerate(zip(self.paths, self.scores))
            ],
        }


class Searcher:
    """An index opened for searching: engines are built on first use and kept; the run's encoder
    is opened only when a query is an image outside the index."""

    def __init__(
        self,
        index: ImageIndex | str | os.PathLike,
        device: Any = "auto",
        encoder: RunEncoder | None = None,
    ):
        self.index = index if isinstance(index, ImageIndex) else ImageIndex.load(index)
        if len(self.index) == 0:
            raise ValueError("the index is empty")
        self.device = device
        self._encoder = encoder
        self._exact: dict[str, ExactSearcher] = {}
        self._ivf: dict[str, IVFSearcher] = {}

    # -- queries --------------------------------------------------------------------------------

    @property
    def encoder(self) -> RunEncoder:
        """The run's encoder, as the index was made (an error when the checkpoint changed)."""
        if self._encoder is None:
            m = self.index.meta
            enc = RunEncoder.open(
                m["run"], checkpoint=m["checkpoint"], tap=m["tap"], device=self.device,
                precision=m["precision"],
            )  # fmt: skip
            if enc.checkpoint_digest != m["checkpoint_digest"]:
                raise ValueError(
                    f"the checkpoint {m['checkpoint']} changed since the index was made, so a new "
                    "image's code would not be comparable with the indexed ones: run 'infomax "
                    "index' again to update the index"
                )
            self._encoder = enc
        return self._encoder

    def embed_image(self, data: bytes, name: str = "query") -> Tensor:
        """The code ``(D,)`` of an image given as file content, decoded like the indexed ones."""
        enc = self.encoder
        r = _decode_bytes(data, enc.image_size, enc.mode)
        if r is None:
            raise ValueError(f"cannot read {name} as an image")
        return enc.embed([r])[0]

    def resolve(self, queries: Sequence[str | os.PathLike]) -> tuple[Tensor, list[int | None]]:
        """``(codes (Q, D), rows)``: an indexed path takes its stored code (row set), another
        image file is embedded with the run (row ``None``)."""
        codes: list[Tensor] = []
        rows: list[int | None] = []
        for q in queries:
            row = self.index.row(q)
            if row is not None:
                codes.append(self.index.vectors[row])
                rows.append(row)
                continue
            path = Path(q).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"query {os.fspath(q)!r} is neither an image file nor a path in the index "
                    f"(of {self.index.root})"
                )
            r = read_image(path.parent, path.name, self.encoder.image_size, self.encoder.mode)
            if r.error is not None:
                raise ValueError(f"cannot read the query image {str(path)!r}: {r.error}")
            codes.append(self.encoder.embed([r.image])[0])
            rows.append(None)
        return torch.stack(codes), rows

    # -- neighbours -----------------------------------------------------------------------------

    def exact(self, metric: str) -> ExactSearcher:
        if metric not in self._exact:
            self._exact[metric] = ExactSearcher(self.index.vectors, metric, self.device)
        return self._exact[metric]

    def approximate(self, metric: str, nprobe: int | None = None) -> IVFSearcher:
        """The index file's IVF index for ``metric`` if it has one, else one built now."""
        if metric not in self._ivf:
            info = self.index.meta.get("ivf") or {}
            if self.index.ivf is not None and info.get("metric") == metric:
                ivf = IVFSearcher.from_bytes(self.index.ivf, metric, info["nprobe"])
            else:
                ivf = build_ivf(self.index.vectors, metric)[0]
            self._ivf[metric] = ivf
        if nprobe is not None:
            self._ivf[metric].nprobe = nprobe
        return self._ivf[metric]

    def neighbours(
        self,
        codes: Tensor,
        k: int,
        metric: str = "cosine",
        approximate: bool = False,
        exclude: Sequence[int | None] | None = None,
        nprobe: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(scores, rows)`` ``(Q, k)`` of the nearest indexed images, nearest first;
        ``exclude``: a row per query to leave out (``None``: none)."""
        n = len(self.index)
        want = min(int(k), n - (1 if exclude is not None and any(e is not None for e in exclude)
                                else 0))  # fmt: skip
        if want < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        ex = None if exclude is None else torch.tensor([-1 if e is None else e for e in exclude])
        if not approximate:
            return self.exact(metric).search(codes, want, exclude=ex)
        ivf = self.approximate(metric, nprobe)
        extra = 0 if ex is None else 1
        scores, rows = ivf.search(codes, min(want + extra, n))
        if ex is not None:
            scores, rows = drop_excluded(scores, rows, ex, want)
        return scores, rows

    def search(
        self,
        queries: Sequence[str | os.PathLike],
        k: int = 9,
        metric: str = "cosine",
        approximate: bool = False,
        exclude_self: bool = False,
        nprobe: int | None = None,
    ) -> list[SearchResult]:
        """The ``k`` nearest indexed images of each query. ``exclude_self``: an indexed query is
        not its own first neighbour."""
        codes, rows = self.resolve(queries)
        scores, idx = self.neighbours(
            codes, k, metric, approximate, exclude=rows if exclude_self else None, nprobe=nprobe
        )
        out = []
        for q, row, s, i in zip(queries, rows, scores.tolist(), idx.tolist()):
            pairs = [(j, v) for j, v in zip(i, s) if j >= 0]
            out.append(SearchResult(
                os.fspath(q), row, [j for j, _ in pairs], [self.index.paths[j] for j, _ in pairs],
                [float(v) for _, v in pairs], metric,
            ))  # fmt: skip
        return out


def _decode_bytes(data: bytes, image_size: int, mode: str) -> np.ndarray | None:
    from infomax.data import decode_image

    try:
        return decode_image(io.BytesIO(data), image_size, mode=mode, draft=True,
                            exif_transpose=True)  # fmt: skip
    except ValueError:
        return None


def search(
    index: ImageIndex | str | os.PathLike,
    queries: Sequence[str | os.PathLike] | str | os.PathLike,
    k: int = 9,
    metric: str = "cosine",
    approximate: bool = False,
    exclude_self: bool = False,
    device: Any = "auto",
) -> list[SearchResult]:
    """The ``k`` nearest indexed images of each query (an image file, or a path in the index),
    by cosine similarity or Euclidean distance of the index's codes; exact unless
    ``approximate`` (faiss IVF). See :class:`Searcher` to search one index many times."""
    if isinstance(queries, str | os.PathLike):
        queries = [queries]
    return Searcher(index, device=device).search(
        queries, k=k, metric=metric, approximate=approximate, exclude_self=exclude_self
    )
