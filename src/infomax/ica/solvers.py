"""Solvers of the infomax ICA objective on whitened data ``Z`` (components x samples).

- :func:`solve_lbfgs` (the default): the whole sample at once, L-BFGS in the relative
  parametrisation ``W <- (I + alpha D) W``, preconditioned by the Hessian approximation of Ablin,
  Cardoso & Gramfort 2018, with a backtracking line search on the exact loss (so it cannot blow
  up) and, for extended infomax, the kurtosis signs re-estimated every iteration (the memory is
  reset when one flips, as the objective changes). One iteration costs two
  (n x n) @ (n x T) products and one ``tanh`` over the data.
- :func:`solve_natural_gradient`: the classic stochastic natural-gradient infomax of Bell &
  Sejnowski 1995 / Amari et al. 1996 as in EEGLAB's ``runica`` and MNE-Python: random blocks,
  learning-rate annealing when successive updates turn by more than ``anneal_deg``, a restart
  with half the rate when the weights blow up, and a stop when the weight change falls below
  ``w_change``.

Both return a :class:`SolverResult`; ``callback(iteration, value)`` (if given) is called once per
iteration (the gradient's infinity norm, or the weight change).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from infomax.ica.formulas import (
    Density,
    density,
    density_loss,
    density_stats,
    excess_kurtosis,
    hessian_approximation,
    natural_gradient_update,
    negative_log_likelihood,
    precondition,
    relative_gradient,
)

__all__ = [
    "SolverResult",
    "auto_subsample",
    "precision_floor",
    "lbfgs_iterations",
    "solve_lbfgs",
    "solve_natural_gradient",
]

Callback = Callable[[int, float], None]


class SolverResult(NamedTuple):
    """``w``: the unmixing of the whitened data (float64, n x n); ``signs``: +1 super-, -1
    sub-Gaussian per component (all +1 without extended infomax); ``n_iter``; ``converged``;
    ``stop``: why it stopped; ``history``: the per-iteration criterion."""

    w: torch.Tensor
    signs: torch.Tensor
    n_iter: int
    converged: bool
    stop: str
    history: list[float]


def _kurtosis_signs(y: torch.Tensor) -> torch.Tensor:
    return torch.where(excess_kurtosis(y) >= 0, 1.0, -1.0).to(torch.float64)


def _lbfgs_direction(g, h, memory) -> torch.Tensor:
    """The L-BFGS two-loop recursion with the preconditioner ``h`` as initial inverse Hessian
    (Nocedal & Wright, Algorithm 7.4); ``memory`` holds (s, y, 1 / <y, s>)."""
    q = g.clone()
    alphas = []
    for s, yk, rho in reversed(memory):
        alpha = rho * (s * q).sum()
        q -= alpha * yk
        alphas.append(alpha)
    r = precondition(q, h)
    for (s, yk, rho), alpha in zip(memory, reversed(alphas)):
        beta = rho * (yk * r).sum()
        r += (alpha - beta) * s
    return -r


def _line_search(z, w, d, dens: Density, loss, tries: int):
    """Backtracking from step 1: the first ``(I + alpha D) W`` whose loss is below ``loss``."""
    eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    alpha = 1.0
    for _ in range(tries):
        w_new = (eye + alpha * d) @ w
        y_new = w_new.to(z.dtype) @ z
        part = density_loss(y_new, dens)
        loss_new = negative_log_likelihood(w_new, part.data_loss)
        if bool(loss_new < loss):  # False for NaN: a blow-up is never accepted
            return alpha, w_new, y_new, density_stats(y_new, dens, part), loss_new
        alpha *= 0.5
    return None


def precision_floor(n_samples: int, dtype: torch.dtype) -> float:
    """The smallest gradient tolerance the working precision resolves, ``2 sqrt(T) eps``: the
    rounding error of a float32 mean over T samples (5e-5 at T = 200,000, fifty times below
    the sampling noise ``1 / sqrt(T)`` of the gradient itself); negligible in float64."""
    return 2.0 * math.sqrt(n_samples) * torch.finfo(dtype).eps


def auto_subsample(n_components: int, n_samples: int) -> int | None:
    """The first warm-start subset of ``"auto"``: ``max(4000, 4 n^2)`` samples when the data
    have at least four times as many, else none."""
    m = max(4000, 4 * n_components**2)
    return m if 4 * m <= n_samples else None


def solve_lbfgs(
    z: torch.Tensor,
    w_init: torch.Tensor,
    extended: bool = True,
    max_iter: int = 500,
    tol: float = 1e-7,
    subsample: int | None = None,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    **options,
) -> SolverResult:
    """Preconditioned L-BFGS (see the module docstring), warm-started on random subsets.

    With ``subsample`` (a number of samples below T) the solve runs first on that many random
    samples, then on 8 times as many, ... while a subset is at most a quarter of the data, and
    last on the whole sample; each stage starts from the previous stage's unmixing and stops at
    ``max(tol, 0.1 / sqrt(m))`` (a tenth of the sampling noise of its m samples), so the costly
    full-sample iterations begin close to the optimum. ``n_iter`` and ``history`` count all
    stages. ``options``: ``memory``, ``lambda_min``, ``ls_tries``, ``super_gaussian`` of
    :func:`lbfgs_iterations`.
    """
    n_samples = z.shape[1]
    sizes = []
    while subsample is not None and 4 * subsample <= n_samples:
        sizes.append(subsample)
        subsample *= 8
    perm = torch.randperm(n_samples, generator=generator).to(z.device) if sizes else None
    w, done, history = w_init, 0, []
    for m in [*sizes, n_samples]:
        zm = z if m == n_samples else z[:, perm[:m]].contiguous()
        stage_tol = tol if m == n_samples else max(tol, 0.1 / math.sqrt(m))

        def shifted(it: int, value: float, offset: int = done) -> None:
            callback(offset + it, value)

        result = lbfgs_iterations(
            zm, w, extended, max(1, max_iter - done), stage_tol,
            shifted if callback else None, **options,
        )  # fmt: skip
        w, done, history = result.w, done + result.n_iter, history + result.history
    return result._replace(n_iter=done, history=history)


def lbfgs_iterations(
    z: torch.Tensor,
    w_init: torch.Tensor,
    extended: bool = True,
    max_iter: int = 500,
    tol: float = 1e-7,
    callback: Callback | None = None,
    memory: int = 7,
    lambda_min: float = 0.01,
    ls_tries: int = 10,
    super_gaussian: str = "logcosh",
) -> SolverResult:
    """Preconditioned L-BFGS on all of ``z`` from ``w_init``.

    Stops when the relative gradient's largest entry is below ``tol`` or the working
    precision's floor ``precision_floor(T, dtype)`` (converged), after ``max_iter``
    iterations, or when neither the L-BFGS nor the preconditioned gradient direction lowers the
    loss (the loss is flat to the working precision: converged when the gradient is within 10
    times that tolerance, else not).
    """
    tol = max(tol, precision_floor(z.shape[1], z.dtype))
    w = w_init.to(device=z.device, dtype=torch.float64)
    y = w.to(z.dtype) @ z
    signs = _kurtosis_signs(y) if extended else torch.ones(w.shape[0], dtype=torch.float64)
    signs = signs.to(z.device)
    dens = density(signs, extended, super_gaussian)
    stats = density_stats(y, dens)
    loss = negative_log_likelihood(w, stats.data_loss)
    mem: list = []
    pending = None  # (step s, gradient before the step)
    history: list[float] = []
    converged, stop, it = False, "max_iter", 0
    for it in range(1, max_iter + 1):
        g = relative_gradient(stats.psi_y)
        gmax = float(g.abs().max())
        history.append(gmax)
        if callback is not None:
            callback(it, gmax)
        if not math.isfinite(gmax):
            stop = "non-finite gradient"
            break
        if gmax < tol:
            converged, stop = True, "tol"
            break
        if pending is not None:
            s, g_old = pending
            yk = g - g_old
            ys = float((yk * s).sum())
            if ys > 0:
                mem.append((s, yk, 1.0 / ys))
                del mem[:-memory]
        h = hessian_approximation(stats, lambda_min)
        d = _lbfgs_direction(g, h, mem)
        found = _line_search(z, w, d, dens, loss, ls_tries)
        if found is None:  # fall back on the preconditioned gradient, forget the curvature
            mem.clear()
            d = -precondition(g, h)
            found = _line_search(z, w, d, dens, loss, ls_tries)
        if found is None:
            converged, stop = gmax < 10 * tol, "line search (loss flat to working precision)"
            break
        alpha, w, y, stats, loss = found
        pending = (alpha * d, g)
        if extended:
            new_signs = _kurtosis_signs(y).to(signs.device)
            if not torch.equal(new_signs, signs):
                signs, dens = new_signs, density(new_signs, extended, super_gaussian)
                stats = density_stats(y, dens)
                loss = negative_log_likelihood(w, stats.data_loss)
                mem.clear()
                pending = None
    return SolverResult(w, signs.cpu(), it, converged, stop, history)


def solve_natural_gradient(
    z: torch.Tensor,
    w_init: torch.Tensor,
    extended: bool = True,
    max_iter: int = 200,
    w_change: float = 1e-12,
    lr: float | None = None,
    block: int | None = None,
    anneal_deg: float = 60.0,
    anneal_step: float | None = None,
    blowup: float = 1e4,
    kurt_size: int = 6000,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    super_gaussian: str = "logcosh",
) -> SolverResult:
    """Stochastic natural-gradient infomax over random blocks (see the module docstring).

    Defaults follow EEGLAB's ``runica``: ``lr = 0.01 / log(n^2)``, blocks of
    ``floor(sqrt(T / 3))`` samples, annealing by 0.9 (0.98 with extended infomax) when the
    direction of the weight change turns by more than ``anneal_deg`` degrees, a restart from the
    initial weights at half the rate (MNE's ``blowup_fac``) when a weight exceeds ``blowup`` or
    turns non-finite.
    An epoch's change is ``sum((W_new - W_old)^2)``; it stops (converged) below ``w_change``.
    """
    n, t_total = z.shape
    lr0 = lr if lr is not None else 0.01 / math.log(max(n, 2) ** 2)
    block = block or max(1, int(math.floor(math.sqrt(t_total / 3.0))))
    anneal_step = anneal_step or (0.98 if extended else 0.9)
    w0 = w_init.to(device=z.device, dtype=z.dtype)
    signs = torch.ones(n, dtype=torch.float64, device=z.device)
    history: list[float] = []
    rate, w, old_delta, it, converged, stop = lr0, w0.clone(), None, 0, False, "max_iter"
    while it < max_iter:
        w_old = w.clone()
        shuffled = z[:, torch.randperm(t_total, generator=generator).to(z.device)]
        dens = density(signs, extended, super_gaussian)
        for start in range(0, t_total - block + 1, block):
            w = natural_gradient_update(w, w @ shuffled[:, start : start + block], dens, rate)
        if not bool(torch.isfinite(w).all()) or float(w.abs().max()) > blowup:
            rate *= 0.5  # blow-up: restart from the initial weights with half the rate
            w, old_delta, it, history = w0.clone(), None, 0, []
            signs = torch.ones_like(signs)
            if rate < 1e-10 * lr0:
                stop = "blow-up (learning rate vanished)"
                break
            continue
        it += 1
        if extended:
            sub = torch.randperm(t_total, generator=generator)[: min(kurt_size, t_total)]
            signs = _kurtosis_signs(w @ z[:, sub.to(z.device)])
        delta = (w - w_old).flatten().to(torch.float64)
        change = float(delta.square().sum())
        history.append(change)
        if callback is not None:
            callback(it, change)
        if old_delta is not None:
            cos = float(delta @ old_delta) / (float(delta.norm() * old_delta.norm()) or 1.0)
            if math.degrees(math.acos(max(-1.0, min(1.0, cos)))) > anneal_deg:
                rate *= anneal_step
        old_delta = delta
        if change < w_change:
            converged, stop = True, "w_change"
            break
    return SolverResult(w.to(torch.float64), signs.cpu(), it, converged, stop, history)
