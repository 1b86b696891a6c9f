"""Evaluate a trained run: linear and MLP probes and weighted kNN on frozen features.

Loads the run's checkpoint and its dataset (the training and test splits of the run's config, or
--data), extracts the features of every probe tap once (DIM: conv, fc, y; AMDIM: features), caches
them in RUN/eval/cache, then trains a linear probe and Deep InfoMax's 200-unit MLP probe on the
training features and scores them, with a weighted kNN classifier (Wu et al. 2018, k=200, T=0.1),
on the test features. Prints a table of test accuracies and writes RUN/eval/results.json (with the
time, checkpoint and settings); an earlier results.json is kept as results-<its time>.json.

The protocol and its differences from the papers' (probes trained for fewer epochs on cached
features, by default) are described in docs/evaluation.md.

examples:
  infomax eval runs/quickstart
  infomax eval runs/dim-cifar10 --taps conv fc y --probes linear mlp --knn-k 200
  infomax eval runs/dim-cifar10 --probes mlp --epochs 150 --lr 1e-4 --probe-batch-size 64 \
      --milestones 50 100                     # the DIM reference's classifier settings
  infomax eval runs/dim-cifar10 --data cifar100 --json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any

HELP = "evaluate a trained run: linear / MLP probes and kNN accuracy per feature tap"

EVAL_DIR = "eval"
CACHE_DIR = "cache"
RESULTS_FILE = "results.json"


# ------------------------------------------------------------------------------------------------
# helpers shared by `infomax eval`, `infomax neighbors` and `infomax embed`


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options to load a run: --checkpoint, --device, --batch-size, --precision."""
    parser.add_argument(
        "--checkpoint", default="last",
        help="checkpoint: last (default), an epoch number, a file name in the run, or a path",
    )  # fmt: skip
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default: auto)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=256,
        help="images per forward pass when extracting features (default: 256)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "auto"), default="fp32",
        help="feature extraction precision: fp32 (default), bf16 autocast, or auto "
        "(bf16 on CUDA)",
    )  # fmt: skip


