"""Training speed of local Deep InfoMax: infomax's DIM against the reference formulation, side by
side, at matching loss values.

The issue's target: at least 2x the reference's training images/s, measured side by side, at
matching loss values. This script measures both halves in one process:

1. *Same loss, same weights.* ``infomax-2048`` gets the reference's weights (encoder and both
   critic networks mapped one to one) and both compute the DIM(L)-NCE loss of the same batches;
   the two values are printed with their difference. They differ only by the reference's masked
   terms: its NCE keeps the image's own other locations in the denominator at score -10 (weight
   ``L * e^-10`` against a sum of ``(N-1) L`` exponentials), which infomax leaves out.
2. *Speed and the loss it reaches.* Every variant starts from the same encoder weights (the
   2048-unit variants from the reference's complete weights) and is trained on the same sequence
   of batches with the same optimiser. Training is timed in interleaved rounds (each round runs
   ``--steps`` steps of every variant, the order rotating from round to round, so machine noise
   hits all alike); a variant's speed is the median over rounds of its images/s, and its ratio to
   the reference is the median of the per-round ratios (the ratio of the medians is in the JSON).
   After the last round every variant's loss is measured on the same held-out test batches: the
   loss reached in the same number of steps, next to the speed.
3. *Chaos or a different step.* ``reference-ulp`` is the reference with every weight moved by one
   ulp, trained on the same batches. When it drifts from the reference at least half as far as
   ``infomax-2048`` does (largest train-loss difference), the split of the trajectories is the
   chaos of training, not a difference in the step, and the script says so; a held-out loss
   within the twin's distance from the reference then counts as matching (docs/dim.md).

Variants (batch 128, 32x32 images, DIM(L) with the InfoNCE estimator, no prior, Adam):

- ``reference``: ``benchmarks/reference_dim.py``, the rdevon/DIM arithmetic (NCHW 1x1 convs, an
  explicit (N, L, 1 + N L) logit tensor, 2048-unit critic, float32);
- ``reference-ulp``: the same, every weight moved by one unit in the last place;
- ``infomax-2048``: ``infomax.objectives.dim.DIM`` with the same 2048-unit critic, float32;
- ``infomax-512``: the 512-unit critic of the CPU recipe (``configs/dim_l_nce_cifar10_cpu.yaml``);
- on CUDA also ``infomax-2048-bf16`` and ``infomax-512-bf16``: bf16 autocast, channels_last.

Usage (the defaults take about 7 minutes on 2 idle CPU cores)::

    python -m benchmarks.dim_speed --data ../shared/data/cifar10.npz --out dim_speed.json
    python -m benchmarks.dim_speed --data ../shared/data/cifar10.npz --device cuda \\
        --rounds 10 --steps 20 --out dim_speed_cuda.json
    python -m benchmarks.dim_speed --batch-size 16 --rounds 2 --steps 1   # smoke run, synthetic
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from benchmarks.harness import Clock, machine, speed_summary, timed_rounds, write_results
from benchmarks.reference_dim import ReferenceLocalDIM
from infomax.objectives.dim import CIFAR10_MEAN, CIFAR10_STD, DIM
from infomax.runtime import autocast, resolve_device
from infomax.transforms import Normalize

# ---------------------------------------------------------------------------------------- models


def reference_to_infomax(ref: ReferenceLocalDIM, critic: bool = True) -> dict[str, torch.Tensor]:
    """The reference's weights under the names of ``DIM(preset="dim-l-infonce")``'s state dict.

    Encoder: conv/BN blocks -> ``encoder.convs.i``, ``fc`` -> ``encoder.fcs.0``, ``y`` ->
    ``encoder.head``. With ``critic``: ``local_net`` / ``global_net`` (1x1 convolutions) ->
    ``local_critic.local_net`` / ``local_critic.code_net`` (the same matrices as linear maps).
    """
    e = ref.encoder
    out: dict[str, torch.Tensor] = {}

    def bn(prefix: str, m: nn.Module) -> None:
        for k, v in m.state_dict().items():
            out[f"{prefix}.{k}"] = v

    for i, block in enumerate((e.c1, e.c2, e.c3)):
        out[f"encoder.convs.{i}.0.weight"] = block[0].weight.detach()
        bn(f"encoder.convs.{i}.1", block[1])
    out["encoder.fcs.0.0.weight"] = e.fc[0].weight.detach()
    out["encoder.fcs.0.0.bias"] = e.fc[0].bias.detach()
    bn("encoder.fcs.0.1", e.fc[1])
    out["encoder.head.weight"] = e.y.weight.detach()
    out["encoder.head.bias"] = e.y.bias.detach()
    if critic:
        for side, net in (("local_net", ref.local_net), ("code_net", ref.global_net)):
            p = f"local_critic.{side}"
            out[f"{p}.block.0.weight"] = net.block_nonlinear[0].weight.detach().flatten(1)
            bn(f"{p}.block.1", net.block_nonlinear[1])
            out[f"{p}.block.3.weight"] = net.block_nonlinear[3].weight.detach().flatten(1)
            out[f"{p}.block.3.bias"] = net.block_nonlinear[3].bias.detach()
            out[f"{p}.shortcut.weight"] = net.linear_shortcut.weight.detach().flatten(1)
            out[f"{p}.norm.weight"] = net.ln.weight.detach()
            out[f"{p}.norm.bias"] = net.ln.bias.detach()
    return out


def load_from_reference(dim: DIM, ref: ReferenceLocalDIM, critic: bool) -> None:
    """Copy the reference's weights into ``dim`` (every mapped name must exist, same shape)."""
    mapped = reference_to_infomax(ref, critic)
    own = dim.state_dict()
    for k, v in mapped.items():
        if k not in own or own[k].shape != v.shape:
            raise ValueError(
                f"cannot map the reference's weight onto {k!r}: names or shapes differ"
            )
    dim.load_state_dict({**own, **{k: v.clone() for k, v in mapped.items()}})


