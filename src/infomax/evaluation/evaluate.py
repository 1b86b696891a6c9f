"""The whole evaluation of a trained method: probes and kNN on every probe tap.

For each tap (DIM: ``conv``, ``fc``, ``y``; AMDIM: ``features``) the features of the training and
test splits are extracted once (and cached), then a linear probe, the DIM 200-unit MLP probe
(:mod:`infomax.evaluation.probes`) and a weighted kNN classifier (:mod:`infomax.evaluation.knn`)
are scored on the test split.

>>> results = evaluate_method(method, train_set, test_set, cache_dir="cache")  # doctest: +SKIP
>>> print(format_table(results))                                            # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from infomax.evaluation.features import (
    FeatureCache,
    _dataset_labels,
    extract_features,
    resolve_device,
)
from infomax.evaluation.knn import METRICS, VOTES, knn_accuracy
from infomax.evaluation.probes import PROBE_KINDS, train_probe

__all__ = ["evaluate_features", "evaluate_method", "format_table"]


def _check_probes(probes: Iterable[str]) -> tuple[str, ...]:
    probes = tuple(dict.fromkeys(probes))
    for p in probes:
        if p not in PROBE_KINDS:
            raise ValueError(f"unknown probe {p!r}; valid probes: {', '.join(PROBE_KINDS)}")
    return probes


def evaluate_features(
    train_features: dict[str, torch.Tensor],
    train_labels: torch.Tensor,
    test_features: dict[str, torch.Tensor],
    test_labels: torch.Tensor,
    probes: Iterable[str] = ("linear", "mlp"),
    knn_k: int | None = 200,
    knn_temperature: float = 0.1,
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


def evaluate_method(
    method: nn.Module,
    train_ds: Any,
    test_ds: Any,
    taps: Iterable[str] | None = None,
    probes: Iterable[str] = ("linear", "mlp"),
    knn_k: int | None = 200,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    batch_size: int = 256,
    precision: str = "fp32",
    knn_temperature: float = 0.1,
    knn_metric: str = "cosine",
    knn_vote: str = "weighted",
    probe_epochs: int | None = None,
    probe_lr: float | None = None,
    probe_batch_size: int | None = None,
    probe_weight_decay: float | None = None,
    probe_milestones: Iterable[int] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a trained method: linear / MLP probes and kNN accuracy on each feature tap.

    Args:
        method: a method with ``features(images_uint8)`` (and ``encoder.probe_taps``).
        train_ds, test_ds: labelled datasets (``.images`` uint8 ``(N, C, H, W)``, ``.labels``;
            rows labelled -1 are left out of probes and kNN).
        taps: taps to evaluate (``None``: the encoder's ``probe_taps``).
        probes: any of ``linear``, ``mlp``; empty: no probes.
        knn_k: neighbours of the weighted kNN classifier (``None`` or 0: no kNN).
        device: where features, probes and kNN run (``None``: where the method is).
        cache_dir: a :class:`FeatureCache` (or its folder) for the features.
        seed: seeds the probes.
        checkpoint: the method's checkpoint file (the cache key follows its content).
        batch_size, precision, progress: feature extraction (see :func:`extract_features`).
        knn_temperature, knn_metric, knn_vote: see :func:`~infomax.evaluation.knn.knn_accuracy`.
        probe_epochs, probe_lr, probe_batch_size, probe_weight_decay: ``None``: the defaults of
            :data:`~infomax.evaluation.probes.PROBE_DEFAULTS`.
        probe_milestones: epochs where the probes' learning rate drops 10x (``None``: at 60%
            and 85% of the epochs).
        log: called with one line of progress after each step (e.g. ``print``).

    Returns:
        a JSON-serialisable dict: ``taps`` (``{tap: {"dim", "linear", "mlp", "knn"}}``, each
        with ``test_acc`` / ``train_acc`` as fractions), ``num_train``, ``num_test``,
        ``num_classes``, ``settings`` and ``seconds``.
    """
    probes = _check_probes(probes)
    dev = resolve_device(device, method)
    if isinstance(cache_dir, str | os.PathLike):
        cache_dir = FeatureCache(cache_dir)
    kw = dict(batch_size=batch_size, device=dev, progress=progress, precision=precision,
              out_device=None, cache=cache_dir, checkpoint=checkpoint)  # fmt: skip
    t0 = time.perf_counter()
    taps = None if taps is None else list(taps)
    train_f = extract_features(method, train_ds, taps=taps, **kw)
    test_f = extract_features(method, test_ds, taps=list(train_f), **kw)
    t_feat = time.perf_counter() - t0
    if log:
        hits = f" ({cache_dir.hits} taps from the cache)" if cache_dir is not None else ""
        log(f"features of {len(train_f)} taps for {_n(train_ds)} + {_n(test_ds)} images: "
            f"{t_feat:.1f} s{hits}")  # fmt: skip
    ytr = _dataset_labels(train_ds)
    yte = _dataset_labels(test_ds)
    if ytr is None or yte is None:
        raise ValueError("evaluation needs labelled datasets (.labels); got one without labels")
    n_train = int((ytr >= 0).sum())
    n_test = int((yte >= 0).sum())
    if n_train == 0 or n_test == 0:
        which = "training" if n_train == 0 else "test"
        raise ValueError(
            f"the {which} split has no labelled images (labels -1); evaluate on a labelled split"
        )
    classes = getattr(train_ds, "classes", None)
    num_classes = max(int(ytr.max()), int(yte.max())) + 1
    if classes:
        num_classes = max(num_classes, len(classes))
    t1 = time.perf_counter()
    per_tap = evaluate_features(
        train_f, ytr, test_f, yte, probes=probes, knn_k=knn_k, knn_temperature=knn_temperature,
        knn_metric=knn_metric, knn_vote=knn_vote, device=dev, seed=seed,
        probe_epochs=probe_epochs, probe_lr=probe_lr, probe_batch_size=probe_batch_size,
        probe_weight_decay=probe_weight_decay, probe_milestones=probe_milestones,
        num_classes=num_classes, log=log,
    )  # fmt: skip
    return {
        "taps": per_tap,
        "num_train": n_train,
        "num_test": n_test,
        "num_classes": num_classes,
        "settings": {
            "taps": list(train_f),
            "probes": list(probes),
            "knn_k": knn_k,
            "knn_temperature": knn_temperature,
            "knn_metric": knn_metric,
            "knn_vote": knn_vote,
            "probe_epochs": probe_epochs,
            "probe_lr": probe_lr,
            "probe_batch_size": probe_batch_size,
            "probe_weight_decay": probe_weight_decay,
            "probe_milestones": None if probe_milestones is None else list(probe_milestones),
            "precision": precision,
            "seed": seed,
            "device": str(dev),
        },
        "seconds": {
            "features": round(t_feat, 3),
            "probes_and_knn": round(time.perf_counter() - t1, 3),
        },
    }


def _n(ds: Any) -> int:
    images = getattr(ds, "images", ds)
    return int(images.shape[0])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of test accuracies (%) per tap, train accuracies in brackets."""
    taps = results.get("taps", results)
    kinds = [k for k in PROBE_KINDS if any(k in r for r in taps.values())]
    knn = next((r["knn"] for r in taps.values() if "knn" in r), None)
    header = ["tap", "dim"]
    for k in kinds:
        header.append(f"{k} (train)")
    if knn is not None:
        header.append(f"kNN k={knn['k']}")
    rows = []
    for tap, r in taps.items():
        row = [tap, str(r.get("dim", ""))]
        for k in kinds:
            p = r.get(k)
            row.append(f"{_pct(p['test_acc'])} ({_pct(p['train_acc'])})" if p else "-")
        if knn is not None:
            row.append(_pct(r["knn"]["test_acc"]) if "knn" in r else "-")
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if "num_train" in results:
        out.append(
            f"test accuracy in % ({results['num_test']} test images; probes and kNN fitted on "
            f"{results['num_train']} training images, {results['num_classes']} classes)"
        )
    return "\n".join(out)
