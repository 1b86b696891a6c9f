"""Mutual information with discrete and mixed variables.

- :func:`detect_discrete`: which columns hold a few integer values (counts, labels, codes).
- :func:`plugin_mi` / :func:`plugin_cmi`: every variable discrete: the plug-in (empirical)
  estimate with the Miller-Madow correction on each entropy term (Miller 1955), computed by
  :mod:`infomax.info` (``mutual_information_from_samples``, ``entropy_from_samples``).
- :func:`ross_mi`: one variable discrete, the other continuous (Ross 2014, "Mutual information
  between discrete and continuous data sets", PLoS ONE 9, e87357).
- :func:`mixed_ksg_mi` / :func:`mixed_ksg_cmi`: any mixture of discrete and continuous columns,
  ties included (Gao, Kannan, Oh & Viswanath 2017, "Estimating mutual information for
  discrete-continuous mixtures", NeurIPS; the conditional form of Mesner & Shalizi 2021,
  "Conditional mutual information estimation for mixed, discrete and continuous data", IEEE
  Trans. Inf. Theory 67).

The kNN forms take already preprocessed tensors (continuous columns rank-transformed, discrete
columns as category codes spread far apart, see :func:`categorical_codes`), so that two samples
are neighbours in a discrete column only when they share its value. Results in nats.
"""

from __future__ import annotations

import numpy as np
import torch

from infomax import info
from infomax.estimators.neighbors import count_within, knn

__all__ = [
    "MAX_LEVELS",
    "categorical_codes",
    "detect_discrete",
    "mixed_ksg_cmi",
    "mixed_ksg_mi",
    "plugin_cmi",
    "plugin_mi",
    "ross_mi",
]

#: a column with more distinct integer values than this is treated as continuous
MAX_LEVELS = 256
#: distance between two categories in the max-norm spaces of the mixed kNN estimators
_CATEGORY_GAP = 1e6


def detect_discrete(a: np.ndarray) -> np.ndarray:
    """Per column of ``a`` (N, D): True when it holds only integers, at most
    ``min(MAX_LEVELS, max(2, N // 10))`` distinct values (so each value has ten samples on
    average). Continuous columns rounded to integers with many levels stay continuous."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    limit = min(MAX_LEVELS, max(2, n // 10))
    out = np.zeros(a.shape[1], dtype=bool)
    for j in range(a.shape[1]):  # one vectorised pass per column
        col = a[:, j]
        if np.all(col == np.round(col)):
            out[j] = np.unique(col).size <= limit
    return out


def categorical_codes(a: np.ndarray) -> torch.Tensor:
    """Discrete columns as category codes ``0, G, 2G, ...`` with a gap ``G`` of 1e6: within any
    kNN radius of the mixed estimators two samples match in such a column only if equal."""
    a = np.asarray(a)
    codes = np.empty(a.shape, dtype=np.float64)
    for j in range(a.shape[1]):
        codes[:, j] = np.unique(a[:, j], return_inverse=True)[1].reshape(-1)
    return torch.from_numpy(codes * _CATEGORY_GAP)


def plugin_mi(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in I(X; Y) of discrete samples with the Miller-Madow correction (rows are symbols)."""
    return info.mutual_information_from_samples(x, y, miller_madow=True)


