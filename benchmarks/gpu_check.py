"""The GPU check: one script, run once on a GPU in under 6 minutes (torch.compile included), on
the built-in synthetic data (no dataset files, no network), that records what only a GPU shows.

Parts, in order (each guarded by the time budget, ``--budget-seconds``, default 320: a part that
no longer fits is skipped and the results say so; a part that fails is recorded with its error
and the next one runs):

1. *DIM(L) training speed* (``benchmarks/dim_speed.py``'s models): the reference formulation
   (``benchmarks/reference_dim.py``, float32, 2048-unit critic) against ``infomax``'s DIM with
   the same 2048-unit critic in float32, in bf16 autocast (channels_last) and bf16 with the
   encoder compiled (``torch.compile``), batch 128.
2. *AMDIM training speed* (``benchmarks/amdim_speed.py``'s models), small preset (ndf 128,
   n_rkhs 1024, n_depth 3), batch 64: the reference (``benchmarks/reference_amdim.py``) against
   ``infomax`` float32, bf16 channels_last and bf16 channels_last with the encoder compiled; the
   floating-point work of a step and the measured matmul rates, so each speed is also a fraction
   of what the GPU's matrix units deliver.

   In both speed parts every variant starts from the reference's weights, trains on the same
   batches with the same random draws (the global RNG is seeded with ``seed + k`` before every
   variant's ``k``-th step), first untimed (the first step, then ``warmup`` steps), then in the
   harness's interleaved rounds whose order rotates; images/s is the median over rounds, the
   ratio to the reference the median of the per-round ratios. *Same weights, same loss*: the
   first training step (same weights, same batch, same seed) of each variant against the
   reference's. *Matching loss*: the mean training loss of the last round within
   ``--loss-tolerance`` (default 2%) of the reference's on the same batches. Verdict: at least
   ``--target`` (default 2x) the reference's images/s at matching loss. Each variant's peak
   memory in the run (``torch.cuda.max_memory_allocated`` over one step, above what was held
   before it), its first step's time (compilation for the compiled ones), and whether a training
   step makes a host-device synchronisation (``torch.cuda.set_sync_debug_mode("error")``).
3. *Peak memory against batch size*: each uncompiled variant built afresh and trained two steps
   per batch size (random CIFAR-sized inputs); the peak above what the process held before the
   model was built (weights, Adam state, gradients, activations).
4. *A short AMDIM training run* through the package's trainer (``infomax.training.train``,
   preset ``amdim_cifar10_cpu``: ndf 32, n_rkhs 256, batch 64, all of AMDIM's augmentation) on
   the synthetic images for ``--train-steps`` steps (default 1500, capped by the time left),
   then the package's evaluation (``infomax.training.report.evaluate_run``: linear probe and
   kNN on the encoder's probe taps) next to the same encoder at its random initialisation.

Results: ``gpu_check.json`` and ``gpu_check.md`` in ``--out`` (default ``$OUT`` when set, else
``benchmarks/results/``), never overwriting earlier ones (``harness.write_results``); while it
runs, ``gpu_check-partial-TIME.json`` holds what is done so far (removed at the end), so a run
stopped from outside still leaves its numbers. The run folder of part 4 is a temporary folder.

Usage (from the root of a checkout; ``PYTHONPATH=src`` uses the checkout's package without
installing it)::

    PYTHONUNBUFFERED=1 PYTHONPATH=src python -m benchmarks.gpu_check --out "$OUT"
    python -m benchmarks.gpu_check --smoke          # tiny sizes on the CPU, seconds (the test)

``--smoke`` keeps every part but at tiny sizes, on the CPU unless ``--device`` says otherwise,
with the ``eager`` compile backend (``--compile-backend``) so that no compiler runs; DIM's bf16
variants are CUDA-only there (``dim_speed`` refuses them on the CPU).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import amdim_speed, dim_speed
from benchmarks.harness import (
    Clock,
    machine,
    speed_summary,
    sync,
    throughput,
    timed_rounds,
    trained_and_random,
    write_results,
)
from infomax.runtime import atomic_write_text, resolve_device, resolve_precision

HERE = Path(__file__).resolve().parent
TRAIN_PRESET = "amdim_cifar10_cpu"
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU check and the CPU smoke run."""

    dim_batch: int
    dim_variants: tuple[str, ...]
    amdim_batch: int
    amdim: tuple[int, int, int]  # ndf, n_rkhs, n_depth
    amdim_variants: tuple[str, ...]
    rounds: int
    steps: int  # per variant per round
    warmup: int  # untimed steps per variant after the first step (the check), at least 1
    dim_memory_batches: tuple[int, ...]
    amdim_memory_batches: tuple[int, ...]
    matmul_n: int
    train_steps: int
    train_images: int | None  # None: the whole synthetic split
    train_overrides: tuple[str, ...]
    budget_seconds: float
    shares: dict[str, float]  # seconds after which memory stops, training is capped (at most)
    compile_backend: str


