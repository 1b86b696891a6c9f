"""Global-only against local-only Deep InfoMax: kNN accuracy and nearest-neighbour pictures.

The comparison of Su Jianlin's Deep InfoMax write-up (seed 004, "only global mutual information"
against "only local mutual information", shown as nearest neighbours by cosine similarity) and of
the paper's DIM(G) / DIM(L) rows (Hjelm et al., ICLR 2019, Table 1), run through the package:

- ``dim_g``: global MI only (alpha=1, beta=0), ``dim_l``: local MI only (alpha=0, beta=1);
- everything else identical: encoder (``dim32``), estimator (default ``infonce``), dot-product
  critic and its size, prior and its weight, optimiser, batch size, seed (so the same initial
  encoder and the same batches), data, and training budget (``--minutes`` each, or ``--steps``);
- each trained encoder and the common random initialisation are evaluated by weighted kNN test
  accuracy (Wu et al. 2018, cosine, k=200, T=0.1) on the ``fc`` and ``y`` taps, optionally linear
  probes, and by a grid of nearest neighbours of the same test queries for every model.

Training is ``infomax.training.train`` on configs built with ``load_config`` (no loop of its own);
evaluation is ``infomax.evaluation.evaluate_method`` and ``neighbors_grid``.

Usage::

    python -m benchmarks.dim_global_vs_local --data ../shared/data/cifar10.npz --minutes 8
    python -m benchmarks.dim_global_vs_local --data ../shared/data/cifar10.npz --steps 2000
    python -m benchmarks.dim_global_vs_local --data ../shared/data/cifar10.npz \\
        --minutes 0.1 --train-subset 1000 --test-subset 1000 --out runs/gvl-smoke   # smoke run

Writes into ``--out`` (default ``runs/global_vs_local``): the two run folders ``dim_g/`` and
``dim_l/`` (config.yaml, metrics.csv, train.log, last.pt), ``neighbors_<model>_<tap>.png`` per
model, ``neighbors_<tap>.png`` (the three grids side by side: random | global | local),
``results.md`` (the table printed at the end) and ``results.json`` (every number and the exact
settings).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Clock, throughput, write_results
from infomax.evaluation import FeatureCache, evaluate_method, neighbors_grid
from infomax.runtime import resolve_device
from infomax.training.config import Config, config_to_dict, load_config
from infomax.training.report import initial_method, run_build
from infomax.training.setup import load_datasets
from infomax.training.trainer import train

#: the two objectives compared: (run name, alpha = global MI weight, beta = local MI weight)
MODELS = (("dim_g", 1.0, 0.0), ("dim_l", 0.0, 1.0))
LABELS = {"random": "random init", "dim_g": "DIM(G) global only", "dim_l": "DIM(L) local only"}


def base_config(args: argparse.Namespace) -> dict[str, Any]:
    """The settings shared by both runs (a plain dict in the layout of a YAML config)."""
    return {
        "method": "dim",
        "model": {
            "encoder": args.encoder,
            "estimator": args.estimator,
            "critic": "dot",
            "mi_units": args.mi_units,
            "gamma": args.gamma,
            "prior": args.prior,
        },
        "data": {
            "dataset": args.data,
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
        },
        "train": {
            "epochs": 100000,
            "max_steps": args.steps,
            "time_budget_minutes": None if args.steps else args.minutes,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "betas": [0.5, 0.999],
            "precision": args.precision,
            "device": args.device,
            "seed": args.seed,
            "log_every": args.log_every,
            "checkpoint_minutes": 0,
        },
    }


def make_config(args: argparse.Namespace, name: str, alpha: float, beta: float) -> Config:
    base = base_config(args)
    base["model"].update(alpha=alpha, beta=beta)
    base["name"] = name
    return load_config(None, list(args.set), base=base)


def combine_grids(paths: list[Path], titles: list[str], out: Path) -> None:
    """The neighbour grids side by side, each under its title, as one PNG."""
    from PIL import Image, ImageDraw

    images = [Image.open(p).convert("RGB") for p in paths]
    head, gap = 18, 16
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    height = head + max(im.height for im in images)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, title in zip(images, titles):
        canvas.paste(im, (x, head))
        draw.text((x + 4, 3), title, fill=(0, 0, 0))
        x += im.width + gap
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.png")
    canvas.save(tmp, format="PNG")
    os.replace(tmp, out)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    models = results["models"]
    taps = s["taps"]
    probes = s["probes"]
    budget = f"{s['steps']} steps" if s["steps"] else f"{s['minutes']:g} min"
    lines = [
        "## DIM: global-only vs local-only",
        "",
        f"- data `{s['data']}` ({s['num_train']} training images, {s['num_test']} test images); "
        f"encoder `{s['encoder']}`, estimator `{s['estimator']}`, dot critic "
        f"{s['mi_units']} units, prior `{s['prior']}` (gamma {s['gamma']:g}), batch "
        f"{s['batch_size']}, Adam {s['lr']:g} betas (0.5, 0.999), seed {s['seed']}",
        f"- training budget {budget} per model; device {s['device']}, precision "
        f"{s['precision']}, torch {s['torch']} ({s['threads']} threads); identical initial "
        f"encoder for both runs: {s['same_initial_encoder']}",
        f"- weighted kNN (cosine, k={s['knn_k']}, T=0.1) fitted on the training images, "
        f"test accuracy in %; neighbour grids: {s['queries']} test queries x {s['neighbors']} "
        f"neighbours among the test images, tap(s) {', '.join(s['grid_taps'])} (same label: "
        "the fraction of the grid's neighbours that share their query's label)",
        "",
    ]
    head = ["model", "steps", "epochs", "img/s", "final loss"]
    head += [f"kNN {t}" for t in taps]
    head += [f"{p} {t}" for p in probes for t in taps]
    head += [f"grid {t} same label" for t in s["grid_taps"]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        tr = m.get("training") or {}
        row = [
            LABELS.get(name, name),
            str(tr.get("steps", 0)),
            f"{tr['epochs']:.2f}" if tr else "0",
            f"{tr['images_per_sec']:.0f}" if tr else "-",
            f"{tr['final_loss']:.4f}" if tr and tr.get("final_loss") is not None else "-",
        ]
        ev = m["eval"]["taps"]
        row += [pct(ev[t].get("knn", {}).get("test_acc")) for t in taps]
        row += [pct(ev[t].get(p, {}).get("test_acc")) for p in probes for t in taps]
        row += [pct(m["grids"][t]["same_label_fraction"]) for t in s["grid_taps"]]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for tap in s["grid_taps"]:
        lines.append(f"- `{results['grids'][tap]}`: random | global | local, tap `{tap}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--data", required=True, help="dataset: a name, an .npz file or a folder")
    ap.add_argument("--minutes", type=float, default=8.0, help="training budget per model")
    ap.add_argument("--steps", type=int, default=None, help="train this many steps instead")
    ap.add_argument("--train-subset", type=int, default=None, help="first N training images")
    ap.add_argument("--test-subset", type=int, default=None, help="first N test images")
    ap.add_argument("--estimator", default="infonce", choices=["infonce", "jsd", "dv"])
    ap.add_argument("--encoder", default="dim32")
    ap.add_argument("--mi-units", type=int, default=512, help="dot critic size (paper: 2048)")
    ap.add_argument("--prior", default="adversarial", choices=["adversarial", "gaussian", "none"])
    ap.add_argument("--gamma", type=float, default=0.1, help="prior weight, same for both")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--log-every", type=int, default=50, help="steps between metrics rows")
    ap.add_argument("--taps", nargs="+", default=["fc", "y"], help="taps scored by kNN")
    ap.add_argument("--knn-k", type=int, default=200)
    ap.add_argument("--probes", nargs="*", default=[], choices=["linear", "mlp200"])
    ap.add_argument("--queries", type=int, default=10, help="rows of the neighbour grids")
    ap.add_argument("--neighbors", type=int, default=8, help="neighbours per row")
    ap.add_argument("--grid-taps", nargs="+", default=["y"], help="taps of the neighbour grids")
    ap.add_argument("--out", default="runs/global_vs_local", help="output folder")
    ap.add_argument("--keep-cache", action="store_true", help="keep the features in OUT/cache")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="extra config override for both runs (e.g. model.augment=cifar_light)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.steps is None and not args.minutes > 0:
        ap.error("--minutes must be positive (or give --steps)")
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be at least 1")
    out = Path(args.out)
    for name, _, _ in MODELS:
        if (out / name).exists() and any((out / name).iterdir()):
            ap.error(f"{out / name} already holds a run; choose another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock()

    configs = {name: make_config(args, name, a, b) for name, a, b in MODELS}
    first = configs[MODELS[0][0]]
    data = load_datasets(first, ("train", "test", "probe_train"))
    train_set, test_set, probe_set = data["train"], data["test"], data["probe_train"]
    device = resolve_device(args.device)

    # The random initialisation, as the package's evaluation rebuilds it (the run's seed, the
    # trainer's build); DIM builds its encoder before the critics, so both runs start from it.
    inits = {n: initial_method(cfg, run_build(cfg, None, train_set)) for n, cfg in configs.items()}
    sd = [m.encoder.state_dict() for m in inits.values()]
    same_init = all(torch.equal(sd[0][k], s[k]) for s in sd[1:] for k in sd[0])
    methods: dict[str, torch.nn.Module] = {"random": inits[MODELS[1][0]]}
    training: dict[str, dict[str, Any]] = {}

    for name, cfg in configs.items():
        alpha, beta = cfg.model["alpha"], cfg.model["beta"]
        print(f"== training {name}: alpha={alpha} beta={beta}", flush=True)
        result = train(cfg, run_dir=out / name, progress=False, train_set=train_set)
        if result.stopped == "nonfinite":
            print(f"{name}: {result.message}", file=sys.stderr)
            return 1
        speed = throughput(result.run_dir / "metrics.csv")
        ips, final_loss = speed["images_per_sec"], speed["loss"]
        training[name] = {
            "steps": result.step,
            "epochs": result.epoch,
            "stopped": result.stopped,
            "train_seconds": round(result.seconds, 1),
            "images_per_sec": ips,
            "final_loss": final_loss,
            "last_metrics": result.last_metrics,
            "run_dir": str(result.run_dir),
            "config": config_to_dict(cfg),
        }
        methods[name] = result.method

    gen = torch.Generator().manual_seed(args.seed)
    queries = torch.randperm(len(test_set.images), generator=gen)[: args.queries]
    cache_dir = out / "cache"
    models: dict[str, Any] = {}
    grid_paths: dict[str, list[Path]] = {t: [] for t in args.grid_taps}
    for name in ("random", *configs):
        method = methods[name].to(device)
        cache = FeatureCache(cache_dir)  # one per model: its hit count is this model's
        print(f"== evaluating {name}", flush=True)
        ev = evaluate_method(
            method, probe_set, test_set, taps=args.taps, probes=args.probes,
            knn_k=args.knn_k, device=device, cache_dir=cache, seed=args.seed, log=print,
        )  # fmt: skip
        grids = {}
        for tap in args.grid_taps:
            path = out / f"neighbors_{name}_{tap}.png"
            g = neighbors_grid(
                method, test_set, path, n_queries=args.queries, k=args.neighbors, tap=tap,
                query_indices=queries, device=device, cache=cache,
            )  # fmt: skip
            grid_paths[tap].append(path)
            same = test_set.labels[g.neighbor_indices] == test_set.labels[queries][:, None]
            grids[tap] = {
                "png": str(path),
                "neighbor_indices": g.neighbor_indices.tolist(),
                "same_label_fraction": float(same.double().mean()),
            }
        models[name] = {"training": training.get(name), "eval": ev, "grids": grids}
        methods[name] = method.cpu()

    if not args.keep_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)
    combined = {}
    for tap, paths in grid_paths.items():
        combined[tap] = str(out / f"neighbors_{tap}.png")
        combine_grids(paths, [LABELS[n] for n in ("random", *configs)], Path(combined[tap]))

    results = {
        "settings": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "data": args.data,
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
            "num_train": len(train_set.images),
            "num_test": len(test_set.images),
            "encoder": args.encoder,
            "estimator": args.estimator,
            "mi_units": args.mi_units,
            "prior": args.prior,
            "gamma": args.gamma,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "minutes": None if args.steps else args.minutes,
            "steps": args.steps,
            "overrides": list(args.set),
            "taps": list(args.taps),
            "probes": list(args.probes),
            "knn_k": args.knn_k,
            "queries": args.queries,
            "neighbors": args.neighbors,
            "query_indices": queries.tolist(),
            "grid_taps": list(args.grid_taps),
            "same_initial_encoder": same_init,
            "device": str(device),
            "precision": args.precision,
            **clock.environment(),
        },
        "models": models,
        "grids": combined,
    }
    write_results(out, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
