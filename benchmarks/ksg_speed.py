"""KSG speed: infomax against scikit-learn, NPEET and bmi on the same data, side by side.

Every implementation computes the KSG estimate (Kraskov et al. 2004, algorithm 1, k = 3) of the
same correlated-Gaussian samples; the rounds are interleaved (each round runs every
implementation once, in turn) and the table reports the median seconds, the ratio to infomax and
the estimates (so the ratios are taken at matching estimates).

- ``infomax``: :func:`infomax.estimators.ksg.ksg_mi` (rank transform, k-d tree searches: SciPy's
  ``cKDTree`` on all CPU cores for the neighbours, scikit-learn's ``KDTree`` for the counts);
  ``infomax-torch``: the same with the chunked brute-force torch search (the GPU path, here on
  the CPU; only up to ``--torch-max-n`` samples).
- ``sklearn``: ``sklearn.feature_selection.mutual_info_regression`` (one feature at a time, so
  only for 1 + 1 dimensions).
- ``npeet``: ``npeet_plus.estimators.mi`` (``pip install npeet-plus``).
- ``bmi``: ``bmi.estimators.KSGEnsembleFirstEstimator`` (``pip install benchmark-mi``; JAX;
  bmi 0.1 needs ``jax<0.4.34``), when installed; it compares every pair of samples, so only up to
  ``--bmi-max-n`` samples.

The comparison packages are not dependencies of infomax; missing ones are reported as such.

Usage::

    python -m benchmarks.ksg_speed --sizes 10000 100000 --dims 1 5 --rounds 3 \
        --out runs/ksg_speed.json
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np

from benchmarks.harness import Clock, machine, write_results


def _data(n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rho = 0.6
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y, -0.5 * d * math.log(1 - rho**2)


def _implementations(torch_max_n: int, bmi_max_n: int):
    impls = {}

    def infomax(x, y):
        from infomax.estimators.ksg import ksg_mi

        return ksg_mi(x, y, 3)

    impls["infomax"] = (infomax, None)

    def infomax_torch(x, y):
        import torch

        from infomax.estimators.ksg import _prepare, ksg_pointwise

        xt, yt = _prepare(x, y, "rank", 1e-10, 0, torch.device("cpu"))
        return float(ksg_pointwise(xt, yt, 3, backend="torch").mean())

    impls["infomax-torch"] = (infomax_torch, lambda n, d: n <= torch_max_n)
    try:
        from sklearn.feature_selection import mutual_info_regression

        def sk(x, y):
            return float(mutual_info_regression(x, y[:, 0], n_neighbors=3, random_state=0)[0])

        impls["sklearn"] = (sk, lambda n, d: d == 1)
    except ImportError:
        pass
    try:
        from npeet_plus.estimators import mi as npeet_mi

        impls["npeet"] = (lambda x, y: float(npeet_mi(x, y, k=3, base=math.e)), None)
    except ImportError:
        impls["npeet"] = None
    try:
        from bmi.estimators import KSGEnsembleFirstEstimator

        est = KSGEnsembleFirstEstimator(neighborhoods=(3,), standardize=True)
        impls["bmi"] = (lambda x, y: float(est.estimate(x, y)), lambda n, d: n <= bmi_max_n)
    except ImportError:
        impls["bmi"] = None
    return impls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--dims", nargs="+", type=int, default=[1, 5], help="d for d + d dimensions")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch-max-n", type=int, default=20_000)
    ap.add_argument("--bmi-max-n", type=int, default=20_000,
                    help="bmi's KSG compares every pair (O(N^2) time); skip it above this")
    ap.add_argument("--out", default=None, help="results .json (a .md is written beside it)")
    args = ap.parse_args(argv)
    clock = Clock()
    impls = _implementations(args.torch_max_n, args.bmi_max_n)
    missing = [name for name, v in impls.items() if v is None]
    impls = {name: v for name, v in impls.items() if v is not None}
    rows = []
    for n in args.sizes:
        for d in args.dims:
            x, y, true = _data(n, d)
            active = {m: f for m, (f, ok) in impls.items() if ok is None or ok(n, d)}
            times: dict[str, list[float]] = {m: [] for m in active}
            values: dict[str, float] = {}
            for _ in range(args.rounds):  # interleaved rounds
                for m, f in active.items():
                    t0 = time.perf_counter()
                    values[m] = f(x, y)
                    times[m].append(time.perf_counter() - t0)
                    print(f"n={n} {d}+{d} {m}: {times[m][-1]:.2f} s", file=sys.stderr, flush=True)
            base = statistics.median(times["infomax"])
            for m in active:
                med = statistics.median(times[m])
                rows.append({"n": n, "dims": f"{d}+{d}", "impl": m, "median_s": med,
                             "ratio_to_infomax": med / base, "estimate": values[m],
                             "true_mi": true})  # fmt: skip
    lines = [f"# KSG speed ({args.rounds} interleaved rounds, medians)", "",
             "| n | dims | implementation | median s | x infomax time | estimate | true MI |",
             "|---:|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['dims']} | {r['impl']} | {r['median_s']:.2f} | "
            f"{r['ratio_to_infomax']:.2f} | {r['estimate']:.4f} | {r['true_mi']:.4f} |"
        )
    if missing:
        lines += ["", f"not installed: {', '.join(missing)}"]
    settings = {"argv": sys.argv[1:], **clock.environment(), "machine": machine("cpu")}
    start, end = settings["load_average_start"], settings["load_average_end"]
    load = f"load average {start:.1f} -> {end:.1f}"
    cpu = settings["machine"]
    text = "\n".join(lines) + f"\n\n{cpu}\n{load}; {clock.seconds:.0f} s in all\n"
    write_results(args.out, {"rows": rows, "settings": settings, "missing": missing}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
