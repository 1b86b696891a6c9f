"""Train an encoder by mutual-information maximisation (Deep InfoMax or AMDIM).

With no arguments this is the offline quick start: AMDIM with a small encoder on the built-in
synthetic dataset for 500 steps (under two minutes on a 2-core CPU), then linear-probe and kNN
accuracy of the trained encoder next to the same encoder at its random initialisation, and a
picture of nearest neighbours (eval/neighbors.png).

A run is configured in two stages: --config (a YAML file, or the name of a shipped preset; the
default is quickstart) replaces the built-in defaults, then KEY=VALUE overrides replace single
settings (values are read as YAML and checked against the type of each setting). Every run gets a
new folder (runs/NAME, suffixed -2, -3 ... if taken) holding config.yaml, metrics.csv,
metrics.png, train.log and checkpoints; --resume RUN_DIR continues a run exactly where its last
checkpoint stopped (overrides may then change only the length, logging and device settings).

Several processes (data parallel, train.batch_size is the global batch): --nproc N starts N
workers on this machine through torchrun; on several machines run torchrun yourself
(docs/distributed.md): torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d
--rdzv-endpoint HOST:29500 -m infomax train --config amdim_imagenet --run-dir runs/x

examples:
  infomax train                                       # quick start (offline, ~2 min on a CPU)
  infomax train --config dim_l_nce_cifar10 data.download=true
  infomax train --config amdim_cifar10 train.batch_size=128 --time-budget 60
  infomax train --config configs/my_run.yaml model.estimator=infonce --name nce-test
  infomax train --resume runs/dim_l_nce_cifar10 train.epochs=1200
  infomax train --config amdim_cifar10 --nproc 2             # two processes, same maths
  infomax train --list-presets
  infomax train --config amdim_stl10 --print-config
"""

from __future__ import annotations

import argparse
import sys

HELP = "train an encoder (DIM, AMDIM) from a preset or YAML config; no arguments: quick start"

DEFAULT_PRESET = "quickstart"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="settings that replace the config's, e.g. train.batch_size=64 model.estimator=infonce",
    )  # fmt: skip
    parser.add_argument(
        "--config", "-c", metavar="FILE_OR_PRESET",
        help=f"YAML config file or preset name (default: {DEFAULT_PRESET}; see --list-presets)",
    )  # fmt: skip
    parser.add_argument(
        "--set", dest="set_overrides", action="append", default=[], metavar="KEY=VALUE",
        help="one more override (repeatable; same as a positional KEY=VALUE)",
    )  # fmt: skip
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument(
        "--run-dir", metavar="DIR",
        help="folder of this run (must be new or empty; default: runs/NAME)",
    )  # fmt: skip
    parser.add_argument("--name", help="run name, the folder under run_dir (default: preset name)")
    parser.add_argument(
        "--nproc", type=int, metavar="N",
        help="train in N processes on this machine (one per GPU, or CPU processes sharing the "
        "cores), started through torchrun",
    )  # fmt: skip
    parser.add_argument(
        "--max-restarts", type=int, default=0, metavar="K",
        help="with --nproc: restart the workers up to K times after a failure (they resume from "
        "the last checkpoint)",
    )  # fmt: skip
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (train.device)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16"), help="train.precision"
    )
    parser.add_argument(
        "--time-budget", type=float, metavar="MIN",
        help="stop cleanly after MIN minutes of training (train.time_budget_minutes)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, help="train.epochs")
    parser.add_argument("--max-steps", type=int, help="train.max_steps")
    parser.add_argument("--seed", type=int, help="train.seed")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )
    parser.add_argument(
        "--list-presets", action="store_true", help="list the shipped presets and exit"
    )


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, key in (
        ("device", "train.device"),
        ("precision", "train.precision"),
        ("time_budget", "train.time_budget_minutes"),
        ("epochs", "train.epochs"),
        ("max_steps", "train.max_steps"),
        ("seed", "train.seed"),
        ("name", "name"),
    ):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def _list_presets() -> int:
    from infomax.training.config import PRESET_DIR, list_presets, read_yaml

    print(f"presets in {PRESET_DIR}:")
    for name in list_presets():
        raw = read_yaml(PRESET_DIR / f"{name}.yaml")
        data = (raw.get("data") or {}).get("dataset", "?")
        model = raw.get("model") or {}
        what = raw.get("method", "dim")
        if "estimator" in model:
            what += f" {model['estimator']}"
        print(f"  {name:<24} {what:<14} {data}")
    return 0


def run(args: argparse.Namespace) -> int:
    import yaml

    from infomax.training.config import config_to_dict, load_config
    from infomax.training.trainer import resume_config, train

    if args.list_presets:
        return _list_presets()
    for text in args.overrides:
        if "=" not in text:
            raise ValueError(
                f"unexpected argument {text!r}: overrides look like section.key=value "
                "(use --config FILE to give a config file)"
            )
    overrides = [*args.overrides, *args.set_overrides, *_flag_overrides(args)]
    if args.no_eval:
        overrides.append("eval.after_training=false")

    if args.resume:
        if args.run_dir:
            raise ValueError("--resume continues RUN_DIR in place; leave out --run-dir")
        cfg = resume_config(args.resume, args.config, overrides)
    else:
        cfg = load_config(args.config or DEFAULT_PRESET, overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None), end="")
        return 0
    if args.nproc is not None:
        return _launch(args, cfg)

    from infomax import distributed

    result = train(cfg, run_dir=args.run_dir, resume=args.resume, progress=not args.quiet)
    distributed.shutdown()
    if result.rank != 0:  # the main process reports and evaluates
        return 0 if result.stopped != "nonfinite" else 1
    if result.stopped == "nonfinite":
        print(f"infomax train: {result.message}", file=sys.stderr)
        return 1
    if cfg.eval.after_training:
        from infomax.training.report import evaluate_run

        report = evaluate_run(
            result.method, cfg, result.run_dir, device=cfg.train.device,
            checkpoint=result.checkpoint,
        )  # fmt: skip
        print()
        print(report["table"])
        print(f"\nresults: {report['path']}")
        if report["neighbors"] is not None:
            print(f"nearest neighbours of test images: {report['neighbors']}")
    print(f"\nrun folder: {result.run_dir}")
    return 0


def _launch(args: argparse.Namespace, cfg) -> int:
    """``--nproc N``: the same command in N torchrun workers, with the run folder named."""
    from infomax.training.launch import run_workers, under_torchrun
    from infomax.training.runs import create_run_dir

    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    if under_torchrun():
        raise ValueError("--nproc starts torchrun itself; under torchrun leave it out")
    argv = _without(getattr(args, "argv", []), ("--nproc", "--max-restarts", "--run-dir"))
    if not args.resume:  # the workers fill the folder made here, so restarts find it
        argv += ["--run-dir", str(create_run_dir(cfg, args.run_dir))]
    return run_workers(args.nproc, argv, max_restarts=args.max_restarts)


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without the given options (``--flag VALUE`` or ``--flag=VALUE``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
        elif not a.startswith(tuple(f"{f}=" for f in flags)):
            out.append(a)
    return out
