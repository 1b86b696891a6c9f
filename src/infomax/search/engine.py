"""Nearest-neighbour search over a matrix of codes: exact, and approximate with faiss.

- :class:`ExactSearcher`: every code is compared with every query by chunked matrix products
  and a top-k (:func:`infomax.evaluation.knn.search_gallery`), in torch, on the GPU when there is
  one. The gallery is normalised (cosine) or its squared norms taken (euclidean) once. On the
  CPU a cosine gallery of at least :data:`HALF_MIN_ROWS` codes also keeps a float16 copy (half
  its size again): a single query scans it
  first and rescores in float32 only the rows within the float16 error bound of the k-th best,
  so it stays exact and reads half the bytes (:func:`infomax.evaluation.knn.search_gallery`).
- :class:`IVFSearcher`: faiss's inverted-file index (``IndexIVFFlat``; Jegou, Douze & Schmid,
  "Product quantization for nearest neighbor search", TPAMI 2011, sec. IV-A, without the
  quantisation of the codes): k-means splits the codes into ``nlist`` cells and a query scans
  only the ``nprobe`` cells nearest to it. It is approximate: :func:`recall_at_k` measures it
  against exact search, and :func:`build_ivf` picks the smallest ``nprobe`` (a power of two) that
  reaches a target recall. Install faiss with ``pip install "infomax[search]"`` (faiss-cpu).

Scores: cosine similarity (higher is nearer) for ``cosine``, Euclidean distance (lower is
nearer) for ``euclidean``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from infomax.evaluation.knn import METRICS, prepare_gallery, search_gallery
from infomax.runtime import resolve_device

__all__ = [
    "ExactSearcher",
    "IVFSearcher",
    "build_ivf",
    "default_nlist",
    "drop_excluded",
    "import_faiss",
    "recall_at_k",
]


#: galleries of at least this many codes keep a float16 copy for single queries on the CPU (on
#: 5,000 codes the second pass costs more than the first saves: 0.32 against 0.19 ms)
HALF_MIN_ROWS = 50_000


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")


class ExactSearcher:
    """Exact k-nearest-neighbour search over ``vectors`` ``(N, D)`` (see the module docstring).

    >>> s = ExactSearcher(torch.randn(1000, 64), "cosine", device="cpu")
    >>> scores, idx = s.search(torch.randn(5, 64), k=10)
    """

    def __init__(self, vectors: Tensor, metric: str = "cosine", device: Any = "auto"):
        _check_metric(metric)
        self.metric = metric
        self.device = resolve_device(device)
        g = torch.as_tensor(vectors).to(self.device, torch.float32)
        self.gallery = prepare_gallery(g, metric, half_copy=g.shape[0] >= HALF_MIN_ROWS)
        self.size = int(g.shape[0])

    def search(
        self, queries: Tensor, k: int, exclude: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(scores, indices)``, both ``(Q, k)`` on the CPU, nearest first. ``exclude``: one row
        per query to leave out (``-1``: none)."""
        q = torch.as_tensor(queries).to(self.device, torch.float32).reshape(-1, self.dim)
        k = int(k)
        ex = None
        if exclude is not None:
            ex = torch.as_tensor(exclude).to(self.device).long().reshape(-1)
            if bool((ex < 0).any()):  # rows without anything to exclude: search one more
                s, i = self._search(q, min(k + 1, self.size), None)
                return drop_excluded(s.cpu(), i.cpu(), ex.cpu(), k)
        scores, idx = self._search(q, k, ex)
        return scores.cpu(), idx.cpu()

    def _search(self, q: Tensor, k: int, ex: Tensor | None) -> tuple[Tensor, Tensor]:
        sims, idx = search_gallery(q, self.gallery, k, exclude=ex)
        if self.metric == "cosine":
            return sims, idx
        # the ranking's |q|^2 + |g|^2 - 2 q.g loses digits for long vectors (a code's distance to
        # itself comes out near 1e-4, not 0): the k distances kept are measured directly
        return _direct_distances(q, self.gallery.vectors, idx)

    @property
    def dim(self) -> int:
        return int(self.gallery.vectors.shape[1])


