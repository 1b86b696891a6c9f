"""The one evaluation of a run: :func:`evaluate_run`, used by ``eval.after_training`` (at the end
of ``infomax train``) and by ``infomax eval``, with the settings of ``cfg.eval``.

It evaluates the trained encoder (probes and kNN on its probe taps, :mod:`infomax.evaluation`),
optionally next to the same encoder at its random initialisation (``eval.compare_random``: the
method rebuilt with the run's seed, i.e. exactly the weights training started from), and draws a
nearest-neighbour grid (``eval.neighbors``). Everything goes into one folder, ``RUN/eval/``:

    results.json   the record: checkpoint, data, settings and ``models: {trained, random}``
    results.md     the table (:func:`infomax.evaluation.format_table`) as printed
    neighbors.png  nearest neighbours of test images (also ``infomax neighbors``' default)
    cache/         extracted features, reused by later evaluations of the same checkpoint

An earlier ``results.json`` / ``results.md`` / ``neighbors.png`` is kept under a name with its
time (``results-20261201-101500.json``). :func:`read_results` also reads the two layouts runs had
before (``RUN/eval.json`` written after training, and ``RUN/eval/results.json`` version 1).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infomax.runtime import atomic_write_text, resolve_device, resolve_precision
from infomax.training.config import Config, EvalConfig
from infomax.training.runs import build_method

EVAL_DIR = "eval"
CACHE_DIR = "cache"
RESULTS_JSON = "results.json"
RESULTS_TABLE = "results.md"
NEIGHBORS_PNG = "neighbors.png"
RESULTS_FORMAT = 2
# written by earlier versions: after training (RUN/eval.json, {"trained": ..., "random": ...})
LEGACY_AFTER_TRAINING = "eval.json"


def initial_method(cfg: Config, build: dict[str, Any]) -> nn.Module:
    """The method exactly as the run initialised it: seeded by ``cfg.train.seed``, built for the
    checkpoint's ``build`` (``in_channels``, ``image_size`` and the ``model`` arguments derived
    from the data); the global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return build_method(cfg, build["in_channels"], build["image_size"], build.get("model"))


def run_build(
    cfg: Config, checkpoint: str | os.PathLike | None, train_set: Any = None
) -> dict[str, Any]:
    """What the method of a run was built for: the checkpoint's ``build`` record, or (without a
    checkpoint) what the trainer would derive from ``train_set`` (empty without it)."""
    if checkpoint is not None:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
        if "build" in ckpt:
            return dict(ckpt["build"])
    if train_set is None:
        return {}
    from infomax.training.setup import derive_model_kwargs

    shape = train_set.images.shape
    model = derive_model_kwargs(cfg, train_set)
    return {"in_channels": int(shape[1]), "image_size": int(shape[-1]), "model": model}


def keep_previous(path: Path) -> Path | None:
    """Rename an existing ``path`` to ``STEM-YYYYmmdd-HHMMSS.EXT`` (its modification time) so a
    new file can take its name; returns the new name, or ``None`` when ``path`` did not exist."""
    if not path.exists():
        return None
    stamp = _dt.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}-{stamp}{path.suffix}")
    i = 2
    while target.exists():
        target = path.with_name(f"{path.stem}-{stamp}-{i}{path.suffix}")
        i += 1
    os.replace(path, target)  # a rename, not a write: nothing can be half-written
    return target


# ----------------------------------------------------------------------------------------------
# data


def eval_splits(cfg: Config, settings: EvalConfig | None = None) -> tuple[str, str]:
    """``(probe training split, test split)`` of an evaluation of ``cfg``."""
    e = settings or cfg.eval
    return e.train_split or cfg.data.train_split, cfg.data.test_split


def check_eval_data(cfg: Config) -> None:
    """Before training: a ValueError naming the problem and the fix when the evaluation asked for
    (``eval.after_training``) could not run on ``cfg.data`` (e.g. an .npz without the test split),
    so the run does not train fully and then fail. Cheap: reads only the archive's index."""
    from infomax.data import check_splits

    if not cfg.eval.after_training:
        return
    train_split, test_split = eval_splits(cfg)
    check_splits(
        cfg.data.dataset, [train_split, test_split], root=cfg.data.root,
        fix="set data.test_split / eval.train_split to splits it has, or eval.after_training="
        "false (evaluate later with infomax eval --data ...)",
    )  # fmt: skip


