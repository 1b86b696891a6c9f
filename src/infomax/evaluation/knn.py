"""k-nearest-neighbour search and kNN classification accuracy on frozen features.

The weighted vote is the one of instance discrimination (Wu et al., "Unsupervised Feature Learning
via Non-Parametric Instance Discrimination", CVPR 2018, sec. 3.4): each of the k nearest training
samples (cosine similarity s_i) votes for its class with weight exp(s_i / T), T = 0.1, and the class
with the largest total wins. ``vote="majority"`` counts one vote per neighbour instead.

Similarities are computed by chunked matrix products (``chunk_size`` query rows at a time), so
memory stays at ``chunk_size x N_gallery`` whatever the number of queries. Ties between classes go
to the tied class of the nearest neighbour. Ties between equally distant neighbours at the k-th
place are broken by ``torch.topk`` (unspecified order).

>>> acc = knn_accuracy(train_x, train_y, test_x, test_y, k=200)        # doctest: +SKIP
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "METRICS",
    "VOTES",
    "Gallery",
    "knn_accuracy",
    "knn_predict",
    "nearest_neighbors",
    "prepare_gallery",
    "search_gallery",
]

METRICS = ("cosine", "euclidean")
VOTES = ("weighted", "majority")

# query rows per chunk: about this many similarity entries at a time (128 MB in float32)
_CHUNK_ELEMENTS = 1 << 25


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")


def _as_matrix(x: Tensor, name: str, device: torch.device) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() == 1:
        x = x[:, None]
    elif x.dim() > 2:
        x = x.flatten(1)
    if x.dim() != 2:
        raise ValueError(f"{name} must be a matrix (N, D), got shape {tuple(x.shape)}")
    return x.to(device, torch.float32)


class Gallery(NamedTuple):
    """Gallery rows prepared once for many searches (:func:`prepare_gallery`).

    ``vectors``: the rows, unit-normalised for ``cosine``; ``sq_norms``: their squared norms for
    ``euclidean`` (``None`` for cosine); ``metric``: ``cosine`` or ``euclidean``; ``half``: a
    float16 copy of the normalised rows for exact single queries on the CPU
    (:func:`half_score_bound`), or ``None``.
    """

    vectors: Tensor
    sq_norms: Tensor | None
    metric: str
    half: Tensor | None = None


def prepare_gallery(gallery: Tensor, metric: str = "cosine", *, half_copy: bool = False) -> Gallery:
    """Normalise (cosine) or take the squared norms of (euclidean) float32 ``(G, D)`` rows, once,
    so that each search is one matrix product and a top-k per chunk of queries.

    ``half_copy`` (cosine only, honoured on the CPU when the float16 kernel accumulates in
    float32): also keep a float16 copy (half as many bytes again), which single queries scan
    first; they stay exact (see :func:`search_gallery`)."""
    _check_metric(metric)
    if metric == "cosine":
        vectors = F.normalize(gallery, dim=1)
        use_half = half_copy and vectors.device.type == "cpu" and _half_accumulates_in_float()
        return Gallery(vectors, None, metric, vectors.half() if use_half else None)
    return Gallery(gallery, gallery.pow(2).sum(1), metric)


def half_score_bound(dim: int) -> float:
    """An upper bound on ``|s_half - q.g|`` for unit vectors ``q, g`` of ``dim`` coordinates, where
    ``s_half`` is their dot product with both rounded to float16 (unit roundoff ``u = 2^-11``;
    subnormals at most ``eta = 2^-25`` off), multiplied exactly and summed in float32 (at most
    ``dim 2^-24`` relative to the sum of magnitudes, which is at most 1) and rounded to float16:
    ``2 (u + eta sqrt(d)) (1 + u + eta sqrt(d)) + d 2^-24 (1 + u)^2 + u (1 + delta) + eta``, of
    which ``3.5 u + 3 eta sqrt(d) + d 2^-23`` is a bound with room to spare (the rounding of a
    normalisation in float32, 1e-7, included). Standard floating-point error analysis (Higham,
    "Accuracy and Stability of Numerical Algorithms", 2002, ch. 3)."""
    u, eta = 2.0**-11, 2.0**-25
    return 3.5 * u + 3.0 * eta * dim**0.5 + dim * 2.0**-23


_HALF_CHECK: list[bool] = []


def _half_accumulates_in_float() -> bool:
    """Whether this build's float16 matrix-vector product sums in float32 (as PyTorch's CPU
    kernels do): 1 + 127 increments of 0.75 ulp(1)/2 survive then, and vanish in float16."""
    if not _HALF_CHECK:
        a = torch.ones(1, 128, dtype=torch.float16)
        b = torch.full((1, 128), 0.75 * 2.0**-11, dtype=torch.float16)
        b[0, 0] = 1.0
        _HALF_CHECK.append(abs(float((a @ b.T).float()) - (1 + 127 * 0.75 * 2.0**-11)) < 2.0**-10)
    return _HALF_CHECK[0]


def _search_one_half(
    q: Tensor, gallery: Gallery, k: int, exclude: Tensor | None
) -> tuple[Tensor, Tensor]:
    """One (normalised) cosine query, exactly, in two passes: float16 scores of every row
    (memory-bound: half the bytes of float32), then float32 scores of the rows that can still be
    among the k nearest. With ``delta`` = :func:`half_score_bound` and ``L`` the k-th largest
    float16 score, the k true nearest rows have float16 scores of at least ``L - 2 delta``: a row
    below that scores less than ``L - delta``, which at least k rows exceed."""
    approx = (q.half() @ gallery.half.T).float()[0]
    if exclude is not None:
        approx[exclude] = float("-inf")
    delta = half_score_bound(q.shape[1])
    kth = approx.topk(k).values[-1]
    cand = torch.nonzero(approx >= kth - 2 * delta).reshape(-1)
    exact = gallery.vectors[cand] @ q[0]
    v, i = exact.topk(k, largest=True, sorted=True)
    return v[None], cand[i][None]


def search_gallery(
    query: Tensor,
    gallery: Gallery,
    k: int,
    chunk_size: int | None = None,
    exclude: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(similarity, index)`` of the k most similar gallery rows per query row, most similar
    first. Similarity: cosine similarity, or minus the Euclidean distance.

    Euclidean neighbours are ranked by ``2 q.g - |g|^2`` (the squared distance less the
    query's constant ``|q|^2``), and only the k selected distances are computed.
    """
    g = gallery.vectors
    nq, ng = query.shape[0], g.shape[0]
    if query.shape[1] != g.shape[1]:
        raise ValueError(
            f"query has {query.shape[1]} features per row but the gallery {g.shape[1]}"
        )
    available = ng - (1 if exclude is not None else 0)
    if k < 1 or k > available:
        raise ValueError(f"k must lie in [1, {available}] for a gallery of {ng} rows, got {k}")
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMENTS // max(1, ng))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    cosine = gallery.metric == "cosine"
    if cosine:
        query = F.normalize(query, dim=1)
        if gallery.half is not None and nq == 1:
            return _search_one_half(query, gallery, k, exclude)
    sims, idxs = [], []
    for start in range(0, nq, chunk_size):
        q = query[start : start + chunk_size]
        s = q @ g.T
        if not cosine:
            s.mul_(2.0).sub_(gallery.sq_norms[None, :])
        if exclude is not None:
            rows = torch.arange(s.shape[0], device=s.device)
            s[rows, exclude[start : start + chunk_size]] = float("-inf")
        v, i = s.topk(k, dim=1, largest=True, sorted=True)
        if not cosine:  # back to minus the distance, for the k chosen only
            v = -(q.pow(2).sum(1, keepdim=True) - v).clamp_min_(0.0).sqrt_()
        sims.append(v)
        idxs.append(i)
    return torch.cat(sims), torch.cat(idxs)


