"""Evaluate a trained run: probes and weighted kNN on frozen features.

The same evaluation as the one at the end of 'infomax train' (eval.after_training), with the
run's eval.* settings; the options below override them. Defaults (docs/evaluation.md): a linear
probe (add mlp200, Deep InfoMax's 200-unit MLP probe, with --probes linear mlp200) and weighted
kNN (k=200, T=0.1, cosine) on the encoder's probe taps (DIM: conv, fc, y; AMDIM: features),
trained on the run's training split and scored on its test split. Features are cached in
RUN/eval/cache. Prints the table and writes RUN/eval/results.json and results.md (earlier ones
are kept as results-<their time>.json / .md).

examples:
  infomax eval runs/quickstart
  infomax eval runs/dim-cifar10 --taps conv fc y --probes linear mlp200 --knn-k 200
  infomax eval runs/dim-cifar10 --probes mlp200 --epochs 150 --lr 1e-4 --probe-batch-size 64 \
      --milestones 50 100                     # the DIM reference's classifier settings
  infomax eval runs/dim-cifar10 --compare-random   # next to the encoder's random initialisation
  infomax eval runs/dim-cifar10 --data cifar100 --json
  infomax eval runs/dim-cifar10 --show             # print the stored results, compute nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from infomax.cli.common import OpenRun, add_run_arguments, eprint

HELP = "evaluate a trained run: linear / MLP probes and kNN accuracy per feature tap"

# option -> eval.* setting it overrides
_SETTINGS = {
    "taps": "taps", "probes": "probes", "knn_k": "knn_k", "knn_temperature": "knn_temperature",
    "knn_metric": "knn_metric", "knn_vote": "knn_vote", "epochs": "probe_epochs",
    "lr": "probe_lr", "probe_batch_size": "probe_batch_size",
    "weight_decay": "probe_weight_decay", "milestones": "probe_milestones", "seed": "seed",
    "train_split": "train_split", "compare_random": "compare_random", "batch_size": "batch_size",
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run folder (made by 'infomax train')")
    what = parser.add_argument_group("what to evaluate (default: the run's eval.* settings)")
    what.add_argument("--taps", nargs="+", metavar="TAP", help="feature taps (eval.taps)")
    what.add_argument(
        "--probes", nargs="*", metavar="PROBE",
        help="probes: linear, mlp200 (none: kNN only; eval.probes, default linear)",
    )  # fmt: skip
    what.add_argument("--knn-k", type=int, help="kNN neighbours, 0: no kNN (eval.knn_k, 200)")
    what.add_argument(
        "--knn-temperature", type=float, help="T of the weights exp(similarity / T) (0.1)"
    )
    what.add_argument("--knn-metric", choices=("cosine", "euclidean"), help="(cosine)")
    what.add_argument("--knn-vote", choices=("weighted", "majority"), help="(weighted)")
    what.add_argument(
        "--compare-random", action=argparse.BooleanOptionalAction,
        help="also evaluate the encoder at its random initialisation (eval.compare_random)",
    )  # fmt: skip
    probe = parser.add_argument_group("probe training (defaults: docs/evaluation.md)")
    probe.add_argument("--epochs", type=int, help="probe epochs (30, at least 1000 steps)")
    probe.add_argument("--lr", type=float, help="probe Adam learning rate (1e-3)")
    probe.add_argument("--probe-batch-size", type=int, help="probe batch (256)")
    probe.add_argument("--weight-decay", type=float, help="probe weight decay (0)")
    probe.add_argument(
        "--milestones", type=int, nargs="+", metavar="EPOCH",
        help="epochs where the probe learning rate drops 10x (default: at 60%% and 85%% of "
        "--epochs; the DIM reference: 50 100)",
    )  # fmt: skip
    probe.add_argument("--seed", type=int, help="probe seed (default: the run's train.seed)")
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
    out.add_argument("--show", action="store_true", help="print the stored results and exit")
    out.add_argument("--no-cache", action="store_true", help="do not read or write RUN/eval/cache")
    out.add_argument("--no-save", action="store_true", help="do not write RUN/eval/results.*")
    out.add_argument(
        "--json", action="store_true", help="print the results as JSON on stdout and nothing else"
    )
    out.add_argument("--quiet", "-q", action="store_true", help="no progress messages")


def settings_from_args(base, args: argparse.Namespace):
    """``base`` (the run's EvalConfig) with the options given on the command line."""
    changes = {key: getattr(args, opt) for opt, key in _SETTINGS.items()}
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.knn_k is not None and args.knn_k < 0:
        raise ValueError(f"--knn-k must be >= 0, got {args.knn_k}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    return dataclasses.replace(base, neighbors=False, **changes)


def run(args: argparse.Namespace) -> int:
    from infomax.training.report import eval_datasets, evaluate_run, format_results, read_results

    if args.show:
        record = read_results(args.run)
        print(json.dumps(record) if args.json else format_results(record))
        return 0
    log = None if (args.quiet or args.json) else eprint
    opened = OpenRun(args)
    cfg = opened.cfg
    if args.test_split:
        data = dataclasses.replace(cfg.data, test_split=args.test_split)
        cfg = dataclasses.replace(cfg, data=data)
    settings = settings_from_args(cfg.eval, args)
    datasets = eval_datasets(cfg, settings, args.data, args.image_size, opened.build)
    if log:
        log(f"evaluating {opened.checkpoint} on {args.data or cfg.data.dataset}")
    record = evaluate_run(
        opened.method, cfg, Path(args.run), settings=settings, device=opened.device,
        precision=opened.precision, checkpoint=opened.checkpoint, datasets=datasets,
        data=args.data, cache=not args.no_cache, save=not args.no_save,
        progress=log is not None and sys.stderr.isatty(), log=log,
    )  # fmt: skip
    if log and record["path"] is not None:
        log(f"wrote {record['path']}")
    if args.json:
        print(json.dumps({k: v for k, v in record.items() if k != "table"}, default=str))
    else:
        print(record["table"])
    return 0