def check_build(ds: Any, build: dict[str, Any]) -> None:
    """ValueError if the images' channels or size differ from those the method was built for
    (``build``: the checkpoint's ``{"in_channels", "image_size"}``)."""
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


def load_split(
    cfg: Config,
    split: str,
    data: str | None = None,
    image_size: int | None = None,
    build: dict[str, Any] | None = None,
    subset: int | None = None,
) -> Any:
    """One split of the run's dataset (or of ``data``), at the size the method was built for
    (``build``) unless ``image_size`` says otherwise; ``subset`` keeps the first N images."""
    from infomax.data import load_dataset

    d = cfg.data
    if image_size is None:
        image_size = d.image_size
        if data is not None and build:
            image_size = build.get("image_size", image_size)
    ds = load_dataset(
        data if data is not None else d.dataset, split=split, root=d.root,
        download=d.download, image_size=image_size,
    )  # fmt: skip
    if subset is not None and 0 < subset < len(ds.images):
        ds = ds.subset(range(subset))
    if build:
        check_build(ds, build)
    return ds


def eval_datasets(
    cfg: Config,
    settings: EvalConfig | None = None,
    data: str | None = None,
    image_size: int | None = None,
    build: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"probe_train", "test"}`` datasets of an evaluation: the run's own dataset with its
    ``data.train_subset`` / ``data.test_subset``, or all of ``data``."""
    train_split, test_split = eval_splits(cfg, settings)
    own = data is None
    return {
        "probe_train": load_split(cfg, train_split, data, image_size, build,
                                  cfg.data.train_subset if own else None),
        "test": load_split(cfg, test_split, data, image_size, build,
                           cfg.data.test_subset if own else None),
    }  # fmt: skip


# ----------------------------------------------------------------------------------------------
# the evaluation


def _score(
    method: nn.Module, datasets: dict[str, Any], e: EvalConfig, seed: int, **kw: Any
) -> dict[str, Any]:
    from infomax.evaluation import evaluate_method

    return evaluate_method(
        method, datasets["probe_train"], datasets["test"], taps=e.taps, probes=e.probes,
        knn_k=e.knn_k or None, seed=seed, batch_size=e.batch_size,
        knn_temperature=e.knn_temperature, knn_metric=e.knn_metric, knn_vote=e.knn_vote,
        probe_epochs=e.probe_epochs, probe_lr=e.probe_lr, probe_batch_size=e.probe_batch_size,
        probe_weight_decay=e.probe_weight_decay, probe_milestones=e.probe_milestones, **kw,
    )  # fmt: skip


def evaluate_run(
    method: nn.Module,
    cfg: Config,
    run_dir: str | os.PathLike,
    *,
    settings: EvalConfig | None = None,
    device: str | torch.device = "auto",
    precision: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    datasets: dict[str, Any] | None = None,
    data: str | None = None,
    cache: bool = True,
    save: bool = True,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Evaluate ``method`` (a run's trained method) as ``settings`` (default ``cfg.eval``) asks.

    ``precision``: feature extraction (``None``: the run's ``train.precision``); ``checkpoint``:
    the file ``method`` was loaded from (keys the feature cache; ``None``: its weights' hash);
    ``datasets``: ``{"probe_train", "test"}`` (default: :func:`eval_datasets`); ``data``: the
    dataset's name for the record when ``datasets`` come from elsewhere. ``save``: write
    ``RUN/eval/`` (see the module docstring). Returns the record, plus ``table`` (the printed
    table), ``neighbors`` (the PNG or ``None``) and ``path`` (results.json or ``None``).
    """
    e = settings or cfg.eval
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    precision = resolve_precision(precision or cfg.train.precision, dev)
    seed = cfg.train.seed if e.seed is None else e.seed
    datasets = datasets or eval_datasets(cfg, e)
    out_dir = run_dir / EVAL_DIR
    kw = dict(device=dev, precision=precision, progress=progress, log=None)
    kw["cache_dir"] = out_dir / CACHE_DIR if cache else None
    was_training = method.training
    models: dict[str, Any] = {}
    if log:
        log(f"evaluating the trained encoder ({len(datasets['probe_train'].images)} + "
            f"{len(datasets['test'].images)} images, {dev}, {precision})")  # fmt: skip
    models["trained"] = _score(method, datasets, e, seed, checkpoint=checkpoint, **kw)
    if e.compare_random:
        build = run_build(cfg, checkpoint, datasets["probe_train"])
        random_method = initial_method(cfg, build).to(dev)
        if log:
            log("evaluating the same encoder at its random initialisation")
        models["random"] = _score(random_method, datasets, e, seed, **kw)
    method.train(was_training)
    record = _record(cfg, run_dir, e, checkpoint, data, datasets, models)
    record["table"] = format_results(record)
    record["path"] = _save(record, out_dir) if save else None
    record["neighbors"] = None
    if e.neighbors:
        record["neighbors"] = draw_neighbors(
            method, datasets, out_dir / NEIGHBORS_PNG, seed, e.batch_size, checkpoint, **kw
        )
    method.train(was_training)
    return record


