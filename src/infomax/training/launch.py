"""Starting a training run: which folder and config each process trains with (a new run, or one
continued), and the worker processes of ``infomax train --nproc N``.

Several processes are started by PyTorch's own launcher, ``torchrun`` (``python -m
torch.distributed.run``), which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and restarts the
whole group when a worker fails (``--max-restarts``). Under it the run folder is named explicitly
(``--run-dir``), and a folder that already holds a checkpoint is continued, so a restarted group
resumes from the last checkpoint instead of starting ``NAME-2``. The main process (rank 0) takes
these decisions, alone on the filesystem, and broadcasts them (with the config) to the others:
with several machines only rank 0's machine needs the run folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from infomax.distributed import World, broadcast_object
from infomax.training.config import (
    RESUMABLE_KEYS,
    Config,
    config_differences,
    config_from_dict,
    config_to_dict,
    load_config,
    read_yaml,
)
from infomax.training.runs import CONFIG_FILE, LAST_CHECKPOINT, create_run_dir, read_run_config

__all__ = [
    "continue_config",
    "prepare_run",
    "restart_count",
    "resume_config",
    "run_workers",
    "under_torchrun",
    "worker_threads",
]

# files the trainer itself writes before its first checkpoint
_OWN_FILES = {CONFIG_FILE, "train.log", "metrics.csv", "metrics.png"}


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (torch.distributed.elastic)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def restart_count() -> int:
    """How many times torchrun has restarted this group (0 on the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def prepare_run(
    cfg: Config, run_dir: str | os.PathLike | None, resume: str | os.PathLike | None
) -> tuple[Path, bool, Config]:
    """``(folder, resuming, config)`` of this process's run; collective with several processes
    (the main process decides, and its errors are raised on every process)."""
    world = World.from_env()
    decision: Any = None
    if world.is_main:
        try:
            folder, resuming, cfg = _decide(cfg, run_dir, resume, world)
            decision = (str(folder), resuming, config_to_dict(cfg))
        except (ValueError, FileNotFoundError) as exc:
            decision = exc
    if not world.distributed:
        if isinstance(decision, Exception):
            raise decision
        return Path(decision[0]), decision[1], cfg
    decision = broadcast_object(decision)
    if isinstance(decision, Exception):
        raise decision
    folder, resuming, raw = decision
    return Path(folder), resuming, cfg if world.is_main else config_from_dict(raw)


def _decide(
    cfg: Config, run_dir: str | os.PathLike | None, resume: str | os.PathLike | None, world: World
) -> tuple[Path, bool, Config]:
    from infomax.training.report import check_eval_data

    check_eval_data(cfg)  # the evaluation after training could run: say so before training
    if resume is not None:
        folder = Path(resume)
        if not (folder / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"cannot resume {str(folder)!r}: it has no {CONFIG_FILE}")
        return folder, True, cfg
    if run_dir is None:  # one process (train() asks several for a run_dir)
        return create_run_dir(cfg, None), False, cfg
    folder = Path(run_dir).expanduser()
    if under_torchrun() and (folder / LAST_CHECKPOINT).is_file():
        return folder, True, continue_config(folder, read_run_config(folder), cfg)
    if under_torchrun() and restart_count() > 0 and folder.is_dir():
        others = sorted(p.name for p in folder.iterdir() if p.name not in _OWN_FILES)
        if not others:  # an earlier attempt of this launch stopped before its first checkpoint
            return folder, False, cfg
    return create_run_dir(cfg, folder), False, cfg


def resume_config(
    run_dir: str | os.PathLike, config: str | os.PathLike | None = None, overrides=()
) -> Config:
    """The config to continue ``run_dir`` with: its own, plus overrides of resumable keys.

    Raises ValueError listing every difference that would change what is trained.
    """
    old = read_run_config(run_dir)
    if config is not None:
        new = load_config(config, overrides)
    else:
        base = read_yaml(Path(run_dir) / CONFIG_FILE)
        base.pop("meta", None)
        new = load_config(None, overrides, base=base)
    return continue_config(run_dir, old, new)


def continue_config(run_dir: str | os.PathLike, old: Config, new: Config) -> Config:
    for key in ("mean", "std"):  # runs made before derived values stayed out of the config
        if key in old.model and key not in new.model:
            new.model[key] = old.model[key]
    diffs = config_differences(old, new, ignore=RESUMABLE_KEYS)
    if diffs:
        allowed = ", ".join(k for k in RESUMABLE_KEYS if k.startswith("train."))
        raise ValueError(
            f"cannot resume {str(run_dir)!r} with a different config:\n  "
            + "\n  ".join(diffs)
            + f"\nonly these may change on resume: {allowed} (and eval.*); start a new run to "
            "change anything else"
        )
    new.name, new.run_dir = old.name, old.run_dir
    return new


def worker_threads(nproc: int) -> int:
    """CPU threads per worker: the cores this process may use, shared out (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, nproc))


def run_workers(nproc: int, argv: list[str], max_restarts: int = 0) -> int:
    """Run ``infomax train ARGV`` in ``nproc`` processes on this machine through torchrun
    (``--standalone``: a local rendezvous on a free port), with the CPU threads shared out."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(worker_threads(nproc)))
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
         "-m", "infomax", "train", *argv]
    )  # fmt: skip
    try:
        run(args)
    except ChildFailedError as exc:
        failures = "; ".join(f"rank {r}: exit code {f.exitcode}" for r, f in exc.failures.items())
        print(f"infomax train: a worker failed ({failures}); see the messages above", flush=True)
        return 1
    return 0
