"""The whole evaluation of a trained method: probes and kNN on every probe tap.

For each tap (DIM: ``conv``, ``fc``, ``y``; AMDIM: ``features``) the features of the training and
test splits are extracted once (and cached), then the probes (:mod:`infomax.evaluation.probes`:
``linear``, and ``mlp200``, Deep InfoMax's 200-unit MLP) and a weighted kNN classifier
(:mod:`infomax.evaluation.knn`) are scored on the test split.

The defaults below are the defaults of every evaluation: ``infomax eval``, ``eval.after_training``
(``infomax.training.config.EvalConfig`` holds the same values) and this API. They are named in
docs/evaluation.md.

>>> results = evaluate_method(method, train_set, test_set, cache_dir="cache")  # doctest: +SKIP
>>> print(format_table({"trained": results}))                               # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from infomax.evaluation.features import (
    FeatureCache,
    _dataset_labels,
    extract_features,
    method_device,
)
from infomax.evaluation.knn import METRICS, VOTES, knn_accuracy
from infomax.evaluation.probes import PROBE_KINDS, probe_kind, train_probe

__all__ = [
    "DEFAULT_KNN_K",
    "DEFAULT_KNN_TEMPERATURE",
    "DEFAULT_PROBES",
    "evaluate_features",
    "evaluate_method",
    "format_table",
]

#: probes trained by default (``mlp200`` is DIM's 200-unit MLP probe, slower; ask for it)
DEFAULT_PROBES: tuple[str, ...] = ("linear",)
#: neighbours of the weighted kNN classifier (Wu et al. 2018 use k=200, T=0.1)
DEFAULT_KNN_K = 200
DEFAULT_KNN_TEMPERATURE = 0.1


# the scoring settings of evaluate_features and their defaults (recorded in every result)
_SCORING_DEFAULTS: dict[str, Any] = {
    "knn_temperature": DEFAULT_KNN_TEMPERATURE,
    "knn_metric": "cosine",
    "knn_vote": "weighted",
    "probe_epochs": None,
    "probe_lr": None,
    "probe_batch_size": None,
    "probe_weight_decay": None,
    "probe_milestones": None,
}


def _check_probes(probes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(probe_kind(p) for p in probes))


def evaluate_features(
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test_features: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    probes: Iterable[str] = DEFAULT_PROBES,
    knn_k: int | None = DEFAULT_KNN_K,
    knn_temperature: float = DEFAULT_KNN_TEMPERATURE,
    knn_metric: str = "cosine",
    knn_vote: str = "weighted",
    device: str | torch.device | None = None,
    seed: int = 0,
    probe_epochs: int | None = None,
    probe_lr: float | None = None,
    probe_batch_size: int | None = None,
    probe_weight_decay: float | None = None,
    probe_milestones: Iterable[int] | None = None,
    num_classes: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Probe and kNN scores of precomputed features: ``{tap: {"dim", probe kinds..., "knn"}}``."""
    probes = _check_probes(probes)
    if knn_metric not in METRICS:
        raise ValueError(f"unknown kNN metric {knn_metric!r}; valid metrics: {', '.join(METRICS)}")
    if knn_vote not in VOTES:
        raise ValueError(f"unknown kNN vote {knn_vote!r}; valid votes: {', '.join(VOTES)}")
    out: dict[str, dict[str, Any]] = {}
    for tap, xtr in train_features.items():
        if tap not in test_features:
            raise ValueError(f"tap {tap!r} has train features but no test features")
        xte = test_features[tap]
        dev = torch.device(device) if device is not None else xtr.device
        res: dict[str, Any] = {"dim": int(xtr.shape[1])}
        for kind in probes:
            r = train_probe(
                xtr, train_labels, xte, test_labels, kind=kind, epochs=probe_epochs, lr=probe_lr,
                batch_size=probe_batch_size, weight_decay=probe_weight_decay, seed=seed,
                device=dev, num_classes=num_classes, milestones=probe_milestones,
            )  # fmt: skip
            res[kind] = r.to_dict()
            if log:
                log(f"{tap}: {kind} probe {100 * r.test_acc:.2f}% test "
                    f"({100 * r.train_acc:.2f}% train, {r.seconds:.1f} s)")  # fmt: skip
        if knn_k:
            t0 = time.perf_counter()
            acc = knn_accuracy(
                xtr, train_labels, xte, test_labels, k=knn_k, temperature=knn_temperature,
                metric=knn_metric, vote=knn_vote, device=dev,
            )  # fmt: skip
            res["knn"] = {
                "test_acc": acc,
                "k": int(knn_k),
                "temperature": knn_temperature,
                "metric": knn_metric,
                "vote": knn_vote,
                "seconds": round(time.perf_counter() - t0, 3),
            }
            if log:
                log(f"{tap}: kNN (k={knn_k}) {100 * acc:.2f}% test")
        out[tap] = res
    return out


