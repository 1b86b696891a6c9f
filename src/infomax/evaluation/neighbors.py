"""Pictures of nearest neighbours in feature space.

Each row of the grid shows a query image (framed) followed, after a thin separator, by its k
nearest neighbours, nearest first, as in the kNN pictures of Su Jianlin's Deep InfoMax write-up
(cosine similarity on the global code). When labels are known, a strip under each neighbour is
green if it shares the query's label and red if not.

>>> neighbors_grid(method, test_set, "neighbors.png", n_queries=8, k=8)   # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from infomax.evaluation.features import (
    FeatureCache,
    _dataset_images,
    _dataset_labels,
    default_taps,
    extract_features,
)
from infomax.evaluation.knn import nearest_neighbors
from infomax.runtime import atomic_write

__all__ = ["NeighborsGrid", "grid_size", "neighbors_grid", "render_neighbors_grid"]

MARGIN = 4  # white border around the grid (px)
GAP = 4  # between cells (px); the query frame and the label strips are drawn in it
SEPARATOR = 12  # between the query column and the neighbours (px), with a grey line in the middle
FRAME = 2  # width of the query's frame (px)

_FRAME_RGB = (255, 160, 0)
_SEPARATOR_RGB = (128, 128, 128)
_SAME_RGB = (40, 170, 60)
_OTHER_RGB = (220, 40, 40)


class NeighborsGrid(NamedTuple):
    """What :func:`neighbors_grid` drew."""

    path: Path
    tap: str
    query_indices: Tensor  # (Q,) indices into the query dataset
    neighbor_indices: Tensor  # (Q, k) indices into the gallery, nearest first
    distances: Tensor  # (Q, k)


def default_scale(height: int, width: int) -> int:
    """Integer upscaling so that a cell is at least 64 px on its longer side."""
    return max(1, math.ceil(64 / max(height, width)))


def grid_size(n_queries: int, k: int, height: int, width: int, scale: int = 1) -> tuple[int, int]:
    """``(width, height)`` in pixels of a grid of ``n_queries`` rows and ``k`` neighbours."""
    cw, ch = width * scale, height * scale
    w = 2 * MARGIN + (k + 1) * cw + (k - 1) * GAP + SEPARATOR
    h = 2 * MARGIN + n_queries * ch + (n_queries - 1) * GAP
    return w, h


def _to_rgb(images: Tensor, scale: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, H*scale, W*scale, 3)."""
    x = torch.as_tensor(images).detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    c = x.shape[1]
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif c == 2:
        x = torch.cat([x, x[:, :1]], 1)
    elif c > 3:
        x = x[:, :3]
    a = x.permute(0, 2, 3, 1).numpy()
    if scale > 1:
        a = a.repeat(scale, axis=1).repeat(scale, axis=2)
    return a


def render_neighbors_grid(
    query_images: Tensor,
    gallery_images: Tensor,
    neighbor_indices: Tensor,
    query_labels: Tensor | None = None,
    gallery_labels: Tensor | None = None,
    scale: int | None = None,
) -> Any:
    """A :class:`PIL.Image.Image`: row i is query i, a separator, then its neighbours.

    Args:
        query_images: uint8 ``(Q, C, H, W)``.
        gallery_images: uint8 ``(G, C, H, W)``.
        neighbor_indices: ``(Q, k)`` gallery indices, nearest first.
        query_labels, gallery_labels: when both are given (and the query's label is not -1), a
            strip under each neighbour tells whether its label matches the query's.
        scale: integer upscaling of every image (``None``: :func:`default_scale`).
    """
    from PIL import Image

    nb = torch.as_tensor(neighbor_indices).cpu().long()
    q_n, k = nb.shape
    if query_images.shape[0] != q_n:
        raise ValueError(f"{query_images.shape[0]} query images but {q_n} rows of neighbours")
    h, w = query_images.shape[-2:]
    if scale is None:
        scale = default_scale(h, w)
    cw, ch = w * scale, h * scale
    width, height = grid_size(q_n, k, h, w, scale)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    queries = _to_rgb(query_images, scale)
    neigh = _to_rgb(torch.as_tensor(gallery_images)[nb.reshape(-1)], scale).reshape(
        q_n, k, ch, cw, 3
    )
    marks = query_labels is not None and gallery_labels is not None
    if marks:
        ql = torch.as_tensor(query_labels).cpu().long()
        same = torch.as_tensor(gallery_labels).cpu().long()[nb] == ql[:, None]
    sep_x = MARGIN + cw + SEPARATOR // 2 - 1
    canvas[MARGIN : height - MARGIN, sep_x : sep_x + 2] = _SEPARATOR_RGB
    for i in range(q_n):
        y = MARGIN + i * (ch + GAP)
        x = MARGIN
        canvas[y - FRAME : y + ch + FRAME, max(0, x - FRAME) : x + cw + FRAME] = _FRAME_RGB
        canvas[y : y + ch, x : x + cw] = queries[i]
        for j in range(k):
            x = MARGIN + cw + SEPARATOR + j * (cw + GAP)
            canvas[y : y + ch, x : x + cw] = neigh[i, j]
            if marks and int(ql[i]) >= 0:
                rgb = _SAME_RGB if bool(same[i, j]) else _OTHER_RGB
                canvas[y + ch : y + ch + 2, x : x + cw] = rgb
    return Image.fromarray(canvas, mode="RGB")


