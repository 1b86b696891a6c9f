"""CPU recipes: train DIM(L) or AMDIM on CIFAR-10 for a fixed time, then probe the frozen features.

Each recipe is a shipped config (``configs/dim_l_nce_cifar10_cpu.yaml``,
``configs/amdim_cifar10_cpu.yaml``) run through ``infomax train``: training stops cleanly at the
time budget, then linear probes and weighted kNN are fitted on the frozen features of the trained
encoder and of the same encoder at its random initialisation (the run's seed), in the same run.
This script adds the summary: test accuracy per tap, trained vs random, and training throughput
(median images/s over the logged intervals, the first one left out as warm-up).

Usage (results in docs/dim.md and docs/amdim.md)::

    python benchmarks/cpu_recipe.py dim --data ../shared/data/cifar10.npz
    python benchmarks/cpu_recipe.py amdim --data ../shared/data/cifar10.npz --minutes 45
    python benchmarks/cpu_recipe.py dim --data ../shared/data/cifar10.npz --minutes 2 \\
        --set data.train_subset=5000          # a smoke run

The run folder (``--out``, default ``runs/recipes``) keeps config.yaml, metrics.csv, eval.json and
neighbors.png; ``recipe.md`` there holds the summary printed at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from infomax.cli.main import main as infomax_main

RECIPES = {"dim": "dim_l_nce_cifar10_cpu", "amdim": "amdim_cifar10_cpu"}


def throughput(metrics_csv: Path) -> tuple[float, int]:
    """Median images/s over logged intervals (the first left out), and the number of steps."""
    with open(metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("images_per_sec")]
    rates = [float(r["images_per_sec"]) for r in rows]
    rates = rates[1:] or rates
    return (statistics.median(rates) if rates else float("nan")), (
        int(rows[-1]["step"]) if rows else 0
    )


def summary(run: Path, recipe: str, minutes: float, wall_s: float) -> str:
    results = json.loads((run / "eval.json").read_text())
    ips, steps = throughput(run / "metrics.csv")
    cfg_meta = __import__("yaml").safe_load((run / "config.yaml").read_text()).get("meta", {})
    epochs = steps / max(1, int(cfg_meta.get("steps_per_epoch", 1) or 1))
    lines = [
        f"## CPU recipe `{recipe}`",
        "",
        f"- training budget {minutes:g} min; {steps} steps ({epochs:.2f} epochs); median "
        f"{ips:.0f} images/s; whole run incl. evaluation {wall_s / 60:.1f} min",
        f"- torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"precision {cfg_meta.get('precision')}, load average at the end "
        f"{os.getloadavg()[0]:.2f}",
        "",
        "| tap | probe | trained | random | gain |",
        "|---|---|---|---|---|",
    ]
    trained, random = results["trained"]["taps"], results["random"]["taps"]
    for tap, res in trained.items():
        for kind, r in res.items():
            if not isinstance(r, dict) or "test_acc" not in r:
                continue
            base = random.get(tap, {}).get(kind, {}).get("test_acc")
            label = f"kNN k={results['trained']['settings']['knn_k']}" if kind == "knn" else kind
            gain = "-" if base is None else f"{100 * (r['test_acc'] - base):+.1f}"
            rand = "-" if base is None else f"{100 * base:.1f}"
            lines.append(f"| {tap} | {label} | {100 * r['test_acc']:.1f} | {rand} | {gain} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("method", choices=sorted(RECIPES))
    ap.add_argument("--data", required=True, help="CIFAR-10 as .npz (x_train, y_train, ...)")
    ap.add_argument("--minutes", type=float, default=45.0, help="training budget (default 45)")
    ap.add_argument("--out", default="runs/recipes", help="parent folder of the run folder")
    ap.add_argument("--name", help="run folder name (default: the recipe name)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="extra override"
    )
    args = ap.parse_args(argv)

    recipe = RECIPES[args.method]
    name = args.name or recipe
    out = Path(args.out)
    argv_train = [
        "train", "--config", recipe, f"data.dataset={args.data}", f"run_dir={out}",
        "--name", name, "--time-budget", str(args.minutes), "--device", args.device,
        *args.set,
    ]  # fmt: skip
    print("infomax " + " ".join(argv_train), file=sys.stderr)
    t0 = time.monotonic()
    code = infomax_main(argv_train)
    wall = time.monotonic() - t0
    if code != 0:
        return code
    # the trainer suffixes the folder name when it is taken: the newest folder of that name
    run = max(out.glob(f"{name}*"), key=lambda p: p.stat().st_mtime)
    text = summary(run, recipe, args.minutes, wall)
    (run / "recipe.md").write_text(text, encoding="utf-8")
    print()
    print(text)
    print(f"run folder: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
