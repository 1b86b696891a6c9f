"""Mutual-information estimators.

- Variational bounds on a score matrix (:mod:`infomax.estimators.bounds`): :func:`infonce`,
  :func:`jsd_bound`, :func:`dv_bound`, :func:`mine_bound` (with the :class:`MINE` moving
  average), :func:`nwj_bound`, :func:`smile_bound`; each returns a :class:`Bound` ``(mi, loss)``.
  Scores are ``(N, M, *rest)`` with positives on the diagonal or marked by ``pos_mask``.
- Critics that produce those scores (:mod:`infomax.estimators.critics`):
  :class:`SeparableCritic` (encode and dot product, all pairs), :class:`ConcatCritic` (concatenate
  and score every pair), :class:`BilinearCritic`.
- The Kraskov-Stoegbauer-Grassberger nearest-neighbour estimator: :func:`ksg_mi`,
  :func:`ksg_estimate` (with a standard error).
- :func:`estimate_mi`: MI between two sample arrays with KSG or a trained critic and a bound,
  returning an :class:`MIResult` (the engine of ``infomax mi``).
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
    nwj_bound,
    smile_bound,
)
from infomax.estimators.critics import BilinearCritic, ConcatCritic, SeparableCritic
from infomax.estimators.fit import MIResult, estimate_mi
from infomax.estimators.io import load_pair, load_samples
from infomax.estimators.ksg import ksg_estimate, ksg_mi

__all__ = [
    "MINE",
    "BilinearCritic",
    "Bound",
    "ConcatCritic",
    "MIResult",
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
    "masked_logmeanexp",
    "mine_bound",
    "nwj_bound",
    "smile_bound",
]
