"""The correlated-Gaussian MI staircase of Poole et al. 2019 and Song & Ermon 2020.

x ~ N(0, I_d), y = rho x + sqrt(1 - rho^2) eps with rho = sqrt(1 - exp(-2 MI / d)), so that
I(X; Y) = -(d / 2) log(1 - rho^2) = MI exactly. One critic per (estimator, critic, cubic) is
trained with Adam on fresh batches while the true MI climbs a staircase (2, 4, 6, 8, 10 nats by
default, ``--steps-per-level`` steps each); the MI estimate of every training batch is recorded,
as in the reference notebooks. The cubic variant feeds y^3 instead of y (an invertible map of y:
same MI, a harder critic). KSG (``infomax.estimators.ksg.ksg_mi``, k = 3) is evaluated once per
level on ``--ksg-samples`` samples when that module is importable.

Reference settings (ermongroup/smile-mi-estimator, Poole et al.'s notebook): d = 20, batch 64,
Adam lr 5e-4, 4,000 steps per level, ReLU MLPs with 256 hidden units and an embedding of 32 for the
separable critic; their ``layers=2`` means three hidden layers (``--layers 3`` here, the default).
Reported estimate per estimator (see ``infomax.estimators.bounds``): InfoNCE; JSD -> NWJ(T + 1)
of the JS-trained critic; DV; MINE -> DV value (EMA-corrected gradient); NWJ; SMILE -> DV with the
partition clipped at tau (``--smile-clip``, 5 by default), trained through JS.

Usage (results and discussion in docs/mi_benchmark.md)::

    python -m benchmarks.mi_staircase --steps-per-level 4000 --critics separable --out runs/mi
    python -m benchmarks.mi_staircase --steps-per-level 500 --critics concat --cubic both

Writes ``<out>/mi_benchmark.csv`` (one row per estimator, critic, cubic, level),
``<out>/mi_trajectories.npz`` (every per-step estimate) and ``<out>/mi_benchmark.png`` after
each run, and prints the summary table at the end.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from infomax.estimators import bounds
from infomax.estimators.critics import ConcatCritic, SeparableCritic

ESTIMATORS = ("infonce", "jsd", "dv", "mine", "nwj", "smile")
CRITICS = ("separable", "concat")


def rho_for_mi(mi: float, dim: int) -> float:
    """Correlation per coordinate giving ``I(X; Y) = mi`` nats for d-dimensional pairs."""
    return math.sqrt(1.0 - math.exp(-2.0 * mi / dim))


def sample_pairs(
    n: int,
    dim: int,
    mi: float,
    *,
    cubic: bool = False,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of (x, y) with ``I(X; Y) = mi``; ``y -> y^3`` when ``cubic``."""
    rho = rho_for_mi(mi, dim)
    x = torch.randn(n, dim, generator=generator, device=device)
    eps = torch.randn(n, dim, generator=generator, device=device)
    y = rho * x + math.sqrt(1.0 - rho**2) * eps
    return x, (y**3 if cubic else y)


def make_critic(kind: str, dim: int, hidden: int, embed_dim: int, layers: int) -> torch.nn.Module:
    if kind == "separable":
        return SeparableCritic(dim, dim, hidden=hidden, embed_dim=embed_dim, layers=layers)
    if kind == "concat":
        return ConcatCritic(dim, dim, hidden=hidden, layers=layers)
    raise ValueError(f"unknown critic {kind!r}; choose from {', '.join(CRITICS)}")


@dataclass
class Run:
    estimator: str
    critic: str
    cubic: bool
    levels: list[float]
    steps_per_level: int
    estimates: np.ndarray  # (levels * steps,)
    seconds: list[float] = field(default_factory=list)  # per level


