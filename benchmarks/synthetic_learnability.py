"""Is the built-in ``synthetic`` dataset learnable by instance-level MI maximisation?

A small self-contained check, independent of ``infomax.objectives``: a 5-layer conv encoder
(BatchNorm, ReLU, global average pool, 256 features) trained with InfoNCE between the two
``AmdimViews.preset("cifar")`` views of each image (a 2-layer projection head, cosine scores,
temperature 0.2, all other images of the batch as negatives; batch 256, Adam 1e-3). After each
listed number of steps the package's linear probe (``infomax.evaluation.train_probe``, default
settings) is fit on the 5,000 train images and scored on the 1,000 test images; step 0 is the
random encoder. (The figures in docs/data.md were measured with an earlier full-batch probe.)

Usage (results in docs/data.md)::

    python -m benchmarks.synthetic_learnability --steps 100 300 1000 2000
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from infomax.data import ArrayDataset, BatchLoader, load_dataset
from infomax.evaluation import train_probe
from infomax.runtime import resolve_device
from infomax.transforms import AmdimViews


def make_encoder() -> nn.Module:
    def block(i: int, o: int, s: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(3, 64, 1), *block(64, 128, 2), *block(128, 128, 1), *block(128, 256, 2),
        *block(256, 256, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


@torch.no_grad()
def features(enc: nn.Module, ds: ArrayDataset, aug: AmdimViews, dev: torch.device) -> torch.Tensor:
    enc.eval()
    out = [enc(aug.eval_transform(ds.images[i : i + 500].to(dev))) for i in range(0, len(ds), 500)]
    enc.train()
    return torch.cat(out)


def probe_accuracy(enc, train, test, aug, dev) -> float:
    """Test accuracy of the package's linear probe (:func:`infomax.evaluation.train_probe`,
    its default settings) on the encoder's features."""
    ftr, fte = features(enc, train, aug, dev), features(enc, test, aug, dev)
    return train_probe(ftr, train.labels, fte, test.labels, kind="linear", seed=0).test_acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dev = resolve_device(args.device)
    train, test = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
    aug = AmdimViews.preset("cifar").to(dev)

    torch.manual_seed(args.seed)
    enc = make_encoder().to(dev)
    print(
        f"step 0 (random encoder): probe accuracy {probe_accuracy(enc, train, test, aug, dev):.4f}"
    )
    head = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128)).to(dev)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], 1e-3)
    loader = BatchLoader(train, 256, device=dev, seed=args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    step, t0, loss = 0, time.time(), torch.zeros(())
    for target in sorted(args.steps):
        while step < target:
            for x, _ in loader:
                v1, v2 = aug.views(x, gen)
                z = F.normalize(head(enc(torch.cat([v1, v2]))), dim=1)
                n = x.shape[0]
                scores = (z @ z.t() / 0.2).fill_diagonal_(-1e9)
                positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(dev)
                loss = F.cross_entropy(scores, positive)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step >= target:
                    break
        acc = probe_accuracy(enc, train, test, aug, dev)
        print(f"step {step}: loss {loss.item():.3f}, probe accuracy {acc:.4f} "
              f"({time.time() - t0:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
