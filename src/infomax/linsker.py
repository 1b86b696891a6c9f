"""Linsker's noisy linear layer: the InfoMax principle in closed form.

Linsker (1988, "Self-organization in a perceptual network", IEEE Computer 21(3)) asks which
linear map ``W`` (outputs x inputs) keeps the most information about a Gaussian input
``x ~ N(0, C)`` when the outputs are noisy:

    y = W (x + nu) + eta,      nu ~ N(0, N_in) (input noise),  eta ~ N(0, N_out) (output noise).

Everything is Gaussian, so (Cover & Thomas, "Elements of Information Theory", 8.4 and 9.4)

    I(x; y) = h(y) - h(y | x)
            = 1/2 log det(W (C + N_in) W^T + N_out) - 1/2 log det(W N_in W^T + N_out),

a log-determinant ratio. Its gradient comes from autograd. Under a bound on the weights it has
the two regimes Linsker describes: at low noise the information is ``1/2 log det`` of the output
signal covariance, largest when the outputs are decorrelated (redundancy reduction); at high
noise it is about ``tr(W C W^T) / (2 sigma^2)``, largest when every output takes the direction
of highest variance, so the outputs become redundant. Under a total power bound and output noise
only, the optimum is water-filling over the input's principal components (the capacity of a
MIMO Gaussian channel, Cover & Thomas 9.4).

All functions take and return torch tensors (float64 recommended); noises are a variance
(scalar, the same on every unit) or a covariance matrix.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "CONSTRAINTS",
    "LinskerResult",
    "apply_constraint",
    "gaussian_channel_capacity",
    "gaussian_entropy",
    "linear_gaussian_mi",
    "local_mask",
    "maximize_linear_mi",
    "stationary_covariance",
    "total_power_optimum",
    "water_filling",
]

CONSTRAINTS = ("unit_norm", "total_power")


def _logdet_spd(a: torch.Tensor, what: str) -> torch.Tensor:
    """``log det`` of a symmetric positive-definite matrix through its Cholesky factor."""
    chol, info = torch.linalg.cholesky_ex(a)
    if bool(info.any()):
        raise ValueError(
            f"the {what} covariance is not positive definite, so I(x; y) is infinite or "
            "undefined; add output noise (output_noise > 0) or use full-rank noise covariances"
        )
    return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)


def _as_cov(noise, size: int, like: torch.Tensor) -> torch.Tensor:
    noise = torch.as_tensor(noise, dtype=like.dtype, device=like.device)
    if noise.ndim == 0:
        if float(noise) < 0:
            raise ValueError(f"a noise variance must be >= 0, got {float(noise)}")
        return noise * torch.eye(size, dtype=like.dtype, device=like.device)
    if noise.shape != (size, size):
        raise ValueError(f"a noise covariance must be a scalar or ({size}, {size}), got "
                         f"{tuple(noise.shape)}")  # fmt: skip
    return noise


def gaussian_entropy(cov: torch.Tensor) -> torch.Tensor:
    """Differential entropy in nats of ``N(mu, cov)``: ``1/2 log det(2 pi e cov)``
    (Cover & Thomas, Theorem 8.4.1). ``cov``: (..., d, d)."""
    d = cov.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + _logdet_spd(cov, "Gaussian"))


def linear_gaussian_mi(
    weights: torch.Tensor,
    input_cov: torch.Tensor,
    output_noise=1.0,
    input_noise=0.0,
) -> torch.Tensor:
    """``I(x; y)`` in nats for ``y = W (x + nu) + eta`` with ``x ~ N(0, C)`` (module docstring).

    Args:
        weights: ``W``, (m outputs, n inputs), or a batch (..., m, n).
        input_cov: ``C``, (n, n), symmetric positive semi-definite.
        output_noise: variance of each output's noise, or its (m, m) covariance.
        input_noise: variance of each input's noise, or its (n, n) covariance.

    Returns:
        A scalar (or batch) tensor; differentiable in ``weights`` and ``input_cov``.
    """
    m, n = weights.shape[-2:]
    if input_cov.shape[-2:] != (n, n):
        raise ValueError(f"input_cov must be ({n}, {n}) for W of shape {tuple(weights.shape)}")
    n_out = _as_cov(output_noise, m, weights)
    n_in = _as_cov(input_noise, n, weights)
    wt = weights.transpose(-1, -2)
    noise = weights @ n_in @ wt + n_out
    total = weights @ input_cov.to(weights) @ wt + noise
    return 0.5 * (_logdet_spd(total, "output") - _logdet_spd(noise, "output noise"))


def water_filling(noise_levels: torch.Tensor, power: float) -> tuple[torch.Tensor, float]:
    """The power allocation that maximises ``sum_k 1/2 log(1 + p_k / N_k)`` subject to
    ``sum_k p_k = power``, ``p_k >= 0`` (Cover & Thomas, 9.4): ``p_k = max(0, mu - N_k)`` with
    the water level ``mu`` set by the budget.

    Returns:
        ``(p, mu)``: the powers in the order of ``noise_levels``, and the level.
    """
    noise = torch.as_tensor(noise_levels, dtype=torch.float64)
    if power < 0 or bool((noise <= 0).any()):
        raise ValueError("water filling needs power >= 0 and positive noise levels")
    levels, _ = torch.sort(noise)
    # with the k quietest channels active, mu = (power + sum of their noise) / k; the right k
    # is the largest whose mu lies above its k-th noise level
    k = torch.arange(1, len(levels) + 1, dtype=torch.float64)
    mu_k = (power + torch.cumsum(levels, 0)) / k
    active = int((mu_k > levels).sum())
    mu = float(mu_k[active - 1])
    return (mu - noise).clamp(min=0.0), mu


def gaussian_channel_capacity(noise_levels: torch.Tensor, power: float) -> float:
    """Capacity in nats of parallel Gaussian channels with noise variances ``noise_levels``
    under a total power ``power``: ``sum_k 1/2 log(1 + p_k / N_k)`` at the water-filling
    allocation."""
    p, _ = water_filling(noise_levels, power)
    noise = torch.as_tensor(noise_levels, dtype=torch.float64)
    return float(0.5 * torch.log1p(p / noise).sum())


def total_power_optimum(
    input_cov: torch.Tensor, n_outputs: int, power: float, output_noise: float = 1.0
) -> tuple[float, torch.Tensor]:
    """The largest ``I(x; y)`` of ``y = W x + eta``, ``eta ~ N(0, sigma^2 I)``, over W with
    ``n_outputs`` rows and ``sum_ij W_ij^2 <= power``, and an optimal W.

    ``I = 1/2 log det(I + C^{1/2} W^T W C^{1/2} / sigma^2)`` is a MIMO Gaussian channel with input
    covariance ``W^T W`` (trace <= power, rank <= n_outputs): water-filling on the eigenvalues
    ``lambda_k`` of C, the channel ``k`` having noise ``sigma^2 / lambda_k``, over the
    ``n_outputs`` largest. The optimal rows are ``sqrt(p_k)`` times the eigenvectors.
    """
    lam, vec = torch.linalg.eigh(torch.as_tensor(input_cov, dtype=torch.float64))
    lam, vec = lam.flip(0)[:n_outputs], vec.flip(1)[:, :n_outputs]
    if bool((lam <= 0).any()):
        raise ValueError("input_cov has fewer positive eigenvalues than n_outputs")
    p, _ = water_filling(output_noise / lam, power)
    mi = gaussian_channel_capacity(output_noise / lam, power)
    return mi, (vec * p.sqrt()).T


def apply_constraint(
    v: torch.Tensor, constraint: str, power: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Map free parameters ``v`` (m, n) onto the constraint set: ``unit_norm`` (Linsker's layers:
    every row has squared norm ``power``) or ``total_power`` (``sum_ij W_ij^2 = power``);
    ``mask`` (m, n, bool) keeps only the allowed connections (local receptive fields)."""
    if mask is not None:
        v = v * mask
    if constraint == "unit_norm":
        return v * (math.sqrt(power) / v.norm(dim=1, keepdim=True))
    if constraint == "total_power":
        return v * (math.sqrt(power) / v.norm())
    raise ValueError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {constraint!r}")