def _topk_similar(
    query: Tensor,
    gallery: Tensor,
    k: int,
    metric: str,
    chunk_size: int | None,
    exclude: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`search_gallery` on a gallery prepared for this one search."""
    _check_metric(metric)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query has {query.shape[1]} features per row but the gallery {gallery.shape[1]}"
        )
    return search_gallery(query, prepare_gallery(gallery, metric), k, chunk_size, exclude)


def nearest_neighbors(
    query_x: Tensor,
    gallery_x: Tensor,
    k: int,
    metric: str = "cosine",
    chunk_size: int | None = None,
    exclude: Tensor | None = None,
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """The k nearest gallery rows of every query row.

    Args:
        query_x: ``(Q, D)`` features (higher dimensions are flattened).
        gallery_x: ``(G, D)`` features.
        k: neighbours per query.
        metric: ``cosine`` (distance 1 - cosine similarity) or ``euclidean``.
        chunk_size: query rows per matrix product (``None``: about 2**25 entries per chunk).
        exclude: ``(Q,)`` gallery indices to leave out, one per query (the query itself when the
            queries come from the gallery).
        device: where to compute (``None``: where ``gallery_x`` is).

    Returns:
        ``(indices, distances)``, both ``(Q, k)``, nearest first (indices int64, distances float32).
    """
    dev = torch.device(device) if device is not None else torch.as_tensor(gallery_x).device
    q = _as_matrix(query_x, "query_x", dev)
    g = _as_matrix(gallery_x, "gallery_x", dev)
    if exclude is not None:
        exclude = torch.as_tensor(exclude, device=dev).long().reshape(-1)
        if exclude.shape[0] != q.shape[0]:
            raise ValueError(
                f"exclude needs one index per query ({q.shape[0]}), got {exclude.shape[0]}"
            )
    sims, idx = _topk_similar(q, g, k, metric, chunk_size, exclude)
    dist = (1.0 - sims) if metric == "cosine" else -sims
    return idx, dist


def _vote(
    sims: Tensor,
    nb_labels: Tensor,
    num_classes: int,
    vote: str,
    temperature: float,
) -> Tensor:
    """Class predictions from neighbour similarities and labels ``(B, k)`` (nearest first)."""
    if vote == "weighted":
        # exp(s / T) up to a per-row factor exp(-max / T): the argmax is unchanged and nothing
        # overflows or underflows to all-zero (euclidean similarities can be large negatives)
        w = torch.exp((sims - sims[:, :1]) / temperature).double()
    else:
        w = torch.ones_like(sims, dtype=torch.float64)
    votes = torch.zeros(sims.shape[0], num_classes, dtype=torch.float64, device=sims.device)
    votes.scatter_add_(1, nb_labels, w)
    best = votes.max(1, keepdim=True).values
    tied = votes >= best  # the classes sharing the largest vote
    # the first (nearest) neighbour whose class is among the tied ones
    hit = tied.gather(1, nb_labels)
    first = hit.to(torch.uint8).argmax(1, keepdim=True)
    return nb_labels.gather(1, first).squeeze(1)


def knn_predict(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    metric: str = "cosine",
    vote: str = "weighted",
    num_classes: int | None = None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """kNN class predictions ``(N_test,)`` for ``test_x`` from labelled ``train_x``.

    Training rows labelled -1 (unlabeled) are ignored. ``vote``: ``weighted`` (exp(s / T)
    weights, s = cosine similarity or minus the Euclidean distance) or ``majority``. ``k`` is
    capped at the number of labelled training rows.
    """
    if vote not in VOTES:
        raise ValueError(f"unknown vote {vote!r}; valid votes: {', '.join(VOTES)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dev = torch.device(device) if device is not None else torch.as_tensor(train_x).device
    xtr = _as_matrix(train_x, "train_x", dev)
    xte = _as_matrix(test_x, "test_x", dev)
    ytr = torch.as_tensor(train_y).to(dev).long().reshape(-1)
    if ytr.shape[0] != xtr.shape[0]:
        raise ValueError(f"train: {xtr.shape[0]} feature rows but {ytr.shape[0]} labels")
    keep = ytr >= 0
    if not bool(keep.all()):
        xtr, ytr = xtr[keep], ytr[keep]
    if xtr.shape[0] == 0:
        raise ValueError("kNN needs labelled training samples; every label is -1 (unlabeled)")
    if num_classes is None:
        num_classes = int(ytr.max()) + 1
    k = min(int(k), xtr.shape[0])
    sims, idx = _topk_similar(xte, xtr, k, metric, chunk_size)
    return _vote(sims, ytr[idx], num_classes, vote, temperature)


def knn_accuracy(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    metric: str = "cosine",
    vote: str = "weighted",
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float:
    """Fraction of labelled test rows whose kNN prediction (:func:`knn_predict`) is right.

    Test rows labelled -1 are ignored.
    """
    dev = torch.device(device) if device is not None else torch.as_tensor(train_x).device
    yte = torch.as_tensor(test_y).to(dev).long().reshape(-1)
    xte = _as_matrix(test_x, "test_x", dev)
    if yte.shape[0] != xte.shape[0]:
        raise ValueError(f"test: {xte.shape[0]} feature rows but {yte.shape[0]} labels")
    keep = yte >= 0
    if not bool(keep.all()):
        xte, yte = xte[keep], yte[keep]
    if xte.shape[0] == 0:
        raise ValueError("kNN accuracy needs labelled test samples; every label is -1")
    ytr = torch.as_tensor(train_y).long()
    num_classes = int(max(int(ytr.max()), int(yte.max()))) + 1
    pred = knn_predict(
        train_x, train_y, xte, k=k, temperature=temperature, metric=metric, vote=vote,
        num_classes=num_classes, chunk_size=chunk_size, device=dev,
    )  # fmt: skip
    return float((pred == yte).double().mean())
