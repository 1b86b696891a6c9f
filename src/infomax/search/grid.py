"""The picture of a search: each query (framed) left of its neighbours, nearest first, as in
the Deep InfoMax write-up's figures ("the first image on the left is the original image, and the
9 images on the right are the nearest neighbors using cosine similarity"). The layout is that
of :func:`infomax.evaluation.render_neighbors_grid`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from infomax.evaluation import render_neighbors_grid
from infomax.runtime import atomic_write
from infomax.search.index import ImageIndex
from infomax.search.search import SearchResult

__all__ = ["render_search_grid", "thumbnail"]

_MISSING_GREY = 200


def thumbnail(path: str | os.PathLike, size: int) -> np.ndarray:
    """uint8 ``(size, size, 3)``: the file resized and centre-cropped like an indexed image, or
    a grey square when it cannot be read any more."""
    from infomax.data import decode_image

    try:
        return decode_image(path, size, mode="RGB", draft=True, exif_transpose=True)
    except ValueError:
        return np.full((size, size, 3), _MISSING_GREY, dtype=np.uint8)


def render_search_grid(
    index: ImageIndex,
    results: Sequence[SearchResult],
    path: str | os.PathLike,
    thumb: int = 96,
    mark_folders: bool = False,
) -> Path:
    """Write a PNG with one row per result: the query, a separator, its neighbours.

    ``thumb``: the side of each square cell in pixels. ``mark_folders``: a green strip under a
    neighbour in the same folder as its (indexed) query, red otherwise (folders as classes, e.g.
    ``cifar10/test/cat/0001.png``).
    """
    if not results:
        raise ValueError("no results to draw")
    k = max(len(r.paths) for r in results)
    if k == 0 or any(len(r.paths) != k for r in results):
        raise ValueError("every query needs the same number of neighbours (at least one)")
    queries = [thumbnail(index.file(r.row) if r.row is not None else r.query, thumb)
               for r in results]  # fmt: skip
    cells = [thumbnail(index.root / p, thumb) for r in results for p in r.paths]

    def nchw(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2)

    nb = torch.arange(len(cells)).reshape(len(results), k)
    q_labels = g_labels = None
    if mark_folders:
        folders: dict[str, int] = {}

        def folder(p: str) -> int:
            return folders.setdefault(str(Path(p).parent), len(folders))

        q_labels = torch.tensor(
            [folder(index.paths[r.row]) if r.row is not None else -1 for r in results]
        )
        g_labels = torch.tensor([folder(p) for r in results for p in r.paths])
    img = render_neighbors_grid(nchw(queries), nchw(cells), nb, q_labels, g_labels, scale=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
