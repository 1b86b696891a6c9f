"""Retrieval quality of trained encoders: mean precision@10 of image search on CIFAR-10's test set,
and pictures of the neighbours of the same queries for every model.

The test split is written out as PNG files, one folder per class (``--folder``, kept for reuse),
and indexed with each run through the package's own path (:func:`infomax.search.index_folder`:
file decoding, the run's encoder, the index file), once per tap. Every test image is then a
query (:class:`infomax.search.Searcher`, exact cosine search, the query itself left out); its
precision@10 is the fraction of its 10 nearest test images that share its class (its folder), and
the table reports the mean over the 10,000 queries. ``random`` rows are the architecture of a run
built afresh from the run's seed (``torch.manual_seed(train.seed)`` then
``infomax.training.build_method``: the trainer's initial weights when it draws nothing before
building the method).

Usage::

    python benchmarks/retrieval.py --data ../shared/data/cifar10.npz \\
        --runs dim_l=runs/dim_l amdim=runs/amdim dim_g=runs/dim_g --random dim_l amdim \\
        --taps default fc --grids docs/img/search --out docs/search_retrieval.json

Writes ``--out`` (results .json and .md), one index file per (model, tap) under ``--work`` (a
rerun brings them up to date instead of embedding again), and
``--grids``/``<model>.png``: the same ``--queries`` test images (seeded) with their ``--k``
nearest neighbours, green/red strips for same/other class.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runinfo import Clock, write_results  # noqa: E402

from infomax.runtime import cpu_has_fast_bf16  # noqa: E402
from infomax.search import (  # noqa: E402
    RunEncoder,
    Searcher,
    index_folder,
    render_search_grid,
    retrieval_tap,
)


def write_pngs(data: str, split: str, folder: Path) -> int:
    """The split as ``folder/<class>/<i:05d>.png`` (skipped when the folder is complete)."""
    from PIL import Image

    from infomax.data import load_dataset

    ds = load_dataset(data, split=split)
    names = ds.classes or [str(c) for c in range(int(ds.labels.max()) + 1)]
    done = folder / ".complete"
    if done.is_file() and int(done.read_text()) == len(ds.images):
        return len(ds.images)
    for c in names:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(zip(ds.images, ds.labels.tolist())):
        Image.fromarray(x.permute(1, 2, 0).numpy()).save(folder / names[y] / f"{i:05d}.png")
    done.write_text(str(len(ds.images)))
    return len(ds.images)


def random_encoder(enc: RunEncoder) -> RunEncoder:
    """The same architecture, built afresh from the run's seed."""
    from infomax.training import build_method, load_run

    _, cfg = load_run(enc.run, checkpoint=str(enc.checkpoint))
    build = torch.load(enc.checkpoint, map_location="cpu", weights_only=True, mmap=True)["build"]
    torch.manual_seed(int(cfg.train.seed))
    method = build_method(cfg, enc.channels, enc.image_size, build.get("model"))
    method = method.to(enc.device).eval()
    return RunEncoder(
        method=method, run=enc.run, checkpoint=enc.checkpoint,
        checkpoint_digest=f"random-init-seed-{cfg.train.seed}", tap=enc.tap,
        image_size=enc.image_size, channels=enc.channels, device=enc.device,
        precision=enc.precision, batch_size=enc.batch_size,
    )  # fmt: skip


