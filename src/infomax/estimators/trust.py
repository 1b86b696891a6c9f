"""When an MI figure should not be trusted: the checks behind ``MIResult.warnings``.

Each check is a pure function returning a list of warning sentences (empty when the figure
passes). They encode what is known about the estimators' failure modes:

- kNN estimators (KSG, Frenzel-Pompe, mixed) are biased downwards in many dimensions, and the
  more so the larger the MI: they need a number of samples growing exponentially with the MI
  (Gao, Ver Steeg & Galstyan 2015, "Efficient estimation of mutual information for strongly
  dependent variables"); on docs/mi_accuracy.md 2 nats over 10 + 10 Gaussian coordinates came out
  as 0.99 from 5,000 samples.
- A variational lower bound evaluated on ``M`` samples is limited by the data: InfoNCE can never
  exceed ``log M`` and is saturated well before (McAllester & Stratos 2020, "Formal limitations
  on the measurement of mutual information"); no estimate from ``N`` samples can certify much
  more than ``log N`` nats.
- A lower bound far below zero means the critic is worse than a constant: the figure is
  meaningless.
"""

from __future__ import annotations

import math

__all__ = [
    "INFONCE_CAP_MARGIN",
    "KSG_K_DROP",
    "disagreement",
    "k_drop_warnings",
    "knn_max_dim",
    "knn_warnings",
    "neural_warnings",
    "sample_size_warnings",
]

#: an InfoNCE figure within this many nats of log M is reported as saturated
INFONCE_CAP_MARGIN = 2.0
#: a KSG estimate that falls by more than this from k = 3 to k = 30 is not locally uniform
KSG_K_DROP = 0.15


def knn_max_dim(n: int) -> int:
    """The largest joint dimension at which a kNN estimate from ``n`` samples is reported
    without a warning: ``2 log10(n) + 2`` (9 for 5,000 samples, 12 for 100,000)."""
    return int(2 * math.log10(max(n, 10)) + 2)


def knn_warnings(dim: int, n: int, mi: float) -> list[str]:
    """A kNN estimate in ``dim`` joint dimensions from ``n`` samples."""
    out = []
    if dim > knn_max_dim(n):
        out.append(
            f"kNN estimate in {dim} dimensions from {n} samples: kNN estimators are biased "
            f"downwards in many dimensions (above about {knn_max_dim(n)} for this sample size), "
            "the more so the larger the MI; treat it as a rough lower figure"
        )
    if mi > 0.5 * math.log(n):
        out.append(
            f"a kNN estimate of {mi:.2f} nats from {n} samples: kNN estimators need a number of "
            "samples that grows exponentially with the MI, so the truth may be higher"
        )
    return out


def k_drop_warnings(k_drop: dict | None) -> list[str]:
    """KSG assumes the density is uniform within each neighbourhood; when the estimate falls
    steeply as the neighbourhoods grow (k = 3 -> 30), it does not hold at the scale of the data
    (a strongly curved dependence such as a spiral) and the k = 3 figure is too low as well.
    On docs/mi_accuracy.md the fall is below 0.06 nats on every smooth case and 0.39-0.45 on the
    spirals, where KSG is 0.28-0.93 nats too low."""
    if not k_drop or k_drop["drop"] <= KSG_K_DROP:
        return []
    return [
        f"the KSG estimate falls by {k_drop['drop']:.2f} nats from the reported k to k = "
        f"{k_drop['k']}: the dependence is curved at the scale of the neighbourhoods (or the "
        "dimension is high for the sample size) and the figure is likely too low"
    ]


def neural_warnings(name: str, result: dict) -> list[str]:
    """A neural figure: InfoNCE near ``log M``, a bound far below zero, training not converged."""
    out = []
    mi, se = result["mi"], result["stderr"]
    cap = result.get("cap_nats")
    if cap is not None and mi > cap - INFONCE_CAP_MARGIN:
        out.append(
            f"InfoNCE figure {mi:.2f} nats is near its cap log(M) = {cap:.2f} nats for M = "
            f"{math.exp(cap):.0f} evaluation samples: it is a lower bound only and the true MI "
            "may be much larger (use more samples, or a bound without the cap such as smile)"
        )
    floor = -max(0.05, 3.0 * (se if math.isfinite(se) else 0.0))
    if mi < floor:
        out.append(
            f"the {name} bound is {mi:.2f} nats, far below zero: the trained critic is worse "
            "than a constant one and the figure is meaningless (try infonce, more samples or "
            "another learning rate)"
        )
    fits = result.get("fits", [])
    bad = [f for f in fits if not f.get("converged", True)]
    if bad:
        reasons = sorted({f["stop_reason"] for f in bad})
        out.append(
            f"training did not converge for {len(bad)} of {len(fits)} critics "
            f"({', '.join(reasons)}; still improving at the last validation): the figure is "
            "likely too low; raise --steps"
        )
    return out


def sample_size_warnings(dim: int, n: int, mi: float) -> list[str]:
    """Very many coordinates for the number of samples: any figure may be far too low."""
    if dim <= n / 20:
        return []
    return [
        f"{dim} coordinates for {n} samples: variables this wide can hold far more information "
        f"than any estimate from {n} samples can show (a held-out lower bound cannot certify "
        f"much more than log({n}) = {math.log(n):.1f} nats); {mi:.2f} nats is a lower figure, "
        "possibly far below the truth"
    ]


def disagreement(
    a: tuple[str, float, float], b: tuple[str, float, float], reported: str | None = None
) -> list[str]:
    """Two estimates ``(name, mi, stderr)`` that differ by more than their error bars allow
    (``|a - b| > 2 sqrt(se_a^2 + se_b^2) + 0.02`` nats); ``reported``: the one shown."""
    (na, ma, sa), (nb, mb, sb) = a, b
    sa = sa if math.isfinite(sa) else 0.0
    sb = sb if math.isfinite(sb) else 0.0
    if abs(ma - mb) <= 2.0 * math.hypot(sa, sb) + 0.02:
        return []
    return [
        f"estimators disagree: {na} gives {ma:.3f} +- {sa:.3f} and {nb} {mb:.3f} +- {sb:.3f} "
        "nats, more than their error bars allow"
        + (f"; {reported}, the larger, is reported (the truth may be higher still)"
           if reported else "")  # fmt: skip
    ]
