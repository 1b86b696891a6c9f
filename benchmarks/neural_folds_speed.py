"""Cross-fitted critics trained together (one vmapped step) against one after the other.

Both variants train the same ``folds`` fresh critics (the default InfoNCE settings of
``estimate_mi``: dot critic, 256 hidden units, 2 layers, batch 256) on the same fold data for a
fixed number of steps (early stopping off, so both do the same work), as
:func:`infomax.estimators.neural._fits` does: ``together`` is ``_train_together``, ``one by
one`` is ``_train`` per fold. Rounds are interleaved (the order alternates), and the table
reports the median seconds per variant and the median per-round ratio.

Usage::

    python -m benchmarks.neural_folds_speed --dims 2 5 25 --steps 300 --rounds 3 \
        --out runs/neural_folds_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from benchmarks.harness import Clock, machine, write_results


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw) -> None:
        pass


def _variants(d: int, n: int, folds: int, steps: int):
    from infomax.estimators import neural

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    y = 0.6 * x + 0.8 * rng.standard_normal((n, d))
    cfg = neural.NeuralSettings(steps=steps, patience=10**6, folds=folds)
    cfg.check()
    splits = neural._fold_splits(n, folds, torch.Generator().manual_seed(0))
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    data = [neural._fold_data(cfg, xt, yt, sp, torch.device("cpu")) for sp in splits]
    seeds = [1000 * f for f in range(folds)]

    def together():
        return neural._train_together("infonce", cfg, data, seeds, torch.device("cpu"), _NoBar())

    def one_by_one():
        return [
            neural._train("infonce", cfg, fold, s, torch.device("cpu"), _NoBar())
            for fold, s in zip(data, seeds)
        ]

    return {"one by one": one_by_one, "together": together}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", nargs="+", type=int, default=[2, 5, 25], help="d for d + d")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="results .json (a .md is written beside it)")
    args = ap.parse_args(argv)
    clock = Clock()
    rows = []
    for d in args.dims:
        variants = _variants(d, args.n, args.folds, args.steps)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for name in order:
                t0 = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - t0)
                print(f"{d}+{d} {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
        ratios = [a / b for a, b in zip(times["one by one"], times["together"])]
        rows.append({"dims": f"{d}+{d}", "one_by_one_s": statistics.median(times["one by one"]),
                     "together_s": statistics.median(times["together"]),
                     "speedup": statistics.median(ratios), "rounds": times})  # fmt: skip
    lines = [f"# {args.folds} critics, {args.steps} steps each, n = {args.n} "
             f"({args.rounds} interleaved rounds, medians)", "",
             "| dims | one by one (s) | together (s) | speed-up (median of round ratios) |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['dims']} | {r['one_by_one_s']:.2f} | {r['together_s']:.2f} | "
                     f"{r['speedup']:.2f}x |")  # fmt: skip
    settings = {"argv": sys.argv[1:], **clock.environment(), "machine": machine("cpu")}
    start, end = settings["load_average_start"], settings["load_average_end"]
    load = f"load average {start:.1f} -> {end:.1f}"
    text = "\n".join(lines) + f"\n\n{settings['machine']}\n{load}; {clock.seconds:.0f} s in all\n"
    write_results(args.out, {"rows": rows, "settings": settings}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
