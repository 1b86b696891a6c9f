"""Throughput of AmdimViews (batched, on-device) against torchvision's per-image transforms.

Both sides produce the AMDIM training input for one batch: a shared horizontal flip per source
image, then two independently augmented, normalised views. ``infomax`` runs
``AmdimViews.views`` on the whole uint8 batch; the references run the same settings image by
image in a plain Python loop (no DataLoader, no worker processes), as the AMDIM reference code's
``TransformsC10`` / ``TransformsSTL10`` do inside a DataLoader worker:

- ``torchvision-pil``: PIL images -> RandomHorizontalFlip, then twice RandomApply(translate by
  reflect-padded RandomCrop) / RandomResizedCrop, RandomApply(ColorJitter), RandomGrayscale,
  ToTensor, Normalize, and ``torch.stack`` of the views (the reference pipeline);
- ``torchvision-tensor``: the same transforms (v2 API) on uint8 tensors, then ToDtype + Normalize.

Reported: images per second (source images; each gives two views), the median of ``--repeats``
timed runs after a warm-up, all variants interleaved in every repeat so that they share the
machine's load. The load average at the start and the end is printed (and kept with --json).

Usage::

    python -m benchmarks.augment_speed                          # CIFAR (32x32), batch 256, CPU
    python -m benchmarks.augment_speed --preset stl10           # 96x96 -> 64x64 resized crops
    python -m benchmarks.augment_speed --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.harness import Clock, machine, write_results
from infomax.runtime import resolve_device


def make_batch(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 images with some structure (upsampled noise) so colour ops do real work."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, max(2, size // 6), max(2, size // 6)), generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    x = (0.8 * x + 0.2 * torch.rand((n, 3, size, size), generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8)


def torchvision_pil(preset: str, mean, std) -> Callable[[torch.Tensor], tuple]:
    from PIL import Image
    from torchvision import transforms as T

    if preset == "cifar":
        crop = T.RandomApply([T.RandomCrop(32, padding=4, padding_mode="reflect")], p=0.8)
    else:
        crop = T.RandomResizedCrop(64, (0.3, 1.0), (0.7, 1.4), T.InterpolationMode.BICUBIC)
    flip = T.RandomHorizontalFlip(0.5)
    view = T.Compose(
        [
            crop,
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.2)], p=0.8),
            T.RandomGrayscale(0.25),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )

    def prepare(x: torch.Tensor):
        arr = x.permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a) for a in arr]

    def run(images) -> tuple:
        v1, v2 = [], []
        for im in images:
            im = flip(im)
            v1.append(view(im))
            v2.append(view(im))
        return torch.stack(v1), torch.stack(v2)

    return prepare, run


def torchvision_tensor(preset: str, mean, std) -> Callable:
    from torchvision.transforms import v2 as T

    if preset == "cifar":
        crop = T.RandomApply([T.RandomCrop(32, padding=4, padding_mode="reflect")], p=0.8)
    else:
        crop = T.RandomResizedCrop(64, (0.3, 1.0), (0.7, 1.4), T.InterpolationMode.BICUBIC)
    flip = T.RandomHorizontalFlip(0.5)
    view = T.Compose(
        [
            crop,
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.2)], p=0.8),
            T.RandomGrayscale(0.25),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )

    def prepare(x: torch.Tensor):
        return list(x.unbind(0))

    def run(images) -> tuple:
        v1, v2 = [], []
        for im in images:
            im = flip(im)
            v1.append(view(im))
            v2.append(view(im))
        return torch.stack(v1), torch.stack(v2)

    return prepare, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=("cifar", "stl10"), default="cifar")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--no-reference", action="store_true", help="time infomax only (skip torchvision)"
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    from infomax.transforms import AmdimViews

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    size = 32 if args.preset == "cifar" else 96
    x = make_batch(args.batch, size)
    results: dict[str, list[float]] = {}
    variants: dict[str, tuple[Callable, object]] = {}

    for order in ("random", "fixed"):
        aug = AmdimViews.preset(args.preset, jitter_order=order).to(device)
        gen = torch.Generator().manual_seed(0)
        xd = x.to(device)

        def run_ours(batch, aug=aug, gen=gen):
            out = aug.views(batch, gen)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        variants[f"infomax AmdimViews (jitter order {order})"] = (run_ours, xd)
    norm = AmdimViews.preset(args.preset).normalize
    mean, std = norm.mean.flatten().tolist(), norm.std.flatten().tolist()
    if not args.no_reference:
        for name, factory in (
            ("torchvision per-image, PIL (reference pipeline)", torchvision_pil),
            ("torchvision per-image, uint8 tensors (v2)", torchvision_tensor),
        ):
            prepare, run = factory(args.preset, mean, std)
            variants[name] = (run, prepare(x))

    clock = Clock()
    print(
        f"preset {args.preset}, batch {args.batch} uint8 images {size}x{size}, device {device}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {machine(device)}"
    )
    for run, data in variants.values():  # warm-up
        run(data)
    for _ in range(args.repeats):
        for name, (run, data) in variants.items():
            t0 = time.perf_counter()
            run(data)
            results.setdefault(name, []).append(time.perf_counter() - t0)
    rows = []
    for name, times in results.items():
        med = statistics.median(times)
        rows.append(
            {
                "variant": name,
                "median_s": med,
                "images_per_s": args.batch / med,
                "min_s": min(times),
                "max_s": max(times),
            }
        )
    base = next((r["images_per_s"] for r in rows if r["variant"].startswith("torchvision")), None)
    print(f"{'variant':52s} {'median ms':>10s} {'images/s':>10s} {'vs PIL':>7s}")
    for r in rows:
        rel = f"{r['images_per_s'] / base:6.1f}x" if base else ""
        print(f"{r['variant']:52s} {r['median_s'] * 1e3:10.1f} {r['images_per_s']:10.0f} {rel:>7s}")
    env = clock.environment()
    print(f"load average {env['load_average_start']:.2f} at the start, "
          f"{env['load_average_end']:.2f} at the end")  # fmt: skip
    if args.json:
        settings = {"preset": args.preset, "batch": args.batch, "device": str(device),
                    "repeats": args.repeats, **machine(device), **env}  # fmt: skip
        table = "\n".join(f"| {r['variant']} | {r['images_per_s']:.0f} |" for r in rows)
        write_results(args.json, {"settings": settings, "rows": rows},
                      "| variant | images/s |\n|---|---|\n" + table + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