def precision_at_k(searcher: Searcher, k: int) -> tuple[float, list[float]]:
    """Mean over all indexed images of the same-folder fraction of their k nearest others."""
    ix = searcher.index
    folders = np.array([p.rsplit("/", 1)[0] for p in ix.paths])
    rows = list(range(len(ix)))
    _, nb = searcher.neighbours(ix.vectors, k, "cosine", exclude=rows)
    same = folders[nb.numpy()] == folders[:, None]
    per_class = [float(same[folders == f].mean()) for f in sorted(set(folders))]
    return float(same.mean()), per_class


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset (name, .npz, folder)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--runs", nargs="+", required=True, metavar="NAME=RUN")
    ap.add_argument("--random", nargs="*", default=[], metavar="NAME",
                    help="also the random initialisation of these runs")  # fmt: skip
    ap.add_argument("--taps", nargs="+", default=["default"],
                    help="taps to index ('default': the retrieval tap)")  # fmt: skip
    ap.add_argument("--k", type=int, default=10, help="precision@k")
    ap.add_argument("--folder", default="/tmp/infomax-retrieval/images")
    ap.add_argument("--work", default="/tmp/infomax-retrieval/indexes")
    ap.add_argument("--grids", help="folder for the neighbour pictures")
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--grid-k", type=int, default=9)
    ap.add_argument("--thumb", type=int, default=32, help="grid cell size (CIFAR: 32 = native)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", help="results .json (the .md beside it) or folder")
    args = ap.parse_args(argv)
    clock = Clock()
    folder, work = Path(args.folder), Path(args.work)
    n = write_pngs(args.data, args.split, folder)
    work.mkdir(parents=True, exist_ok=True)
    runs = dict(r.split("=", 1) for r in args.runs)
    models: list[tuple[str, str, str, bool]] = []  # (label, run name, tap, random)
    for name in runs:
        for tap in args.taps:
            models.append((name, name, tap, False))
    for name in args.random:
        models.insert(0, (f"random ({name})", name, "default", True))
    rows: list[dict[str, Any]] = []
    grid_rows = None
    for label, name, tap, rand in models:
        enc = RunEncoder.open(runs[name], tap=None if tap == "default" else tap,
                              device=args.device)  # fmt: skip
        if rand:
            enc = random_encoder(enc)
        t0 = time.perf_counter()
        path = work / f"{label.replace(' ', '_').replace('(', '').replace(')', '')}-{enc.tap}.ix"
        rep = index_folder(enc, folder, path)  # incremental: a rerun reuses up-to-date indexes
        searcher = Searcher(path, device=args.device)
        p, per_class = precision_at_k(searcher, args.k)
        row = {
            "model": label, "run": str(enc.run), "tap": enc.tap, "default_tap": tap == "default",
            "dim": int(searcher.index.vectors.shape[1]), "precision_at_k": p,
            "per_class": per_class, "index_images_per_s": rep.images_per_sec,
            "embedded": rep.embedded, "seconds": round(time.perf_counter() - t0, 1),
            "precision": enc.precision,
            "retrieval_tap": retrieval_tap(enc.method),
        }  # fmt: skip
        rows.append(row)
        print(f"{label} tap {enc.tap}: precision@{args.k} {p:.4f}", flush=True)
        if args.grids and tap == "default":
            if grid_rows is None:
                gen = torch.Generator().manual_seed(args.seed)
                grid_rows = torch.randperm(len(searcher.index), generator=gen)[: args.queries]
            paths = [searcher.index.paths[int(r)] for r in grid_rows]
            res = searcher.search(paths, k=args.grid_k, exclude_self=True)
            out = Path(args.grids) / f"{path.stem}.png"
            render_search_grid(searcher.index, res, out, thumb=args.thumb, mark_folders=True)
            row["grid"] = str(out)
    res = {
        "settings": {
            "command": " ".join(["benchmarks/retrieval.py", *(argv or sys.argv[1:])]),
            "data": args.data, "split": args.split, "images": n, "k": args.k,
            "date": time.strftime("%Y-%m-%d"), "native_bf16": cpu_has_fast_bf16(),
            **clock.environment(),
        },
        "models": rows,
    }  # fmt: skip
    write_results(args.out, res, markdown(res))
    return 0


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = [
        f"## Retrieval: mean precision@{s['k']} on {s['data']} ({s['split']}, "
        f"{s['images']} queries, exact cosine search among the other test images)",
        "",
        f"| model | tap | dim | precision@{s['k']} (%) | indexing img/s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in res["models"]:
        tap = r["tap"] + (" (retrieval tap)" if r["default_tap"] else "")
        rate = f"{r['index_images_per_s']:.0f}" if r.get("embedded") else "(reused)"
        lines.append(f"| {r['model']} | {tap} | {r['dim']} | {100 * r['precision_at_k']:.2f} | "
                     f"{rate} |")  # fmt: skip
    lines += ["", f"torch {s['torch']}, {s['threads']} threads, native bf16 {s['native_bf16']}; "
              f"load average {s['load_average_start']:.1f} -> {s['load_average_end']:.1f}; "
              f"{s['wall_seconds'] / 60:.1f} min"]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