def open_run(args: argparse.Namespace) -> tuple[Any, Any, Path, Any]:
    """``(method, config, checkpoint path, device)`` of ``args.run``."""
    from infomax.evaluation.features import resolve_device
    from infomax.training import load_run
    from infomax.training.runs import checkpoint_path

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder {str(run_dir)!r}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = resolve_device(args.device)
    if device.type == "cuda" and not _cuda_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    ckpt = checkpoint_path(run_dir, args.checkpoint)
    method, cfg = load_run(run_dir, device=device, checkpoint=args.checkpoint)
    return method, cfg, ckpt, device


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def trained_build(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """``{"in_channels", "image_size"}`` the method was built for (empty if unknown)."""
    import torch

    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        return dict(ckpt.get("build", {}))
    except Exception:  # not a file torch can map: the shape check is skipped
        return {}


def load_split(
    cfg: Any,
    split: str,
    data: str | None = None,
    image_size: int | None = None,
    subset: int | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> Any:
    """One split of the run's dataset (or of ``data``), resized like the training images.

    With ``data`` (another dataset) and no ``image_size``, images are resized to the size the
    method was trained on; ``subset`` keeps the first N images.
    """
    from infomax.data import load_dataset

    d = cfg.data
    if image_size is None:
        image_size = d.image_size
        if data is not None and checkpoint is not None:
            image_size = trained_build(checkpoint).get("image_size", image_size)
    ds = load_dataset(
        data if data is not None else d.dataset,
        split=split,
        root=d.root,
        download=bool(getattr(d, "download", False)),
        image_size=image_size,
    )
    if subset is not None and 0 < subset < len(ds.images):
        ds = ds.subset(range(subset)) if hasattr(ds, "subset") else ds
    if checkpoint is not None:
        check_channels(ds, checkpoint)
    return ds


def check_channels(ds: Any, checkpoint: str | os.PathLike) -> None:
    """ValueError if the images' channels or size differ from those the method was built for."""
    build = trained_build(checkpoint)
    c, h, w = (int(s) for s in ds.images.shape[1:])
    want_c = build.get("in_channels")
    if want_c is not None and int(want_c) != c:
        raise ValueError(
            f"the images have {c} channel(s) but the method was trained on {want_c}; "
            "use a dataset with the same number of channels"
        )
    size = build.get("image_size")
    if size is not None and (h, w) != (int(size), int(size)):
        raise ValueError(
            f"the images are {h}x{w} but the method was trained on {size}x{size}; "
            f"pass --image-size {size}"
        )


def move_aside(path: Path) -> Path | None:
    """Rename an existing ``path`` to ``STEM-YYYYmmdd-HHMMSS.EXT`` (its modification time);
    returns the new name, or ``None`` when ``path`` did not exist."""
    if not path.exists():
        return None
    stamp = _dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    i = 2
    while target.exists():
        target = path.with_name(f"{path.stem}-{stamp}-{i}{path.suffix}")
        i += 1
    os.replace(path, target)
    return target


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def eprint(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# infomax eval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (made by 'infomax train')")
    what = parser.add_argument_group("what to evaluate")
    what.add_argument(
        "--taps", nargs="+", metavar="TAP",
        help="feature taps (default: the run's eval.taps, else the encoder's probe taps, "
        "e.g. conv fc y for DIM, features for AMDIM)",
    )  # fmt: skip
    what.add_argument(
        "--probes", nargs="*", choices=("linear", "mlp"), default=["linear", "mlp"],
        help="probes to train (default: linear mlp; none: kNN only)",
    )  # fmt: skip
    what.add_argument(
        "--knn-k", type=int, default=200, help="neighbours of the kNN classifier (0: no kNN; "
        "default: 200)",
    )  # fmt: skip
    what.add_argument(
        "--knn-temperature", type=float, default=0.1,
        help="temperature T of the weights exp(similarity / T) (default: 0.1)",
    )  # fmt: skip
    what.add_argument(
        "--knn-metric", choices=("cosine", "euclidean"), default="cosine",
        help="kNN similarity (default: cosine)",
    )  # fmt: skip
    what.add_argument(
        "--knn-vote", choices=("weighted", "majority"), default="weighted",
        help="kNN vote (default: weighted)",
    )  # fmt: skip
    probe = parser.add_argument_group(
        "probe training (defaults: fast settings, docs/evaluation.md)"
    )
    probe.add_argument("--epochs", type=int, help="probe epochs (default: 30)")
    probe.add_argument("--lr", type=float, help="probe Adam learning rate (default: 1e-3)")
    probe.add_argument("--probe-batch-size", type=int, help="probe batch (default: 256)")
    probe.add_argument("--weight-decay", type=float, help="probe weight decay (default: 0)")
    probe.add_argument(
        "--milestones", type=int, nargs="+", metavar="EPOCH",
        help="epochs where the probe learning rate drops 10x (default: at 60%% and 85%% of "
        "--epochs; the DIM reference: 50 100)",
    )  # fmt: skip
    probe.add_argument("--seed", type=int, default=0, help="probe seed (default: 0)")
    data = parser.add_argument_group("data (default: the run's config)")
    data.add_argument(
        "--data", metavar="DATASET",
        help="evaluate on another dataset: a name (cifar10, ...), an .npz or an image folder",
    )  # fmt: skip
    data.add_argument("--train-split", help="labelled split the probes learn on")
    data.add_argument("--test-split", help="split the accuracies are measured on")
    data.add_argument("--image-size", type=int, help="resize images to this size")
    add_run_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--no-cache", action="store_true", help="do not read or write RUN/eval/cache")
    out.add_argument("--no-save", action="store_true", help="do not write RUN/eval/results.json")
    out.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout and nothing else"
    )
    out.add_argument("--quiet", "-q", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    from infomax.evaluation import FeatureCache, evaluate_method, format_table

    if args.knn_k < 0:
        raise ValueError(f"--knn-k must be >= 0, got {args.knn_k}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    log = None if (args.quiet or args.json) else eprint
    method, cfg, ckpt, device = open_run(args)
    run_dir = Path(args.run)
    ev = getattr(cfg, "eval", None)
    train_split = (
        args.train_split
        or getattr(ev, "train_split", None)
        or cfg.data.train_split
    )  # fmt: skip
    test_split = args.test_split or cfg.data.test_split
    own = args.data is None
    kw = dict(data=args.data, image_size=args.image_size, checkpoint=ckpt)
    train_ds = load_split(cfg, train_split, subset=cfg.data.train_subset if own else None, **kw)
    test_ds = load_split(cfg, test_split, subset=cfg.data.test_subset if own else None, **kw)
    taps = args.taps or (getattr(ev, "taps", None) or None)
    cache = None if args.no_cache else FeatureCache(run_dir / EVAL_DIR / CACHE_DIR)
    if log:
        log(f"evaluating {ckpt} on {args.data or cfg.data.dataset} "
            f"({train_split}: {len(train_ds.images)} images, {test_split}: "
            f"{len(test_ds.images)} images) on {device}")  # fmt: skip
    results = evaluate_method(
        method, train_ds, test_ds, taps=taps, probes=args.probes, knn_k=args.knn_k or None,
        device=device, cache_dir=cache, seed=args.seed, checkpoint=ckpt,
        batch_size=args.batch_size, precision=args.precision,
        knn_temperature=args.knn_temperature, knn_metric=args.knn_metric,
        knn_vote=args.knn_vote, probe_epochs=args.epochs, probe_lr=args.lr,
        probe_batch_size=args.probe_batch_size, probe_weight_decay=args.weight_decay,
        probe_milestones=args.milestones,
        progress=log is not None and sys.stderr.isatty(), log=log,
    )  # fmt: skip
    record = {
        "infomax_eval": 1,
        "timestamp": now_iso(),
        "run": str(run_dir),
        "checkpoint": str(ckpt),
        "method": getattr(cfg, "method", None),
        "data": {
            "dataset": args.data or cfg.data.dataset,
            "train_split": train_split,
            "test_split": test_split,
            "image_size": args.image_size or cfg.data.image_size,
        },
        **results,
    }
    if not args.no_save:
        out_dir = run_dir / EVAL_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / RESULTS_FILE
        old = move_aside(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        if log:
            if old is not None:
                log(f"the previous results were kept as {old}")
            log(f"wrote {path}")
    if args.json:
        print(json.dumps(record))
    else:
        print(format_table(results))
    return 0
