"""Draw nearest neighbours in feature space: a PNG grid of query images and their k neighbours.

Each row shows one randomly chosen image of the split (framed), a thin separator, then its k
nearest images of the same split (or of --gallery) by cosine similarity (or Euclidean distance) of
one feature tap, nearest first; the query itself is left out. A green or red strip under each
neighbour tells whether its label matches the query's. Writes RUN/eval/neighbors.png by default (an
earlier neighbors.png is kept as neighbors-<its time>.png) and prints the path. Features are cached
in RUN/eval/cache and shared with 'infomax eval'.

examples:
  infomax neighbors runs/quickstart
  infomax neighbors runs/dim-cifar10 --k 9 --queries 10 --tap y --metric euclidean
  infomax neighbors runs/dim-cifar10 --split test --gallery train --out nn.png --force
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infomax.cli.common import OpenRun, add_run_arguments, check_output, eprint

HELP = "draw a PNG grid of test images and their nearest neighbours in feature space"



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (made by 'infomax train')")
    parser.add_argument("--k", "-k", type=int, default=8, help="neighbours per row (default: 8)")
    parser.add_argument(
        "--queries", "-n", type=int, default=8, help="rows: random query images (default: 8)"
    )
    parser.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine",
        help="similarity of features (default: cosine)",
    )  # fmt: skip
    parser.add_argument(
        "--tap",
        help="feature tap (default: the last probe tap, e.g. y for DIM, features for AMDIM)",
    )
    parser.add_argument(
        "--split", help="split the queries come from (default: the run's test split)"
    )
    parser.add_argument(
        "--gallery", metavar="SPLIT",
        help="search the neighbours in this split instead of the queries' split",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, help="chooses the queries (default: the run's train.seed, as after "
        "training)",
    )  # fmt: skip
    parser.add_argument(
        "--data", metavar="DATASET",
        help="another dataset: a name, an .npz or an image folder (default: the run's)",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, help="resize images to this size")
    parser.add_argument(
        "--scale", type=int, help="integer upscaling of the images (default: cells >= 64 px)"
    )
    parser.add_argument(
        "--out", "-o", metavar="PATH", help="the PNG to write (default: RUN/eval/neighbors.png)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument("--no-cache", action="store_true", help="do not use RUN/eval/cache")
    add_run_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    from infomax.evaluation import FeatureCache, neighbors_grid
    from infomax.training.report import (
        CACHE_DIR,
        EVAL_DIR,
        NEIGHBORS_PNG,
        keep_previous,
        load_split,
    )

    if args.k < 1 or args.queries < 1:
        raise ValueError("--k and --queries must be at least 1")
    if args.scale is not None and args.scale < 1:
        raise ValueError(f"--scale must be at least 1, got {args.scale}")
    run_dir = Path(args.run)
    if args.out is not None:
        out = check_output(args.out, args.force, (".png",))
    opened = OpenRun(args)
    cfg = opened.cfg
    split = args.split or cfg.data.test_split
    kw = dict(data=args.data, image_size=args.image_size, build=opened.build)
    dataset = load_split(cfg, split, **kw)
    gallery = None if args.gallery in (None, split) else load_split(cfg, args.gallery, **kw)
    n_avail = len(dataset.images) - 1 if gallery is None else len(gallery.images)
    if args.k > n_avail:
        raise ValueError(f"--k {args.k} is more than the {n_avail} images available as neighbours")
    if args.out is None:
        out = run_dir / EVAL_DIR / NEIGHBORS_PNG
        old = keep_previous(out)
        if old is not None and not args.quiet:
            eprint(f"the previous picture was kept as {old}")
    cache = None if args.no_cache else FeatureCache(run_dir / EVAL_DIR / CACHE_DIR)
    grid = neighbors_grid(
        opened.method, dataset, out, n_queries=args.queries, k=args.k, metric=args.metric,
        tap=args.tap, seed=cfg.train.seed if args.seed is None else args.seed, gallery=gallery,
        batch_size=opened.batch_size, device=opened.device, cache=cache,
        checkpoint=opened.checkpoint, precision=opened.precision, scale=args.scale,
    )  # fmt: skip
    if not args.quiet:
        where = f"{split}" if gallery is None else f"{split} -> {args.gallery}"
        eprint(f"{len(grid.query_indices)} queries x {args.k} neighbours ({where}, tap "
               f"{grid.tap}, {args.metric})")  # fmt: skip
    print(grid.path)
    return 0
