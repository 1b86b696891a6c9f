"""The formulas of infomax ICA, each a pure function of tensors.

Model: whitened observations ``Z`` (components x samples) are an unknown linear mixture of
independent sources; the unmixing ``W`` (square) gives estimates ``Y = W Z``. Infomax (Bell &
Sejnowski 1995, "An information-maximization approach to blind separation and blind
deconvolution") maximises the output entropy of ``g(W Z)``, which is maximum likelihood with the
source density ``g'`` (Cardoso 1997). Per sample the negative log-likelihood is

    L(W) = -log|det W| + sum_i G_i(y_i),      G_i = -log p_i (up to a constant),

with the score ``psi_i = G_i'``. The two density families used here are both of the form

    G(u) = a u^2 / 2 + (b / c) log cosh(c u),   psi(u) = a u + b tanh(c u),

- Bell & Sejnowski's logistic density ``p(u) = 1 / (4 cosh^2(u / 2))``: a = 0, b = 1, c = 1/2,
  so ``psi(u) = tanh(u / 2) = 2 logistic(u) - 1``;
- extended infomax (Lee, Girolami & Sejnowski 1999, "Independent component analysis using an
  extended infomax algorithm for mixed sub-Gaussian and super-Gaussian sources"): c = 1 and
  b = k_i, the sign of the component's excess kurtosis. Sub-Gaussian (k = -1): a = 1, the
  mixture ``(N(1, 1) + N(-1, 1)) / 2``, ``psi(u) = u - tanh(u)``. Super-Gaussian (k = +1):
  Lee et al.'s a = 1 (``p ~ N(0, 1) sech(u)``, ``psi(u) = u + tanh(u)``), or a = 0 (the
  heavier-tailed ``p = sech(u) / pi``, ``psi(u) = tanh(u)``, as in picard), the default here: it
  separates Laplace-like sources with a lower Amari distance (docs/infomax_principle.md).

The relative (natural) gradient (Amari, Cichocki & Yang 1996; Cardoso & Laheld 1996) is
``G = E[psi(Y) Y^T] - I``: the update ``W <- W - lr G W`` is the natural-gradient infomax rule
``W <- W + lr (I - E[psi(y) y^T]) W``. The approximate Hessian of Ablin, Cardoso & Gramfort
2018 ("Faster independent component analysis by preconditioning with Hessian approximations")
preconditions the quasi-Newton solver.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "SUPER_GAUSSIAN",
    "Density",
    "DensityStats",
    "amari_distance",
    "density",
    "DensityLoss",
    "density_loss",
    "density_stats",
    "excess_kurtosis",
    "hessian_approximation",
    "logcosh",
    "natural_gradient_update",
    "negative_log_likelihood",
    "precondition",
    "relative_gradient",
    "row_means",
]


class Density(NamedTuple):
    """The coefficients of ``G(u) = a u^2/2 + (b/c) log cosh(c u)`` per component.

    ``a`` and ``b`` are tensors of shape ``(n,)``; ``c`` is a float.
    """

    a: torch.Tensor
    b: torch.Tensor
    c: float


SUPER_GAUSSIAN = ("logcosh", "lee")


def density(signs: torch.Tensor, extended: bool, super_gaussian: str = "logcosh") -> Density:
    """The density of each component.

    Extended infomax (``signs``: +1 super-, -1 sub-Gaussian): sub-Gaussian components get Lee et
    al.'s ``G(u) = u^2/2 - log cosh u``; super-Gaussian ones ``G(u) = log cosh u`` (the density
    ``1 / (pi cosh u)``, Bell & Sejnowski's ``tanh`` nonlinearity; ``super_gaussian="logcosh"``)
    or Lee et al.'s ``u^2/2 + log cosh u`` (``"lee"``, the rule of EEGLAB and MNE-Python). Not
    extended: Bell & Sejnowski's logistic density for every component.
    """
    signs = signs.to(torch.float64)
    if not extended:
        return Density(torch.zeros_like(signs), torch.ones_like(signs), 0.5)
    if super_gaussian == "lee":
        return Density(torch.ones_like(signs), signs, 1.0)
    if super_gaussian == "logcosh":
        return Density((signs < 0).to(torch.float64), signs, 1.0)
    raise ValueError(f"super_gaussian must be one of {', '.join(SUPER_GAUSSIAN)}, got "
                     f"{super_gaussian!r}")  # fmt: skip


def logcosh(u: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """``log cosh(u)`` without overflow: ``|u| - log(1 + |tanh u|)`` (exact, as
    ``e^{-2|u|} = (1 - |t|) / (1 + |t|)``); pass ``t = tanh(u)`` when it is already known."""
    if t is None:
        t = torch.tanh(u)
    return u.abs() - torch.log1p(t.abs())


def excess_kurtosis(y: torch.Tensor) -> torch.Tensor:
    """Excess kurtosis ``E[y^4] / E[y^2]^2 - 3`` of each row of ``y`` (zero-mean rows):
    positive for super-Gaussian (Laplace: 3), negative for sub-Gaussian (uniform: -1.2)."""
    y2 = y * y
    m2 = y2.sum(dim=1).to(torch.float64)
    m4 = torch.linalg.vector_norm(y2, 2, dim=1).to(torch.float64).square()
    return m4 * y.shape[1] / m2.square() - 3.0


class DensityStats(NamedTuple):
    """Sample statistics of ``Y`` (n x T) under a density, all float64 except ``psi_y``.

    Attributes:
        data_loss: ``E[sum_i G_i(y_i)]``, a float64 scalar.
        psi_y: ``E[psi(Y) Y^T]``, (n, n).
        dpsi: ``E[psi'(y_i)]``, (n,).
        y2: ``E[y_i^2]``, (n,).
        dpsi_y2: ``E[psi'(y_i) y_i^2]``, (n,).
    """

    data_loss: torch.Tensor
    psi_y: torch.Tensor
    dpsi: torch.Tensor
    y2: torch.Tensor
    dpsi_y2: torch.Tensor


def _tanh(y: torch.Tensor, c: float) -> torch.Tensor:
    return torch.tanh(y * c) if c != 1.0 else torch.tanh(y)


def row_means(x: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """Row means of ``x`` (n x T) in float64, summed in float32 within chunks of ``chunk``
    samples and in float64 across them: as fast as a float32 sum, and accurate to about 1e-9
    (a plain float32 sum over 200,000 samples: 1e-7, too coarse for the line search)."""
    n, t_len = x.shape
    main = t_len - t_len % chunk
    total = x[:, :main].unflatten(1, (main // chunk, chunk)).sum(dim=2).to(torch.float64)
    total = total.sum(dim=1)
    if main < t_len:
        total = total + x[:, main:].to(torch.float64).sum(dim=1)
    return total / t_len


class DensityLoss(NamedTuple):
    """``data_loss``: ``E[sum_i G_i(y_i)]`` (float64 scalar); ``t``: ``tanh(c y)``;
    ``y2``: ``E[y_i^2]`` (float64, n)."""

    data_loss: torch.Tensor
    t: torch.Tensor
    y2: torch.Tensor


def density_loss(y: torch.Tensor, dens: Density) -> DensityLoss:
    """The data part of the loss of ``y`` (n x T), with the ``tanh`` and ``E[y^2]`` that
    :func:`density_stats` reuses (``log cosh`` through :func:`logcosh`'s identity, so one
    ``tanh`` serves the loss and the gradient)."""
    c = dens.c
    t = _tanh(y, c)
    u = y * y
    y2 = row_means(u)
    mean_abs = row_means(torch.abs(y, out=u))
    mean_log1p = row_means(torch.abs(t, out=u).log1p_())
    logcosh_mean = c * mean_abs - mean_log1p
    return DensityLoss((0.5 * dens.a * y2 + dens.b / c * logcosh_mean).sum(), t, y2)


def density_stats(y: torch.Tensor, dens: Density, loss: DensityLoss | None = None) -> DensityStats:
    """The loss, gradient and Hessian statistics of ``y`` (n x T) under ``dens``; pass the
    :func:`density_loss` of ``y`` when it is known."""
    if loss is None:
        loss = density_loss(y, dens)
    t, y2, n_samples = loss.t, loss.y2, y.shape[1]
    a, b = dens.a.to(y.dtype), dens.b.to(y.dtype)
    u = torch.addcmul(a[:, None] * y, b[:, None], t)  # psi(y)
    psi_y = (u @ y.T).to(torch.float64) / n_samples
    torch.mul(t, t, out=u)
    mt2 = u.sum(dim=1).to(torch.float64) / n_samples
    mt2y2 = u.mul_(y).mul_(y).sum(dim=1).to(torch.float64) / n_samples
    bc = dens.b * dens.c
    dpsi = dens.a + bc * (1.0 - mt2)
    dpsi_y2 = dens.a * y2 + bc * (y2 - mt2y2)
    return DensityStats(loss.data_loss, psi_y, dpsi, y2, dpsi_y2)


def negative_log_likelihood(w: torch.Tensor, data_loss: torch.Tensor) -> torch.Tensor:
    """The infomax / ICA loss per sample: ``-log|det W| + E[sum_i G_i(y_i)]`` (float64)."""
    return -torch.linalg.slogdet(w.to(torch.float64))[1] + data_loss


def relative_gradient(psi_y: torch.Tensor) -> torch.Tensor:
    """The relative gradient ``E[psi(Y) Y^T] - I`` of the loss at ``W``: the derivative of
    ``L((I + E) W)`` with respect to ``E`` at 0 (Cardoso & Laheld 1996)."""
    return psi_y - torch.eye(psi_y.shape[0], dtype=psi_y.dtype, device=psi_y.device)


def natural_gradient_update(w: torch.Tensor, y: torch.Tensor, dens: Density, lr: float):
    """One natural-gradient infomax step on the samples ``y = W z`` (n x b):
    ``W + lr (I - E[psi(y) y^T]) W`` (Bell & Sejnowski 1995 with Amari et al. 1996; with the
    extended density this is ``W + lr (I - K E[tanh(y) y^T] - E[y y^T]) W``)."""
    t = _tanh(y, dens.c)
    a, b = dens.a.to(y.dtype), dens.b.to(y.dtype)
    psi = a[:, None] * y + b[:, None] * t
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    return w + lr * (eye - (psi @ y.T).to(w.dtype) / y.shape[1]) @ w


def hessian_approximation(stats: DensityStats, lambda_min: float = 0.01):
    """Ablin et al. 2018's approximation H2 of the relative Hessian, regularised.

    Off the diagonal the Hessian couples only ``(i, j)`` with ``(j, i)`` through the 2 x 2 block
    ``[[h_ij, 1], [1, h_ji]]`` with ``h_ij = E[psi'(y_i)] E[y_j^2]``; on the diagonal it is
    ``E[psi'(y_i) y_i^2] + 1``. Blocks whose smallest eigenvalue is below ``lambda_min`` are
    shifted up to it, so that the preconditioned direction is one of descent.

    Returns:
        ``h`` (n, n): ``h[i, j] = h_ij`` off the diagonal, the diagonal term on it.
    """
    h = stats.dpsi[:, None] * stats.y2[None, :]
    diag = stats.dpsi_y2 + 1.0
    # smallest eigenvalue of [[h_ij, 1], [1, h_ji]]
    ht = h.T
    low = 0.5 * (h + ht - torch.sqrt((h - ht).square() + 4.0))
    h = h + (lambda_min - low).clamp(min=0.0)
    h.diagonal().copy_(diag.clamp(min=lambda_min))
    return h


def precondition(g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Solve the block-diagonal system ``H x = g`` of :func:`hessian_approximation`: for each
    pair ``x_ij = (h_ji g_ij - g_ji) / (h_ij h_ji - 1)``, and ``x_ii = g_ii / h_ii``."""
    ht = h.T
    x = (ht * g - g.T) / (h * ht - 1.0)
    x.diagonal().copy_(g.diagonal() / h.diagonal())
    return x


def amari_distance(w: torch.Tensor, a: torch.Tensor) -> float:
    """The Amari distance of the product ``P = W A`` from a scaled permutation matrix (Amari,
    Cichocki & Yang 1996), normalised as in python-picard:
    ``[s(P) + s(P^T)] / (2 n)`` with ``s(R) = sum_i (sum_j R_ij^2 / max_j R_ij^2 - 1)``.
    0 means perfect separation; it is invariant to permuting and scaling the sources.

    Shape:
        w: (n, p) unmixing; a: (p, n) mixing (NumPy arrays are accepted).
    """
    p = torch.as_tensor(w, dtype=torch.float64) @ torch.as_tensor(a, dtype=torch.float64)
    if p.shape[0] != p.shape[1]:
        raise ValueError(f"W A must be square, got shape {tuple(p.shape)}")
    r = p.square()

    def s(r: torch.Tensor) -> torch.Tensor:
        return (r.sum(dim=1) / r.amax(dim=1) - 1.0).sum()

    return float((s(r) + s(r.T)) / (2 * p.shape[0]))

