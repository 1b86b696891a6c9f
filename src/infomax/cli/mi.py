"""Estimate mutual information between paired samples stored in files, and say how far to trust it.

Row i of X, Y (and Z) is one joint sample; files are .npy, .npz (one array, or FILE.npz:KEY) or
numeric .csv (an optional header line). The estimate is printed in nats and bits with a 95 %
interval; warnings (reasons not to trust the figure) go to stderr and, with --json, into a
"warnings" list.

Estimators: auto (default: chosen from the data, and it says which and why), ksg (kNN on ranks;
Frenzel-Pompe with --given), plugin (discrete, Miller-Madow), ross (discrete vs continuous), mixed
(Gao et al. mixed KSG), or a neural critic trained with a variational bound (infonce, jsd, dv,
mine, nwj, smile), cross-fitted over --folds folds with fresh critics.

examples:
  infomax mi x.npy y.npy
  infomax mi x.npy y.npy --given z.npy              # conditional I(X; Y | Z)
  infomax mi labels.csv y.csv --discrete x --permutations 200
  infomax mi data.npz:x data.npz:y --estimator infonce --steps 2000 --json
  infomax mi table.csv --pairwise -o mi.csv --plot mi.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys

HELP = "estimate (conditional) mutual information between samples, with warnings when unreliable"

_ESTIMATORS = ("auto", "ksg", "plugin", "ross", "mixed", "infonce", "jsd", "dv", "mine", "nwj",
               "smile")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("x", metavar="X", help="samples of X: .npy, .npz[:KEY] or .csv")
    parser.add_argument(
        "y", metavar="Y", nargs="?", help="samples of Y, same number of rows (not with --pairwise)"
    )
    parser.add_argument("--given", metavar="Z", help="condition on Z: estimate I(X; Y | Z)")
    parser.add_argument(
        "--estimator", "-e", choices=_ESTIMATORS, default="auto",
        help="estimator (default: auto, chosen from the data)",
    )  # fmt: skip
    parser.add_argument(
        "--discrete", default="auto",
        help="which variables are discrete: auto (integer columns with few values), none, all, "
        "or names such as x or x,z (default: auto)",
    )  # fmt: skip
    parser.add_argument(
        "--permutations", type=int, default=0, metavar="K",
        help="permutation test of I = 0 with K shuffles: a p-value next to the estimate",
    )  # fmt: skip
    pw = parser.add_argument_group("pairwise (one table, MI of every pair of columns)")
    pw.add_argument("--pairwise", action="store_true", help="the MI matrix of X's columns")
    pw.add_argument("-o", "--output", help="write the matrix as CSV (not overwritten)")
    pw.add_argument("--plot", help="write a heatmap PNG of the matrix (not overwritten)")
    pw.add_argument("--force", action="store_true", help="overwrite -o / --plot files")
    ksg = parser.add_argument_group("kNN options")
    ksg.add_argument("-k", type=int, default=3, help="neighbours (default: 3)")
    ksg.add_argument(
        "--ksg-algorithm", type=int, choices=(1, 2), default=1, help="KSG algorithm (default: 1)"
    )
    ksg.add_argument(
        "--ksg-transform", choices=("rank", "standardize", "none"), default="rank",
        help="per-coordinate preprocessing (default: rank)",
    )  # fmt: skip
    nn = parser.add_argument_group("neural estimator options")
    nn.add_argument(
        "--critic", choices=("dot", "separable", "concat"), default="dot",
        help="critic: dot = g(x).h(y) ('separable' is an alias), concat (default: dot)",
    )  # fmt: skip
    nn.add_argument("--hidden", type=int, default=256, help="critic width (default: 256)")
    nn.add_argument("--embed-dim", type=int, default=32, help="dot embedding (default: 32)")
    nn.add_argument("--layers", type=int, default=2, help="critic hidden layers (default: 2)")
    nn.add_argument("--steps", type=int, default=3000, help="max steps per critic (default: 3000)")
    nn.add_argument("--batch-size", type=int, default=256, help="training batch (default: 256)")
    nn.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default: 5e-4)")
    nn.add_argument(
        "--folds", type=int, default=5,
        help="cross-fitting folds, a fresh critic each; 1 = one split (default: 5)",
    )  # fmt: skip
    nn.add_argument(
        "--holdout", type=float, default=0.2, help="held-out fraction with --folds 1 (default: 0.2)"
    )
    nn.add_argument(
        "--transform", choices=("rank", "standardize"), default="rank",
        help="per-coordinate input transform fitted on each training part (default: rank)",
    )  # fmt: skip
    nn.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout and nothing else"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _options(args: argparse.Namespace) -> dict:
    return {
        "k": args.k, "ksg_algorithm": args.ksg_algorithm, "ksg_transform": args.ksg_transform,
        "critic": args.critic, "hidden": args.hidden, "embed_dim": args.embed_dim,
        "layers": args.layers, "steps": args.steps, "batch_size": args.batch_size,
        "lr": args.lr, "folds": args.folds, "holdout": args.holdout,
        "transform": args.transform, "seed": args.seed, "device": args.device,
        "progress": not (args.quiet or args.json),
    }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from infomax.cli.main import UserError

    if args.pairwise:
        if args.y is not None or args.given is not None:
            raise UserError("--pairwise takes one table (X) and no Y or --given")
        return _run_pairwise(args)
    if args.y is None:
        raise UserError("give Y (the samples paired with X), or --pairwise for one table")
    if args.output or args.plot:
        raise UserError("-o and --plot belong to --pairwise")
    from infomax.estimators.fit import estimate_mi
    from infomax.estimators.io import check_pair, load_samples

    x, y = load_samples(args.x), load_samples(args.y)
    x, y = check_pair(x, y, names=(args.x, args.y))
    z = load_samples(args.given) if args.given else None
    result = estimate_mi(x, y, args.estimator, z=z, discrete=args.discrete,
                         permutations=args.permutations, **_options(args))  # fmt: skip
    for w in result.warnings:
        print(f"infomax mi: warning: {w}", file=sys.stderr)
    if args.json:
        d = result.to_dict()
        d.pop("fits", None)
        d["x"], d["y"], d["given"] = str(args.x), str(args.y), args.given
        print(json.dumps(d))
        return 0
    _print_result(result, args)
    return 0


def _print_result(result, args) -> None:
    what = "I(X;Y|Z)" if result.conditional else "I(X;Y)"
    lo_hi = ""
    if result.interval:
        lo, hi = result.interval
        lo_hi = f" (95% interval {lo:.4f} to {hi:.4f})"
    se = result.stderr
    se_txt = f" +- {se:.4f}" if math.isfinite(se) else ""
    flag = "  [see warnings]" if result.warnings else ""
    print(f"{what} = {result.mi:.4f}{se_txt} nats = {result.mi_bits:.4f} bits{lo_hi}{flag}")
    if result.p_value is not None:
        perm = result.extra["permutation"]
        print(f"permutation test of I = 0 ({perm['count']} shuffles, {perm['statistic']}): "
              f"p = {result.p_value:.4g}")  # fmt: skip
    ex = result.extra
    dims = " x ".join(str(ex[f"dim_{v}"]) for v in ("x", "y", "z") if f"dim_{v}" in ex)
    print(f"estimator {result.estimator} ({result.reason}); n = {ex['n']}, dims {dims}")
    if "fits" in ex:
        fits = ex["fits"]
        steps = ", ".join(f"{f['steps_run']}" for f in fits)
        print(f"{len(fits)} critics, trained on {result.n_train} samples each, steps {steps}")
    noise = "sampling and training noise" if "fits" in ex else "sampling noise"
    print(f"uncertainty: {ex['stderr_method']} ({noise}, not bias); {result.seconds:.1f} s")


def _run_pairwise(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infomax.cli.main import UserError
    from infomax.estimators.io import load_table
    from infomax.estimators.pairwise import pairwise_mi
    from infomax.runtime import atomic_write_text

    for out in (args.output, args.plot):
        if out and Path(out).exists() and not args.force:
            raise UserError(f"{out} exists; choose another path or add --force to replace it")
    if args.discrete not in ("auto", "none", "all"):
        raise UserError("with --pairwise, --discrete is auto, none or all")
    table, names = load_table(args.x)
    disc = {"auto": None, "none": False, "all": True}[args.discrete]
    opts = _options(args)
    opts.pop("progress")
    res = pairwise_mi(table, names, args.estimator, discrete=disc, **opts)
    for (a, b), ws in res.warnings.items():
        for w in ws:
            print(f"infomax mi: warning: {a} / {b}: {w}", file=sys.stderr)
    if args.output:
        atomic_write_text(args.output, res.to_csv())
    if args.plot:
        _heatmap(res, args.plot)
    if args.json:
        print(json.dumps({"names": res.names, "pairs": res.rows()}))
        return 0
    width = max(len(n) for n in res.names)
    for r in res.rows():
        print(f"{r['x']:>{width}} {r['y']:>{width}}  {r['mi']:8.4f} +- {r['stderr']:.4f} nats"
              f"  ({r['estimator']})")  # fmt: skip
    return 0


def _heatmap(res, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from infomax.runtime import atomic_write

    d = len(res.names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * d, 0.8 + 0.6 * d))
    im = ax.imshow(np.ma.masked_invalid(res.mi), cmap="viridis", vmin=0)
    ax.set_xticks(range(d), res.names, rotation=90)
    ax.set_yticks(range(d), res.names)
    fig.colorbar(im, ax=ax, label="MI (nats)")
    ax.set_title("pairwise mutual information")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=120))
    plt.close(fig)
