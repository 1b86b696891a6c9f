"""Index a folder of images for search: embed every image under FOLDER with the run's encoder.

FOLDER is searched recursively for images (png, jpg, jpeg, bmp, gif, webp, tif, tiff, ppm, pgm,
pbm; hidden files and folders are left out), of any size and mode: each is turned upright by its
EXIF orientation, converted to RGB (grey for 1-channel encoders), its smaller edge resized to the
size the run was trained on and centre-cropped. A damaged file is reported and skipped. The codes
of one tap (default: the encoder's retrieval tap, the last probe tap: y for DIM, features for
AMDIM) are stored with the paths in the INDEX file, which also records the run, the checkpoint's
digest, the tap, the image size and the resize policy, so that image queries are embedded the
same way.

Run it again to bring the index up to date: only new or changed files are embedded (changed:
another size or modification time; --check digest compares the content instead), removed files
are dropped, a renamed or copied file keeps its code, and everything is embedded again when the
run's checkpoint changed. --approximate also builds a faiss inverted-file index (needs
pip install "infomax[search]") and reports its recall@10 against exact search.

examples:
  infomax index runs/dim-cifar10 ~/photos -o photos.index
  infomax index runs/amdim-cifar10 ~/photos -o photos-amdim.index --tap features
  infomax index runs/dim-cifar10 /data/big -o big.index --approximate --check digest
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infomax.cli.common import add_run_arguments, eprint

HELP = "index a folder of images for search (incremental; damaged files are skipped)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (made by 'infomax train')")
    parser.add_argument("folder", metavar="FOLDER", help="the folder of images (recursive)")
    parser.add_argument(
        "--out", "-o", metavar="INDEX", required=True,
        help="the index file to write or bring up to date",
    )  # fmt: skip
    parser.add_argument("--tap", help="feature tap (default: the encoder's retrieval tap)")
    parser.add_argument(
        "--check", choices=("mtime", "digest"), default="mtime",
        help="how a file counts as unchanged: same size and modification time (default), or "
        "same content (reads every file)",
    )  # fmt: skip
    parser.add_argument(
        "--rebuild", action="store_true",
        help="embed everything again (also to replace an index of another folder, run or tap)",
    )  # fmt: skip
    approx = parser.add_argument_group("approximate search (faiss)")
    approx.add_argument(
        "--approximate", action="store_true",
        help="also build an inverted-file index and measure its recall@10",
    )  # fmt: skip
    approx.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine",
        help="metric of the approximate index (default: cosine)",
    )  # fmt: skip
    approx.add_argument("--nlist", type=int, help="cells (default: about 4 sqrt(N))")
    approx.add_argument(
        "--target-recall", type=float, default=0.95,
        help="nprobe is the smallest power of two reaching this recall@10 (default: 0.95)",
    )  # fmt: skip
    add_run_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    from infomax.cli.common import OpenRun
    from infomax.search import RunEncoder, index_folder
    from infomax.search.encoder import file_digest, retrieval_tap

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {args.folder!r}")
    if not 0 < args.target_recall <= 1:
        raise ValueError(f"--target-recall must lie in (0, 1], got {args.target_recall}")
    opened = OpenRun(args)
    build = opened.build
    enc = RunEncoder(
        method=opened.method, run=opened.run_dir.resolve(), checkpoint=opened.checkpoint.resolve(),
        checkpoint_digest=file_digest(opened.checkpoint),
        tap=args.tap or retrieval_tap(opened.method),
        image_size=int(build.get("image_size") or opened.cfg.data.image_size or 32),
        channels=int(build.get("in_channels", 3)), device=opened.device,
        precision=opened.precision, batch_size=opened.batch_size,
    )  # fmt: skip
    log = None if args.quiet else eprint
    report = index_folder(
        enc, folder, args.out, check=args.check, rebuild=args.rebuild,
        progress=not args.quiet and sys.stderr.isatty(), log=log or (lambda _m: None),
    )  # fmt: skip
    if log:
        if report.reembed_all:
            log(f"embedded every file again: {report.reembed_all}")
        rate = f" at {report.images_per_sec:.0f} images/s" if report.embedded else ""
        log(f"{report.total} images in the index (tap {enc.tap}, {enc.image_size}x"
            f"{enc.image_size}, {enc.precision} on {enc.device}): {report.embedded} embedded"
            f"{rate}, {report.reused} kept, {report.removed} removed, {len(report.skipped)} "
            f"damaged skipped; {report.seconds:.1f} s")  # fmt: skip
    if args.approximate:
        _add_ivf(args, log)
    print(report.path)
    return 0


def _add_ivf(args: argparse.Namespace, log) -> None:
    from infomax.search import ImageIndex, build_ivf

    ix = ImageIndex.load(args.out)
    ivf, info = build_ivf(ix.vectors, args.metric, nlist=args.nlist,
                          target_recall=args.target_recall, device=args.device)  # fmt: skip
    ix.ivf, ix.meta["ivf"] = ivf.to_bytes(), info
    ix.save(args.out)
    if log:
        log(f"approximate index: {info['nlist']} cells, nprobe {info['nprobe']}, recall@"
            f"{info['k']} {info['recall']:.3f} against exact search on {info['queries']} "
            f"indexed queries ({info['build_seconds']:.1f} s)")  # fmt: skip
        if info["recall"] < args.target_recall:
            log(f"warning: the recall {info['recall']:.3f} is below --target-recall "
                f"{args.target_recall} even when every cell is scanned")  # fmt: skip
