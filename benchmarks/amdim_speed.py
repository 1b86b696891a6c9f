"""Training speed of AMDIM: infomax against the reference formulation, side by side, at matching
loss values, plus peak memory against batch size.

What one *training step* is here: both views of the batch through the encoder, the multiscale NCE
(1t5, 1t7, 5t5, both directions, tanh clip 20, score penalty 0.05), backward and an Adam step
(the reference optimiser: lr 2e-4, betas (0.8, 0.999), weight decay 1e-5). Augmentation is *not*
timed: the batches are drawn and augmented once (``AmdimViews.preset("cifar")``, seeded) before
any timing, and every variant trains on the very same pre-augmented float tensors. images/s
counts source images (each step encodes 2 x batch views).

1. *Same weights, same loss.* Every infomax variant gets the reference's weights (the layouts
   differ only in names; :func:`reference_to_infomax` maps them one to one and checks that every
   infomax encoder tensor is covered with the same shape), and the loss of one batch is computed
   by the reference and by each variant with the same random 5x5 source locations (the global RNG
   is reseeded before each forward; both draw ``randint(0, 25, (N,))`` for view 1, then view 2).
   ``infomax-sep`` (one encoder call per view, as the reference) must match in float32 to about
   1e-6 relative; the default ``infomax`` encodes both views in one call, so its batch-norm
   statistics are pooled over 2N images and its loss differs slightly; bf16 / fp16 loosely.
2. *Speed.* Interleaved rounds: each round runs ``--steps`` steps of every variant, in an order
   that rotates from round to round, so machine noise hits all alike. A variant's speed is the
   median over ``--repeats`` rounds of its images/s; its ratio to the reference is the median of
   the per-round ratios (the ratio of the medians is in the JSON). All variants start from the
   same weights and see the same batches, so their training losses (reported) stay comparable.
3. *Peak memory against batch size* (``--memory-batches``): CUDA:
   ``torch.cuda.max_memory_allocated`` over two training steps of a freshly built model, in this
   process; CPU: a fresh child process per (variant, batch) builds the model, resets its peak
   resident set size (``/proc/self/clear_refs``; importing torch alone peaks higher than a small
   step), runs two steps and reports the peak (``VmHWM``) and the resident size before the steps
   (``VmRSS``), so the steps' own share is the difference.
4. *How close to the machine's ceiling.* One step's floating-point work is counted
   (``torch.utils.flop_counter``) and a 2048 x 2048 matrix product is timed in every precision
   measured, so each variant's GFLOP/s is also given as a fraction of that matrix rate: a step
   made of convolutions cannot run much above it, which bounds the speed-up any formulation can
   reach on the machine.

Variants: ``reference`` (``benchmarks/reference_amdim.py``: float32 NCHW, one encoder call per
view, masked-sum NCE) and ``infomax[-bf16|-fp16][-cl][-sep][-compile]``
(``infomax.objectives.amdim.AMDIM.view_losses``): ``bf16`` / ``fp16`` autocast (fp16 with a
GradScaler, CUDA only), ``cl`` channels_last weights and inputs, ``sep`` one encoder call per view,
``compile`` ``torch.compile`` on the encoder (opt-in: ``--compile`` adds compiled variants).
On a CPU without native bf16 (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` false) bf16 is
measured all the same, and is far slower than float32 there; ``train.precision: auto`` picks
float32 on such CPUs (the line "precision auto resolves to" says what it picks here).

Usage::

    python -m benchmarks.amdim_speed --data ../shared/data/cifar10.npz --out amdim_speed.json
    python -m benchmarks.amdim_speed --data ../shared/data/cifar10.npz --device cuda \\
        --repeats 10 --steps 20 --compile --out amdim_speed_cuda.json
    python -m benchmarks.amdim_speed --ndf 16 --n-rkhs 64 --batch 8 --repeats 1 \\
        --memory-batches 8 16                       # smoke run on synthetic data
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmarks.harness import (
    Clock,
    machine,
    speed_summary,
    sync,
    timed_rounds,
    write_results,
)
from benchmarks.reference_amdim import ReferenceAMDIM
from infomax.objectives.amdim import AMDIM
from infomax.runtime import autocast, autocast_dtype, resolve_device, resolve_precision
from infomax.transforms import AmdimViews

#: the reference optimiser (amdim-public task_self_supervised.py)
ADAM = dict(lr=2e-4, betas=(0.8, 0.999), eps=1e-8, weight_decay=1e-5)

# reference module prefix -> infomax AMDIM prefix (the rest of each name is the same)
_PREFIXES = (
    ("encoder.layers.0.0.", "encoder.to7.0.conv."),  # stem conv (with bias; ReLU has no weights)
    ("encoder.layers.1.", "encoder.to7.1."),  # res1x1(ndf)
    ("encoder.layers.2.", "encoder.to7.2."),  # block(2ndf, k4, s2)
    ("encoder.layers.3.", "encoder.to7.3."),  # block(4ndf, k2, s2); layers.4 = Identity (no BN)
    ("encoder.layers.5.", "encoder.to5."),  # block(4ndf, k3) -> 5x5
    ("encoder.layers.6.", "encoder.to1.0."),  # block(4ndf, k3) -> 3x3
    ("encoder.layers.7.", "encoder.to1.1."),  # res3x3(n_rkhs) -> 1x1
    ("encoder.layers.8.", "encoder.to1.2."),  # final BN
    ("encoder.rkhs5.", "encoder.head5."),
    ("encoder.rkhs7.", "encoder.head7."),
)


# ---------------------------------------------------------------------------------------- models


def reference_to_infomax(ref: ReferenceAMDIM) -> dict[str, torch.Tensor]:
    """The reference's encoder weights under the names of ``AMDIM(encoder="amdim32")``."""
    out = {}
    for name, value in ref.state_dict().items():
        if not name.startswith("encoder."):
            continue  # masks_r5: a constant of the reference loss
        for a, b in _PREFIXES:
            if name.startswith(a):
                out[b + name[len(a) :]] = value.detach().clone()
                break
        else:
            raise ValueError(f"no mapping for the reference weight {name!r}")
    return out