def draw_neighbors(
    method: nn.Module, datasets: dict[str, Any], path: Path, seed: int, batch_size: int,
    checkpoint: str | os.PathLike | None = None, **kw: Any,
) -> Path:
    """``neighbors.png`` of the evaluation: test queries, neighbours among the probe images."""
    from infomax.evaluation import neighbors_grid

    keep_previous(path)
    return neighbors_grid(
        method, datasets["test"], path, gallery=datasets["probe_train"], seed=seed,
        device=kw["device"], precision=kw["precision"], batch_size=batch_size,
        cache=kw.get("cache_dir"), checkpoint=checkpoint,
    ).path  # fmt: skip


def _record(
    cfg: Config, run_dir: Path, e: EvalConfig, checkpoint: Any, data: str | None,
    datasets: dict[str, Any], models: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    train_split, test_split = eval_splits(cfg, e)
    shape = datasets["test"].images.shape
    return {
        "format": RESULTS_FORMAT,
        "timestamp": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "run": str(run_dir),
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "method": cfg.method,
        "data": {
            "dataset": data or cfg.data.dataset,
            "train_split": train_split,
            "test_split": test_split,
            "image_size": int(shape[-1]),
        },
        "settings": dataclasses.asdict(e),
        "models": models,
    }


def _save(record: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path, table = out_dir / RESULTS_JSON, out_dir / RESULTS_TABLE
    keep_previous(path)
    keep_previous(table)
    body = {k: v for k, v in record.items() if k not in ("table", "path", "neighbors")}
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    atomic_write_text(table, record["table"] + "\n")
    return path


def format_results(record: dict[str, Any]) -> str:
    """The table of a results record (one renderer for every evaluation)."""
    from infomax.evaluation import format_table

    return format_table(record["models"])


# ----------------------------------------------------------------------------------------------
# reading results, including those written by earlier versions


def _rename_old_probes(models: dict[str, Any]) -> dict[str, Any]:
    for m in models.values():
        for tap in m.get("taps", {}).values():
            if "mlp" in tap:
                tap["mlp200"] = tap.pop("mlp")
    return models


def read_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The latest evaluation record of a run, in the current format, from ``RUN/eval/results.json``
    (this version or version 1, written by ``infomax eval``) or ``RUN/eval.json`` (written after
    training by earlier versions). FileNotFoundError when the run was never evaluated."""
    run_dir = Path(run_dir)
    new, old = run_dir / EVAL_DIR / RESULTS_JSON, run_dir / LEGACY_AFTER_TRAINING
    if new.is_file():
        raw = json.loads(new.read_text(encoding="utf-8"))
        if raw.get("format") == RESULTS_FORMAT:
            record = raw
        else:  # version 1: {"infomax_eval": 1, ..., "taps", "num_train", ...} of one model
            keys = ("taps", "num_train", "num_test", "num_classes", "settings", "seconds")
            record = {k: v for k, v in raw.items() if k not in keys}
            record["models"] = {"trained": {k: raw[k] for k in keys if k in raw}}
    elif old.is_file():
        record = {"run": str(run_dir), "models": json.loads(old.read_text(encoding="utf-8"))}
    else:
        raise FileNotFoundError(
            f"{str(run_dir)!r} has no evaluation results ({EVAL_DIR}/{RESULTS_JSON}); "
            f"run: infomax eval {run_dir}"
        )
    record["models"] = _rename_old_probes(record["models"])
    record.setdefault("format", RESULTS_FORMAT)
    return record