def _labelled_counts(train_ds: Any, test_ds: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Labels of both splits and the number of classes; a ValueError for unlabelled splits."""
    ytr, yte = _dataset_labels(train_ds), _dataset_labels(test_ds)
    if ytr is None or yte is None:
        raise ValueError("evaluation needs labelled datasets (.labels); got one without labels")
    for which, y in (("training", ytr), ("test", yte)):
        if int((y >= 0).sum()) == 0:
            raise ValueError(
                f"the {which} split has no labelled images (labels -1); evaluate on a labelled "
                "split"
            )
    num_classes = max(int(ytr.max()), int(yte.max())) + 1
    classes = getattr(train_ds, "classes", None)
    return ytr, yte, max(num_classes, len(classes)) if classes else num_classes


def evaluate_method(
    method: nn.Module,
    train_ds: Any,
    test_ds: Any,
    taps: Iterable[str] | None = None,
    probes: Iterable[str] = DEFAULT_PROBES,
    knn_k: int | None = DEFAULT_KNN_K,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    batch_size: int = 256,
    precision: str = "fp32",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    **scoring: Any,
) -> dict[str, Any]:
    """Evaluate a trained method: probes and kNN accuracy on each feature tap.

    Args:
        method: a method with ``features(images_uint8)`` (and ``encoder.probe_taps``).
        train_ds, test_ds: labelled datasets (``.images`` uint8 ``(N, C, H, W)``, ``.labels``;
            rows labelled -1 are left out of probes and kNN).
        taps: taps to evaluate (``None``: the encoder's ``probe_taps``).
        probes: any of ``linear``, ``mlp200``; empty: no probes.
        knn_k: neighbours of the weighted kNN classifier (``None`` or 0: no kNN).
        device: where features, probes and kNN run (``None``: where the method is; ``auto``).
        cache_dir: a :class:`FeatureCache` (or its folder) for the features.
        seed: seeds the probes.
        checkpoint: the method's checkpoint file (the cache key follows its content).
        batch_size, precision, progress: feature extraction (see :func:`extract_features`).
        log: called with one line of progress after each step (e.g. ``print``).
        scoring: keyword arguments of :func:`evaluate_features` (``knn_temperature``,
            ``knn_metric``, ``knn_vote``, ``probe_epochs``, ``probe_lr``, ``probe_batch_size``,
            ``probe_weight_decay``, ``probe_milestones``).

    Returns:
        a JSON-serialisable dict: ``taps`` (``{tap: {"dim", "linear", "mlp200", "knn"}}``, each
        with ``test_acc`` / ``train_acc`` as fractions), ``num_train``, ``num_test``,
        ``num_classes``, ``settings`` and ``seconds``.
    """
    probes = _check_probes(probes)
    unknown = sorted(set(scoring) - set(_SCORING_DEFAULTS))
    if unknown:
        raise TypeError(f"evaluate_method got unknown settings {unknown}")
    scoring = {**_SCORING_DEFAULTS, **scoring}
    dev = method_device(method, device)
    if isinstance(cache_dir, str | os.PathLike):
        cache_dir = FeatureCache(cache_dir)
    kw = dict(batch_size=batch_size, device=dev, progress=progress, precision=precision,
              out_device=None, cache=cache_dir, checkpoint=checkpoint)  # fmt: skip
    ytr, yte, num_classes = _labelled_counts(train_ds, test_ds)
    t0 = time.perf_counter()
    train_f = extract_features(method, train_ds, taps=None if taps is None else list(taps), **kw)
    test_f = extract_features(method, test_ds, taps=list(train_f), **kw)
    t_feat = time.perf_counter() - t0
    if log:
        hits = f" ({cache_dir.hits} taps from the cache)" if cache_dir is not None else ""
        log(f"features of {len(train_f)} taps for {len(ytr)} + {len(yte)} images: "
            f"{t_feat:.1f} s{hits}")  # fmt: skip
    per_tap = evaluate_features(
        train_f, ytr, test_f, yte, probes=probes, knn_k=knn_k, device=dev, seed=seed,
        num_classes=num_classes, log=log, **scoring,
    )  # fmt: skip
    settings = {"taps": list(train_f), "probes": list(probes), "knn_k": knn_k, **scoring}
    if settings.get("probe_milestones") is not None:
        settings["probe_milestones"] = list(settings["probe_milestones"])
    settings.update(precision=precision, seed=seed, device=str(dev))
    return {
        "taps": per_tap,
        "num_train": int((ytr >= 0).sum()),
        "num_test": int((yte >= 0).sum()),
        "num_classes": num_classes,
        "settings": settings,
        "seconds": {
            "features": round(t_feat, 3),
            "probes_and_knn": round(time.perf_counter() - t0 - t_feat, 3),
        },
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _columns(models: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(model, result key, header)`` of each column: every probe, then kNN, each per model."""
    tap_results = [r for m in models.values() for r in m["taps"].values()]
    keys = [k for k in (*PROBE_KINDS, "knn") if any(k in r for r in tap_results)]
    knn = next((r["knn"] for r in tap_results if "knn" in r), None)
    names = {k: k for k in PROBE_KINDS}
    if knn is not None:
        names["knn"] = f"kNN k={knn['k']}"
    cols = []
    for key in keys:
        for m in models:
            cols.append((m, key, names[key] if len(models) == 1 else f"{names[key]} {m}"))
    return cols


def format_table(models: Mapping[str, Any]) -> str:
    """The one table of evaluation results: a Markdown table with one row per tap and the test
    accuracy (%) of each probe and of kNN, per model (e.g. ``{"trained": ..., "random": ...}``,
    each a result of :func:`evaluate_method`), and a line saying what was measured."""
    first = next(iter(models.values()))
    cols = _columns(models)
    header = ["tap", "dim"] + [c[2] for c in cols]
    rows = []
    for tap in first["taps"]:
        row = [tap, str(first["taps"][tap].get("dim", ""))]
        for m, key, _ in cols:
            r = models[m]["taps"].get(tap, {}).get(key)
            row.append(_pct(r["test_acc"]) if r else "-")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    out.append(
        f"\ntest accuracy in % on {first['num_test']} test images; probes and kNN fitted on "
        f"{first['num_train']} labelled training images ({first['num_classes']} classes, "
        f"chance {100 / max(first['num_classes'], 1):.1f}%)"
    )
    return "\n".join(out)
