"""The MI matrix of every pair of columns of a table (``infomax mi TABLE --pairwise``).

Each pair ``(i, j)`` is one call of :func:`infomax.estimators.fit.estimate_mi` on columns ``i``
and ``j`` (two 1-D variables), so every entry gets the estimator that fits its kinds (``auto``:
KSG for two continuous columns, Ross for a discrete and a continuous one, the plug-in estimate
for two discrete ones), its standard error and its warnings. The diagonal is left empty (NaN):
a continuous column's MI with itself is infinite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PairwiseMI", "pairwise_mi"]


@dataclass
class PairwiseMI:
    """``mi[i, j]`` and ``stderr[i, j]`` in nats (symmetric, NaN diagonal), the estimator of
    every pair, and the warnings of every pair that has any."""

    names: list[str]
    mi: np.ndarray
    stderr: np.ndarray
    estimators: list[list[str]]
    warnings: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One record per pair ``i < j``: names, mi, stderr, estimator."""
        out = []
        d = len(self.names)
        for i in range(d):
            for j in range(i + 1, d):
                out.append({"x": self.names[i], "y": self.names[j], "mi": float(self.mi[i, j]),
                            "stderr": float(self.stderr[i, j]),
                            "estimator": self.estimators[i][j]})  # fmt: skip
        return out

    def to_csv(self) -> str:
        """The matrix as CSV text: a header of names, then one row per column of the table."""
        lines = ["," + ",".join(self.names)]
        for i, name in enumerate(self.names):
            cells = ["" if math.isnan(v) else f"{v:.6g}" for v in self.mi[i]]
            lines.append(name + "," + ",".join(cells))
        return "\n".join(lines) + "\n"


def pairwise_mi(
    table: np.ndarray, names: list[str] | None = None, estimator: str = "auto", **options: Any
) -> PairwiseMI:
    """MI of every pair of columns of ``table`` (N, D); ``options`` go to ``estimate_mi``.

    ``discrete`` may be a bool per column (or None to detect), unlike ``estimate_mi``'s.
    """
    from infomax.estimators.fit import estimate_mi

    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"--pairwise needs a table of at least 2 columns, got shape {table.shape}")
    d = table.shape[1]
    names = list(names) if names is not None else [f"col{j}" for j in range(d)]
    discrete = options.pop("discrete", None)
    flags = [None] * d if discrete is None else [bool(f) for f in np.broadcast_to(discrete, d)]
    mi = np.full((d, d), np.nan)
    se = np.full((d, d), np.nan)
    est = [[""] * d for _ in range(d)]
    warns: dict[tuple[str, str], list[str]] = {}
    options.setdefault("progress", False)
    for i in range(d):
        for j in range(i + 1, d):
            kinds = None
            if flags[i] is not None:
                kinds = [n for n, f in (("x", flags[i]), ("y", flags[j])) if f] or "none"
            r = estimate_mi(table[:, i], table[:, j], estimator, discrete=kinds, **options)
            mi[i, j] = mi[j, i] = r.mi
            se[i, j] = se[j, i] = r.stderr
            est[i][j] = est[j][i] = r.estimator
            if r.warnings:
                warns[(names[i], names[j])] = r.warnings
    return PairwiseMI(names, mi, se, est, warns)
