"""Data-parallel scaling on one machine: 1 process with T threads against N processes with T/N
threads each, for the DIM(L) and AMDIM CPU recipes.

Every variant trains the recipe's config (``configs/dim_l_nce_cifar10_cpu.yaml``,
``configs/amdim_cifar10_cpu.yaml``) through ``infomax train`` in a fresh subprocess, for a fixed
number of steps, with the same global batch; ``--nproc N`` starts the N workers through torchrun.
The figure is the median images/s over the logged windows (the first one left out as warm-up).
Variants alternate within each round (A/B/A/B), and the ratio is the median of the per-round
ratios, so a drift in the machine's speed hits both sides; ``uptime``'s load is recorded.

What the ratio measures is the cost of data parallelism: the gathers of contrastive candidates,
the synchronised batch-norm statistics, the gradient all-reduce and the collective decisions of
every step, against one process that uses the same cores through intra-op threads.

Usage (results in docs/distributed.md)::

    python -m benchmarks.scaling --data ../shared/data/cifar10.npz
    python -m benchmarks.scaling --data synthetic --steps 20 --rounds 1     # a smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.cpu_recipe import RECIPES
from benchmarks.harness import Clock, machine, throughput, write_results


def run_variant(recipe: str, data: str, nproc: int, threads: int, args: argparse.Namespace,
                folder: Path) -> dict[str, Any]:  # fmt: skip
    """One training run; its median images/s."""
    run = folder / f"{recipe}-{nproc}x{threads}"
    cmd = [
        sys.executable, "-m", "infomax", "train", "--config", RECIPES[recipe],
        f"data.dataset={data}", f"train.max_steps={args.steps}", "train.time_budget_minutes=null",
        f"train.log_every={args.log_every}", "train.checkpoint_minutes=0",
        "eval.after_training=false", "-q", "--run-dir", str(run), *args.set,
    ]  # fmt: skip
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return throughput(run / "metrics.csv")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    variants = [(1, args.threads), (args.nproc, max(1, args.threads // args.nproc))]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="infomax-scaling-") as tmp:
        for recipe in args.recipes:
            rounds = []
            for r in range(args.rounds):
                order = variants if r % 2 == 0 else variants[::-1]
                row = {}
                for nproc, threads in order:
                    out = run_variant(recipe, args.data, nproc, threads, args,
                                      Path(tmp) / f"round{r}")  # fmt: skip
                    row[f"{nproc}x{threads}"] = out["images_per_sec"]
                    print(f"{recipe} round {r}: {nproc} process(es) x {threads} thread(s): "
                          f"{out['images_per_sec']:.1f} img/s", flush=True)  # fmt: skip
                rounds.append(row)
            results[recipe] = summarise(rounds, variants)
    return results


def summarise(rounds: list[dict[str, float]], variants: list[tuple[int, int]]) -> dict[str, Any]:
    one, many = (f"{n}x{t}" for n, t in variants)
    return {
        "rounds": rounds,
        "median_images_per_sec": {k: statistics.median(r[k] for r in rounds) for k in (one, many)},
        "median_ratio": statistics.median(r[many] / r[one] for r in rounds),
        "variants": [one, many],
    }


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"| recipe | 1 process x {args.threads} threads (img/s) | {args.nproc} processes x "
        f"{max(1, args.threads // args.nproc)} thread(s) (img/s) | ratio (median of rounds) |",
        "|---|---:|---:|---:|",
    ]
    for recipe, r in results.items():
        one, many = r["variants"]
        med = r["median_images_per_sec"]
        lines.append(f"| {RECIPES[recipe]} | {med[one]:.1f} | {med[many]:.1f} | "
                     f"{r['median_ratio']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic", help="an .npz path or a dataset name")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--nproc", type=int, default=2, help="processes of the parallel variant")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="cores in use")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides")
    ap.add_argument("--out", help="results folder or .json path")
    args = ap.parse_args()
    clock = Clock()
    results = measure(args)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    payload = {"settings": {**settings, **clock.environment(), **machine()}, "results": results}
    write_results(args.out, payload, markdown(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