GPU = Sizes(
    dim_batch=128,
    dim_variants=("reference", "infomax-2048", "infomax-2048-bf16", "infomax-2048-bf16-compile"),
    amdim_batch=64,
    amdim=(128, 1024, 3),
    amdim_variants=("reference", "infomax", "infomax-bf16-cl", "infomax-bf16-cl-compile"),
    rounds=10,
    steps=20,
    warmup=3,
    dim_memory_batches=(128, 256, 512, 1024),
    amdim_memory_batches=(64, 128, 256, 512),
    matmul_n=4096,
    train_steps=1500,
    train_images=None,
    train_overrides=(),
    budget_seconds=320.0,
    shares={"dim_speed": 75.0, "amdim_speed": 110.0, "memory": 40.0, "amdim_training": 100.0},
    compile_backend="inductor",
)
SMOKE = Sizes(
    dim_batch=2,
    dim_variants=("reference", "infomax-2048"),
    amdim_batch=4,
    amdim=(8, 32, 1),
    amdim_variants=("reference", "infomax", "infomax-bf16-cl-compile"),
    rounds=2,
    steps=1,
    warmup=1,
    dim_memory_batches=(2,),
    amdim_memory_batches=(4,),
    matmul_n=128,
    train_steps=3,
    train_images=64,
    train_overrides=(
        "model.ndf=8",
        "model.n_rkhs=32",
        "model.n_depth=1",
        "train.batch_size=16",
        "train.warmup_steps=0",
        "train.log_every=1",
        "eval.knn_k=10",
        "eval.probe_epochs=2",
    ),  # fmt: skip
    budget_seconds=600.0,  # the smoke run is a test of the code: nothing is cut for time
    shares={"dim_speed": 600.0, "amdim_speed": 600.0, "memory": 600.0, "amdim_training": 600.0},
    compile_backend="eager",
)
#: the least time (seconds) a part needs to be worth starting; below it the part is skipped
MIN_SECONDS = {"dim_speed": 45.0, "amdim_speed": 75.0, "memory": 15.0, "amdim_training": 40.0}


# ------------------------------------------------------------------------------------ the guard


class Guard:
    """The time budget: what is left of it, and which parts were skipped for lack of it."""

    def __init__(self, clock: Clock, seconds: float, shares: dict[str, float]) -> None:
        self.clock, self.seconds, self.shares = clock, seconds, shares
        self.skipped: dict[str, str] = {}

    def start(self, part: str, smoke: bool) -> float | None:
        """The deadline (``clock.seconds``) of ``part``, or None (and the reason recorded) when
        too little time is left to start it."""
        need = 0.0 if smoke else MIN_SECONDS[part]
        now = self.clock.seconds
        left = self.seconds - now
        if left <= 0 or left < need:
            self.skipped[part] = (
                f"skipped: the {self.seconds:.0f} s budget is used up" if left <= 0 else
                f"skipped: {left:.0f} s of the {self.seconds:.0f} s budget left, the part needs "
                f"at least {need:.0f} s"
            )  # fmt: skip
            print(f"== {part}: {self.skipped[part]}", flush=True)
            return None
        print(f"== {part} ({left:.0f} s of the budget left)", flush=True)
        return now + min(self.shares[part], left)