def train_staircase(
    estimator: str,
    critic: str,
    *,
    levels: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0),
    steps_per_level: int = 4000,
    batch: int = 64,
    dim: int = 20,
    lr: float = 5e-4,
    hidden: int = 256,
    embed_dim: int = 32,
    layers: int = 3,
    cubic: bool = False,
    smile_clip: float = 5.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Run:
    """Train one critic with ``estimator`` over the staircase; return every batch estimate."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {', '.join(ESTIMATORS)}")
    device = torch.device(device)
    torch.manual_seed(seed)
    model = make_critic(critic, dim, hidden, embed_dim, layers).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    mine = bounds.MINE(decay=0.99).to(device) if estimator == "mine" else None
    fn = bounds.get_bound(estimator)
    out = torch.empty(len(levels) * steps_per_level, device=device)
    seconds = []
    k = 0
    for mi in levels:
        t0 = time.perf_counter()
        for _ in range(steps_per_level):
            x, y = sample_pairs(batch, dim, mi, cubic=cubic, generator=gen, device=device)
            scores = model(x, y)
            if mine is not None:
                b = mine(scores)
            elif estimator == "smile":
                b = bounds.smile_bound(scores, clip=smile_clip)
            else:
                b = fn(scores)
            opt.zero_grad(set_to_none=True)
            b.loss.backward()
            opt.step()
            out[k] = b.mi.detach()
            k += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return Run(estimator, critic, cubic, list(levels), steps_per_level, out.cpu().numpy(), seconds)


def ksg_levels(
    levels: tuple[float, ...], n: int, dim: int, cubic: bool, seed: int
) -> tuple[list[float], list[float]] | None:
    """KSG (k = 3) estimate and seconds per level, or None when the module is missing."""
    try:
        from infomax.estimators.ksg import ksg_mi
    except ImportError:
        return None
    gen = torch.Generator().manual_seed(seed + 2)
    values, secs = [], []
    for mi in levels:
        x, y = sample_pairs(n, dim, mi, cubic=cubic, generator=gen)
        t0 = time.perf_counter()
        values.append(float(ksg_mi(x.double().numpy(), y.double().numpy(), k=3)))
        secs.append(time.perf_counter() - t0)
    return values, secs


def summarize(run: Run, window: int) -> list[dict]:
    """Mean, median, bias (of the mean) and std of the last ``window`` estimates of each level.

    Non-finite estimates are left out and counted in ``nonfinite``.
    """
    rows = []
    w = min(window, run.steps_per_level)
    for i, mi in enumerate(run.levels):
        seg = run.estimates[(i + 1) * run.steps_per_level - w : (i + 1) * run.steps_per_level]
        finite = seg[np.isfinite(seg)]
        mean = float(finite.mean()) if finite.size else math.nan
        rows.append(
            {
                "estimator": run.estimator,
                "critic": run.critic,
                "cubic": int(run.cubic),
                "true_mi": mi,
                "mean": mean,
                "median": float(np.median(finite)) if finite.size else math.nan,
                "bias": mean - mi,
                "std": float(finite.std()) if finite.size else math.nan,
                "nonfinite": int(seg.size - finite.size),
                "window": w,
                "steps": run.steps_per_level,
                "seconds": run.seconds[i],
            }
        )
    return rows


def _smooth(v: np.ndarray, alpha: float = 0.99) -> np.ndarray:
    """Exponential moving average (as the reference plots), skipping non-finite values."""
    out = np.empty_like(v, dtype=np.float64)
    acc = math.nan
    for i, a in enumerate(v):
        if np.isfinite(a):
            acc = a if math.isnan(acc) else alpha * acc + (1 - alpha) * a
        out[i] = acc
    return out


def plot(runs: list[Run], ksg: dict, batch: int, dim: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ests = [e for e in ESTIMATORS if any(r.estimator == e for r in runs)]
    rows = sorted({(r.critic, r.cubic) for r in runs}, key=lambda t: (CRITICS.index(t[0]), t[1]))
    fig, axes = plt.subplots(
        len(rows),
        len(ests),
        figsize=(3.0 * len(ests), 2.6 * len(rows)),
        squeeze=False,
        sharey=True,
    )
    for ri, (critic, cubic) in enumerate(rows):
        for ci, est in enumerate(ests):
            ax = axes[ri][ci]
            run = next(
                (r for r in runs if (r.estimator, r.critic, r.cubic) == (est, critic, cubic)), None
            )
            if run is None:
                ax.set_visible(False)
                continue
            steps = np.arange(run.estimates.size)
            ax.plot(steps, np.clip(run.estimates, -2, 14), color="C0", alpha=0.25, lw=0.5)
            ax.plot(steps, _smooth(run.estimates), color="C0", lw=1.2)
            truth = np.repeat(run.levels, run.steps_per_level)
            ax.plot(steps, truth, color="k", lw=1.0)
            ax.axhline(math.log(batch), color="C3", ls="--", lw=0.8)
            if cubic in ksg:
                ax.plot(
                    (np.arange(len(run.levels)) + 0.5) * run.steps_per_level,
                    ksg[cubic],
                    "s",
                    color="C2",
                    ms=4,
                    label="KSG",
                )
            ax.set_ylim(-1, 13)
            if ri == 0:
                ax.set_title(est)
            if ci == 0:
                ax.set_ylabel(f"{critic}{' cubic' if cubic else ''}\nMI (nats)")
            if ri == len(rows) - 1:
                ax.set_xlabel("step")
    fig.suptitle(
        f"Gaussian MI staircase (d = {dim}, batch {batch}): "
        "estimate (blue, EMA 0.99), true MI (black), log(batch) (red), KSG (green)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps-per-level", type=int, default=4000)
    p.add_argument("--levels", type=float, nargs="+", default=[2.0, 4.0, 6.0, 8.0, 10.0])
    p.add_argument("--critics", nargs="+", choices=CRITICS, default=["separable"])
    p.add_argument(
        "--estimators",
        nargs="*",
        choices=ESTIMATORS,
        default=list(ESTIMATORS),
        help="variational estimators to train (none: KSG only)",
    )
    p.add_argument(
        "--cubic", choices=("no", "yes", "both"), default="no", help="y as is, y^3, or both"
    )
    p.add_argument("--dim", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed-dim", type=int, default=32)
    p.add_argument("--layers", type=int, default=3, help="hidden layers per MLP")
    p.add_argument("--smile-clip", type=float, default=5.0)
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="steps at the end of each level summarised (default: a quarter)",
    )
    p.add_argument("--ksg-samples", type=int, default=5000, help="0 skips KSG")
    p.add_argument("--ksg-dim", type=int, default=None, help="dimension for KSG (default --dim)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (per job)")
    p.add_argument(
        "--jobs", type=int, default=1, help="runs trained in parallel processes (spawned)"
    )
    p.add_argument("--out", default="mi_benchmark_out")
    a = p.parse_args(argv)
    if a.steps_per_level < 1:
        p.error("--steps-per-level must be >= 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    window = a.window or max(1, a.steps_per_level // 4)
    levels = tuple(a.levels)
    cubics = {"no": [False], "yes": [True], "both": [False, True]}[a.cubic]
    print(f"# {' '.join(sys.argv)}", flush=True)
    print(
        f"# torch {torch.__version__}, device {a.device}, threads {torch.get_num_threads()}",
        flush=True,
    )

    ksg: dict[bool, list[float]] = {}
    rows: list[dict] = []
    if a.ksg_samples > 0:
        for cubic in cubics:
            res = ksg_levels(levels, a.ksg_samples, a.ksg_dim or a.dim, cubic, a.seed)
            if res is None:
                print("# KSG skipped: infomax.estimators.ksg is not available", flush=True)
                break
            ksg[cubic] = res[0]
            for mi, v, s in zip(levels, *res):
                rows.append(
                    {
                        "estimator": "ksg",
                        "critic": f"k=3,n={a.ksg_samples},d={a.ksg_dim or a.dim}",
                        "cubic": int(cubic),
                        "true_mi": mi,
                        "mean": v,
                        "median": v,
                        "bias": v - mi,
                        "std": math.nan,
                        "nonfinite": 0,
                        "window": 0,
                        "steps": 0,
                        "seconds": s,
                    }
                )
                print(f"ksg cubic={int(cubic)} MI {mi:g}: {v:.3f} ({s:.1f} s)", flush=True)

    configs = [
        dict(
            estimator=est,
            critic=critic,
            levels=levels,
            steps_per_level=a.steps_per_level,
            batch=a.batch,
            dim=a.dim,
            lr=a.lr,
            hidden=a.hidden,
            embed_dim=a.embed_dim,
            layers=a.layers,
            cubic=cubic,
            smile_clip=a.smile_clip,
            seed=a.seed,
            device=a.device,
        )
        for critic in a.critics
        for cubic in cubics
        for est in a.estimators
    ]
    runs: list[Run] = []
    t_start = time.perf_counter()

    def done(run: Run) -> None:
        runs.append(run)
        part = summarize(run, window)
        rows.extend(part)
        means = " ".join(f"{r['mean']:.2f}" for r in part)
        print(
            f"{run.estimator:8s} {run.critic:9s} cubic={int(run.cubic)} means [{means}] "
            f"{sum(run.seconds):.0f} s (elapsed {time.perf_counter() - t_start:.0f} s)",
            flush=True,
        )
        _write(a.out, rows, runs, ksg, a.batch, a.dim)

    if a.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        with ProcessPoolExecutor(max_workers=a.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_worker, c, a.threads or 1) for c in configs]
            for fut in as_completed(futures):
                done(fut.result())
    else:
        for c in configs:
            done(train_staircase(**c))
    order = {(c["estimator"], c["critic"], c["cubic"]): i for i, c in enumerate(configs)}
    runs.sort(key=lambda r: order[(r.estimator, r.critic, r.cubic)])
    rows.sort(
        key=lambda r: (
            r["estimator"] != "ksg",
            order.get((r["estimator"], r["critic"], bool(r["cubic"])), -1),
            r["true_mi"],
        )
    )
    _write(a.out, rows, runs, ksg, a.batch, a.dim)

    print()
    print(_table(rows, math.log(a.batch), window))
    return 0


def _worker(config: dict, threads: int) -> Run:
    torch.set_num_threads(threads)
    return train_staircase(**config)


def _write(out: str, rows: list[dict], runs: list[Run], ksg: dict, batch: int, dim: int) -> None:
    with open(os.path.join(out, "mi_benchmark.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    np.savez_compressed(
        os.path.join(out, "mi_trajectories.npz"),
        **{
            f"{r.estimator}_{r.critic}_{'cubic' if r.cubic else 'gauss'}": r.estimates for r in runs
        },
    )
    if runs:
        plot(runs, ksg, batch, dim, os.path.join(out, "mi_benchmark.png"))


def _table(rows: list[dict], log_batch: float, window: int) -> str:
    lines = [
        f"Mean, median, bias (mean - true) and std of the batch estimates over the last {window} "
        "steps of each level "
        f"(log batch = {log_batch:.2f}); KSG: one estimate per level",
        "",
        "| estimator | critic | cubic | true MI | mean | median | bias | std | s/level |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        std = "" if math.isnan(r["std"]) else f"{r['std']:.2f}"
        bad = f" ({r['nonfinite']} non-finite)" if r["nonfinite"] else ""
        lines.append(
            f"| {r['estimator']} | {r['critic']} | {r['cubic']} | {r['true_mi']:g} | "
            f"{r['mean']:.2f}{bad} | {r['median']:.2f} | {r['bias']:+.2f} | {std} | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
