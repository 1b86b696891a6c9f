"""CPU recipes: train DIM(L) or AMDIM on CIFAR-10 for a fixed time, then probe the frozen features.

Each recipe is a shipped config (``configs/dim_l_nce_cifar10_cpu.yaml``,
``configs/amdim_cifar10_cpu.yaml``) run through ``infomax train``: training stops cleanly at the
time budget, then linear probes and weighted kNN are fitted on the frozen features of the trained
encoder and of the same encoder at its random initialisation (the run's seed), in the same run.
This script adds the summary: test accuracy per tap, trained vs random, and training throughput
(median images/s over the logged intervals, the first one left out as warm-up).

Usage (results in docs/dim.md and docs/amdim.md)::

    python -m benchmarks.cpu_recipe dim --data ../shared/data/cifar10.npz
    python -m benchmarks.cpu_recipe amdim --data ../shared/data/cifar10.npz --minutes 45
    python -m benchmarks.cpu_recipe dim --data ../shared/data/cifar10.npz --minutes 2 \\
        --set data.train_subset=5000          # a smoke run

The run folder (``--out``, default ``runs/recipes``) keeps config.yaml, metrics.csv and eval/
(results.json, results.md, neighbors.png); ``recipe.md`` there holds the summary printed at the
end: the package's evaluation table (trained vs random) under the training figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from benchmarks.harness import machine, throughput
from infomax.cli.main import main as infomax_main
from infomax.training.report import format_results, read_results

RECIPES = {"dim": "dim_l_nce_cifar10_cpu", "amdim": "amdim_cifar10_cpu"}


def summary(run: Path, recipe: str, minutes: float, wall_s: float) -> str:
    speed = throughput(run / "metrics.csv")
    cfg_meta = __import__("yaml").safe_load((run / "config.yaml").read_text()).get("meta", {})
    epochs = speed["steps"] / max(1, int(cfg_meta.get("steps_per_epoch", 1) or 1))
    where = machine()
    lines = [
        f"## CPU recipe `{recipe}`",
        "",
        f"- training budget {minutes:g} min; {speed['steps']} steps ({epochs:.2f} epochs); "
        f"median {speed['images_per_sec']:.0f} images/s; whole run incl. evaluation "
        f"{wall_s / 60:.1f} min",
        f"- {where['cpu']} ({where['cpu_cores']} cores, native bf16: "
        f"{'yes' if where['cpu_native_bf16'] else 'no'}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, precision {cfg_meta.get('precision')}, load "
        f"average at the end {os.getloadavg()[0]:.2f}",
        "",
        format_results(read_results(run)),
    ]
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
