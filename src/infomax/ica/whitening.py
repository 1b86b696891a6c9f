"""PCA whitening, the first step of every infomax ICA fit.

The observations ``X`` (samples x channels) are centred and projected on the eigenvectors of
their covariance ``C = E diag(lambda) E^T``, each scaled by ``lambda^{-1/2}``, keeping the
``n_components`` largest: ``Z = (X - mean) K^T`` with ``K = diag(lambda_k^{-1/2}) E_k^T``, so
that ``cov(Z) = I``. The ICA unmixing of ``X`` is then ``W K`` for the unmixing ``W`` of ``Z``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["RANK_RTOL", "Whitening", "pca_whitening"]

#: an eigenvalue of the covariance below ``RANK_RTOL`` times the largest counts as zero (a
#: channel standard deviation 1e-5 of the largest along that direction)
RANK_RTOL = 1e-10


class Whitening(NamedTuple):
    """``mean`` (p,), ``whitener`` K (k, p), ``dewhitener`` K^+ (p, k), ``eigenvalues`` of the
    covariance in decreasing order (p,), and the data's numerical ``rank``; float64."""

    mean: torch.Tensor
    whitener: torch.Tensor
    dewhitener: torch.Tensor
    eigenvalues: torch.Tensor
    rank: int


def pca_whitening(x: torch.Tensor, n_components: int | None = None) -> Whitening:
    """Fit PCA whitening to ``x`` (samples x channels, float64) keeping ``n_components``
    directions (all channels when ``None``).

    Raises:
        ValueError: fewer samples than channels, constant data, ``n_components`` out of range or
            larger than the rank, or rank-deficient data without ``n_components`` (the message
            gives the rank to use).
    """
    n_samples, p = x.shape
    if n_samples <= p:
        raise ValueError(
            f"ICA needs more samples (rows) than channels (columns); got {n_samples} samples "
            f"of {p} channels. Rows must be samples: transpose the array if it is channels x "
            "samples"
        )
    if n_components is not None and not 1 <= n_components <= p:
        raise ValueError(
            f"n_components must be between 1 and {p} (the channels), got {n_components}"
        )
    mean = x.mean(dim=0)
    xc = x - mean
    cov = (xc.T @ xc) / n_samples
    lam, vec = torch.linalg.eigh(cov)
    lam, vec = lam.flip(0), vec.flip(1)
    if not float(lam[0]) > 0:
        raise ValueError("the data are constant (zero variance); there is nothing to separate")
    rank = int((lam > lam[0] * RANK_RTOL).sum())
    k = p if n_components is None else n_components
    if k > rank:
        hint = (
            f"pass n_components={rank} (--n-components {rank})"
            if n_components is None
            else f"use n_components <= {rank}"
        )
        raise ValueError(
            f"the data have rank {rank} but {k} components were asked for: some channels are "
            f"linear combinations of others (a duplicated channel, an average reference); {hint}"
        )
    lam_k, vec_k = lam[:k], vec[:, :k]
    whitener = vec_k.T / lam_k.sqrt()[:, None]
    dewhitener = vec_k * lam_k.sqrt()[None, :]
    return Whitening(mean, whitener, dewhitener, lam, rank)
