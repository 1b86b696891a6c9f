"""Evaluation when training ends (``eval.after_training``): probes and kNN of the trained encoder,
optionally next to the same encoder at its random initialisation, and a nearest-neighbour grid.

All the work is done by :mod:`infomax.evaluation`; this module only picks the datasets, builds
the random baseline and writes ``eval.json`` / ``eval.md`` into the run folder.

The random baseline is the method rebuilt with the run's seed, i.e. exactly the weights the trained
encoder started from, so the table shows what training added.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infomax.training.config import Config
from infomax.training.runs import build_method

EVAL_JSON = "eval.json"
EVAL_TABLE = "eval.md"
NEIGHBORS_PNG = "neighbors.png"


def initial_method(cfg: Config, in_channels: int, image_size: int) -> nn.Module:
    """The method exactly as the run initialised it (seeded by ``cfg.train.seed``); the global
    RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return build_method(cfg, in_channels, image_size)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per tap, test accuracy (%) of each probe and kNN per model."""
    models = list(results)
    first = results[models[0]]
    taps = list(first["taps"])
    kinds = [k for k in ("linear", "mlp") if any(k in r for r in first["taps"].values())]
    has_knn = any("knn" in r for r in first["taps"].values())
    cols = [(k, k) for k in kinds] + (
        [("knn", f"kNN k={first['settings']['knn_k']}")] if has_knn else []
    )
    header = ["tap"] + [f"{label} {m}" for _, label in cols for m in models]
    rows = []
    for tap in taps:
        row = [tap]
        for key, _ in cols:
            for m in models:
                r = results[m]["taps"].get(tap, {}).get(key)
                row.append(_pct(r["test_acc"]) if r else "-")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    out.append(
        f"\ntest accuracy in % on {first['num_test']} test images; probes and kNN fitted on "
        f"{first['num_train']} labelled training images ({first['num_classes']} classes; "
        f"chance {100 / max(first['num_classes'], 1):.1f}%)"
    )
    return "\n".join(out)


def evaluate_after_training(
    method: nn.Module,
    cfg: Config,
    run_dir: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    datasets: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate ``method`` as ``cfg.eval`` asks and write the results into ``run_dir``.

    ``datasets``: ``{"probe_train": ..., "test": ...}`` (loaded from ``cfg.data`` if omitted).
    Returns ``{"results": {model: evaluate_method(...)}, "table": str, "neighbors": path}``.
    """
    from infomax.evaluation import evaluate_method, neighbors_grid
    from infomax.training.trainer import load_datasets

    run_dir = Path(run_dir)
    e = cfg.eval
    if datasets is None:
        datasets = load_datasets(cfg, ("probe_train", "test"))
    train_ds, test_ds = datasets["probe_train"], datasets["test"]
    kw = dict(
        taps=e.taps, probes=tuple(e.probes), knn_k=e.knn_k, device=device,
        seed=cfg.train.seed, batch_size=e.batch_size, precision=precision,
        probe_epochs=e.probe_epochs,
    )  # fmt: skip
    was_training = method.training
    results: dict[str, Any] = {}
    log(f"evaluating the trained encoder ({len(train_ds)} + {len(test_ds)} images)")
    results["trained"] = evaluate_method(method, train_ds, test_ds, **kw)
    if e.compare_random:
        images = train_ds.images
        random_method = initial_method(cfg, int(images.shape[1]), int(images.shape[-1]))
        random_method.to(device)
        log("evaluating the same encoder at its random initialisation")
        results["random"] = evaluate_method(random_method, train_ds, test_ds, **kw)
    table = comparison_table(results)
    (run_dir / EVAL_JSON).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (run_dir / EVAL_TABLE).write_text(table + "\n", encoding="utf-8")
    grid = None
    if e.neighbors:
        grid = neighbors_grid(
            method, test_ds, run_dir / NEIGHBORS_PNG, gallery=train_ds, seed=cfg.train.seed,
            device=device, precision=precision, batch_size=e.batch_size,
        ).path  # fmt: skip
    method.train(was_training)
    return {"results": results, "table": table, "neighbors": grid}
