"""Exact discrete information theory: entropy, mutual information, divergences, channel capacity.

Every function is pure, takes NumPy arrays, torch tensors or (nested) lists, and returns a Python
``float`` (:func:`channel_capacity` returns a small :class:`Capacity` NamedTuple).

Units. Every function has a ``base`` argument: the logarithm base of the result. The default is
nats (``base=math.e``), the unit used everywhere else in infomax (``estimate_mi``, the bounds,
``infomax mi``). Pass ``base=2`` or ``"bits"`` for bits, ``base=10`` for hartleys, ``"nats"`` for
nats, or any finite float ``> 0`` and ``!= 1``. A value in nats is converted by dividing by
``log(base)``.

Conventions (Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, ch. 2):

- ``0 log 0 = 0`` and ``0 log(0 / q) = 0``: zero-probability entries contribute nothing.
- A joint table ``p_xy`` has X along the rows (axis 0) and Y along the columns (axis 1).
- A channel matrix ``W`` holds ``W[x, y] = P(y | x)``: one row per input symbol, each row sums to 1.
- ``KL(p || q) = +inf`` when some ``q_i = 0`` where ``p_i > 0`` (not an error).

Validation. Probabilities must be finite and non-negative, and sum to 1 within ``atol``
(a joint table as a whole; each row of a channel). Tables that pass are renormalised by their sum
before use, so float32 round-off does not leak into the result. Every problem raises
``ValueError`` naming the problem and the fix.

Sample estimates (``*_from_samples``, ``*_from_counts``) are plug-in ("maximum likelihood")
estimates: the entropy of the empirical distribution, which is biased low by about
``(K - 1) / (2N)`` nats for ``K`` occupied bins and ``N`` samples (Miller 1955). Pass
``miller_madow=True`` to add that term back.

>>> round(entropy([0.5, 0.5], base=2), 6)
1.0
>>> round(channel_capacity([[0.9, 0.1], [0.1, 0.9]], base="bits").capacity, 6)  # 1 - H(0.1)
0.531004
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ArrayLike",
    "Base",
    "Capacity",
    "channel_capacity",
    "conditional_entropy",
    "entropy",
    "entropy_from_counts",
    "entropy_from_samples",
    "joint_entropy",
    "js_divergence",
    "kl_divergence",
    "mutual_information",
    "mutual_information_channel",
    "mutual_information_from_counts",
    "mutual_information_from_samples",
]

#: Anything convertible to an array: ``np.ndarray``, ``torch.Tensor``, nested lists or tuples.
ArrayLike = np.ndarray | Sequence[Any] | Any
#: A logarithm base: a float ``> 0`` and ``!= 1``, or ``"bits"`` (2) / ``"nats"`` (e).
Base = float | str

_NAMED_BASES = {"bits": 2.0, "nats": math.e}
_DEFAULT_ATOL = 1e-6


class Capacity(NamedTuple):
    """Result of :func:`channel_capacity`.

    Attributes:
        capacity: ``C = max_p I(X; Y)`` in the units of ``base``.
        input_distribution: the capacity-achieving input distribution ``p*(x)``, shape ``(m,)``.
        iterations: Blahut-Arimoto iterations run.
        gap: final width of the bracket ``upper - lower`` on ``C`` (units of ``base``); the true
            capacity lies within ``gap`` of ``capacity``.
        converged: ``gap <= tol`` was reached before ``max_iter``.
    """

    capacity: float
    input_distribution: np.ndarray
    iterations: int
    gap: float
    converged: bool


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _log_base(base: Base) -> float:
    """Natural log of ``base`` (the divisor that turns nats into ``base`` units)."""
    if isinstance(base, str):
        key = base.strip().lower()
        if key not in _NAMED_BASES:
            raise ValueError(
                f"unknown base {base!r}; use 'bits', 'nats' or a number > 0 and != 1 "
                "(e.g. 2, math.e, 10)"
            )
        return math.log(_NAMED_BASES[key])
    if isinstance(base, bool) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"base must be a number > 0 and != 1 or 'bits'/'nats', got {type(base).__name__}"
        )
    b = float(base)
    if not math.isfinite(b) or b <= 0.0 or b == 1.0:
        raise ValueError(f"base must be finite, > 0 and != 1 (e.g. 2, math.e, 10), got {base!r}")
    return math.log(b)


def _to_numpy(a: ArrayLike, name: str) -> np.ndarray:
    """Convert a tensor / array / list to a NumPy array without copying when possible."""
    if hasattr(a, "detach") and hasattr(a, "cpu") and hasattr(a, "numpy"):  # torch.Tensor
        t = a.detach().cpu()
        if t.is_floating_point():  # also covers bfloat16/float16, which NumPy may not hold
            t = t.double()
        a = t.numpy()
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name} could not be converted to an array ({exc}); pass a rectangular "
            "NumPy array, torch tensor or nested list"
        ) from exc


def _as_float_array(a: ArrayLike, name: str) -> np.ndarray:
    """Finite, non-empty float64 array (any shape but scalar)."""
    arr = _to_numpy(a, name)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 0:
        raise ValueError(
            f"{name} must be an array of probabilities, got a scalar; wrap it in a list"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one probability")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or fix them first")
    return arr


def _check_nonneg(arr: np.ndarray, name: str, what: str = "probabilities") -> None:
    if np.any(arr < 0):
        i = np.unravel_index(int(np.argmin(arr)), arr.shape)
        raise ValueError(
            f"{name} has a negative entry {arr[i]:.6g} at index {tuple(int(j) for j in i)}; "
            f"{what} must be >= 0"
        )


def _as_distribution(p: ArrayLike, name: str, atol: float, ndim: int | None = None) -> np.ndarray:
    """Validate a probability table (any shape, or exactly ``ndim`` dims) summing to 1."""
    arr = _as_float_array(p, name)
    if ndim is not None and arr.ndim != ndim:
        kind = {1: "a 1-D vector", 2: "a 2-D table (rows x, columns y)"}.get(ndim, f"{ndim}-D")
        raise ValueError(f"{name} must be {kind}, got shape {arr.shape}")
    _check_nonneg(arr, name)
    total = float(arr.sum())
    if not abs(total - 1.0) <= atol:
        raise ValueError(
            f"{name} sums to {total:.10g}, not 1 (atol={atol:g}); normalise it "
            f"(p / p.sum()) or pass a larger atol"
        )
    return arr / total


def _as_channel(channel: ArrayLike, atol: float, name: str = "channel") -> np.ndarray:
    """Validate a channel matrix W[x, y] = P(y | x) whose rows each sum to 1."""
    w = _as_float_array(channel, name)
    if w.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D matrix W[x, y] = P(y|x) (rows = inputs), got shape {w.shape}"
        )
    _check_nonneg(w, name)
    rows = w.sum(axis=1)
    bad = np.flatnonzero(np.abs(rows - 1.0) > atol)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} row {i} sums to {rows[i]:.10g}, not 1 (atol={atol:g}); every row of "
            f"P(y|x) must sum to 1: normalise with W / W.sum(axis=1, keepdims=True) "
            f"or pass a larger atol"
        )
    return w / rows[:, None]


def _check_atol(atol: float) -> None:
    if not (isinstance(atol, (int, float, np.floating)) and math.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")


# --------------------------------------------------------------------------------------------
# Kernels (nats, validated inputs)
# --------------------------------------------------------------------------------------------


def _entropy_nats(p: np.ndarray) -> float:
    """-sum p log p with 0 log 0 = 0."""
    nz = p[p > 0]
    return max(0.0, float(-np.sum(nz * np.log(nz))))


def _kl_nats(p: np.ndarray, q: np.ndarray) -> float:
    """sum p log(p / q) over p > 0; +inf if q = 0 somewhere p > 0."""
    mask = p > 0
    pm, qm = p[mask], q[mask]
    if np.any(qm <= 0):
        return math.inf
    return max(0.0, float(np.sum(pm * (np.log(pm) - np.log(qm)))))


def _mi_nats(pxy: np.ndarray) -> float:
    """I(X;Y) = KL(p(x,y) || p(x) p(y)) for a normalised 2-D table."""
    px = pxy.sum(axis=1)
    py = pxy.sum(axis=0)
    i, j = np.nonzero(pxy > 0)
    pij = pxy[i, j]
    return max(0.0, float(np.sum(pij * (np.log(pij) - np.log(px[i]) - np.log(py[j])))))


# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------


def entropy(p: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL) -> float:
    """Shannon entropy ``H(X) = -sum_x p(x) log p(x)`` of a probability table.

    Shannon (1948), "A Mathematical Theory of Communication"; Cover & Thomas (2006), eq. 2.1.
    ``0 log 0 = 0``. ``p`` may have any shape: a 2-D joint table gives the joint entropy.

    Args:
        p: probabilities, non-negative, summing to 1 within ``atol``.
        base: logarithm base of the result (default nats; ``2``/``"bits"`` for bits).
        atol: tolerance on ``|sum(p) - 1|``.

    Returns:
        ``H(X)`` in units of ``base``; ``0 <= H <= log(number of entries)``.

    >>> round(entropy([0.5, 0.5], base=2), 12)
    1.0
    """
    _check_atol(atol)
    lb = _log_base(base)
    return _entropy_nats(_as_distribution(p, "p", atol)) / lb


def joint_entropy(p_xy: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL) -> float:
    """Joint entropy ``H(X, Y) = -sum_{x,y} p(x,y) log p(x,y)`` of a joint table.

    Cover & Thomas (2006), eq. 2.8. ``p_xy`` must be at least 2-D (one axis per variable; more
    axes give ``H(X, Y, Z, ...)``) and sum to 1 within ``atol``. Units of ``base`` (default nats).
    """
    _check_atol(atol)
    lb = _log_base(base)
    arr = _as_distribution(p_xy, "p_xy", atol)
    if arr.ndim < 2:
        raise ValueError(
            f"p_xy must be a joint table with one axis per variable (>= 2-D), got shape "
            f"{arr.shape}; use entropy() for a single variable"
        )
    return _entropy_nats(arr) / lb


def conditional_entropy(p_xy: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL) -> float:
    """Conditional entropy ``H(X | Y) = -sum_{x,y} p(x,y) log p(x | y) = H(X, Y) - H(Y)``.

    Cover & Thomas (2006), eq. 2.10 and the chain rule (Theorem 2.2.1). X is along the rows
    (axis 0) and Y along the columns (axis 1) of ``p_xy``; for ``H(Y | X)`` pass ``p_xy.T``.
    Units of ``base`` (default nats). ``0 <= H(X|Y) <= H(X)``.
    """
    _check_atol(atol)
    lb = _log_base(base)
    pxy = _as_distribution(p_xy, "p_xy", atol, ndim=2)
    py = pxy.sum(axis=0)
    i, j = np.nonzero(pxy > 0)
    pij = pxy[i, j]
    h = float(-np.sum(pij * (np.log(pij) - np.log(py[j]))))
    return max(0.0, h) / lb


def mutual_information(p_xy: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL) -> float:
    """Mutual information ``I(X; Y) = sum_{x,y} p(x,y) log[p(x,y) / (p(x) p(y))]`` of a joint table.

    Shannon (1948); Cover & Thomas (2006), eq. 2.28. Equals ``KL(p(x,y) || p(x) p(y))`` and
    ``H(X) + H(Y) - H(X, Y)``; computed in the KL form over the non-zero cells, so it is never
    negative. X is along the rows, Y along the columns of ``p_xy``; ``I`` is symmetric.
    Units of ``base`` (default nats). ``0 <= I <= min(H(X), H(Y))``.

    >>> round(mutual_information([[0.5, 0.0], [0.0, 0.5]], base=2), 12)  # ideal channel
    1.0
    """
    _check_atol(atol)
    lb = _log_base(base)
    return _mi_nats(_as_distribution(p_xy, "p_xy", atol, ndim=2)) / lb


def mutual_information_channel(
    p_x: ArrayLike, channel: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL
) -> float:
    """Mutual information ``I(X; Y)`` of an input distribution sent through a channel.

    ``p(x, y) = p(x) W[x, y]`` with ``W[x, y] = P(y | x)`` (rows = inputs, each summing to 1), and
    ``I = sum_{x,y} p(x) W[x,y] log[W[x,y] / p(y)]``, ``p(y) = sum_x p(x) W[x,y]``
    (Cover & Thomas 2006, ch. 7). Units of ``base`` (default nats).

    Args:
        p_x: input distribution, length ``m``.
        channel: ``(m, n)`` transition matrix; ``len(p_x)`` must equal the number of rows.
        base: logarithm base of the result.
        atol: tolerance on ``|sum(p_x) - 1|`` and on each row sum of ``channel``.
    """
    _check_atol(atol)
    lb = _log_base(base)
    px = _as_distribution(p_x, "p_x", atol, ndim=1)
    w = _as_channel(channel, atol)
    if px.shape[0] != w.shape[0]:
        raise ValueError(
            f"p_x has {px.shape[0]} entries but channel has {w.shape[0]} rows; the channel needs "
            f"one row P(.|x) per input symbol x (rows = inputs, columns = outputs)"
        )
    return _mi_nats(px[:, None] * w) / lb


def kl_divergence(
    p: ArrayLike, q: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL
) -> float:
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i log(p_i / q_i)``.

    Kullback & Leibler (1951); Cover & Thomas (2006), eq. 2.26. Terms with ``p_i = 0`` contribute
    0. Returns ``+inf`` (not an error) when ``q_i = 0`` for some ``p_i > 0``: ``p`` is then not
    absolutely continuous with respect to ``q``. ``KL >= 0`` with equality iff ``p == q``; not
    symmetric. ``p`` and ``q`` must have the same shape. Units of ``base`` (default nats).
    """
    pa, qa = _two_distributions(p, q, "KL(p || q)", atol)
    return _kl_nats(pa, qa) / _log_base(base)


