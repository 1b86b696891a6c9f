"""A small CPU version of the AMDIM ablation table (Bachman et al., NeurIPS 2019, Sec. 4: rows
"- color jitter", "- random gray", "- random crop", "- multiscale", "- stabilize").

Every row trains the same reduced AMDIM (the CPU recipe ``configs/amdim_cifar10_cpu.yaml``:
ndf 32, n_rkhs 256, n_depth 3, batch 64, unless ``--ndf`` / ``--n-rkhs`` / ``--n-depth`` /
``--set`` say otherwise) with one thing switched off, through the method's own switches:

==============  =============================================================  ==================
row             overrides                                                      paper row
==============  =============================================================  ==================
baseline        (none)                                                         AMDIM
no_jitter       ``model.augment={preset: cifar, enable_jitter: false}``        - color jitter
no_gray         ``model.augment={preset: cifar, enable_gray: false}``          - random gray
no_crop         ``model.augment={preset: cifar, enable_crop: false}``          - random crop
single_scale    ``model.comparisons=[1t5]``                                    - multiscale
no_tclip        ``model.tclip=null``                                           (half of stabilize)
no_penalty      ``model.reg_weight=0``                                         (half of stabilize)
no_stabilize    ``model.tclip=null model.reg_weight=0``                        - stabilize
==============  =============================================================  ==================

(CIFAR's "random crop" is the reference's 4-pixel reflect translation; "- multiscale" keeps only
the global-to-5x5 prediction, our reading of the paper's single-scale row.)

Same for every row: seed (so the same initial encoder and the same batch order), the same
CIFAR-10 subset (``--train-subset``, default 10000, the first N training images), the same
budget (``--minutes`` of training per row, default 3, or ``--steps``). A time budget gives cheaper
rows (single scale, no augmentation step) more steps: ``--steps`` compares at equal updates.
Training is ``infomax.training.train`` on configs from ``load_config`` (no loop of its own);
evaluation is ``infomax.evaluation.evaluate_method``: a linear probe and weighted kNN (k=200) on
the encoder's probe taps (``features`` = r1), fitted on the same training subset and scored on
the test split (``--test-subset``), plus the shared random initialisation as a floor. A row whose
loss turns non-finite is evaluated at its last good checkpoint (written every minute) and marked.

Usage::

    python -m benchmarks.amdim_ablation --data ../shared/data/cifar10.npz --minutes 3
    python -m benchmarks.amdim_ablation --data ../shared/data/cifar10.npz --steps 500
    python -m benchmarks.amdim_ablation --data ../shared/data/cifar10.npz --minutes 0.1 \\
        --train-subset 500 --test-subset 500 --rows baseline no_jitter --out runs/abl-smoke

Writes into ``--out`` (default ``runs/amdim_ablation``) one run folder per row, ``results.md``
(the table printed at the end) and ``results.json`` (every number, and the exact overrides and
config of each row).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Clock, throughput, write_results
from infomax.evaluation import evaluate_method
from infomax.runtime import resolve_device
from infomax.training.config import Config, config_to_dict, load_config
from infomax.training.report import initial_method, run_build
from infomax.training.runs import load_run
from infomax.training.setup import load_datasets
from infomax.training.trainer import train

PRESET = "amdim_cifar10_cpu"

#: row -> (overrides switching one thing off, the paper's row)
ROWS: dict[str, tuple[tuple[str, ...], str]] = {
    "baseline": ((), "AMDIM"),
    "no_jitter": (("model.augment={preset: cifar, enable_jitter: false}",), "- color jitter"),
    "no_gray": (("model.augment={preset: cifar, enable_gray: false}",), "- random gray"),
    "no_crop": (("model.augment={preset: cifar, enable_crop: false}",), "- random crop"),
    "single_scale": (("model.comparisons=[1t5]",), "- multiscale"),
    "no_tclip": (("model.tclip=null",), "(- tanh clip)"),
    "no_penalty": (("model.reg_weight=0",), "(- score penalty)"),
    "no_stabilize": (("model.tclip=null", "model.reg_weight=0"), "- stabilize"),
}


def common_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides every row shares (data, budget, seed, device, encoder size, --set)."""
    out = [
        f"data.dataset={args.data}",
        f"data.train_subset={args.train_subset}",
        f"data.test_subset={'null' if args.test_subset is None else args.test_subset}",
        "train.epochs=100000",
        f"train.seed={args.seed}",
        f"train.device={args.device}",
        f"train.precision={args.precision}",
        "train.checkpoint_minutes=1",
        "eval.after_training=false",
        "eval.neighbors=false",
    ]
    if args.steps:
        out += [f"train.max_steps={args.steps}", "train.time_budget_minutes=null"]
    else:
        out += ["train.max_steps=null", f"train.time_budget_minutes={args.minutes}"]
    for key, value in (("ndf", args.ndf), ("n_rkhs", args.n_rkhs), ("n_depth", args.n_depth)):
        if value is not None:
            out.append(f"model.{key}={value}")
    return out + list(args.set)


