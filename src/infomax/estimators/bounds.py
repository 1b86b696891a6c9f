"""Variational lower bounds on mutual information, as pure functions of critic scores.

Every bound takes a critic score tensor and a positive mask (the contract of
``docs/architecture.md``):

- ``scores``: float tensor ``(N, M, *rest)``. Dimension 0 indexes the *anchors*; everything after
  it indexes the *candidates* of that anchor. Global: ``(N, N)`` with ``scores[i, j] =
  T(x_i, y_j)``; local DIM / AMDIM: ``(N, N, L)``.
- ``pos_mask``: bool tensor broadcastable to ``scores``; ``True`` marks positive (joint) pairs,
  ``False`` negative (product-of-marginals) pairs. ``None`` means the diagonal of the first two
  dimensions broadcast over ``rest`` (``torch.eye(N, M)``).

``N`` need not equal ``M``: a slice of anchors scored against candidates gathered from several
processes is ``(N_local, M)`` with an explicit ``pos_mask`` marking each anchor's own candidate.

and returns ``Bound(mi, loss)``: float32 scalars, the MI estimate in nats and a loss to minimise.
Scores are cast to float32 first (so bf16 scores from ``torch.autocast`` are safe) and every
partition function goes through ``logsumexp`` / ``softplus``.

Expectations: ``E_pos[f]`` is the mean of ``f`` over all positive entries and ``E_neg[f]`` the
mean over all negative entries (pooled over anchors; the rdevon/DIM convention). InfoNCE is the
exception: it normalises per anchor row.

References: Poole et al. 2019, "On variational bounds of mutual information" (ICML); van den Oord
et al. 2018 (InfoNCE / CPC); Nowozin et al. 2016 (f-GAN); Hjelm et al. 2019 (Deep InfoMax, JSD
and NCE objectives, reference code rdevon/DIM ``functions/gan_losses.py``); Belghazi et al. 2018
(MINE); Nguyen, Wainwright & Jordan 2010 (NWJ); Song & Ermon 2020 (SMILE, reference code
ermongroup/smile-mi-estimator).

Validation: shapes are always checked. The "has positives / has negatives" checks need the
mask's values, so they run only for masks on the CPU (a check on an accelerator would force a
host-device sync in every training step); the default diagonal mask is checked from its shape.

>>> s = 5.0 * torch.eye(4)
>>> b = infonce(s)
>>> float(b.mi) <= math.log(4)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BOUND_NAMES",
    "MINE",
    "Bound",
    "BoundFn",
    "dv_bound",
    "get_bound",
    "infonce",
    "infonce_terms",
    "jsd_bound",
    "jsd_lower_bound",
    "masked_logmeanexp",
    "mine_bound",
    "mine_moving_average",
    "nwj_bound",
    "smile_bound",
]

_LOG2 = math.log(2.0)


class Bound(NamedTuple):
    """A variational bound: ``mi`` the MI estimate in nats, ``loss`` the quantity to minimise."""

    mi: Tensor
    loss: Tensor


# --------------------------------------------------------------------------------------------
# Helpers


def _prepare(scores: Tensor, pos_mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Validate ``scores`` / ``pos_mask``; return float32 scores and a mask of the same shape."""
    if not isinstance(scores, Tensor):
        raise ValueError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dim() < 2:
        raise ValueError(
            f"scores must have at least 2 dimensions (anchors, candidates, ...), got shape "
            f"{tuple(scores.shape)}; for a batch of N pairs pass the (N, N) all-pairs matrix"
        )
    if not (scores.is_floating_point()):
        raise ValueError(f"scores must be a floating-point tensor, got {scores.dtype}")
    s = scores.float()
    n, m = s.shape[0], s.shape[1]
    if pos_mask is None:
        if s.numel() == 0:
            raise ValueError(f"scores of shape {tuple(s.shape)} are empty: no positive pairs")
        if n * m == min(n, m):
            raise ValueError(
                f"scores of shape {tuple(s.shape)} with the default diagonal mask have no "
                "negative pairs; use a batch of at least 2 or pass pos_mask"
            )
        eye = torch.eye(n, m, dtype=torch.bool, device=s.device)
        mask = eye.view(n, m, *([1] * (s.dim() - 2))).expand(s.shape)
        return s, mask
    if not isinstance(pos_mask, Tensor) or pos_mask.dtype != torch.bool:
        got = pos_mask.dtype if isinstance(pos_mask, Tensor) else type(pos_mask).__name__
        raise ValueError(f"pos_mask must be a bool tensor (True = positive pair), got {got}")
    try:
        shape = torch.broadcast_shapes(pos_mask.shape, s.shape)
    except RuntimeError:
        shape = None
    if shape != s.shape:
        raise ValueError(
            f"pos_mask of shape {tuple(pos_mask.shape)} is not broadcastable to scores of shape "
            f"{tuple(s.shape)}"
        )
    mask = pos_mask.to(s.device).expand(s.shape)
    if mask.device.type == "cpu":
        if not bool(mask.any()):
            raise ValueError("pos_mask has no positive (True) entries")
        if bool(mask.all()):
            raise ValueError("pos_mask has no negative (False) entries")
    return s, mask


