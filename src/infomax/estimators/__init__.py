"""Mutual-information estimators.

- Variational bounds on a score matrix (:mod:`infomax.estimators.bounds`): :func:`infonce`,
  :func:`jsd_bound`, :func:`dv_bound`, :func:`mine_bound` (the :class:`MINE` module keeps its
  moving average), :func:`nwj_bound`, :func:`smile_bound`; each is ``f(scores, pos_mask=None)``
  and returns a :class:`Bound` ``(mi, loss)``. Scores are ``(N, M, *rest)`` with positives on
  the diagonal or marked by ``pos_mask``.
- Critics that produce those scores (:mod:`infomax.estimators.critics`): :class:`DotCritic`
  (encode and dot product, all pairs; ``"separable"`` / :class:`SeparableCritic` is an alias),
  :class:`ConcatCritic` (concatenate and score every pair), :class:`BilinearCritic`.
- kNN estimators: KSG (:func:`ksg_mi`, :func:`ksg_estimate`), its conditional form (Frenzel &
  Pompe) and, for discrete and mixed data, :mod:`infomax.estimators.discrete`.
- :func:`estimate_mi`: (conditional) MI between sample arrays, ``"auto"`` choosing the
  estimator, returning an :class:`MIResult` with warnings (the engine of ``infomax mi``);
  :func:`pairwise_mi` for every pair of columns of a table.
"""

from infomax.estimators.bounds import (
    MINE,
    Bound,
    dv_bound,
    get_bound,
    infonce,
    jsd_bound,
    jsd_lower_bound,
    masked_logmeanexp,
    mine_bound,
    mine_moving_average,
    nwj_bound,
    smile_bound,
)
from infomax.estimators.critics import BilinearCritic, ConcatCritic, DotCritic, SeparableCritic
from infomax.estimators.fit import MIResult, estimate_mi
from infomax.estimators.io import load_pair, load_samples, load_table
from infomax.estimators.ksg import ksg_estimate, ksg_mi
from infomax.estimators.pairwise import PairwiseMI, pairwise_mi

__all__ = [
    "MINE",
    "BilinearCritic",
    "Bound",
    "ConcatCritic",
    "DotCritic",
    "MIResult",
    "PairwiseMI",
    "SeparableCritic",
    "dv_bound",
    "estimate_mi",
    "get_bound",
    "infonce",
    "jsd_bound",
    "jsd_lower_bound",
    "ksg_estimate",
    "ksg_mi",
    "load_pair",
    "load_samples",
    "load_table",
    "masked_logmeanexp",
    "mine_bound",
    "mine_moving_average",
    "nwj_bound",
    "pairwise_mi",
    "smile_bound",
]
