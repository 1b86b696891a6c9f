"""Estimate the mutual information I(X; Y) between paired samples stored in two files.

Row i of X and row i of Y are one joint sample; files are .npy, .npz (one array, or
FILE.npz:KEY) or numeric .csv (an optional header line). The estimate is printed in nats and bits
with a standard error (sampling noise only, not the estimator's bias).

Estimators: ksg (default; Kraskov-Stoegbauer-Grassberger k-nearest neighbours after a rank /
copula transform of every coordinate, the most accurate in docs/mi_accuracy.md), or a neural
critic trained on part of the samples with a variational bound, infonce, jsd, dv, mine, nwj,
smile, and evaluated on held-out samples (InfoNCE can never exceed log of the held-out count).

examples:
  infomax mi x.npy y.npy
  infomax mi data.npz:x data.npz:y --estimator infonce --steps 2000 --json
  infomax mi x.csv y.csv -k 5
"""

from __future__ import annotations

import argparse
import json
import math

HELP = "estimate mutual information between paired samples (KSG or neural bounds)"

_ESTIMATORS = ("ksg", "infonce", "jsd", "dv", "mine", "nwj", "smile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("x", metavar="X", help="samples of X: .npy, .npz[:KEY] or .csv")
    parser.add_argument("y", metavar="Y", help="samples of Y, same number of rows as X")
    parser.add_argument(
        "--estimator",
        "-e",
        choices=_ESTIMATORS,
        default="ksg",
        help="estimator (default: ksg)",
    )
    ksg = parser.add_argument_group("KSG options")
    ksg.add_argument("-k", type=int, default=3, help="neighbours (default: 3)")
    ksg.add_argument(
        "--ksg-algorithm", type=int, choices=(1, 2), default=1, help="KSG algorithm (default: 1)"
    )
    ksg.add_argument(
        "--ksg-transform",
        choices=("rank", "standardize", "none"),
        default="rank",
        help="per-coordinate preprocessing (default: rank)",
    )
    nn = parser.add_argument_group("neural estimator options")
    nn.add_argument(
        "--critic", choices=("separable", "concat"), default="separable",
        help="critic architecture (default: separable)",
    )  # fmt: skip
    nn.add_argument("--hidden", type=int, default=256, help="critic width (default: 256)")
    nn.add_argument("--embed-dim", type=int, default=32, help="separable embedding (default: 32)")
    nn.add_argument("--layers", type=int, default=2, help="critic hidden layers (default: 2)")
    nn.add_argument("--steps", type=int, default=3000, help="max training steps (default: 3000)")
    nn.add_argument("--batch-size", type=int, default=256, help="training batch (default: 256)")
    nn.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default: 5e-4)")
    nn.add_argument(
        "--holdout", type=float, default=0.2,
        help="fraction held out for early stopping and evaluation (default: 0.2)",
    )  # fmt: skip
    nn.add_argument(
        "--transform", choices=("standardize", "rank"), default="standardize",
        help="per-coordinate input transform fitted on the training part (default: standardize)",
    )  # fmt: skip
    nn.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout and nothing else"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from infomax.estimators.fit import estimate_mi
    from infomax.estimators.io import load_pair

    x, y = load_pair(args.x, args.y)
    result = estimate_mi(
        x,
        y,
        args.estimator,
        k=args.k,
        ksg_algorithm=args.ksg_algorithm,
        ksg_transform=args.ksg_transform,
        critic=args.critic,
        hidden=args.hidden,
        embed_dim=args.embed_dim,
        layers=args.layers,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        holdout=args.holdout,
        transform=args.transform,
        seed=args.seed,
        device=args.device,
        progress=not (args.quiet or args.json),
    )
    if args.json:
        d = result.to_dict()
        d.pop("val_history", None)
        d["x"], d["y"] = str(args.x), str(args.y)
        print(json.dumps(d))
        return 0
    se = result.stderr
    se_txt = f" +- {se:.4f}" if math.isfinite(se) else ""
    se_bits = f" +- {se / math.log(2):.4f}" if math.isfinite(se) else ""
    print(f"I(X;Y) = {result.mi:.4f}{se_txt} nats = {result.mi_bits:.4f}{se_bits} bits")
    n = len(x)
    details = f"estimator {result.estimator}, n = {n}, dims {x.shape[1]} x {y.shape[1]}"
    if result.estimator == "ksg":
        details += f", k = {result.extra['k']}, transform {result.extra['transform']}"
    else:
        ex = result.extra
        details += (
            f", trained on {result.n_train}, early-stopped on {ex['n_val']}, evaluated on "
            f"{result.n_eval} held-out samples ({ex['steps_run']} steps, best at "
            f"{ex['best_step']}, {ex['stop_reason']})"
        )
        if "cap_nats" in ex:
            details += f"; InfoNCE cannot exceed log({result.n_eval}) = {ex['cap_nats']:.2f} nats"
    print(f"{details}; {result.seconds:.1f} s")
    print(f"uncertainty: {result.extra['stderr_method']} (sampling noise, not bias)")
    return 0