def plugin_cmi(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Plug-in ``I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(Z) - H(X,Y,Z)``, each Miller-Madow corrected."""

    def h(*parts: np.ndarray) -> float:
        return info.entropy_from_samples(np.hstack(parts), miller_madow=True)

    return h(x, z) + h(y, z) - h(z) - h(x, y, z)


def _labels(a: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(a), axis=0, return_inverse=True)[1].reshape(-1)


def ross_mi(labels: np.ndarray, y: torch.Tensor, k: int = 3, backend: str = "auto") -> float:
    """Ross (2014) I(X; Y) for discrete ``labels`` (N,) or (N, d) and continuous ``y`` (N, d_y).

    For sample i with label x_i: ``N_xi`` samples share the label, ``d_i`` is the max-norm
    distance in Y to its k-th nearest neighbour among them (``k`` reduced to ``N_xi - 1`` for
    rare labels; samples whose label occurs once are left out, as in the paper's code and
    scikit-learn), and ``m_i`` counts the samples of the whole set within ``d_i`` (the k-th
    neighbour included, i itself not). Then (eq. 2)

        I = psi(N) - <psi(N_xi)> + <psi(k_i)> - <psi(m_i)>.
    """
    lab = _labels(labels)
    y = y.to(torch.float64)
    n = lab.shape[0]
    radius = torch.zeros(n, dtype=torch.float64, device=y.device)
    k_i = np.zeros(n)
    n_x = np.bincount(lab)[lab].astype(np.float64)
    for value in np.unique(lab):  # one kNN search per label, vectorised inside
        idx = np.flatnonzero(lab == value)
        if idx.size < 2:
            continue
        kk = min(k, idx.size - 1)
        dist, _ = knn([y[torch.from_numpy(idx).to(y.device)]], kk, backend=backend)
        radius[torch.from_numpy(idx).to(y.device)] = dist[:, kk - 1]
        k_i[idx] = kk
    keep = n_x > 1
    if keep.sum() < 2:
        raise ValueError("every label occurs once: the discrete variable carries no repeated value")
    m = count_within([y], radius, strict=False, backend=backend).cpu().numpy() - 1.0
    keep_t = np.flatnonzero(keep)
    n_keep = keep_t.size
    dg = _digamma
    m_safe = np.maximum(m[keep_t], 1.0)
    return float(dg(n_keep) - dg(n_x[keep_t]).mean() + dg(k_i[keep_t]).mean() - dg(m_safe).mean())


def _digamma(v):
    return torch.special.digamma(torch.as_tensor(v, dtype=torch.float64)).numpy()


def _tie_aware_radius(
    blocks: list[torch.Tensor], k: int, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gao et al.'s ``rho_i`` (k-th neighbour distance in the joint space) and ``k_i`` (``k``,
    or the number of exact duplicates of sample i when there are more than ``k``)."""
    dist, _ = knn(blocks, k, backend=backend)
    rho = dist[:, k - 1]
    dup = count_within(blocks, torch.zeros_like(rho), strict=False, backend=backend) - 1.0
    k_i = torch.where(rho == 0, dup, torch.full_like(rho, float(k)))
    return rho, k_i


def mixed_ksg_mi(x: torch.Tensor, y: torch.Tensor, k: int = 3, backend: str = "auto") -> float:
    """Mixed KSG I(X; Y) (Gao et al. 2017) on preprocessed ``x`` (N, d_x), ``y`` (N, d_y).

    With ``rho_i`` and ``k_i`` from the joint space (max-norm) and ``n_x(i)``, ``n_y(i)`` the
    numbers of ``j != i`` within ``rho_i`` (inclusive) in X and in Y:

        I = < psi(k_i) + psi(N) - psi(n_x(i)) - psi(n_y(i)) >.

    Gao et al.'s Algorithm 1 writes ``log N - log(n_x + 1) - log(n_y + 1)``; the digamma form
    used here is the same estimator's finite-sample version that equals Ross's (2014) when X is
    discrete and Y continuous and the plug-in estimate's kNN analogue when both are discrete. The
    log form is biased there by about ``log(k + 1) - psi(k)`` (0.35 nats measured at k = 3 on a
    two-class Gaussian mixture; ``tests/test_discrete.py``).
    """
    n = x.shape[0]
    rho, k_i = _tie_aware_radius([x, y], k, backend)
    nx = count_within([x], rho, strict=False, backend=backend) - 1.0  # i itself left out
    ny = count_within([y], rho, strict=False, backend=backend) - 1.0
    dg = torch.special.digamma
    return float((dg(k_i) + float(_digamma(n)) - dg(nx) - dg(ny)).mean())


def mixed_ksg_cmi(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, k: int = 3, backend: str = "auto"
) -> float:
    """Mixed conditional I(X; Y | Z) (Mesner & Shalizi 2021) on preprocessed tensors.

        I = < psi(k_i) - psi(n_xz(i)) - psi(n_yz(i)) + psi(n_z(i)) >

    with ``rho_i``, ``k_i`` as in :func:`mixed_ksg_mi` (joint space of X, Y, Z) and the counts
    of ``j != i`` within ``rho_i`` (inclusive) in the XZ, YZ and Z spaces.
    """
    rho, k_i = _tie_aware_radius([x, y, z], k, backend)
    dg = torch.special.digamma

    def count(blocks: list[torch.Tensor]) -> torch.Tensor:
        return count_within(blocks, rho, strict=False, backend=backend) - 1.0

    return float((dg(k_i) - dg(count([x, z])) - dg(count([y, z])) + dg(count([z]))).mean())