def _two_distributions(p: ArrayLike, q: ArrayLike, what: str, atol: float):
    """``p`` and ``q`` as distributions over the same outcomes (a ValueError otherwise)."""
    _check_atol(atol)
    pa = _as_distribution(p, "p", atol)
    qa = _as_distribution(q, "q", atol)
    if pa.shape != qa.shape:
        raise ValueError(
            f"p has shape {pa.shape} but q has shape {qa.shape}; {what} needs two "
            f"distributions over the same outcomes (same shape)"
        )
    return pa, qa


def js_divergence(
    p: ArrayLike, q: ArrayLike, base: Base = math.e, atol: float = _DEFAULT_ATOL
) -> float:
    """Jensen-Shannon divergence ``JS(p, q) = KL(p||m) / 2 + KL(q||m) / 2``, ``m = (p + q) / 2``.

    Lin (1991), "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1).
    Symmetric, always finite, ``0 <= JS <= log 2`` (1 bit), zero iff ``p == q``; its square root
    is a metric. ``p`` and ``q`` must have the same shape. Units of ``base`` (default nats).
    This is the divergence itself, not its square root (scipy's ``jensenshannon`` distance).
    """
    pa, qa = _two_distributions(p, q, "JS(p, q)", atol)
    m = 0.5 * (pa + qa)
    js = 0.5 * _kl_nats(pa, m) + 0.5 * _kl_nats(qa, m)
    return min(max(0.0, js), math.log(2.0)) / _log_base(base)