def masked_logmeanexp(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """``log mean_{mask} exp(x)`` over the entries where ``mask`` is True, along ``dim``.

    ``dim=None`` reduces over every dimension. Where no entry is selected the result is ``-inf``
    with a zero (not NaN) gradient. ``mask`` must broadcast to the shape of ``x``.

    Shape:
        x: any shape ``S``; mask: broadcastable to ``S``; output: ``S`` with ``dim`` reduced.
    """
    mask = mask.expand(x.shape)
    if dim is None:
        dims = tuple(range(x.dim()))
    elif isinstance(dim, int):
        dims = (dim,)
    else:
        dims = tuple(dim)
    count = mask.sum(dim=dims, keepdim=True, dtype=x.dtype)
    empty = count == 0
    # A group with nothing selected would give logsumexp(all -inf), whose gradient is NaN: fill
    # it with zeros (finite) instead and replace its result by -inf afterwards.
    fill = torch.where(empty, 0.0, -math.inf).to(x.dtype)
    lse = torch.logsumexp(torch.where(mask, x, fill), dim=dims, keepdim=True)
    out = torch.where(empty, -math.inf, lse - torch.log(count.clamp_min(1)))
    return out.squeeze(dims) if dims else out


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` over the True entries of ``mask`` (``where`` so inf outside is harmless)."""
    return torch.where(mask, x, 0.0).sum() / mask.sum(dtype=x.dtype)


def _log_mean_exp_neg(s: Tensor, mask: Tensor) -> Tensor:
    """``log E_neg[exp(s)]`` pooled over all negative entries."""
    return masked_logmeanexp(s, ~mask)


# --------------------------------------------------------------------------------------------
# Bounds


def infonce_terms(
    scores: Tensor, pos_mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The per-positive terms of :func:`infonce`: ``l[i, c] = s[i, c] - log(exp(s[i, c]) +
    sum_{j in neg(i)} exp(s[i, j]))`` for every entry (meaningful where ``pos``), with the
    flattened positive mask and the negatives per row.

    For objectives that combine the terms themselves (AMDIM's mixtures weight each positive by
    its responsibility). Float32, computed as ``-softplus(lse_neg(i) - s)``.

    Shape:
        scores ``(N, M, *rest)`` -> ``l`` and ``pos`` ``(N, M * prod(rest))``, ``n_neg`` ``(N,)``.
    """
    s, pos = _prepare(scores, pos_mask)
    n = s.shape[0]
    flat_s = s.reshape(n, -1)
    flat_pos = pos.reshape(n, -1)
    n_neg = (~flat_pos).sum(dim=1, dtype=s.dtype)  # (N,)
    has_neg = n_neg > 0
    # Rows without negatives: keep their (finite) scores in the logsumexp so that its gradient
    # stays finite, then replace the row value by -inf (log of an empty sum).
    xm = flat_s.masked_fill(flat_pos & has_neg[:, None], -math.inf)
    lse_neg = torch.logsumexp(xm, dim=1)
    lse_neg = torch.where(has_neg, lse_neg, -math.inf)  # (N,)
    return -F.softplus(lse_neg[:, None] - flat_s), flat_pos, n_neg


def infonce(scores: Tensor, pos_mask: Tensor | None = None) -> Bound:
    """InfoNCE / CPC bound (van den Oord et al. 2018; Poole et al. 2019, eq. 12).

    Each positive ``s_p`` in anchor row ``i`` is log-softmax-ed against itself plus all the
    negatives of row ``i`` (the rdevon/DIM local NCE and the AMDIM NCE with several positives per
    row):

        l_p = s_p - log(exp(s_p) + sum_{j in neg(i)} exp(s_ij))
        mi  = mean_p [ l_p + log(1 + |neg(i)|) ]          loss = -mean_p l_p

    Since ``l_p <= 0``, ``mi <= log(1 + max_i |neg(i)|)``: ``log N`` for the square ``(N, N)``
    case, ``log(1 + (N - 1) L)`` for ``(N, N, L)`` with the diagonal mask. Rows with different
    negative counts each use their own count. Computed as ``l_p = -softplus(lse_neg(i) - s_p)``.

    Shape:
        scores: ``(N, M, *rest)``; pos_mask: broadcastable bool or None; mi, loss: scalars.
    """
    log_softmax, flat_pos, n_neg = infonce_terms(scores, pos_mask)
    n_pos = flat_pos.sum(dtype=log_softmax.dtype)
    term = torch.where(flat_pos, log_softmax, 0.0).sum() / n_pos
    log_k = torch.log1p(n_neg)[:, None].expand_as(log_softmax)
    offset = torch.where(flat_pos, log_k, 0.0).sum() / n_pos
    return Bound(mi=term + offset, loss=-term)


def jsd_lower_bound(scores: Tensor, pos_mask: Tensor | None = None) -> Tensor:
    """Jensen-Shannon lower bound of Deep InfoMax (Hjelm et al. 2019; rdevon/DIM ``'JSD'``).

        J(T) = E_pos[log 2 - softplus(-T)] - E_neg[softplus(-T) + T - log 2]
             = 2 log 2 - E_pos[softplus(-T)] - E_neg[softplus(T)]

    This is the f-GAN JS bound of Nowozin et al. 2016, ``E_pos[-softplus(-T)] -
    E_neg[softplus(T)] <= 2 JS(P, Q) - 2 log 2``, shifted by ``2 log 2``; hence
    ``J(T) <= 2 JS(p(x, y), p(x)p(y)) <= 2 log 2``, with equality at ``T = log p(x,y)/p(x)p(y)``.
    It is a bound on the Jensen-Shannon divergence, not on the mutual information: it is
    monotone in MI for some families but saturates at ``2 log 2 = 1.386`` nats.
    """
    s, pos = _prepare(scores, pos_mask)
    return _jsd_value(s, pos)


def _jsd_value(s: Tensor, pos: Tensor) -> Tensor:
    e_pos = _masked_mean(F.softplus(-s), pos)
    e_neg = _masked_mean(F.softplus(s), ~pos)
    return 2 * _LOG2 - e_pos - e_neg


def _dv_value(s: Tensor, pos: Tensor) -> Tensor:
    """``E_pos[s] - log E_neg[exp(s)]``, the Donsker-Varadhan value."""
    return _masked_mean(s, pos) - _log_mean_exp_neg(s, pos)


def _nwj_value(s: Tensor, pos: Tensor) -> Tensor:
    """``E_pos[s] - E_neg[exp(s - 1)]``.

    The partition term is ``sum_neg exp(s - 1 - log n_neg)`` (equal to ``exp(logmeanexp_neg(s)
    - 1)`` and overflowing at the same point) rather than ``exp`` of a ``logsumexp``: the
    gradient of the latter is ``inf * softmax``, NaN wherever the softmax weight underflows to 0
    once the value has overflowed; term by term each entry's gradient is its own (finite unless
    that entry alone overflows) ``exp(s - 1) / n_neg``.
    """
    neg = ~pos
    log_n = torch.log(neg.sum(dtype=s.dtype))
    terms = torch.exp(torch.where(neg, s, -math.inf) - 1.0 - log_n)
    return _masked_mean(s, pos) - terms.sum()


def jsd_bound(scores: Tensor, pos_mask: Tensor | None = None) -> Bound:
    """Train a critic with the Jensen-Shannon bound; report the Donsker-Varadhan value of it.

    The loss is ``-J(T)`` with ``J`` the Deep InfoMax JSD lower bound (:func:`jsd_lower_bound`;
    Hjelm et al. 2019), so ``-loss`` is the JSD bound value (at most ``2 log 2``), not an MI
    value. The optimal JS critic is ``T* = log p(x,y)/(p(x)p(y))``, the log density ratio, so the
    reported MI figure is the Donsker-Varadhan bound of the same scores (Poole et al. 2019, eq. 4;
    Hjelm et al. 2019 report DV as well):

        mi = DV(T) = E_pos[T] - log E_neg[exp T]

    a lower bound on I(X; Y) for any critic, tight at ``T*``. It is a ``logsumexp``, so it is
    finite for finite scores, also for the large scores of a dot-product critic on wide
    embeddings, where the other plug-in, ``NWJ(T + 1) = 1 + E_pos[T] - E_neg[exp T]`` (Poole et
    al.'s "JS" estimator), overflows to ``-inf``; DV is never smaller than it (``log u <= u - 1``).
    This is the one MI figure of a JSD-trained critic in infomax (``infomax mi``, ``estimate_mi``,
    the DIM objective).
    """
    s, pos = _prepare(scores, pos_mask)
    js = _jsd_value(s, pos)
    return Bound(mi=_dv_value(s, pos), loss=-js)


def dv_bound(scores: Tensor, pos_mask: Tensor | None = None) -> Bound:
    """Donsker-Varadhan bound: ``E_pos[T] - log E_neg[exp T]`` (Poole et al. 2019, eq. 4).

    The partition term is ``logsumexp(T over negatives) - log(#negatives)``. Tight at
    ``T = log p(x,y)/(p(x)p(y)) + c`` for any constant ``c``. The log of a batch mean makes the
    batch estimate (and its gradient) biased; see :func:`mine_bound` for the corrected gradient.
    loss = -mi.
    """
    s, pos = _prepare(scores, pos_mask)
    mi = _dv_value(s, pos)
    return Bound(mi=mi, loss=-mi)


def mine_moving_average(
    scores: Tensor,
    pos_mask: Tensor | None = None,
    log_ema: Tensor | None = None,
    decay: float = 0.99,
) -> Tensor:
    """MINE's moving average of ``E_neg[e^T]`` after this batch, as a logarithm (detached).

    Belghazi et al. 2018, sec. 3.2, updated in log space (no overflow for large scores):

        log a_t = logaddexp(log(decay) + log a_{t-1}, log(1 - decay) + log E_neg[e^T])

    with ``log a_1 = log E_neg[e^T]`` when ``log_ema`` (``log a_{t-1}``) is ``None`` or NaN.
    Pass the result to :func:`mine_bound` and keep it for the next batch (or let :class:`MINE`
    keep it). ``decay=0`` gives the batch value itself.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    s, pos = _prepare(scores, pos_mask)
    cur = _log_mean_exp_neg(s.detach(), pos)
    if log_ema is None or decay == 0:
        return cur
    prev = log_ema.detach().to(device=cur.device, dtype=cur.dtype).reshape(())
    upd = torch.logaddexp(prev + math.log(decay), cur + math.log1p(-decay))
    return torch.where(torch.isnan(prev), cur, upd)


def mine_bound(
    scores: Tensor, pos_mask: Tensor | None = None, log_ema: Tensor | None = None
) -> Bound:
    """MINE (Belghazi et al. 2018): the DV value with a bias-corrected partition gradient.

    The gradient of ``log E_neg[e^T]`` is ``E_neg[e^T grad T] / E_neg[e^T]``; MINE replaces the
    batch denominator by a moving average ``a_t`` (:func:`mine_moving_average`, passed in as
    ``log_ema = log a_t``; ``None`` or NaN uses the batch value, i.e. the DV gradient). The loss
    is the surrogate ``-(E_pos[T] - Z)`` where ``Z`` has the value ``log E_neg[e^T]`` and the
    gradient ``exp(log E_neg[e^T] - log a_t) * grad log E_neg[e^T] = E_neg[e^T grad T] / a_t``. So
    ``loss == -mi`` in value (``mi`` is the DV value); only the gradient differs from
    :func:`dv_bound`. The state lives with the caller (or in :class:`MINE`), so this is a pure
    function with the signature of every other bound.
    """
    s, pos = _prepare(scores, pos_mask)
    e_pos = _masked_mean(s, pos)
    lme = _log_mean_exp_neg(s, pos)
    denom = lme.detach()
    if log_ema is not None:  # NaN (no average yet) falls back to the batch value, without a sync
        prev = log_ema.detach().to(lme).reshape(())
        denom = torch.where(torch.isnan(prev), denom, prev)
    ratio = torch.exp(lme - denom)
    partition = lme.detach() + ratio - ratio.detach()
    return Bound(mi=e_pos - lme, loss=-(e_pos - partition))


class MINE(nn.Module):
    """The stateful MINE bound: keeps the moving average and applies :func:`mine_bound`.

    The buffer ``log_ema`` (log of the moving average of ``E_neg[e^T]``) starts as NaN and is
    updated in training mode only; in eval mode the bound uses, but does not change, it. Called
    as ``mine(scores, pos_mask) -> Bound``, like every bound.

    >>> mine = MINE(decay=0.99)
    >>> b = mine(torch.randn(8, 8))
    """

    log_ema: Tensor

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.register_buffer("log_ema", torch.tensor(float("nan")))

    def forward(self, scores: Tensor, pos_mask: Tensor | None = None) -> Bound:
        if self.training:
            new = mine_moving_average(scores, pos_mask, self.log_ema, self.decay)
            self.log_ema.copy_(new)
        return mine_bound(scores, pos_mask, log_ema=self.log_ema)

    def extra_repr(self) -> str:
        return f"decay={self.decay}"


def nwj_bound(scores: Tensor, pos_mask: Tensor | None = None) -> Bound:
    """NWJ / f-GAN KL bound: ``E_pos[T] - E_neg[exp(T - 1)]`` (Nguyen et al. 2010; Poole eq. 6).

    The partition term is ``mean_neg exp(T - 1 - log n_neg)``, a sum of terms that are each
    at most the total. Tight at ``T = 1 + log p(x,y)/(p(x)p(y))``.
    Unbiased per batch but with a variance that grows like ``exp(MI)``. The value is ``-inf``
    when ``log E_neg[exp(T - 1)]`` overflows float32 (about 88). loss = -mi.
    """
    s, pos = _prepare(scores, pos_mask)
    mi = _nwj_value(s, pos)
    return Bound(mi=mi, loss=-mi)


def smile_bound(scores: Tensor, pos_mask: Tensor | None = None, clip: float | None = 5.0) -> Bound:
    """SMILE (Song & Ermon 2020): DV with a clipped partition term, trained through JS.

        mi = E_pos[T] - log E_neg[exp(clip(T, -tau, tau))]

    As in the reference ``smile_lower_bound`` (ermongroup/smile-mi-estimator), the positive term
    is not clipped, and the *gradient* is that of the Jensen-Shannon bound (the critic is trained
    with JS, whose optimum is the log density ratio; the clipped DV is only evaluated):
    ``loss = -J(T)`` with :func:`jsd_lower_bound` (the same gradient as the reference's
    ``js + (dv - js).detach()``; our loss *value* is ``-J``, not ``-mi``). ``clip=None`` means no
    clipping (DV evaluated on a JS-trained critic). Clipping bounds the variance of the partition
    estimate at the price of a bias when the density ratio exceeds ``e^tau``.
    """
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip}")
    s, pos = _prepare(scores, pos_mask)
    s_part = s if clip is None else s.clamp(-clip, clip)
    mi = _masked_mean(s, pos) - _log_mean_exp_neg(s_part, pos)  # DV with a clipped partition
    return Bound(mi=mi, loss=-_jsd_value(s, pos))


# --------------------------------------------------------------------------------------------
# Registry

#: the signature every bound has: ``f(scores, pos_mask=None) -> Bound``
BoundFn = Callable[..., Bound]

_BOUNDS: dict[str, BoundFn] = {
    "infonce": infonce,
    "jsd": jsd_bound,
    "dv": dv_bound,
    "mine": mine_bound,
    "nwj": nwj_bound,
    "smile": smile_bound,
}
BOUND_NAMES: tuple[str, ...] = tuple(_BOUNDS)


def get_bound(name: str) -> BoundFn:
    """The bound function for a CLI name (one of :data:`BOUND_NAMES`).

    Every one is called as ``f(scores, pos_mask=None) -> Bound``. ``get_bound("mine")`` is the
    pure :func:`mine_bound`, whose gradient without a moving average is DV's; for MINE's
    bias-corrected gradient over many steps use a :class:`MINE` module (it holds the state).
    """
    try:
        return _BOUNDS[name]
    except (KeyError, TypeError):
        valid = ", ".join(BOUND_NAMES)
        raise ValueError(f"unknown bound {name!r}; valid names: {valid}") from None
