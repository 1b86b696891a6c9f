"""World-size invariance of training: the same config and seed with 1 and N processes.

Each case trains through ``infomax train --nproc N`` (float32, every step logged, a fixed
number of steps) for every N given, and once more with one process and a different number of
threads: a change of rounding only. The table gives, against ``--nproc 1``, the largest relative
difference of the logged loss over the steps, the step where it first exceeds 1e-4, and the
relative difference of the trained weights. A difference as large as the thread-count one is
the chaos of training that any rounding change sets off, not a difference in the maths.

Usage (results in docs/distributed.md)::

    python -m benchmarks.world_size_invariance              # quick start, DIM(L), small AMDIM
    python -m benchmarks.world_size_invariance --steps 40 --nprocs 1 2 4
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Clock, machine, write_results

CASES: dict[str, list[str]] = {
    "quick start": ["--config", "quickstart"],
    "DIM(L) CPU recipe": ["--config", "dim_l_nce_cifar10_cpu", "data.dataset=synthetic"],
    "small AMDIM": [
        "--config", "amdim_cifar10_cpu", "data.dataset=synthetic", "model.ndf=16",
        "model.n_rkhs=64", "model.n_depth=1", "train.batch_size=32",
    ],
}  # fmt: skip


def train(case: list[str], run: Path, steps: int, nproc: int | None, threads: int) -> Path:
    cmd = [sys.executable, "-m", "infomax", "train", *case, f"train.max_steps={steps}",
           "train.time_budget_minutes=null", "train.log_every=1", "train.precision=fp32",
           "train.device=cpu", "--no-eval", "-q", "--run-dir", str(run)]  # fmt: skip
    if nproc is not None:
        cmd += ["--nproc", str(nproc)]
    res = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return run


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def weight_difference(a: Path, b: Path) -> float:
    wa = torch.load(a / "last.pt", weights_only=True)["model"]
    wb = torch.load(b / "last.pt", weights_only=True)["model"]
    keys = [k for k, v in wa.items() if v.is_floating_point() and "running_" not in k]
    num = sum(float((wa[k].float() - wb[k].float()).square().sum()) for k in keys)
    return (num / sum(float(wa[k].float().square().sum()) for k in keys)) ** 0.5


def compare(ref: Path, other: Path) -> dict[str, Any]:
    la, lb = losses(ref), losses(other)
    rel = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(la, lb)]
    first = next((i + 1 for i, r in enumerate(rel) if r > 1e-4), None)
    return {"max_rel_loss": max(rel), "first_step_over_1e-4": first,
            "rel_weights": weight_difference(ref, other)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--out", help="results folder or .json path")
    args = ap.parse_args()
    clock = Clock()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="infomax-invariance-") as tmp:
        for name in args.cases:
            folder = Path(tmp) / name.replace(" ", "_")
            runs = {f"--nproc {n}": train(CASES[name], folder / f"n{n}", args.steps, n, 1)
                    for n in args.nprocs}  # fmt: skip
            runs["1 process, 2 threads"] = train(CASES[name], folder / "t2", args.steps, None, 2)
            ref = runs[f"--nproc {args.nprocs[0]}"]
            results[name] = {k: compare(ref, v) for k, v in runs.items() if v != ref}
            print(name, results[name], flush=True)
    lines = [f"| case | against --nproc {args.nprocs[0]} | max relative loss difference "
             "(steps 1-%d) | first step over 1e-4 | relative weight difference |" % args.steps,
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for name, rows in results.items():
        for other, r in rows.items():
            first = r["first_step_over_1e-4"] or "-"
            lines.append(f"| {name} | {other} | {r['max_rel_loss']:.2e} | {first} | "
                         f"{r['rel_weights']:.2e} |")  # fmt: skip
    payload = {"settings": {**vars(args), **clock.environment(), **machine()}, "results": results}
    write_results(args.out, payload, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