# --------------------------------------------------------------------------------------------
# Channel capacity
# --------------------------------------------------------------------------------------------


def _row_divergences(w: np.ndarray, log_w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """D_x = KL(W[x, :] || q) for every row, with 0 log 0 = 0 (nats)."""
    # Where W = 0 the term is 0 (masked below; 0 * inf gives NaN first, hence the errstate).
    # q(y) > 0 wherever some W[x, y] > 0, since every iterate r(x) is positive.
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q = np.log(q)
        terms = np.where(w > 0, w * (log_w - log_q[None, :]), 0.0)
    return terms.sum(axis=1)


def channel_capacity(
    channel: ArrayLike,
    base: Base = math.e,
    tol: float = 1e-9,
    max_iter: int = 10_000,
    atol: float = _DEFAULT_ATOL,
) -> Capacity:
    """Capacity ``C = max_{p(x)} I(X; Y)`` of a discrete memoryless channel by Blahut-Arimoto.

    Blahut (1972), "Computation of channel capacity and rate-distortion functions", IEEE Trans.
    Inf. Theory 18(4); Arimoto (1972), same journal 18(1); Cover & Thomas (2006), sec. 10.8.

    With ``W[x, y] = P(y | x)``, start from the uniform ``r(x)`` and iterate
    ``q(y) = sum_x r(x) W[x,y]``, ``D_x = KL(W[x,:] || q)``, ``r(x) <- r(x) exp(D_x) / Z``.
    Every iterate brackets the capacity (Blahut 1972, Theorem 2):
    ``log sum_x r(x) exp(D_x) <= C <= max_x D_x``; iteration stops when the bracket is narrower
    than ``tol``. Zero entries of ``W`` (including all-zero output columns) are handled with
    ``0 log 0 = 0``. Each iteration is a few vectorised ``(m, n)`` array operations.

    Args:
        channel: ``(m, n)`` matrix, rows = inputs, columns = outputs, each row summing to 1.
        base: logarithm base of the capacity (default nats; ``2``/``"bits"`` for bits).
        tol: stop when ``upper - lower <= tol`` (in units of ``base``).
        max_iter: maximum number of iterations (``Capacity.converged`` is False if reached).
        atol: tolerance on each row sum of ``channel``.

    Returns:
        :class:`Capacity` ``(capacity, input_distribution, iterations, gap, converged)``, with
        ``capacity`` the lower bound of the final bracket (the information rate achieved by
        ``input_distribution`` or better) in units of ``base``.

    >>> c = channel_capacity([[1.0, 0.0], [0.0, 1.0]], base=2)  # noiseless binary channel
    >>> round(c.capacity, 9), c.input_distribution.tolist()
    (1.0, [0.5, 0.5])
    """
    _check_atol(atol)
    lb = _log_base(base)
    if not (isinstance(tol, (int, float, np.floating)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    w = _as_channel(channel, atol)
    m = w.shape[0]
    log_w = np.log(np.where(w > 0, w, 1.0))
    tol_nats = tol * lb
    r = np.full(m, 1.0 / m)
    lower = upper = 0.0
    it = 0
    converged = False
    while it < max_iter:
        it += 1
        d = _row_divergences(w, log_w, r @ w)
        d_max = float(d.max())
        # lower = log sum r exp(D), computed stably around max D.
        e = r * np.exp(d - d_max)
        z = float(e.sum())
        lower = d_max + math.log(z)
        upper = d_max
        r = e / z
        if upper - lower <= tol_nats:
            converged = True
            break
    lower = max(0.0, min(lower, upper))
    return Capacity(
        capacity=lower / lb,
        input_distribution=r,
        iterations=it,
        gap=max(0.0, upper - lower) / lb,
        converged=converged,
    )


# --------------------------------------------------------------------------------------------
# Plug-in estimates from counts and samples
# --------------------------------------------------------------------------------------------


def _as_counts(counts: ArrayLike, name: str) -> np.ndarray:
    arr = _as_float_array(counts, name)
    _check_nonneg(arr, name, what="counts")
    if not arr.sum() > 0:
        raise ValueError(f"{name} are all zero; pass at least one observation")
    return arr


def _entropy_counts_nats(n: np.ndarray, miller_madow: bool) -> float:
    """Plug-in entropy (nats) of a vector of counts, optionally Miller-Madow corrected."""
    nz = n[n > 0]
    total = float(nz.sum())
    h = max(0.0, float(math.log(total) - np.sum(nz * np.log(nz)) / total))
    if miller_madow:
        h += (nz.size - 1) / (2.0 * total)
    return h


def _codes(x: ArrayLike, name: str, bins: int | None) -> np.ndarray:
    """Map samples (one per row; 2-D rows are symbols) to integer codes 0..K-1."""
    arr = _to_numpy(x, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a sequence of samples, got a scalar")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one sample")
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first")
    if bins is not None:
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{name} must be numeric to be binned, got dtype {arr.dtype}")
        cols = arr.reshape(arr.shape[0], -1).astype(np.float64)
        binned = np.empty(cols.shape, dtype=np.int64)
        for k in range(cols.shape[1]):  # one pass per coordinate, vectorised over samples
            edges = np.histogram_bin_edges(cols[:, k], bins=bins)
            binned[:, k] = np.searchsorted(edges[1:-1], cols[:, k], side="right")
        arr = binned if binned.shape[1] > 1 else binned[:, 0]
    try:
        if arr.ndim == 1:
            _, inv = np.unique(arr, return_inverse=True)
        else:
            _, inv = np.unique(arr, axis=0, return_inverse=True)
    except TypeError as exc:
        raise ValueError(
            f"{name} could not be sorted into symbols ({exc}); pass numbers or strings of one type"
        ) from exc
    return np.asarray(inv, dtype=np.int64).reshape(-1)


def _check_bins(bins: int | None) -> None:
    if bins is not None and (
        isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1
    ):
        raise ValueError(
            f"bins must be None (samples are symbols) or an integer >= 1, got {bins!r}"
        )


def entropy_from_counts(
    counts: ArrayLike, base: Base = math.e, miller_madow: bool = False
) -> float:
    """Plug-in entropy ``H = -sum_k (n_k / N) log(n_k / N)`` from a histogram of counts.

    The maximum-likelihood ("plug-in") estimate (Cover & Thomas 2006, ch. 2, applied to the
    empirical distribution). With ``miller_madow=True`` adds the Miller-Madow correction
    ``(K - 1) / (2N)`` nats, ``K`` = number of non-zero bins, ``N = sum n_k`` (Miller 1955,
    "Note on the bias of information estimates"), which removes the first-order bias.
    ``counts`` may have any shape (a joint histogram gives the joint entropy) and need not be
    integers. Units of ``base`` (default nats).
    """
    lb = _log_base(base)
    n = _as_counts(counts, "counts").reshape(-1)
    return _entropy_counts_nats(n, miller_madow) / lb


def entropy_from_samples(
    x: ArrayLike, base: Base = math.e, miller_madow: bool = False, bins: int | None = None
) -> float:
    """Plug-in entropy of the empirical distribution of samples ``x``.

    Each distinct value (each distinct row when ``x`` is 2-D, shape ``(N, d)``) is a symbol;
    counts come from ``np.unique``. ``bins=k`` first discretises every coordinate into ``k``
    equal-width bins (``np.histogram_bin_edges``), for continuous data. ``miller_madow=True`` adds
    ``(K - 1) / (2N)`` nats (Miller 1955); see :func:`entropy_from_counts`. Units of ``base``.

    >>> round(entropy_from_samples([0, 1, 0, 1], base=2), 12)
    1.0
    """
    lb = _log_base(base)
    _check_bins(bins)
    codes = _codes(x, "x", bins)
    return _entropy_counts_nats(np.bincount(codes).astype(np.float64), miller_madow) / lb


def _mi_from_codes_nats(
    cx: np.ndarray, cy: np.ndarray, weights: np.ndarray | None, miller_madow: bool
) -> float:
    """Plug-in I(X;Y) from paired integer codes (optionally weighted cells), in nats."""
    nx = np.bincount(cx, weights=weights)
    ny = np.bincount(cy, weights=weights)
    # Sparse joint histogram: only occupied cells, so memory is O(N) whatever Kx * Ky is.
    joint = cx * np.int64(ny.size) + cy
    cells, inv = np.unique(joint, return_inverse=True)
    nxy = np.bincount(inv.reshape(-1), weights=weights)
    keep = nxy > 0
    cells, nxy = cells[keep], nxy[keep]
    i, j = cells // ny.size, cells % ny.size
    total = float(nxy.sum())
    mi = float(np.sum(nxy * (np.log(nxy) + math.log(total) - np.log(nx[i]) - np.log(ny[j]))))
    mi = max(0.0, mi / total)
    if miller_madow:
        kx, ky, kxy = int(np.count_nonzero(nx)), int(np.count_nonzero(ny)), int(nxy.size)
        mi += ((kx - 1) + (ky - 1) - (kxy - 1)) / (2.0 * total)
    return mi


def mutual_information_from_counts(
    counts_xy: ArrayLike, base: Base = math.e, miller_madow: bool = False
) -> float:
    """Plug-in ``I(X; Y)`` from a 2-D contingency table of counts (rows x, columns y).

    ``I = sum_{x,y} (n_xy / N) log[N n_xy / (n_x n_y)] = H(X) + H(Y) - H(X, Y)`` of the empirical
    distribution (Cover & Thomas 2006, eq. 2.28). With ``miller_madow=True`` each entropy term
    gets its Miller (1955) correction, i.e. ``I`` gains ``(K_x + K_y - K_xy - 1) / (2N)`` nats
    (``K`` = occupied bins); the corrected value can be slightly negative. Units of ``base``.
    """
    lb = _log_base(base)
    n = _as_counts(counts_xy, "counts_xy")
    if n.ndim != 2:
        raise ValueError(f"counts_xy must be a 2-D table (rows x, columns y), got shape {n.shape}")
    i, j = np.nonzero(n > 0)
    return _mi_from_codes_nats(i.astype(np.int64), j.astype(np.int64), n[i, j], miller_madow) / lb


def mutual_information_from_samples(
    x: ArrayLike,
    y: ArrayLike,
    base: Base = math.e,
    miller_madow: bool = False,
    bins: int | None = None,
) -> float:
    """Plug-in ``I(X; Y)`` of the empirical joint distribution of paired samples.

    Row ``i`` of ``x`` goes with row ``i`` of ``y``. Each distinct value (or row, for 2-D input)
    is a symbol; counts come from ``np.unique`` / ``np.bincount`` with a sparse joint histogram,
    so memory is ``O(N)``. ``bins=k`` first discretises every coordinate of ``x`` and ``y`` into
    ``k`` equal-width bins. ``I = H(X) + H(Y) - H(X, Y)`` (Cover & Thomas 2006, eq. 2.28), equal
    to ``sklearn.metrics.mutual_info_score(x, y)`` in nats. ``miller_madow=True`` applies the
    Miller (1955) correction to each entropy term (see :func:`mutual_information_from_counts`).
    Units of ``base`` (default nats).
    """
    lb = _log_base(base)
    _check_bins(bins)
    cx = _codes(x, "x", bins)
    cy = _codes(y, "y", bins)
    if cx.shape[0] != cy.shape[0]:
        raise ValueError(
            f"x has {cx.shape[0]} samples but y has {cy.shape[0]}; pass paired samples "
            f"(the same number of rows)"
        )
    return _mi_from_codes_nats(cx, cy, None, miller_madow) / lb
