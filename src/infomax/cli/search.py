"""Search an index: the nearest indexed images of each QUERY, nearest first.

A QUERY is a path in the index (relative to the indexed folder, or a path to the indexed file),
or any image file, which is then embedded with the run the index was made with, the same way as
the indexed images. Similarity is the cosine similarity of the codes (--metric euclidean: their
Euclidean distance). Search is exact (every indexed code is compared; on the GPU when there is
one); --approximate uses the index's faiss inverted-file index (built now if the index has none).

Prints the neighbours with their scores, or JSON with --json; -o writes a PNG with each query
(framed) left of its neighbours, as in the Deep InfoMax write-up's figures.

examples:
  infomax search photos.index ~/Downloads/cat.jpg
  infomax search photos.index 2019/beach.png 2020/dog.jpg -k 9 -o grid.png
  infomax search photos.index cat.jpg --metric euclidean --json
  infomax search big.index query.jpg --approximate --nprobe 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infomax.cli.common import add_device_argument, eprint

HELP = "find the nearest indexed images of image files or indexed paths"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", metavar="INDEX", help="an index file (made by 'infomax index')")
    parser.add_argument("queries", metavar="QUERY", nargs="+", help="image files or indexed paths")
    parser.add_argument("-k", "--k", type=int, default=9, help="neighbours per query (default: 9)")
    parser.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine",
        help="cosine similarity (default) or Euclidean distance",
    )  # fmt: skip
    parser.add_argument(
        "--exclude-self", action="store_true",
        help="leave an indexed query out of its own neighbours",
    )  # fmt: skip
    parser.add_argument("--approximate", action="store_true", help="faiss IVF instead of exact")
    parser.add_argument("--nprobe", type=int, help="cells scanned per query (with --approximate)")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.add_argument("--out", "-o", metavar="PNG", help="write the grid of neighbours here")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--thumb", type=int, default=96, help="side of each grid cell in pixels (default: 96)"
    )
    parser.add_argument(
        "--mark-folders", action="store_true",
        help="in the grid, green/red strips: neighbour in the query's folder or not",
    )  # fmt: skip
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from infomax.search import Searcher, render_search_grid

    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    if args.nprobe is not None and args.nprobe < 1:
        raise ValueError(f"--nprobe must be at least 1, got {args.nprobe}")
    if args.thumb < 8:
        raise ValueError(f"--thumb must be at least 8 pixels, got {args.thumb}")
    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out {args.out!r}: the grid is a PNG; use a .png file name")
        if out.exists() and not args.force:
            raise ValueError(f"{args.out!r} exists; pass --force to replace it")
    searcher = Searcher(args.index, device=args.device)
    results = searcher.search(
        args.queries, k=args.k, metric=args.metric, approximate=args.approximate,
        exclude_self=args.exclude_self, nprobe=args.nprobe,
    )  # fmt: skip
    ix = searcher.index
    if args.out is not None:
        render_search_grid(ix, results, args.out, thumb=args.thumb, mark_folders=args.mark_folders)
    if args.json:
        print(json.dumps({
            "index": str(args.index), "root": str(ix.root), "tap": ix.tap, "metric": args.metric,
            "k": args.k, "approximate": args.approximate, "grid": args.out,
            "results": [r.to_dict(ix) for r in results],
        }, indent=1))  # fmt: skip
        return 0
    what = "similarity" if args.metric == "cosine" else "distance"
    for r in results:
        print(f"{r.query}" + ("" if r.row is None else " (indexed)"))
        for rank, (p, s) in enumerate(zip(r.paths, r.scores), 1):
            print(f"  {rank:3d}. {what} {s:.4f}  {p}")
    if args.out is not None:
        eprint(f"wrote {args.out}")
    return 0