def neighbors_grid(
    method: nn.Module,
    dataset: Any,
    path: str | os.PathLike,
    n_queries: int = 8,
    k: int = 8,
    metric: str = "cosine",
    tap: str | None = None,
    seed: int = 0,
    exclude_self: bool = True,
    gallery: Any = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cache: FeatureCache | str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    precision: str = "fp32",
    scale: int | None = None,
    mark_labels: bool = True,
    query_indices: Tensor | None = None,
) -> NeighborsGrid:
    """Write a PNG of ``n_queries`` random images of ``dataset`` and their ``k`` nearest neighbours.

    Args:
        method: a trained method (``method.features``).
        dataset: the queries (an :class:`~infomax.data.ArrayDataset`); also the gallery unless
            ``gallery`` is given.
        path: the PNG to write (its folder is created).
        n_queries, k: rows and neighbours per row.
        metric: ``cosine`` or ``euclidean``.
        tap: the feature tap (``None``: the last of the method's probe taps, e.g. DIM's ``y``).
        seed: chooses the query images (``query_indices`` chooses them explicitly).
        exclude_self: leave each query out of its own neighbours (gallery = dataset only; a
            duplicate image elsewhere in the dataset still shows).
        gallery: another dataset to search (e.g. the training split).
        cache, checkpoint, precision, batch_size, device: as in :func:`extract_features`.
        scale: integer upscaling of the images (``None``: cells of at least 64 px).
        mark_labels: draw label-match strips under neighbours when labels are known.
    """
    if tap is None:
        taps = default_taps(method)
        tap = taps[-1] if taps else None
    images = _dataset_images(dataset)
    n = images.shape[0]
    same = gallery is None
    g_images = images if same else _dataset_images(gallery)
    if n_queries < 1:
        raise ValueError(f"n_queries must be at least 1, got {n_queries}")
    if query_indices is None:
        gen = torch.Generator().manual_seed(seed)
        query_indices = torch.randperm(n, generator=gen)[: min(n_queries, n)]
    query_indices = torch.as_tensor(query_indices).long().reshape(-1)
    kw = dict(batch_size=batch_size, device=device, cache=cache, checkpoint=checkpoint,
              precision=precision)  # fmt: skip
    feats = extract_features(method, dataset, taps=None if tap is None else [tap], **kw)
    if tap is None:
        tap = next(iter(feats))
    gx = feats[tap] if same else extract_features(method, gallery, taps=[tap], **kw)[tap]
    qx = feats[tap][query_indices]
    exclude = query_indices if (same and exclude_self) else None
    idx, dist = nearest_neighbors(qx, gx, k, metric=metric, exclude=exclude)
    labels = _dataset_labels(dataset)
    g_labels = labels if same else _dataset_labels(gallery)
    use_marks = mark_labels and labels is not None and g_labels is not None
    img = render_neighbors_grid(
        images[query_indices],
        g_images,
        idx,
        query_labels=labels[query_indices] if use_marks else None,
        gallery_labels=g_labels if use_marks else None,
        scale=scale,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return NeighborsGrid(path, tap, query_indices, idx.cpu(), dist.cpu())