def load_from_reference(model: AMDIM, ref: ReferenceAMDIM) -> None:
    """Copy the reference's weights into ``model``; every infomax encoder tensor must be mapped,
    with the same shape."""
    mapped = reference_to_infomax(ref)
    own = model.state_dict()
    for k, v in mapped.items():
        if k not in own or own[k].shape != v.shape:
            raise ValueError(f"cannot map a reference weight onto {k!r}: names or shapes differ")
    missing = [k for k in own if k.startswith("encoder.") and k not in mapped]
    if missing:
        raise ValueError(f"infomax encoder tensors without a reference weight: {missing}")
    model.load_state_dict({**own, **mapped})


@dataclass(frozen=True)
class Spec:
    """A parsed variant name."""

    name: str
    reference: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    joint_views: bool = True
    compile: bool = False


def parse_variant(name: str) -> Spec:
    """``reference`` or ``infomax[-bf16|-fp16|-fp32][-cl][-sep][-compile]``."""
    if name == "reference":
        return Spec(name, reference=True)
    parts = name.split("-")
    flags = parts[1:]
    precisions = [f for f in flags if f in ("fp32", "bf16", "fp16")]
    unknown = [f for f in flags if f not in ("fp32", "bf16", "fp16", "cl", "sep", "compile")]
    if parts[0] != "infomax" or unknown or len(precisions) > 1 or len(set(flags)) < len(flags):
        raise ValueError(
            f"unknown variant {name!r}; use 'reference' or 'infomax' followed by any of "
            "-bf16 / -fp16, -cl (channels_last), -sep (one encoder call per view), -compile, "
            "e.g. infomax-bf16-cl"
        )
    return Spec(
        name,
        precision=precisions[0] if precisions else "fp32",
        channels_last="cl" in flags,
        joint_views="sep" not in flags,
        compile="compile" in flags,
    )