@dataclass
class Variant:
    """One model with its optimiser: ``step(x)`` trains on a uint8 batch, ``loss(x)`` evaluates."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    forward: Any  # uint8 batch -> loss tensor
    bf16: bool = False
    speeds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        with autocast("bf16" if self.bf16 else "fp32", x.device):
            return self.forward(x)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        loss = self._loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def loss(self, x: torch.Tensor, use_autocast: bool = False) -> float:
        """The training loss of a batch (train-mode batch norm, as in training), no update."""
        with autocast("bf16" if use_autocast and self.bf16 else "fp32", x.device):
            return float(self.forward(x))


def last_bit_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every float weight moved by one unit in the last place (towards
    +inf): the smallest change float32 can make. Trained on the same batches, its distance from
    the original measures how much any rounding difference grows during training (chaos)."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for t in twin.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.nextafter(t, torch.full_like(t, math.inf)))
    return twin


def make_variants(
    names: list[str], device: torch.device, lr: float, betas: tuple[float, float], seed: int
) -> list[Variant]:
    torch.manual_seed(seed)
    ref = ReferenceLocalDIM(mi_units=2048).to(device)
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD).to(device)
    out = []
    for name in names:
        if name in ("reference", "reference-ulp"):
            model: nn.Module = ref if name == "reference" else last_bit_twin(ref)
            forward = (lambda m: lambda x: m(norm(x)))(model)
            bf16 = False
        else:
            parts = name.split("-")
            if parts[0] != "infomax" or not parts[1].isdigit() or parts[2:] not in ([], ["bf16"]):
                raise ValueError(
                    f"unknown variant {name!r}; use reference, infomax-UNITS or infomax-UNITS-bf16"
                )
            units, bf16 = int(parts[1]), parts[2:] == ["bf16"]
            if bf16 and device.type != "cuda":
                raise ValueError(f"{name}: bf16 variants are for CUDA (this CPU has no fast bf16)")
            dim = DIM(preset="dim-l-infonce", prior="none", gamma=0.0, mi_units=units)
            dim = dim.to(device)
            load_from_reference(dim, ref, critic=units == 2048)
            if bf16:
                dim = dim.to(memory_format=torch.channels_last)
            model = dim
            forward = (lambda m: lambda x: m.training_losses(x)["loss"])(dim)
        fused = {"fused": True} if device.type == "cuda" else {}
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, **fused)
        out.append(Variant(name, model, opt, forward, bf16))
    return out


# ------------------------------------------------------------------------------------------ data


def load_batches(
    path: str | None, split: str, batch_size: int, n: int, device: torch.device, seed: int
) -> list[torch.Tensor]:
    """``n`` uint8 batches of ``split``: CIFAR-10 (or any dataset) from ``path``, else the built-in
    synthetic set. Images are drawn without replacement (a new permutation when they run out)."""
    from infomax.data import load_dataset

    images = load_dataset(path or "synthetic", split=split).images
    g = torch.Generator().manual_seed(seed)
    need = batch_size * n
    idx = torch.cat(
        [torch.randperm(len(images), generator=g) for _ in range(-(-need // len(images)))]
    )
    return [b.to(device) for b in images[idx[:need]].split(batch_size)]


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help="CIFAR-10 .npz (default: built-in synthetic)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=8, help="interleaved timing rounds")
    p.add_argument("--steps", type=int, default=5, help="training steps per variant per round")
    p.add_argument("--check-batches", type=int, default=2, help="batches of the loss check")
    p.add_argument("--eval-batches", type=int, default=4, help="held-out batches after training")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (CPU recipe)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    p.add_argument("--variants", nargs="+", default=None)
    p.add_argument("--target", type=float, default=2.0, help="speed ratio to reach (default 2)")
    p.add_argument(
        "--loss-tolerance", type=float, default=0.02,
        help="held-out loss at most this fraction above the reference's counts as matching",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    if min(args.rounds, args.steps, args.batch_size - 1, args.check_batches, args.eval_batches) < 1:
        p.error("--rounds, --steps, --check-batches, --eval-batches >= 1 and --batch-size >= 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    names = args.variants or ["reference", "reference-ulp", "infomax-2048", "infomax-512"]
    if args.variants is None and device.type == "cuda":
        names += ["infomax-2048-bf16", "infomax-512-bf16"]
    if names[0] != "reference":
        p.error("the first variant must be 'reference' (ratios are taken to it)")
    clock = Clock()

    n_train = 1 + args.rounds * args.steps  # one warm-up step, then the timed rounds
    batches = load_batches(args.data, "train", args.batch_size, n_train, device, args.seed)
    held_out = load_batches(
        args.data, "test", args.batch_size, args.eval_batches, device, args.seed + 1
    )
    variants = make_variants(names, device, args.lr, (0.5, 0.999), args.seed)
    ref = variants[0]

    # 1. the same weights give the same loss (before any update)
    check: dict[str, Any] = {}
    same_weights = [v for v in variants if v.name.startswith("infomax-2048")]
    for v in same_weights:
        pairs = [
            (ref.loss(b), v.loss(b, use_autocast=True)) for b in batches[1 : 1 + args.check_batches]
        ]
        check[v.name] = {
            "reference": [a for a, _ in pairs],
            "infomax": [b for _, b in pairs],
            "max_abs_diff": max(abs(a - b) for a, b in pairs),
        }

    # 2. interleaved training rounds on the same batches, then the held-out loss
    timed_rounds(variants, batches, args.rounds, args.steps, 1, args.batch_size, device)
    held = {v.name: statistics.fmean(v.loss(b) for b in held_out) for v in variants}

    n, n_loc = args.batch_size, 64  # dim32 on 32x32 images: an 8x8 local map
    cap = math.log(1 + (n - 1) * n_loc)
    results = speed_summary(variants)
    for v in variants:
        gap = held[v.name] - held[ref.name]
        results[v.name].update({
            "train_losses": v.losses,
            "last_round_train_loss": statistics.fmean(v.losses[-args.steps :]),
            "train_loss_max_abs_diff_to_reference": max(
                abs(a - b) for a, b in zip(v.losses, ref.losses)
            ),
            "held_out_loss": held[v.name],
            "held_out_mi_nats": cap - held[v.name],
            "held_out_loss_minus_reference": gap,
        })  # fmt: skip
    diagnose(results, held, ref.name, args.target, args.loss_tolerance)

    where = machine(device)
    dev_name = where.get("gpu") or where["cpu"]
    settings = {
        "command": " ".join(
            ["python -m benchmarks.dim_speed", *(argv if argv is not None else sys.argv[1:])]
        ),
        "data": args.data or "synthetic",
        "device": str(device),
        "device_name": dev_name,
        "cpu_native_bf16": where["cpu_native_bf16"],
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "training_steps": n_train,
        "check_batches": args.check_batches,
        "eval_batches": args.eval_batches,
        "lr": args.lr,
        "betas": [0.5, 0.999],
        "seed": args.seed,
        "variants": names,
        "target": args.target,
        "loss_tolerance": args.loss_tolerance,
        "infonce_cap_nats": cap,
        **clock.environment(),
    }
    everything = {"settings": settings, "same_weights_check": check, "variants": results}
    write_results(args.out, everything, markdown(settings, check, results))
    return 0


def diagnose(
    results: dict[str, Any], held: dict[str, float], ref: str, target: float, tolerance: float
) -> None:
    """Add ``meets_target`` and, with the ``reference-ulp`` twin, ``split``: whether a variant's
    trajectory leaves the reference's because of a real difference in the step (``step``) or as
    any rounding change would (``chaos``: the reference itself, moved by one ulp, separates at
    least half as far in train loss). A held-out loss within the twin's own distance from the
    reference counts as matching: closer than that cannot be asked of any reimplementation."""
    twin = results.get("reference-ulp")
    spread = abs(twin["held_out_loss_minus_reference"]) if twin else 0.0
    for name, r in results.items():
        if name == ref:
            continue
        gap = r["held_out_loss_minus_reference"]
        r["matching_loss"] = bool(gap <= max(tolerance * abs(held[ref]), spread))
        r["meets_target"] = bool(r["ratio_to_reference"] >= target and r["matching_loss"])
        if twin and name != "reference-ulp" and name.startswith("infomax-2048"):
            own = r["train_loss_max_abs_diff_to_reference"]
            chaos = twin["train_loss_max_abs_diff_to_reference"] >= 0.5 * own
            r["split"] = "chaos" if chaos else "step"


def markdown(settings: dict[str, Any], check: dict[str, Any], results: dict[str, Any]) -> str:
    s = settings
    lines = [
        "## DIM(L)-NCE training speed: infomax vs the reference formulation",
        "",
        f"- {s['device']} ({s['device_name']}), torch {s['torch']}, {s['threads']} threads, load "
        f"average {s['load_average_start']:.2f} at the start, {s['load_average_end']:.2f} at the "
        f"end; data {s['data']}",
        f"- batch {s['batch_size']}, Adam {s['lr']:g} betas (0.5, 0.999), seed {s['seed']}; "
        f"{s['rounds']} interleaved rounds x {s['steps_per_round']} steps after one warm-up step "
        f"({s['training_steps']} training steps per variant, the same batches for all); wall "
        f"{s['wall_seconds']:.0f} s",
        "",
        "Same weights, same batches, before training (DIM(L)-NCE loss):",
        "",
        "| variant | reference loss | infomax loss | max abs difference |",
        "|---|---|---|---|",
    ]
    for name, c in check.items():
        ref = ", ".join(f"{x:.6f}" for x in c["reference"])
        own = ", ".join(f"{x:.6f}" for x in c["infomax"])
        lines.append(f"| {name} | {ref} | {own} | {c['max_abs_diff']:.2e} |")
    lines += [
        "",
        f"Speed (median of rounds) and the loss reached after {s['training_steps']} steps "
        f"(held-out: mean over {s['eval_batches']} test batches; the InfoNCE loss is at least "
        f"0 and the MI estimate is {s['infonce_cap_nats']:.2f} - loss nats):",
        "",
        "| variant | images/s | x reference | train loss (last round) | held-out loss | "
        f"vs reference | max abs train-loss diff | >= {s['target']:g}x at matching loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        meets = "-" if name.startswith("reference") else ("yes" if r["meets_target"] else "no")
        lines.append(
            f"| {name} | {r['images_per_sec']:.1f} | {r['ratio_to_reference']:.2f} | "
            f"{r['last_round_train_loss']:.4f} | {r['held_out_loss']:.4f} | "
            f"{r['held_out_loss_minus_reference']:+.4f} | "
            f"{r['train_loss_max_abs_diff_to_reference']:.4g} | {meets} |"
        )
    lines += [
        "",
        f"x reference: median of the per-round ratios. Matching loss: held-out loss at most "
        f"{100 * s['loss_tolerance']:g}% above the reference's after the same steps. Max abs "
        "train-loss diff: over all steps, against the reference's loss on the same batch (the "
        "2048-unit variants start from the reference's weights, so this shows the two follow the "
        "same trajectory; the other variants share only the initial encoder).",
    ]
    twin = results.get("reference-ulp")
    for name, r in results.items():
        if "split" not in r:
            continue
        lines.append("")
        if r["split"] == "chaos":
            lines.append(
                f"Verdict on {name}'s trajectory: chaos, not a different step. The reference "
                "itself with every weight moved by one ulp separates from the reference by "
                f"{twin['train_loss_max_abs_diff_to_reference']:.4g} in train loss and "
                f"{twin['held_out_loss_minus_reference']:+.4f} in held-out loss after the same "
                f"steps, against {r['train_loss_max_abs_diff_to_reference']:.4g} and "
                f"{r['held_out_loss_minus_reference']:+.4f} for {name}; a held-out loss within "
                "the twin's distance counts as matching."
            )
        else:
            lines.append(
                f"Verdict on {name}'s trajectory: a real difference in the step. The reference "
                "moved by one ulp stays within "
                f"{twin['train_loss_max_abs_diff_to_reference']:.4g} of the reference's train "
                f"loss, {name} departs by {r['train_loss_max_abs_diff_to_reference']:.4g}."
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
