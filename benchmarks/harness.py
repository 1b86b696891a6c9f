"""The one harness every benchmark uses (run them as ``python -m benchmarks.NAME`` from the root
of a checkout; ``benchmarks`` is a package, so no script changes ``sys.path``):

- run metadata and result files: :class:`Clock` (started first thing; its
  :meth:`Clock.environment` goes into a benchmark's ``settings``), :func:`machine` (CPU name and
  whether it has native bf16, or the GPU) and :func:`write_results` (never overwrites);
- the speed harness: :func:`timed_rounds` (warm-up, then interleaved rounds whose order rotates,
  so machine noise hits every variant alike) and :func:`speed_summary` (medians and per-round
  ratios to the first variant), with :func:`sync` around timed regions;
- :func:`throughput`: the images/s of a training run from its ``metrics.csv``;
- :func:`trained_and_random`: the package's own evaluation (``infomax.training.report``) of a
  trained method next to its random initialisation.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from infomax.runtime import atomic_write_text, cpu_has_fast_bf16


class Clock:
    """Wall time and machine load since the benchmark started."""

    def __init__(self) -> None:
        self.load_start = os.getloadavg()[0]
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def environment(self) -> dict[str, Any]:
        """Software and machine state next to the numbers (a shared machine is noisy: the load
        average says how busy it was)."""
        return {
            "torch": str(torch.__version__),
            "threads": torch.get_num_threads(),
            "cuda_matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32,
            "python": platform.python_version(),
            "load_average_start": self.load_start,
            "load_average_end": os.getloadavg()[0],
            "wall_seconds": round(self.seconds, 1),
        }


def write_results(out: str | Path | None, results: dict[str, Any], text: str) -> None:
    """Print ``text`` (the Markdown table) and, when ``out`` is given, keep both: a ``.json``
    path gets the results there (the Markdown beside it, same name with ``.md``); any other path
    is a folder that gets ``results.json`` and ``results.md``. An existing result file is never
    overwritten: the new one gets a numbered name, and the name used is printed."""
    print()
    print(text)
    if out is None:
        return
    out = Path(out)
    if out.suffix == ".json":
        json_path, md_path = out, out.with_suffix(".md")
    else:
        json_path, md_path = out / "results.json", out / "results.md"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = _free_pair(json_path, md_path)
    atomic_write_text(md_path, text)
    atomic_write_text(json_path, json.dumps(results, indent=2))
    wall = results.get("settings", {}).get("wall_seconds")
    took = f"wall time {wall / 60:.1f} min; " if wall is not None else ""
    print(f"{took}results in {json_path} and {md_path}")


def _free_pair(json_path: Path, md_path: Path) -> tuple[Path, Path]:
    """``json_path`` and ``md_path``, or the first ``-1``, ``-2``, ... suffixed pair of which
    neither file exists yet."""
    n = 0
    a, b = json_path, md_path
    while a.exists() or b.exists():
        n += 1
        a = json_path.with_name(f"{json_path.stem}-{n}{json_path.suffix}")
        b = md_path.with_name(f"{md_path.stem}-{n}{md_path.suffix}")
    return a, b


# ---------------------------------------------------------------------------------- the machine


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a published figure names: the CPU (cores, native bf16) or the GPU."""
    device = torch.device(device)
    out: dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "cpu_native_bf16": cpu_has_fast_bf16(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def sync(device: torch.device) -> None:
    """Wait for the device (CUDA runs asynchronously) before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------ speed harness


def _step(variant: Any, batch: Any) -> Any:
    return variant.step(*batch) if isinstance(batch, tuple) else variant.step(batch)


def timed_rounds(
    variants: Sequence[Any],
    batches: Sequence[Any],
    rounds: int,
    steps: int,
    warmup: int,
    images_per_batch: int,
    device: torch.device,
    log: Callable[[str], None] | None = print,
) -> None:
    """Train every variant on the same batches and time it: ``warmup`` untimed steps, then
    ``rounds`` rounds of ``steps`` steps each, the variants' order rotating from round to round.

    A variant has ``name``, ``step(batch)`` (or ``step(*batch)`` for a tuple) returning the
    loss, and lists ``speeds`` (images/s per round) and ``losses`` (every step's loss), which
    this fills. ``batches`` holds ``max(warmup, 1) + rounds * steps`` batches.
    """
    first = max(warmup, 1)
    if len(batches) < first + rounds * steps:
        raise ValueError(f"need {first + rounds * steps} batches, got {len(batches)}")
    for v in variants:
        for i in range(warmup):
            v.losses.append(float(_step(v, batches[i])))
    sync(device)
    for r in range(rounds):
        chunk = batches[first + r * steps : first + (r + 1) * steps]
        k = r % len(variants)
        for v in [*variants[k:], *variants[:k]]:
            sync(device)
            t0 = time.perf_counter()
            out = [_step(v, b) for b in chunk]
            sync(device)
            v.speeds.append(images_per_batch * len(chunk) / (time.perf_counter() - t0))
            v.losses += [float(x) for x in out]
        if log:
            speeds = ", ".join(f"{v.name} {v.speeds[-1]:.1f}" for v in variants)
            log(f"round {r + 1}/{rounds}: {speeds} images/s")


def speed_summary(variants: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per variant: median images/s, the median of its per-round ratios to the first variant
    (the robust figure on a noisy machine) and the ratio of the medians."""
    ref = variants[0]
    ref_med = statistics.median(ref.speeds)
    out = {}
    for v in variants:
        ratios = [a / b for a, b in zip(v.speeds, ref.speeds)]
        out[v.name] = {
            "images_per_sec": statistics.median(v.speeds),
            "images_per_sec_rounds": list(v.speeds),
            "ratio_to_reference": statistics.median(ratios),
            "ratio_rounds": ratios,
            "ratio_of_medians": statistics.median(v.speeds) / ref_med,
        }
    return out


# --------------------------------------------------------------------------- training runs


def throughput(metrics_csv: str | os.PathLike) -> dict[str, Any]:
    """A training run's speed from its ``metrics.csv``: ``images_per_sec`` (the median over the
    logged intervals, the first left out as warm-up; NaN without rows), ``steps`` (the last
    logged step) and ``loss`` (the last logged loss, or ``None``)."""
    path = Path(metrics_csv)
    rows: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("images_per_sec")]
    rates = [float(r["images_per_sec"]) for r in rows]
    rates = rates[1:] or rates
    loss = rows[-1].get("loss") if rows else None
    return {
        "images_per_sec": statistics.median(rates) if rates else float("nan"),
        "steps": int(rows[-1]["step"]) if rows else 0,
        "loss": float(loss) if loss not in (None, "") else None,
    }


def trained_and_random(
    method: torch.nn.Module,
    cfg: Any,
    run_dir: str | os.PathLike,
    datasets: dict[str, Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The package's evaluation (:func:`infomax.training.report.evaluate_run`) of a trained
    ``method`` next to its random initialisation (the run's seed), with ``cfg.eval`` changed by
    ``settings``; only the feature cache is written (``run_dir/eval/cache``). Returns the record
    (``models``: ``trained`` and ``random``; ``table``)."""
    import dataclasses

    from infomax.training.report import evaluate_run

    e = dataclasses.replace(cfg.eval, compare_random=True, neighbors=False, **settings)
    return evaluate_run(
        method, cfg, run_dir, settings=e, device=cfg.train.device, checkpoint=checkpoint,
        datasets=datasets, save=False,
    )  # fmt: skip