# ------------------------------------------------------------------------------------- helpers


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def free(device: torch.device) -> None:
    """Return the memory of what is no longer referenced to the GPU (CUDA only: on the CPU a
    full garbage collection costs seconds and measures nothing here)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def compile_encoder(v: Any, backend: str) -> None:
    v.model.encoder.compile(backend=backend)


def about(device: torch.device) -> dict[str, Any]:
    """The harness's :func:`machine` with what a GPU figure also names: the software versions,
    the GPU's memory, multiprocessors, compute capability and driver, and the date."""
    info: dict[str, Any] = {
        **machine(device),
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "precision_auto_resolves_to": resolve_precision("auto", device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
            gpu_bf16=torch.cuda.is_bf16_supported(),
            driver=_driver_version(),
        )
    return info


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None


# ------------------------------------------------------------------------------- building models


def dim_variants(names: tuple[str, ...], device: torch.device, seed: int, backend: str) -> list:
    """``dim_speed`` variants from the reference's weights; ``NAME-compile`` is ``NAME`` with its
    encoder compiled."""
    bases = [n.removesuffix("-compile") for n in names]
    variants = dim_speed.make_variants(bases, device, 5e-4, (0.5, 0.999), seed)
    for v, name in zip(variants, names):
        if name.endswith("-compile"):
            compile_encoder(v, backend)
            v.name = name
    return variants


def amdim_namespace(sizes: Sizes, seed: int) -> argparse.Namespace:
    """The arguments ``amdim_speed``'s builders read."""
    ndf, n_rkhs, n_depth = sizes.amdim
    return argparse.Namespace(ndf=ndf, n_rkhs=n_rkhs, n_depth=n_depth, seed=seed,
                              batch=sizes.amdim_batch, threads=None)  # fmt: skip


def amdim_variant(name: str, ref: Any, ns: argparse.Namespace, device: torch.device,
                  backend: str) -> Any:  # fmt: skip
    """An ``amdim_speed`` variant from ``ref``'s weights, compiled with ``backend`` if asked."""
    spec = amdim_speed.parse_variant(name)
    v = amdim_speed.build_variant(dataclasses.replace(spec, compile=False), ref, ns, device)
    if spec.compile:
        compile_encoder(v, backend)
    v.spec = spec
    return v


# ------------------------------------------------------------------------------------- timing


class Seeded:
    """A variant of either benchmark whose ``k``-th training step starts by seeding the global
    RNG with ``seed + k``: every variant makes the same random draws (AMDIM's source locations)
    at the same step, on the same batch, so their losses stay comparable step by step. Seeding
    sets the generators' state on the host (no device sync)."""

    def __init__(self, variant: Any, seed: int) -> None:
        self.variant, self.seed, self.k = variant, seed, 0
        self.speeds, self.losses = variant.speeds, variant.losses  # the same lists
        self.first_step_seconds = self.warmup_seconds = float("nan")

    @property
    def name(self) -> str:
        return self.variant.name

    def step(self, *batch: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(self.seed + self.k)
        self.k += 1
        return self.variant.step(*batch)


def first_steps(variants: list[Seeded], batches: list[tuple], device: torch.device,
                errors: dict[str, str]) -> list[Seeded]:  # fmt: skip
    """Every variant's untimed first steps on the same batches. The first (same weights, same
    batch, same seed for all) is the same-weights loss check and where compilation happens (its
    time is kept as ``first_step_seconds``); the rest warm up (recompilations, the allocator,
    ``warmup_seconds``). A variant that fails in them (e.g. no compiler on this machine) is
    dropped with its error; the reference failing ends the part."""
    kept = []
    for v in variants:
        try:
            times = []
            for b in batches:
                sync(device)
                t0 = time.perf_counter()
                v.losses.append(float(v.step(*b)))  # float(): the step has finished
                times.append(time.perf_counter() - t0)
        except Exception as exc:
            if not kept:
                raise
            errors[v.name] = first_line(exc)
            print(f"   {v.name} dropped: {errors[v.name]}", flush=True)
            continue
        v.first_step_seconds, v.warmup_seconds = times[0], sum(times[1:])
        print(f"   {v.name}: first step {times[0]:.1f} s (loss {v.losses[0]:.6f}), "
              f"{len(times) - 1} warm-up steps {sum(times[1:]):.1f} s", flush=True)  # fmt: skip
        kept.append(v)
    return kept


def step_memory(v: Any, batch: tuple, device: torch.device) -> dict[str, Any]:
    """Peak allocated memory over one training step of a live variant, and above what was
    allocated before it (its activations, gradients and workspace), MiB; CUDA only."""
    if device.type != "cuda":
        return {"peak_mib": None, "step_mib": None}
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    v.step(*batch)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak_mib": peak / MIB, "step_mib": (peak - before) / MIB}


def host_sync(v: Any, batch: tuple, device: torch.device) -> str | None:
    """The first host-device synchronisation a training step makes (the message of
    ``set_sync_debug_mode("error")``), ``"none"``, or None off CUDA. The step may stop at that
    point, so the variant is not trained after this."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        v.step(*batch)  # torch.cuda.synchronize counts too: the one below runs after the mode
        return "none"
    except RuntimeError as exc:
        if "synchroniz" not in str(exc):
            raise
        return str(exc).strip().splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode(0)
        sync(device)


def recorded(measure: Callable[..., Any], *args: Any) -> Any:
    """``measure(*args)``, or its error as ``{"error": ...}``."""
    try:
        return measure(*args)
    except Exception as exc:
        traceback.print_exc()
        return {"error": first_line(exc)}


def summarise(variants: list, checks: dict[str, float], target: float, tolerance: float,
              steps: int) -> dict[str, Any]:  # fmt: skip
    """:func:`speed_summary` and, per variant, the same-weights check, the loss reached (mean of
    the last round, against the reference's on the same batches) and the verdict."""
    out = speed_summary(variants)
    ref = variants[0]
    ref_loss = statistics.fmean(ref.losses[-steps:])
    for v in variants:
        loss = statistics.fmean(v.losses[-steps:])
        r = out[v.name]
        r.update(
            first_step_seconds=round(v.first_step_seconds, 2),
            warmup_seconds=round(v.warmup_seconds, 2),
            first_step_loss=v.losses[0],
            first_step_rel_diff=abs(v.losses[0] - ref.losses[0]) / abs(ref.losses[0]),
            last_round_train_loss=loss,
            loss_rel_to_reference=(loss - ref_loss) / abs(ref_loss),
            train_losses=v.losses,
        )
        if v is not ref:
            r["matching_loss"] = bool(r["loss_rel_to_reference"] <= tolerance)
            r["meets_target"] = bool(r["ratio_to_reference"] >= target and r["matching_loss"])
    for name, loss in checks.items():  # check-only variants (not timed)
        rel = abs(loss - ref.losses[0]) / abs(ref.losses[0])
        out.setdefault(name, {"first_step_loss": loss, "first_step_rel_diff": rel,
                              "check_only": True})  # fmt: skip
    return out


def speed_part(
    variants: list,
    batches: list[tuple],
    images: int,
    args: argparse.Namespace,
    sizes: Sizes,
    device: torch.device,
    checks: dict[str, float],
) -> dict[str, Any]:
    """The first steps (the check, compilation, warm-up), the harness's interleaved timed rounds
    on the batches after them, then each variant's memory over one more step and whether a step
    synchronises with the host."""
    errors: dict[str, str] = {}
    seeded = [Seeded(v, args.seed) for v in variants]
    variants = first_steps(seeded, batches[: 1 + sizes.warmup], device, errors)
    # the harness skips the first batch it is given (its own warm-up batch): the last one above
    timed_rounds(variants, batches[sizes.warmup :], sizes.rounds, sizes.steps, 0, images, device,
                 log=lambda line: print("   " + line, flush=True))  # fmt: skip
    results = summarise(variants, checks, args.target, args.loss_tolerance, sizes.steps)
    for key, measure in (("memory", step_memory), ("host_sync", host_sync)):
        for v in variants:  # what fails here is recorded: the speeds above are kept
            results[v.name][key] = recorded(measure, v, batches[0], device)
    return {"variants": results, "rounds": sizes.rounds, "steps_per_round": sizes.steps,
            "warmup_steps": sizes.warmup, "dropped": errors}  # fmt: skip


def n_batches(sizes: Sizes) -> int:
    """The first step's batch, the warm-up's and the rounds'."""
    return 1 + sizes.warmup + sizes.rounds * sizes.steps


# --------------------------------------------------------------------------------------- parts


def run_dim_speed(args, sizes, device, clock, deadline) -> dict[str, Any]:
    n = n_batches(sizes)
    batches = [(b,) for b in dim_speed.load_batches(None, "train", sizes.dim_batch, n, device,
                                                    args.seed)]  # fmt: skip
    variants = dim_variants(sizes.dim_variants, device, args.seed, args.compile_backend)
    out = speed_part(variants, batches, sizes.dim_batch, args, sizes, device, {})
    out.update(batch=sizes.dim_batch, model="DIM(L)-NCE, dim32 encoder, 2048-unit critic, Adam "
               "5e-4 betas (0.5, 0.999)", variants_asked=list(sizes.dim_variants))  # fmt: skip
    return out


def run_amdim_speed(args, sizes, device, clock, deadline) -> dict[str, Any]:
    ns = amdim_namespace(sizes, args.seed)
    pairs = amdim_speed.load_views(None, sizes.amdim_batch, n_batches(sizes), device, args.seed)
    ref = amdim_speed.make_reference(ns, device)
    variants = [amdim_variant(nm, ref, ns, device, args.compile_backend)
                for nm in sizes.amdim_variants]  # fmt: skip
    checks = {}
    if "infomax-sep" not in sizes.amdim_variants:  # one call per view, as the reference
        sep = amdim_variant("infomax-sep", ref, ns, device, args.compile_backend)
        torch.manual_seed(args.seed)
        checks["infomax-sep"] = float(sep.step(*pairs[0]))
        del sep
    out = speed_part(variants, pairs, sizes.amdim_batch, args, sizes, device, checks)
    del variants, ref
    free(device)
    ceiling = recorded(_ceiling, ns, sizes, device)
    work, rates = ceiling.get("step_gflop"), ceiling.get("matmul_gflop_per_sec")
    for name, r in out["variants"].items() if work and rates else ():
        if r.get("check_only"):
            continue
        spec = amdim_speed.parse_variant(name)
        r["gflop_per_sec"] = work["reference" if spec.reference else "infomax"] * (
            r["images_per_sec"] / sizes.amdim_batch
        )
        r["fraction_of_matmul_rate"] = r["gflop_per_sec"] / rates.get(spec.precision, rates["fp32"])
    ndf, n_rkhs, n_depth = sizes.amdim
    out.update(batch=sizes.amdim_batch, model=f"AMDIM amdim32 ndf {ndf}, n_rkhs {n_rkhs}, "
               f"n_depth {n_depth}; NCE 1t5+1t7+5t5, tclip 20, penalty 0.05; Adam 2e-4",
               variants_asked=list(sizes.amdim_variants), ceiling=ceiling)  # fmt: skip
    return out


def _ceiling(ns: argparse.Namespace, sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """The floating-point work of a step (reference and infomax) and the matmul rates."""
    work = {n: amdim_speed.step_gflop(n, ns, device) for n in ("reference", "infomax")}
    rates = {
        "fp32": amdim_speed.matmul_gflops(torch.float32, device, n=sizes.matmul_n),
        "bf16": amdim_speed.matmul_gflops(torch.bfloat16, device, n=sizes.matmul_n),
    }
    return {"step_gflop": work, "matmul_gflop_per_sec": rates, "matmul_n": sizes.matmul_n}


def fresh_memory(build: Callable[[], Any], batch: tuple, device: torch.device) -> dict[str, Any]:
    """Peak allocated memory of two training steps of a freshly built variant, above what the
    process held before building it (MiB); on the CPU the steps run but nothing is measured."""
    free(device)
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
    v = None
    try:
        v = build()  # (building may hold a reference model for a moment: not counted)
        if device.type == "cuda":
            sync(device)
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):
            v.step(*batch)
        sync(device)
        if device.type != "cuda":
            return {"peak_mib": None}
        return {"peak_mib": (torch.cuda.max_memory_allocated(device) - base) / MIB}
    except torch.OutOfMemoryError:
        return {"error": "out of memory"}
    except Exception as exc:  # recorded; the other batch sizes still run
        traceback.print_exc()
        return {"error": first_line(exc)}
    finally:
        del v
        free(device)


def run_memory(args, sizes, device, clock, deadline) -> dict[str, Any]:
    """Peak memory against batch size for the uncompiled variants of both speed parts."""
    ns = amdim_namespace(sizes, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    table: dict[str, dict[str, dict[str, Any]]] = {"dim": {}, "amdim": {}}
    dims = [n for n in sizes.dim_variants if not n.endswith("-compile")]
    amdims = [n for n in sizes.amdim_variants if not amdim_speed.parse_variant(n).compile]
    jobs = [("dim", n, b) for b in sizes.dim_memory_batches for n in dims]
    jobs += [("amdim", n, b) for b in sizes.amdim_memory_batches for n in amdims]
    for model, name, b in jobs:
        if clock.seconds > deadline:
            table[model].setdefault(name, {})[str(b)] = {"error": "skipped (time budget)"}
            continue
        if model == "dim":
            x = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=g)
            batch: tuple = (x.to(device),)
            build = functools.partial(_fresh_dim, name, device, args.seed)
        else:
            batch = tuple(torch.randn(2, b, 3, 32, 32, generator=g).to(device).unbind(0))
            build = functools.partial(_fresh_amdim, name, ns, device)
        table[model].setdefault(name, {})[str(b)] = fresh_memory(build, batch, device)
        del batch
    return {"dim": table["dim"], "amdim": table["amdim"],
            "dim_batches": list(sizes.dim_memory_batches),
            "amdim_batches": list(sizes.amdim_memory_batches)}  # fmt: skip


def _fresh_dim(name: str, device: torch.device, seed: int) -> Any:
    return dim_variants((name,), device, seed, "eager")[0]


def _fresh_amdim(name: str, ns: argparse.Namespace, device: torch.device) -> Any:
    return amdim_variant(name, amdim_speed.make_reference(ns, device), ns, device, "eager")


def run_amdim_training(args, sizes, device, clock, deadline, data) -> dict[str, Any]:
    """A short AMDIM run through ``infomax.training.train`` (capped by the time left), then the
    package's evaluation next to the random initialisation (the harness's
    :func:`trained_and_random`)."""
    from infomax.training import load_config, train

    eval_reserve = 25.0 if device.type == "cuda" else 5.0
    minutes = max(0.1, (deadline - clock.seconds - eval_reserve) / 60)
    overrides = [
        "data.dataset=synthetic", f"train.device={device}", f"train.seed={args.seed}",
        f"train.max_steps={sizes.train_steps}", f"train.time_budget_minutes={minutes:.3f}",
        "train.checkpoint_minutes=0", "train.checkpoint_every=0", "eval.after_training=false",
        "eval.probes=[linear]", "name=gpu_check_amdim", *sizes.train_overrides,
    ]  # fmt: skip
    cfg = load_config(TRAIN_PRESET, overrides)
    train_set, test_set = data
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        result = train(cfg, run_dir=Path(tmp) / "run", progress=False, echo=False,
                       train_set=train_set)  # fmt: skip
        print(f"   {result.message}", flush=True)
        speed = throughput(result.run_dir / "metrics.csv")
        first_loss = _first_logged_loss(result.run_dir / "metrics.csv")
        t0 = time.perf_counter()
        record = trained_and_random(
            result.method, cfg, result.run_dir, checkpoint=result.checkpoint,
            datasets={"probe_train": train_set, "test": test_set},
        )  # fmt: skip
        eval_seconds = time.perf_counter() - t0
    return {
        "preset": TRAIN_PRESET,
        "overrides": overrides,
        "model": {k: cfg.model.get(k) for k in ("ndf", "n_rkhs", "n_depth")},
        "batch_size": cfg.train.batch_size,
        "precision": resolve_precision(cfg.train.precision, device),
        "num_train": len(train_set.images),
        "num_test": len(test_set.images),
        "steps": result.step,
        "epochs": result.epoch,
        "stopped": result.stopped,
        "message": result.message,
        "train_seconds": round(result.seconds, 1),
        "images_per_sec": speed["images_per_sec"],
        "first_logged_loss": first_loss,
        "last_logged_loss": speed["loss"],
        "last_metrics": result.last_metrics,
        "eval_seconds": round(eval_seconds, 1),
        "eval": record["models"],
        "eval_table": record["table"],
    }


def _first_logged_loss(path: Path) -> float | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("loss"):
                return float(row["loss"])
    return None


def load_data(sizes: Sizes) -> tuple[Any, Any]:
    """The synthetic train and test splits (the first ``train_images`` of each in the smoke
    run), loaded once for the training run and its evaluation."""
    from infomax.data import load_dataset

    train_set = load_dataset("synthetic", split="train")
    test_set = load_dataset("synthetic", split="test")
    if sizes.train_images is not None:
        train_set = train_set.subset(range(sizes.train_images))
        test_set = test_set.subset(range(sizes.train_images))
    return train_set, test_set


# ------------------------------------------------------------------------------------ markdown


def _num(x: Any, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _speed_table(part: dict[str, Any], amdim: bool, target: float) -> list[str]:
    cols = (
        "| variant | images/s | x reference | first step s (warm-up) | first-step loss | "
        "rel diff | last-round loss | vs reference | peak MiB (step) | host sync |"
    )
    if amdim:
        cols += " GFLOP/s | of matmul rate |"
    cols += f" >= {target:g}x at matching loss |"
    lines = [cols, "|" + "---|" * (cols.count("|") - 1)]
    for name, r in part["variants"].items():
        if r.get("check_only"):
            lines.append(f"| {name} (check only) | - | - | - | {r['first_step_loss']:.5f} | "
                         f"{r['first_step_rel_diff']:.1e} | - | - | - | - |"
                         + (" - | - |" if amdim else "") + " - |")  # fmt: skip
            continue
        mem, sync_ = r.get("memory") or {}, r.get("host_sync")
        peak = mem.get("error") or (
            "-" if mem.get("peak_mib") is None else f"{mem['peak_mib']:.0f} ({mem['step_mib']:.0f})"
        )
        sync_ = sync_.get("error") if isinstance(sync_, dict) else sync_  # fmt: skip
        meets = "-" if "meets_target" not in r else ("yes" if r["meets_target"] else "no")
        row = (f"| {name} | {r['images_per_sec']:.0f} | {r['ratio_to_reference']:.2f} | "
               f"{r['first_step_seconds']:.1f} ({r['warmup_seconds']:.1f}) | "
               f"{r['first_step_loss']:.5f} | "
               f"{r['first_step_rel_diff']:.1e} | {r['last_round_train_loss']:.4f} | "
               f"{100 * r['loss_rel_to_reference']:+.2f}% | {peak} | "
               f"{sync_ or '-'} |")  # fmt: skip
        if amdim:
            row += f" {_num(r.get('gflop_per_sec'), '.4g')} | " \
                   f"{_num(r.get('fraction_of_matmul_rate'), '.0%')} |"  # fmt: skip
        lines.append(row + f" {meets} |")
    for name, err in part.get("dropped", {}).items():
        lines.append(f"\n{name} was dropped: {err}")
    return lines


def markdown(results: dict[str, Any]) -> str:
    s, m = results["settings"], results["machine"]
    where = m.get("gpu") or m["cpu"]
    lines = [
        f"## GPU check ({'smoke run, ' if s['smoke'] else ''}{where})",
        "",
        f"- {m['date_utc']}; device {m['device']} ({where}"
        + (f", {m['gpu_memory_gib']} GiB, {m['multiprocessors']} SMs, compute capability "
           f"{m['compute_capability']}, driver {m.get('driver')}" if m.get("gpu") else "")
        + f"); torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; CPU {m['cpu']} "
        f"({m['cpu_cores']} cores, native bf16 {m['cpu_native_bf16']})",
        (f"- TF32: cuDNN {s['cudnn_tf32']}, matmul {s['cuda_matmul_tf32']} (PyTorch's defaults: "
         "the fp32 rows' convolutions use TF32)" if m.get("gpu") else "- on the CPU")
        + "; data: the built-in synthetic set",
        f"- command `{s['command']}`; budget {s['budget_seconds']:.0f} s, wall "
        f"{s['wall_seconds']:.0f} s; load average {s['load_average_start']:.2f} -> "
        f"{s['load_average_end']:.2f}",
    ]  # fmt: skip
    for key, title, amdim in (("dim_speed", "DIM(L) training speed", False),
                              ("amdim_speed", "AMDIM training speed", True)):  # fmt: skip
        part = results["parts"].get(key)
        lines += ["", f"### {title}", ""]
        if not isinstance(part, dict) or "variants" not in part:
            lines.append(_status(results, key))
            continue
        lines += [
            f"{part['model']}; batch {part['batch']}. Every variant starts from the reference's "
            "weights. First step: the same batch, seed and weights for all (the same-weights "
            "check: rel diff against the reference's loss; compilation happens in it, hence its "
            f"time); then {part['warmup_steps']} warm-up steps (their time in brackets) and "
            f"{part['rounds']} interleaved "
            f"rounds x {part['steps_per_round']} steps on the same batches; images/s: median of "
            "the rounds; x reference: median of the per-round ratios. Last-round loss: mean "
            "training loss of the last round, vs the reference's in %; matching: at most "
            f"{100 * s['loss_tolerance']:g}% above it. Peak MiB: max_memory_allocated over one "
            "step with every variant alive (in brackets: above what was allocated before the "
            "step). Host sync: the first host-device synchronisation of a step "
            "(set_sync_debug_mode), none, or - off CUDA.",
            "",
            *_speed_table(part, amdim, s["target"]),
        ]
    lines += ["", "### Peak memory against batch size", ""]
    mem = results["parts"].get("memory")
    if isinstance(mem, dict) and "dim" in mem:
        lines.append(
            "MiB above what the process held before the model was built (weights, Adam "
            "state, gradients, activations; two training steps, random inputs):"
        )
        for key in ("dim", "amdim"):
            batches = mem[f"{key}_batches"]
            lines += ["", "| " + key.upper() + " variant | "
                      + " | ".join(f"batch {b}" for b in batches) + " |",
                      "|---|" + "---|" * len(batches)]  # fmt: skip
            for name, row in mem[key].items():
                cells = [r.get("error") or _num(r.get("peak_mib"), ".0f")
                         for r in (row.get(str(b), {}) for b in batches)]  # fmt: skip
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        lines.append(_status(results, "memory"))
    lines += ["", "### A short AMDIM run and its linear probe", ""]
    tr = results["parts"].get("amdim_training")
    if isinstance(tr, dict) and "eval" in tr:
        lines += [
            f"`infomax.training.train` with preset `{tr['preset']}` (ndf {tr['model']['ndf']}, "
            f"n_rkhs {tr['model']['n_rkhs']}, n_depth {tr['model']['n_depth']}, batch "
            f"{tr['batch_size']}, {tr['precision']}) on {tr['num_train']} synthetic images: "
            f"{tr['steps']} steps ({tr['epochs']:.1f} epochs, stopped: {tr['stopped']}) in "
            f"{tr['train_seconds']:.0f} s at {_num(tr['images_per_sec'], '.0f')} images/s "
            f"(median of the logged intervals); loss {_num(tr['first_logged_loss'], '.3f')} -> "
            f"{_num(tr['last_logged_loss'], '.3f')}. Evaluation (`evaluate_run`, "
            f"{tr['eval_seconds']:.0f} s) on {tr['num_test']} test images, trained against the "
            "same encoder at its random initialisation:",
            "",
            tr["eval_table"],
        ]
    else:
        lines.append(_status(results, "amdim_training"))
    return "\n".join(lines) + "\n"


def _status(results: dict[str, Any], key: str) -> str:
    part = results["parts"].get(key)
    return str(part) if part else "not run"


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Sizes, torch.device]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (CPU unless --device)")
    p.add_argument("--device", default="auto", help="auto (default), cuda, cuda:N or cpu")
    p.add_argument(
        "--out",
        default=os.environ.get("OUT") or str(HERE / "results"),
        help="results folder (default: $OUT if set, else benchmarks/results)",
    )
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="wall-time budget; parts that no longer fit are skipped (default 320, "
                   "smoke 600)")  # fmt: skip
    p.add_argument("--train-steps", type=int, default=None, help="steps of the AMDIM run "
                   "(default 1500, smoke 3; capped by the time left)")  # fmt: skip
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (default "
                   "inductor, smoke eager)")  # fmt: skip
    p.add_argument("--parts", nargs="+", default=None, choices=list(MIN_SECONDS),
                   help="run only these parts (default: all)")  # fmt: skip
    p.add_argument("--target", type=float, default=2.0, help="speed ratio to reach (default 2)")
    p.add_argument(
        "--loss-tolerance",
        type=float,
        default=0.02,
        help="last-round loss at most this fraction above the reference's",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.smoke and args.device == "auto":
        args.device = "cpu"
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    if device.type != "cuda" and not args.smoke and args.device == "auto":
        p.error("no CUDA device here: this check is for a GPU. Use --smoke for the quick CPU run, "
                "or --device cpu to run the GPU sizes on the CPU (slow: the time guard skips what "
                "does not fit)")  # fmt: skip
    sizes = SMOKE if args.smoke else GPU
    if device.type == "cuda" and args.smoke:  # DIM's bf16 variants exist on CUDA
        sizes = dataclasses.replace(sizes, dim_variants=(*sizes.dim_variants, "infomax-2048-bf16"))
    if device.type != "cuda" and not args.smoke:  # dim_speed makes bf16 variants on CUDA only
        sizes = dataclasses.replace(
            sizes,
            dim_variants=tuple(
                n.replace("-bf16", "") for n in sizes.dim_variants if n != "infomax-2048-bf16"
            ),
        )
    changes = {
        k: v
        for k, v in (
            ("budget_seconds", args.budget_seconds),
            ("train_steps", args.train_steps),
            ("compile_backend", args.compile_backend),
        )
        if v is not None
    }
    sizes = dataclasses.replace(sizes, **changes)  # fmt: skip
    args.compile_backend = sizes.compile_backend
    if sizes.train_steps < 1:
        p.error("--train-steps must be at least 1")
    return args, sizes, device


def main(argv: list[str] | None = None) -> int:
    args, sizes, device = parse_args(argv)
    clock = Clock()
    guard = Guard(clock, sizes.budget_seconds, sizes.shares)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f"gpu_check-partial-{time.strftime('%Y%m%d-%H%M%S')}.json"
    results: dict[str, Any] = {"machine": about(device), "parts": {}}
    print(f"GPU check on {results['machine'].get('gpu') or results['machine']['cpu']} "
          f"({device}), budget {sizes.budget_seconds:.0f} s", flush=True)  # fmt: skip
    data: tuple[Any, Any] | None = None
    runners = {"dim_speed": run_dim_speed, "amdim_speed": run_amdim_speed,
               "memory": run_memory, "amdim_training": run_amdim_training}  # fmt: skip
    for part, run in runners.items():
        if args.parts and part not in args.parts:
            results["parts"][part] = "not asked for (--parts)"
            continue
        deadline = guard.start(part, args.smoke)
        if deadline is None:
            results["parts"][part] = guard.skipped[part]
            continue
        t0 = clock.seconds
        try:
            if part == "amdim_training":
                data = data or load_data(sizes)
                results["parts"][part] = run(args, sizes, device, clock, deadline, data)
            else:
                results["parts"][part] = run(args, sizes, device, clock, deadline)
        except Exception as exc:  # keep the other parts' numbers
            traceback.print_exc()
            results["parts"][part] = f"failed: {first_line(exc)}"
        finally:
            free(device)
        print(f"   {part} took {clock.seconds - t0:.0f} s", flush=True)
        atomic_write_text(partial, _json(results))
    results["settings"] = {
        "command": " ".join(["python -m benchmarks.gpu_check",
                             *(argv if argv is not None else sys.argv[1:])]),
        "smoke": args.smoke,
        "sizes": dataclasses.asdict(sizes),
        "target": args.target,
        "loss_tolerance": args.loss_tolerance,
        "seed": args.seed,
        "budget_seconds": sizes.budget_seconds,
        "skipped": guard.skipped,
        **clock.environment(),
    }  # fmt: skip
    try:
        text = markdown(results)
    except Exception as exc:  # the numbers are kept all the same
        traceback.print_exc()
        text = f"(the Markdown could not be rendered: {first_line(exc)}; see the JSON)\n"
    write_results(out / "gpu_check.json", results, text)
    partial.unlink(missing_ok=True)
    return 0


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)


if __name__ == "__main__":
    sys.exit(main())