class LinskerResult(NamedTuple):
    """``weights`` (m, n) at the optimum found, its ``mi`` (nats), the ``history`` of I per
    L-BFGS iteration, and whether the last step changed I by less than ``tol``
    (``converged``)."""

    weights: torch.Tensor
    mi: float
    history: list[float]
    converged: bool


def maximize_linear_mi(
    input_cov: torch.Tensor,
    n_outputs: int,
    constraint: str = "unit_norm",
    power: float = 1.0,
    output_noise=1.0,
    input_noise=0.0,
    mask: torch.Tensor | None = None,
    init: torch.Tensor | None = None,
    max_iter: int = 500,
    tol: float = 1e-10,
    seed: int = 0,
) -> LinskerResult:
    """Maximise :func:`linear_gaussian_mi` over W under a weight constraint (see
    :func:`apply_constraint`) by L-BFGS with a strong-Wolfe line search on the free
    parameters, in float64 from a seeded random start (or ``init``).

    Several random starts and keeping the best guards against local optima, which exist
    under ``unit_norm`` with masks.
    """
    cov = torch.as_tensor(input_cov, dtype=torch.float64)
    n = cov.shape[0]
    if init is None:
        gen = torch.Generator().manual_seed(seed)
        init = torch.randn(n_outputs, n, generator=gen, dtype=torch.float64)
    v = torch.nn.Parameter(torch.as_tensor(init, dtype=torch.float64).clone())
    mask_t = None if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    opt = torch.optim.LBFGS([v], lr=1.0, max_iter=20, history_size=20,
                            tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        w = apply_constraint(v, constraint, power, mask_t)
        loss = -linear_gaussian_mi(w, cov, output_noise, input_noise)
        loss.backward()
        return loss

    history: list[float] = []
    converged = False
    for _ in range(max(1, max_iter // 20)):
        mi = -float(opt.step(closure).detach())
        history.append(mi)
        if len(history) > 1 and abs(history[-1] - history[-2]) < tol:
            converged = True
            break
    with torch.no_grad():
        w = apply_constraint(v, constraint, power, mask_t)
        mi = float(linear_gaussian_mi(w, cov, output_noise, input_noise))
    return LinskerResult(w.detach(), mi, history, converged)


def stationary_covariance(
    size: int | tuple[int, int], length: float = 4.0, kind: str = "exponential"
) -> torch.Tensor:
    """The covariance of a stationary process on a ring of ``size`` sites (1-D) or a torus of
    ``size = (h, w)`` sites (2-D, flattened row by row) with unit variance: the periodic sum
    ``sum_k K(r + k L)`` of ``K(r) = exp(-|r| / length)`` (``exponential``: an AR(1) /
    Ornstein-Uhlenbeck process in 1-D) or ``exp(-|r|^2 / (2 length^2))`` (``gaussian``), which is
    positive definite like ``K`` itself. It is circulant: its eigenvectors are Fourier modes and
    its eigenvalues the power spectrum, largest at low spatial frequency."""
    dims = (size,) if isinstance(size, int) else tuple(size)
    if kind not in ("exponential", "gaussian"):
        raise ValueError(f"kind must be 'exponential' or 'gaussian', got {kind!r}")
    coords = torch.cartesian_prod(*[torch.arange(s, dtype=torch.float64) for s in dims])
    coords = coords.reshape(-1, len(dims))
    period = torch.tensor(dims, dtype=torch.float64)
    diff = coords[:, None, :] - coords[None, :, :]
    diff = diff - period * torch.round(diff / period)  # the nearest image, in [-L/2, L/2]
    # images up to 30 correlation lengths away: the truncation is below exp(-30)
    reach = float(math.ceil(30 * length / min(dims)))
    images = torch.cartesian_prod(
        *[torch.arange(-reach, reach + 1, dtype=torch.float64)] * len(dims)
    )
    cov = torch.zeros(diff.shape[:2], dtype=torch.float64)
    for shift in images.reshape(-1, len(dims)):
        d = (diff + shift * period).square().sum(-1).sqrt()
        if kind == "exponential":
            cov += torch.exp(-d / length)
        else:
            cov += torch.exp(-d.square() / (2 * length**2))
    return cov / cov[0, 0]


def local_mask(n_inputs: int, n_outputs: int, radius: int) -> torch.Tensor:
    """Linsker's local connections on a ring: output ``i`` sits at input site
    ``round(i n_inputs / n_outputs)`` and sees the inputs within ``radius`` sites (periodic).
    Returns a bool (n_outputs, n_inputs) mask."""
    centers = torch.round(torch.arange(n_outputs) * n_inputs / n_outputs).long()
    d = (torch.arange(n_inputs)[None, :] - centers[:, None]).abs()
    d = torch.minimum(d, n_inputs - d)
    return d <= radius
