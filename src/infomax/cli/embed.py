"""Write the embeddings of a dataset under a trained run to a file.

DATA is a dataset name (cifar10, stl10, synthetic, ...), an .npz file or a folder of images; its
images are resized to the size the run was trained on unless --image-size says otherwise. The
format follows the extension of --out:

  .npz  one float32 array per tap (named after the tap) and `labels`
  .pt   {"features": {tap: tensor}, "labels": tensor}
  .npy  one tap only (no labels)
  .csv  a header, then per image: label, TAP_0 .. TAP_{D-1} for each tap

Feature maps are flattened. An existing output file is never replaced unless --force is given.

examples:
  infomax embed runs/quickstart synthetic --split test --out emb.npz
  infomax embed runs/dim-cifar10 ~/photos --taps y --out photos.csv
  infomax embed runs/dim-cifar10 cifar10 --split train --taps fc --out train_fc.npy
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from infomax.cli.common import OpenRun, add_run_arguments, check_output, eprint

HELP = "write the embeddings of a dataset (name, .npz or image folder) to .npy/.npz/.pt/.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (made by 'infomax train')")
    parser.add_argument(
        "data", metavar="DATA", help="a dataset name, an .npz file or a folder of images"
    )
    parser.add_argument(
        "--out", "-o", metavar="FILE",
        help="output file: .npz, .pt, .npy or .csv (default: RUN/eval/embeddings-DATA-SPLIT.npz)",
    )  # fmt: skip
    parser.add_argument(
        "--taps", nargs="+", metavar="TAP",
        help="feature taps (default: the encoder's probe taps)",
    )  # fmt: skip
    parser.add_argument(
        "--split", default="test",
        help="split of a named dataset or .npz, or subfolder of an image folder (default: test)",
    )  # fmt: skip
    parser.add_argument(
        "--image-size", type=int,
        help="resize images to this size (default: the size the run was trained on)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    add_run_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress messages")


def _default_out(run_dir: Path, data: str, split: str) -> Path:
    name = Path(data.rstrip("/\\")).name
    name = name[:-4] if name.lower().endswith(".npz") else name
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name) or "data"
    split = re.sub(r"[^A-Za-z0-9_.+-]+", "_", split)
    return run_dir / "eval" / f"embeddings-{name}-{split}.npz"


def run(args: argparse.Namespace) -> int:
    from infomax.evaluation import EMBEDDING_FORMATS, extract_features, write_embeddings

    run_dir = Path(args.run)
    out = Path(args.out) if args.out else _default_out(run_dir, args.data, args.split)
    out = check_output(out, args.force, EMBEDDING_FORMATS)
    if out.suffix.lower() == ".npy" and args.taps is not None and len(args.taps) != 1:
        raise ValueError(".npy holds one array: pass a single --taps TAP, or write .npz/.pt/.csv")
    from infomax.training.report import load_split

    opened = OpenRun(args)
    dataset = load_split(
        opened.cfg, args.split, data=args.data, image_size=args.image_size, build=opened.build
    )
    taps = args.taps
    if taps is None and out.suffix.lower() == ".npy":
        from infomax.evaluation import default_taps

        default = default_taps(opened.method) or ()
        if len(default) != 1:
            raise ValueError(
                f".npy holds one array but the method has {len(default)} probe taps "
                f"({', '.join(default)}): pass --taps TAP, or write .npz/.pt/.csv"
            )
    feats = extract_features(
        opened.method, dataset, taps=taps, batch_size=opened.batch_size, device=opened.device,
        progress=not args.quiet, precision=opened.precision,
    )  # fmt: skip
    write_embeddings(feats, dataset.labels, out, overwrite=args.force)
    if not args.quiet:
        dims = ", ".join(f"{t} {f.shape[1]}" for t, f in feats.items())
        eprint(f"{len(dataset.images)} images of {args.data} ({args.split}): {dims}")
    print(out)
    return 0