@dataclass
class Variant:
    """One model with its optimiser; :meth:`step` trains on a pair of views."""

    spec: Spec
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    speeds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def _loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        if self.spec.channels_last:
            v1 = v1.contiguous(memory_format=torch.channels_last)
            v2 = v2.contiguous(memory_format=torch.channels_last)
        with autocast(self.spec.precision, v1.device):
            if self.spec.reference:
                return self.model(v1, v2)
            return self.model.view_losses(v1, v2)["loss"]

    def step(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        loss = self._loss(v1, v2)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    @torch.no_grad()
    def loss(self, v1: torch.Tensor, v2: torch.Tensor, seed: int) -> float:
        """The training loss of one pair (train-mode batch norm), no update; ``seed`` fixes the
        random 5x5 source locations."""
        torch.manual_seed(seed)
        return float(self._loss(v1, v2))


def build_variant(
    spec: Spec, ref: ReferenceAMDIM, args: argparse.Namespace, device: torch.device
) -> Variant:
    """A variant starting from ``ref``'s current weights."""
    if spec.precision == "fp16" and device.type != "cuda":
        raise ValueError(f"{spec.name}: fp16 (with a GradScaler) is for CUDA; use bf16 or fp32")
    if spec.reference:
        model: nn.Module = ReferenceAMDIM(args.ndf, args.n_rkhs, args.n_depth).to(device)
        model.load_state_dict(ref.state_dict())
    else:
        model = AMDIM(
            encoder="amdim32", ndf=args.ndf, n_rkhs=args.n_rkhs, n_depth=args.n_depth,
            tclip=20.0, reg_weight=0.05, joint_views=spec.joint_views,
        ).to(device)  # fmt: skip
        load_from_reference(model, ref)
        if spec.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if spec.compile:
            model.encoder.compile()
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.Adam(model.parameters(), **ADAM, **fused)
    scaler = torch.amp.GradScaler(device.type, enabled=spec.precision == "fp16")
    return Variant(spec, model, opt, scaler)


def make_reference(args: argparse.Namespace, device: torch.device) -> ReferenceAMDIM:
    torch.manual_seed(args.seed)
    return ReferenceAMDIM(args.ndf, args.n_rkhs, args.n_depth).to(device)


# ------------------------------------------------------------------------------------------ data


def load_views(
    path: str | None, batch: int, n: int, device: torch.device, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` pairs of views of CIFAR-10 training batches (or the built-in synthetic set), drawn
    without replacement and augmented once with the AMDIM CIFAR pipeline (seeded)."""
    from infomax.data import load_dataset

    images = load_dataset(path or "synthetic", split="train").images
    if images.shape[-1] != 32 or images.shape[1] != 3:
        raise ValueError(
            f"this benchmark uses the 32x32 encoder; got images {tuple(images.shape[1:])} "
            "(use CIFAR-10 / CIFAR-100 or the synthetic set)"
        )
    g = torch.Generator().manual_seed(seed)
    need = batch * n
    idx = torch.cat(
        [torch.randperm(len(images), generator=g) for _ in range(-(-need // len(images)))]
    )
    views = AmdimViews.preset("cifar")
    out = []
    for b in images[idx[:need]].split(batch):
        v1, v2 = views.views(b, g)
        out.append((v1.to(device), v2.to(device)))
    return out


# ---------------------------------------------------------------------------------------- memory


def _random_views(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, batch, 3, 32, 32, generator=g)
    return v[0].to(device), v[1].to(device)


def _proc_status_mib(key: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def memory_child(spec_name: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build one variant on the CPU, run two steps; the peak RSS of the steps."""
    device = torch.device("cpu")
    variant = build_variant(parse_variant(spec_name), make_reference(args, device), args, device)
    v1, v2 = _random_views(batch, device)
    reset = False
    try:  # reset the peak RSS to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    before = _proc_status_mib("VmRSS")
    for _ in range(2):
        variant.step(v1, v2)
    peak = _proc_status_mib("VmHWM") if reset else None
    if peak is None:  # no reset: the process's lifetime peak (includes the imports)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mib": peak, "rss_before_steps_mib": before, "peak_reset": reset}


def measure_memory(
    names: list[str], batches: list[int], args: argparse.Namespace, device: torch.device
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = {}
        for b in batches:
            print(f"memory: {name} batch {b}", file=sys.stderr, flush=True)
            if device.type == "cuda":
                out[name][str(b)] = _cuda_memory(name, b, args, device)
            else:
                out[name][str(b)] = _cpu_memory(name, b, args)
    return out


def _cuda_memory(
    name: str, batch: int, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    gc.collect()
    torch.cuda.empty_cache()
    try:
        variant = build_variant(parse_variant(name), make_reference(args, device), args, device)
        v1, v2 = _random_views(batch, device)
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        for _ in range(2):
            variant.step(v1, v2)
        sync(device)
        res = {
            "peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "allocated_before_steps_mib": before / 2**20,
        }
        del variant, v1, v2
    except torch.OutOfMemoryError:
        res = {"error": "out of memory"}
    gc.collect()
    torch.cuda.empty_cache()
    return res


def _cpu_memory(name: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.amdim_speed", "--memory-child", f"{name}:{batch}",
        "--ndf", str(args.ndf), "--n-rkhs", str(args.n_rkhs), "--n-depth", str(args.n_depth),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where -m finds benchmarks
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["child failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ main


def default_variants(device: torch.device, compile_: bool) -> list[str]:
    if device.type == "cuda":
        names = ["reference", "infomax", "infomax-bf16", "infomax-fp16", "infomax-bf16-cl"]
        names += ["infomax-compile", "infomax-bf16-cl-compile"] if compile_ else []
    else:
        names = ["reference", "infomax", "infomax-cl", "infomax-bf16", "infomax-bf16-cl"]
        names += ["infomax-bf16-cl-compile"] if compile_ else []
    return names


# ------------------------------------------------------------------------------------ ceilings


def step_gflop(name: str, args: argparse.Namespace, device: torch.device) -> float:
    """Floating-point work of one training step of variant ``name`` (forward and backward of
    both views and the NCE; ``torch.utils.flop_counter`` counts convolutions and matrix
    products, which are nearly all of it), in GFLOP, on a fresh model and random views."""
    from torch.utils.flop_counter import FlopCounterMode

    variant = build_variant(parse_variant(name), make_reference(args, device), args, device)
    v1, v2 = _random_views(args.batch, device)
    with FlopCounterMode(display=False) as counter:
        variant.step(v1, v2)
    return counter.get_total_flops() / 1e9


def matmul_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """Measured rate of an ``n x n`` matrix product in ``dtype`` on ``device`` (GFLOP/s): the
    practical ceiling that convolution-heavy training can approach."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(3):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        times.append((time.perf_counter() - t0) / reps)
    return 2 * n**3 / min(times) / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help="CIFAR-10 .npz (default: built-in synthetic)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--ndf", type=int, default=128, help="encoder width (small preset 128)")
    p.add_argument("--n-rkhs", type=int, default=1024, help="embedding width (small preset 1024)")
    p.add_argument("--n-depth", type=int, default=3, help="units per block (small preset 3)")
    p.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--steps", type=int, default=None, help="steps per variant per round "
                   "(default: 1 on CPU, 10 on CUDA)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant before "
                   "the rounds (default 1; 3 with compiled variants)")  # fmt: skip
    p.add_argument("--variants", nargs="+", default=None, help="default: see the docstring")
    p.add_argument("--compile", action="store_true", help="add torch.compile'd variants")
    p.add_argument("--memory-batches", type=int, nargs="*", default=None,
                   help="batch sizes of the memory table (default: CPU 16 32 64 128, CUDA 64 "
                   "128 256 512; none: skip)")  # fmt: skip
    p.add_argument(
        "--memory-variants",
        nargs="+",
        default=None,
        help="default: reference infomax (CUDA: also infomax-bf16 infomax-bf16-cl)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--out", default=None, help="write the results to this JSON file")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        name, _, batch = args.memory_child.rpartition(":")
        print(json.dumps(memory_child(name, int(batch), args)))
        return 0
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    if args.batch < 2 or args.repeats < 1:
        p.error("--batch must be at least 2 (the NCE needs negatives) and --repeats at least 1")
    names = args.variants or default_variants(device, args.compile)
    try:
        specs = [parse_variant(n) for n in names]
    except ValueError as exc:
        p.error(str(exc))
    if not specs[0].reference:
        p.error("the first variant must be 'reference' (ratios are taken to it)")
    steps = args.steps or (10 if device.type == "cuda" else 1)
    warmup = args.warmup if args.warmup is not None else (3 if args.compile else 1)
    mem_batches = args.memory_batches
    if mem_batches is None:
        mem_batches = [64, 128, 256, 512] if device.type == "cuda" else [16, 32, 64, 128]
    mem_names = args.memory_variants or (
        ["reference", "infomax", "infomax-bf16", "infomax-bf16-cl"]
        if device.type == "cuda"
        else ["reference", "infomax", "infomax-bf16-cl"]
    )
    clock = Clock()

    n_pairs = max(warmup, 1) + args.repeats * steps
    pairs = load_views(args.data, args.batch, n_pairs, device, args.seed)
    ref = make_reference(args, device)
    variants = [build_variant(s, ref, args, device) for s in specs]
    reference = variants[0]

    # 1. same weights, same batch, same random source locations -> same loss
    check_specs = [s for s in specs if not s.reference]
    if not any(s.precision == "fp32" and not s.joint_views for s in check_specs):
        check_specs.append(parse_variant("infomax-sep"))
    v1, v2 = pairs[0]
    ref_loss = reference.loss(v1, v2, args.seed)
    check: dict[str, Any] = {}
    for s in check_specs:
        own = next((v for v in variants if v.spec == s), None)
        own = own or build_variant(s, ref, args, device)
        value = own.loss(v1, v2, args.seed)
        check[s.name] = {
            "reference": ref_loss,
            "infomax": value,
            "abs_diff": abs(value - ref_loss),
            "rel_diff": abs(value - ref_loss) / abs(ref_loss),
        }
        print(f"loss check {s.name}: reference {ref_loss:.6f} infomax {value:.6f}", flush=True)

    # 2. warm-up, then interleaved timed rounds on the same pre-augmented batches
    timed_rounds(variants, pairs, args.repeats, steps, warmup, args.batch, device)
    results = speed_summary(variants)
    for v in variants:
        results[v.name].update({
            "train_losses": v.losses,
            "last_round_train_loss": statistics.fmean(v.losses[-steps:]),
            "precision": v.spec.precision,
            "channels_last": v.spec.channels_last,
            "joint_views": v.spec.joint_views,
            "compile": v.spec.compile,
        })  # fmt: skip
    del variants, reference, ref, pairs, v1, v2, own  # free them before the memory table
    gc.collect()

    # how close each variant runs to the machine's matrix-product rate in its precision
    work = {"reference": step_gflop("reference", args, device)}
    work["infomax"] = step_gflop("infomax", args, device)
    peaks = {"fp32": matmul_gflops(torch.float32, device)}
    for prec in sorted({r["precision"] for r in results.values()} - {"fp32"}):
        peaks[prec] = matmul_gflops(autocast_dtype(prec, device), device)
    for name, r in results.items():
        r["gflop_per_step"] = work["reference" if name == "reference" else "infomax"]
        r["gflop_per_sec"] = r["gflop_per_step"] * r["images_per_sec"] / args.batch
        r["fraction_of_matmul_rate"] = r["gflop_per_sec"] / peaks[r["precision"]]
    ceiling = {"step_gflop": work, "matmul_gflop_per_sec": peaks}

    # 3. peak memory against batch size
    memory = measure_memory(mem_names, list(mem_batches), args, device) if mem_batches else {}

    where = machine(device)
    settings = {
        "command": " ".join(
            ["python -m benchmarks.amdim_speed", *(argv if argv is not None else sys.argv[1:])]
        ),
        "data": args.data or "synthetic",
        "device": str(device),
        "device_name": where.get("gpu") or where["cpu"],
        "ndf": args.ndf,
        "n_rkhs": args.n_rkhs,
        "n_depth": args.n_depth,
        "batch": args.batch,
        "repeats": args.repeats,
        "steps_per_round": steps,
        "warmup_steps": warmup,
        "adam": {k: list(v) if isinstance(v, tuple) else v for k, v in ADAM.items()},
        "seed": args.seed,
        "variants": names,
        "augmentation_timed": False,
        "precision_auto_resolves_to": resolve_precision("auto", device),
        "cpu_native_bf16": where["cpu_native_bf16"],
        **clock.environment(),
    }
    everything = {"settings": settings, "same_weights_check": check, "variants": results,
                  "ceiling": ceiling, "memory": memory}  # fmt: skip
    write_results(args.out, everything, markdown(settings, check, results, memory, ceiling))
    return 0


def markdown(
    settings: dict[str, Any],
    check: dict[str, Any],
    results: dict[str, Any],
    memory: dict[str, dict[str, Any]],
    ceiling: dict[str, Any],
) -> str:
    s = settings
    lines = [
        "## AMDIM training speed: infomax vs the reference formulation",
        "",
        f"- {s['device']} ({s['device_name']}), torch {s['torch']}, {s['threads']} threads, load "
        f"average {s['load_average_start']:.2f} at the start, {s['load_average_end']:.2f} at the "
        f"end; data {s['data']}; wall {s['wall_seconds']:.0f} s",
        f"- encoder amdim32 ndf {s['ndf']}, n_rkhs {s['n_rkhs']}, n_depth {s['n_depth']}; batch "
        f"{s['batch']}; NCE 1t5+1t7+5t5, tclip 20, penalty 0.05; Adam 2e-4 betas (0.8, 0.999) "
        f"wd 1e-5; seed {s['seed']}",
        f"- {s['repeats']} interleaved rounds x {s['steps_per_round']} steps after "
        f"{s['warmup_steps']} warm-up step(s); augmentation not timed (the same pre-augmented "
        "views for every variant); images/s counts source images (2 views each)",
        f"- precision auto resolves to {s['precision_auto_resolves_to']} here (CPU native bf16: "
        f"{s['cpu_native_bf16']}); CUDA TF32 matmul {s['cuda_matmul_tf32']}, cuDNN TF32 "
        f"{s['cudnn_tf32']}",
        "",
        "Same weights, same batch, same source locations (loss before any update):",
        "",
        "| variant | reference loss | infomax loss | abs diff | rel diff |",
        "|---|---|---|---|---|",
    ]
    for name, c in check.items():
        lines.append(
            f"| {name} | {c['reference']:.6f} | {c['infomax']:.6f} | {c['abs_diff']:.2e} | "
            f"{c['rel_diff']:.2e} |"
        )
    lines += [
        "",
        "Speed (median of rounds; x reference: median of per-round ratios):",
        "",
        "| variant | images/s | x reference | ratio of medians | train loss (last round) "
        "| GFLOP/s | of matmul rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['images_per_sec']:.1f} | {r['ratio_to_reference']:.2f} | "
            f"{r['ratio_of_medians']:.2f} | {r['last_round_train_loss']:.4f} | "
            f"{r['gflop_per_sec']:.0f} | {r['fraction_of_matmul_rate']:.0%} |"
        )
    work, peaks = ceiling["step_gflop"], ceiling["matmul_gflop_per_sec"]
    rates = ", ".join(f"{p} {g:.0f}" for p, g in peaks.items())
    lines += [
        "",
        f"One training step is {work['reference']:.1f} GFLOP in the reference formulation and "
        f"{work['infomax']:.1f} in infomax (torch.utils.flop_counter, forward + backward). A "
        f"2048 x 2048 matrix product runs at {rates} GFLOP/s here: the rate a "
        "convolution-heavy step can approach in each precision.",
    ]
    if memory:
        batches = sorted({int(b) for m in memory.values() for b in m})
        cuda = s["device"].startswith("cuda")
        what = (
            "torch.cuda.max_memory_allocated over two steps, MiB"
            if cuda
            else "peak RSS of a fresh process over two steps, MiB (in brackets: RSS before "
            "the first step)"
        )
        lines += [
            "",
            f"Peak memory against batch size ({what}):",
            "",
            "| variant | " + " | ".join(f"batch {b}" for b in batches) + " |",
            "|---|" + "---|" * len(batches),
        ]
        for name, m in memory.items():
            cells = []
            for b in batches:
                r = m.get(str(b), {})
                if "error" in r:
                    cells.append(r["error"])
                elif cuda:
                    cells.append(f"{r['peak_allocated_mib']:.0f}")
                else:
                    before = r.get("rss_before_steps_mib")
                    base = "?" if before is None else f"{before:.0f}"
                    cells.append(f"{r['peak_rss_mib']:.0f} ({base})")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