def make_config(args: argparse.Namespace, row: str) -> Config:
    return load_config(PRESET, [*common_overrides(args), *ROWS[row][0], f"name={row}"])


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    budget = f"{s['steps']} steps" if s["steps"] else f"{s['minutes']:g} min"
    rows = results["rows"]
    base = rows.get("baseline", {}).get("eval", {}).get("taps", {})
    lines = [
        "## AMDIM ablation (small CPU version)",
        "",
        f"- data `{s['data']}`: {s['num_train']} training images (first N), {s['num_test']} test "
        f"images; preset `{s['preset']}` ({s['encoder']}), seed {s['seed']}; training budget "
        f"{budget} per row; device {s['device']}, torch {s['torch']} ({s['threads']} threads)",
        f"- linear probe and weighted kNN (k={s['knn_k']}) on `{', '.join(s['taps'])}`, fitted "
        "on the training subset, test accuracy in %; delta: percentage points against baseline",
        f"- common overrides: `{' '.join(s['common_overrides'])}`",
        "",
        "| row | paper row | overrides | steps | epochs | img/s | final loss | "
        + " | ".join(f"linear {t} | delta | kNN {t}" for t in s["taps"])
        + " |",
        "|" + "---|" * (7 + 3 * len(s["taps"])),
    ]
    for name, r in rows.items():
        tr = r.get("training") or {}
        note = ""
        if tr.get("stopped") == "nonfinite":
            note = (
                f" (non-finite at step {tr.get('steps')}; evaluated step "
                f"{tr.get('evaluated_step')})"
            )
        cells = [
            name + note,
            r["paper_row"],
            "`" + " ".join(r["overrides"]) + "`" if r["overrides"] else "-",
            str(tr.get("steps", 0)),
            f"{tr['epochs']:.2f}" if tr else "0",
            f"{tr['images_per_sec']:.0f}" if tr else "-",
            f"{tr['final_loss']:.3f}" if tr.get("final_loss") is not None else "-",
        ]
        taps = (r.get("eval") or {}).get("taps", {})
        for t in s["taps"]:
            lin = taps.get(t, {}).get("linear", {}).get("test_acc")
            ref = base.get(t, {}).get("linear", {}).get("test_acc")
            delta = "-" if lin is None or ref is None else f"{100 * (lin - ref):+.1f}"
            knn = taps.get(t, {}).get("knn", {}).get("test_acc")
            cells += [pct(lin), delta, pct(knn)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--data", required=True, help="CIFAR-10 .npz (or a dataset name / folder)")
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget per row")
    ap.add_argument("--steps", type=int, default=None, help="train this many steps instead")
    ap.add_argument("--train-subset", type=int, default=10000, help="first N training images")
    ap.add_argument("--test-subset", type=int, default=None, help="first N test images")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--ndf", type=int, default=None, help="encoder width (default: the preset's)")
    ap.add_argument("--n-rkhs", type=int, default=None, help="embedding width (preset's)")
    ap.add_argument("--n-depth", type=int, default=None, help="units per block (preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--knn-k", type=int, default=200)
    ap.add_argument("--probe-epochs", type=int, default=None, help="default: the package's")
    ap.add_argument("--no-random", action="store_true", help="skip the random-init row")
    ap.add_argument("--out", default="runs/amdim_ablation", help="output folder")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="extra config override for every row (e.g. train.lr=2e-4)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.steps is None and not args.minutes > 0:
        ap.error("--minutes must be positive (or give --steps)")
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be at least 1")
    if args.train_subset is not None and args.train_subset < 2:
        ap.error("--train-subset must be at least 2")
    out = Path(args.out)
    for row in args.rows:
        if (out / row).exists() and any((out / row).iterdir()):
            ap.error(f"{out / row} already holds a run; choose another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock()

    try:
        configs = {row: make_config(args, row) for row in args.rows}
    except ValueError as exc:
        ap.error(str(exc))
    first = next(iter(configs.values()))
    data = load_datasets(first, ("train", "test", "probe_train"))
    train_set, test_set, probe_set = data["train"], data["test"], data["probe_train"]
    device = resolve_device(args.device)
    eval_kw = dict(
        taps=None, probes=["linear"], knn_k=args.knn_k, device=device, seed=args.seed,
        probe_epochs=args.probe_epochs, log=print,
    )  # fmt: skip

    rows: dict[str, Any] = {}
    if not args.no_random:
        # every row's initial encoder (the switches do not change how it is built), as the
        # package's evaluation rebuilds it: the run's seed, the trainer's build
        method = initial_method(first, run_build(first, None, train_set)).to(device).eval()
        print("== evaluating the random initialisation", flush=True)
        rows["random_init"] = {
            "paper_row": "(random encoder)",
            "overrides": [],
            "training": None,
            "eval": evaluate_method(method, probe_set, test_set, **eval_kw),
        }

    for row, cfg in configs.items():
        overrides = list(ROWS[row][0])
        print(f"== training {row}: {' '.join(overrides) or '(baseline)'}", flush=True)
        result = train(cfg, run_dir=out / row, progress=False, train_set=train_set)
        speed = throughput(result.run_dir / "metrics.csv")
        ips, final_loss = speed["images_per_sec"], speed["loss"]
        training = {
            "steps": result.step,
            "epochs": result.epoch,
            "stopped": result.stopped,
            "message": result.message,
            "train_seconds": round(result.seconds, 1),
            "images_per_sec": ips,
            "final_loss": final_loss,
            "last_metrics": result.last_metrics,
            "run_dir": str(result.run_dir),
            "evaluated_step": result.step,
        }
        method = result.method
        if result.stopped == "nonfinite":
            if result.checkpoint is None:
                print(f"{row}: {result.message}; nothing to evaluate", file=sys.stderr)
                rows[row] = {"paper_row": ROWS[row][1], "overrides": overrides,
                             "training": training, "eval": None,
                             "config": config_to_dict(cfg)}  # fmt: skip
                continue
            method, _ = load_run(result.run_dir, device=device)
            ckpt = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
            training["evaluated_step"] = int(ckpt.get("step", -1))
        print(f"== evaluating {row}", flush=True)
        method = method.to(device).eval()
        rows[row] = {
            "paper_row": ROWS[row][1],
            "overrides": overrides,
            "training": training,
            "eval": evaluate_method(method, probe_set, test_set, **eval_kw),
            "config": config_to_dict(cfg),
        }
        del method, result

    taps = []
    for r in rows.values():
        for t in (r.get("eval") or {}).get("taps", {}):
            if t not in taps:
                taps.append(t)
    results = {
        "settings": {
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "preset": PRESET,
            "encoder": (
                f"{first.model.get('encoder')} ndf {first.model.get('ndf')}, n_rkhs "
                f"{first.model.get('n_rkhs')}, n_depth {first.model.get('n_depth')}, batch "
                f"{first.train.batch_size}, Adam {first.train.lr:g}"
            ),
            "data": args.data,
            "train_subset": args.train_subset,
            "test_subset": args.test_subset,
            "num_train": len(train_set.images),
            "num_test": len(test_set.images),
            "seed": args.seed,
            "minutes": None if args.steps else args.minutes,
            "steps": args.steps,
            "common_overrides": common_overrides(args),
            "row_overrides": {row: list(ROWS[row][0]) for row in args.rows},
            "taps": taps,
            "knn_k": args.knn_k,
            "probe_epochs": args.probe_epochs,
            "device": str(device),
            "precision": args.precision,
            **clock.environment(),
        },
        "rows": rows,
    }
    write_results(out, results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
