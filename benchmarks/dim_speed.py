"""Training-step speed of local Deep InfoMax: infomax's DIM against the reference formulation.

Times forward + backward + Adam step of DIM(L)-NCE at batch 128 on 32x32 images, interleaving the
variants round by round (A/B/C/A/B/C...) in one process so machine noise hits them alike, and
reports median images/s, ratios to the reference and the loss each variant reaches after the same
number of steps on the same batches (the check that a faster variant optimises as well).

Variants:
- ``reference``: ``benchmarks/reference_dim.py``, the rdevon/DIM arithmetic (NCHW 1x1 convs,
  2048-unit critic, float32).
- ``infomax-2048``: ``infomax.objectives.dim.DIM`` with the same 2048-unit critic, same precision.
- ``infomax-512``: the CPU recipe's 512-unit critic.
- on CUDA, ``infomax-2048-bf16`` and ``infomax-512-bf16``: bf16 autocast + channels_last.

Usage::

    python benchmarks/dim_speed.py --data ../shared/data/cifar10.npz --rounds 5 --steps 5
    python benchmarks/dim_speed.py --device cuda --batch-size 128 --rounds 5 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference_dim import ReferenceLocalDIM  # noqa: E402

from infomax.objectives.dim import DIM  # noqa: E402
from infomax.transforms import Normalize  # noqa: E402

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def load_batches(path: str | None, batch_size: int, n: int, device: torch.device) -> list:
    """``n`` uint8 batches: CIFAR-10 from ``path`` when given, else the built-in synthetic set."""
    if path:
        from infomax.data import load_dataset

        images = load_dataset(path, split="train").images
    else:
        from infomax.data import load_dataset

        images = load_dataset("synthetic", split="train").images
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(images), generator=g)[: batch_size * n]
    return [b.to(device) for b in images[idx].split(batch_size)]


def make_step(
    name: str, device: torch.device, lr: float
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.nn.Module]:
    """A closure doing one optimisation step on a uint8 batch and returning the loss tensor."""
    torch.manual_seed(0)
    bf16 = name.endswith("-bf16")
    if name == "reference":
        model = ReferenceLocalDIM(mi_units=2048).to(device)
        norm = Normalize(CIFAR_MEAN, CIFAR_STD).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)

        def step(x: torch.Tensor) -> torch.Tensor:
            loss = model(norm(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()

        return step, model

    units = int(name.split("-")[1])
    model = DIM(preset="dim-l-infonce", prior="none", gamma=0.0, mi_units=units).to(device)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr, fused=device.type == "cuda")

    def step(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.training_losses(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help="CIFAR-10 .npz (default: built-in synthetic)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--variants", nargs="+", default=None)
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    variants = args.variants or ["reference", "infomax-2048", "infomax-512"]
    if device.type == "cuda" and args.variants is None:
        variants += ["infomax-2048-bf16", "infomax-512-bf16"]
    batches = load_batches(args.data, args.batch_size, args.steps, device)
    steps = {v: make_step(v, device, args.lr)[0] for v in variants}
    for v in variants:  # warm-up (allocator, kernels)
        steps[v](batches[0])
    sync(device)

    speed: dict[str, list[float]] = {v: [] for v in variants}
    losses: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            sync(device)
            t0 = time.perf_counter()
            out = [steps[v](b) for b in batches]
            sync(device)
            speed[v].append(args.batch_size * len(batches) / (time.perf_counter() - t0))
            losses[v].append(float(torch.stack(out).mean()))

    ref = statistics.median(speed[variants[0]])
    print(f"device {device}, batch {args.batch_size}, {args.rounds} rounds x {args.steps} steps")
    print(
        f"{'variant':<22}{'img/s (median)':>16}{'ratio':>8}{'loss first round':>18}"
        f"{'loss last round':>17}"
    )
    results = {}
    for v in variants:
        med = statistics.median(speed[v])
        results[v] = {"images_per_sec": med, "all": speed[v], "losses": losses[v]}
        print(f"{v:<22}{med:>16.1f}{med / ref:>8.2f}{losses[v][0]:>18.4f}{losses[v][-1]:>17.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