def _direct_distances(q: Tensor, g: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """``|q_i - g_j|`` for the chosen ``idx`` ``(Q, k)``, each row re-sorted by it."""
    d = torch.empty(idx.shape, dtype=torch.float32, device=q.device)
    step = max(1, (1 << 22) // max(1, idx.shape[1] * g.shape[1]))
    for s in range(0, q.shape[0], step):
        d[s : s + step] = (q[s : s + step, None, :] - g[idx[s : s + step]]).norm(dim=2)
    d, order = d.sort(dim=1, stable=True)
    return d, idx.gather(1, order)


def drop_excluded(
    scores: Tensor, rows: Tensor, exclude: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """The first ``k`` of each row's candidates (``(Q, k + 1)``, nearest first) that are not
    ``exclude[i]`` (``-1``: none excluded)."""
    keep = rows != exclude[:, None]
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    return scores.gather(1, order), rows.gather(1, order)


def import_faiss() -> Any:
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "approximate search needs faiss: pip install 'infomax[search]' (or faiss-cpu); "
            "exact search works without it"
        ) from exc
    return faiss


def default_nlist(n: int) -> int:
    """Cells of the inverted file for ``n`` codes: about ``4 sqrt(n)``, with at least 39
    training codes per cell (faiss's minimum for a stable k-means), and at least 1."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def _as_numpy(x: Tensor | np.ndarray, metric: str) -> np.ndarray:
    a = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if metric == "cosine":
        a = torch.nn.functional.normalize(a, dim=1)
    return np.ascontiguousarray(a.numpy())


class IVFSearcher:
    """Approximate search with a faiss inverted-file index (see the module docstring).

    Args:
        vectors: ``(N, D)`` codes.
        metric: ``cosine`` (inner product of unit vectors) or ``euclidean``.
        nlist: cells (``None``: :func:`default_nlist`); ``nprobe``: cells scanned per query.
        train_size: codes the k-means is trained on (a random sample; ``None``: 64 per cell).
        seed: the sample and the k-means initialisation.
    """

    def __init__(
        self,
        vectors: Tensor | np.ndarray | None,
        metric: str = "cosine",
        nlist: int | None = None,
        nprobe: int = 8,
        train_size: int | None = None,
        seed: int = 0,
        _index: Any = None,
    ):
        _check_metric(metric)
        faiss = import_faiss()
        self.metric = metric
        if _index is not None:
            self.index = _index
        else:
            x = _as_numpy(vectors, metric)
            n, d = x.shape
            nlist = int(nlist or default_nlist(n))
            if not 1 <= nlist <= n:
                raise ValueError(f"nlist must lie in [1, {n}] for {n} codes, got {nlist}")
            ip = metric == "cosine"
            quantizer = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
            mt = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
            index = faiss.IndexIVFFlat(quantizer, d, nlist, mt)
            index.cp.seed = seed
            m = min(n, train_size or 64 * nlist)
            rng = np.random.default_rng(seed)
            sample = x if m == n else x[np.sort(rng.choice(n, m, replace=False))]
            index.train(sample)
            index.add(x)
            self.index = index
        self.nprobe = nprobe

    @property
    def nlist(self) -> int:
        return int(self.index.nlist)

    @property
    def nprobe(self) -> int:
        return int(self.index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"nprobe must be at least 1, got {value}")
        self.index.nprobe = min(int(value), self.nlist)

    def search(self, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(scores, indices)`` ``(Q, k)``, nearest first (index ``-1``: fewer than k found)."""
        q = _as_numpy(torch.as_tensor(queries).reshape(-1, self.index.d), self.metric)
        d, i = self.index.search(q, int(k))
        scores = torch.from_numpy(d)
        if self.metric == "euclidean":  # faiss gives squared distances
            scores = scores.clamp_min(0).sqrt()
        return scores, torch.from_numpy(i).long()

    def to_bytes(self) -> bytes:
        """The index serialised by faiss (stored in the index file)."""
        return import_faiss().serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, metric: str, nprobe: int) -> IVFSearcher:
        faiss = import_faiss()
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8).copy())
        return cls(None, metric, nprobe=nprobe, _index=index)


def recall_at_k(found: Tensor, exact: Tensor) -> float:
    """Mean over queries of ``|found_i ∩ exact_i| / k``: the fraction of the true k nearest
    neighbours (``exact``, ``(Q, k)``) that an approximate search returned (``found``)."""
    found, exact = torch.as_tensor(found), torch.as_tensor(exact)
    if found.shape != exact.shape:
        raise ValueError(f"found {tuple(found.shape)} and exact {tuple(exact.shape)} differ")
    hits = (found[:, :, None] == exact[:, None, :]).any(2).sum(1)
    return float(hits.double().mean() / exact.shape[1])


def build_ivf(
    vectors: Tensor,
    metric: str = "cosine",
    nlist: int | None = None,
    target_recall: float = 0.95,
    k: int = 10,
    n_queries: int = 1000,
    seed: int = 0,
    device: Any = "auto",
) -> tuple[IVFSearcher, dict[str, Any]]:
    """An :class:`IVFSearcher` over ``vectors`` whose ``nprobe`` is tuned
    on ``n_queries`` of the vectors themselves, each left out of its own neighbours, against
    exact search; returns it and ``{"metric", "nlist", "nprobe", "k", "recall", "queries",
    "target_recall", "build_seconds"}``, the measured recall@k included."""
    import time

    t0 = time.perf_counter()
    vectors = torch.as_tensor(vectors).float()
    n = vectors.shape[0]
    if n < k + 2:
        raise ValueError(f"an approximate index needs more than {k + 1} vectors, got {n}")
    ivf = IVFSearcher(vectors, metric, nlist=nlist, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randperm(n, generator=gen)[: min(n_queries, n)]
    exact = ExactSearcher(vectors, metric, device).search(vectors[rows], k, exclude=rows)[1]
    # tune on k + 1 neighbours less the query itself, the way the exact ones were found
    nprobe = 1
    while True:
        ivf.nprobe = nprobe
        s, i = ivf.search(vectors[rows], k + 1)
        recall = recall_at_k(drop_excluded(s, i, rows, k)[1], exact)
        if recall >= target_recall or ivf.nprobe >= ivf.nlist:
            break
        nprobe *= 2
    info = {
        "metric": metric, "nlist": ivf.nlist, "nprobe": ivf.nprobe, "k": k,
        "recall": round(recall, 4), "queries": int(rows.numel()),
        "target_recall": target_recall, "build_seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    return ivf, info
