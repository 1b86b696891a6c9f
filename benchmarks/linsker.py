"""Linsker's noisy linear layer: what maximising I(x; y) does as the output noise grows.

Inputs: a stationary Gaussian process on a ring (unit variance, correlation exp(-d / 4) at
distance d: an AR(1) process, its power spectrum largest at low spatial frequency), so every
eigen-direction of the input covariance is a Fourier mode and its eigenvalue its variance (its
signal-to-noise ratio at a given output noise). Outputs: y = W x + noise of variance sigma^2,
every row of W with unit norm (Linsker's constraint), W found by L-BFGS on the closed-form
I(x; y) of ``infomax.linsker``.

1. Fully connected, 4 outputs from 32 inputs: the mean |correlation| between the outputs'
   signals, the number of input directions represented (participation ratio of W's singular
   values: 4 = four distinct directions, 1 = all outputs the same direction) and the filter
   power on each eigen-direction, against sigma^2.
2. Linsker's local layer, 32 outputs (one every 2 sites of a 64-site ring), each seeing 9
   inputs: the correlation of neighbouring outputs and the learned filters against sigma^2.
3. The closed-form check: under a total power bound the optimum found by gradient ascent
   against water-filling over the principal components.

    python -m benchmarks.linsker --restarts 4 --out docs/linsker_benchmark.json \
        --figure docs/img/linsker.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Clock, write_results
from infomax.linsker import (
    local_mask,
    maximize_linear_mi,
    stationary_covariance,
    total_power_optimum,
)

NOISES = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]


def _signal_correlation(w: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    s = w @ cov @ w.T
    d = s.diagonal().sqrt()
    return s / d[:, None] / d[None, :]


def _best(cov, m, restarts, **kw):
    runs = [maximize_linear_mi(cov, m, seed=seed, **kw) for seed in range(restarts)]
    return max(runs, key=lambda r: r.mi)


def fully_connected(noises, restarts: int) -> dict:
    cov = stationary_covariance(32, 4.0)
    lam, vec = torch.linalg.eigh(cov)
    lam, vec = lam.flip(0), vec.flip(1)
    rows = []
    for s2 in noises:
        r = _best(cov, 4, restarts, constraint="unit_norm", output_noise=s2)
        sv = torch.linalg.svdvals(r.weights).square()
        corr = _signal_correlation(r.weights, cov).abs()
        power = (r.weights @ vec).square().sum(0)  # filter power on each eigen-direction
        rows.append({
            "noise": s2, "mi": r.mi, "converged": r.converged,
            "directions": float(sv.sum() ** 2 / sv.square().sum()),
            "mean_abs_corr": float((corr.sum() - corr.diagonal().sum()) / 12),
            "power_by_eigen": power[:12].tolist(),
        })  # fmt: skip
        print(f"fully connected  sigma^2={s2:<6g} I={r.mi:7.3f}  directions "
              f"{rows[-1]['directions']:.2f}  mean|corr| {rows[-1]['mean_abs_corr']:.3f}",
              flush=True)  # fmt: skip
    return {"rows": rows, "eigenvalues": lam[:12].tolist()}


def local_layer(noises, restarts: int) -> dict:
    n, m, radius = 64, 32, 4
    cov = stationary_covariance(n, 4.0)
    mask = local_mask(n, m, radius)
    rows = []
    for s2 in noises:
        r = _best(cov, m, restarts, constraint="unit_norm", output_noise=s2, mask=mask)
        corr = _signal_correlation(r.weights, cov)
        neighbour = torch.stack([corr[i, (i + 1) % m] for i in range(m)])
        centre = int(round(m // 2 * n / m))
        filt = r.weights[m // 2, centre - radius : centre + radius + 1]
        rows.append({"noise": s2, "mi": r.mi, "converged": r.converged,
                     "neighbour_corr": float(neighbour.abs().mean()),
                     "filter": filt.tolist()})  # fmt: skip
        print(f"local layer      sigma^2={s2:<6g} I={r.mi:7.3f}  neighbour |corr| "
              f"{rows[-1]['neighbour_corr']:.3f}", flush=True)  # fmt: skip
    spacing_corr = float(cov[0, n // m])
    return {"rows": rows, "input_corr_at_spacing": spacing_corr, "radius": radius}


def water_filling_check(noises) -> list[dict]:
    cov = stationary_covariance(16, 3.0)
    rows = []
    for s2 in noises:
        closed, _ = total_power_optimum(cov, 4, power=4.0, output_noise=s2)
        found = _best(cov, 4, 2, constraint="total_power", power=4.0, output_noise=s2)
        rows.append({"noise": s2, "closed_form": closed, "gradient": found.mi})
        print(f"total power      sigma^2={s2:<6g} water-filling {closed:.6f}  L-BFGS "
              f"{found.mi:.6f}", flush=True)  # fmt: skip
    return rows


def figure(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fc, loc = res["fully_connected"], res["local"]
    noise = [r["noise"] for r in fc["rows"]]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    ax = axes[0, 0]
    ax.semilogx(noise, [r["mean_abs_corr"] for r in fc["rows"]], "o-", color="C3",
                label="mean |corr| of output signals")  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("output noise variance $\\sigma^2$ (input variance 1)")
    ax.set_ylabel("|correlation|")
    ax2 = ax.twinx()
    ax2.semilogx(noise, [r["directions"] for r in fc["rows"]], "s--", color="C0",
                 label="input directions represented")  # fmt: skip
    ax2.set_ylim(0.8, 4.2)
    ax2.set_ylabel("directions represented (of 4 outputs)", color="C0")
    ax.set_title("a. 4 outputs, fully connected: redundancy rises with noise", fontsize=10)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center left", fontsize=8)
    ax = axes[0, 1]
    power = np.array([r["power_by_eigen"] for r in fc["rows"]]).T
    ax.imshow(power, aspect="auto", origin="lower", cmap="viridis",
              extent=(-0.5, len(noise) - 0.5, 0.5, power.shape[0] + 0.5))  # fmt: skip
    ax.set_xticks(range(len(noise)), [f"{s:g}" for s in noise], rotation=45, fontsize=7)
    ax.set_xlabel("$\\sigma^2$")
    ax.set_ylabel("input eigen-direction (1 = largest variance)")
    ax.set_title("b. filter power per input eigen-direction (Fourier mode)", fontsize=10)
    ax = axes[1, 0]
    lnoise = [r["noise"] for r in loc["rows"]]
    ax.semilogx(lnoise, [r["neighbour_corr"] for r in loc["rows"]], "o-", color="C3",
                label="neighbouring outputs")  # fmt: skip
    ax.axhline(loc["input_corr_at_spacing"], color="gray", ls=":",
               label="inputs at the same spacing")  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("$\\sigma^2$")
    ax.set_ylabel("|correlation| of output signals")
    ax.set_title("c. local layer (32 outputs, 9 inputs each): neighbour correlation", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    offsets = np.arange(-loc["radius"], loc["radius"] + 1)
    picks = [0, len(loc["rows"]) // 2, len(loc["rows"]) - 1]
    for i, c in zip(picks, ("C2", "C1", "C4")):
        r = loc["rows"][i]
        f = np.array(r["filter"])
        f = f * np.sign(f[np.abs(f).argmax()])
        ax.plot(offsets, f, "o-", color=c, label=f"$\\sigma^2$ = {r['noise']:g}")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("input site relative to the output")
    ax.set_ylabel("weight")
    ax.set_title("d. a learned local filter at low, middle and high noise", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def markdown(res: dict) -> str:
    lines = ["| sigma^2 | I (nats) | directions represented | mean abs corr (fully connected) |"
             " I local (nats) | neighbour abs corr (local) |", "|---|---|---|---|---|---|"]
    for a, b in zip(res["fully_connected"]["rows"], res["local"]["rows"]):
        lines.append(f"| {a['noise']:g} | {a['mi']:.3f} | {a['directions']:.2f} | "
                     f"{a['mean_abs_corr']:.3f} | {b['mi']:.3f} | {b['neighbour_corr']:.3f} |")
    lines += ["", "| sigma^2 | water-filling optimum (nats) | L-BFGS under total power |",
              "|---|---|---|"]
    for r in res["water_filling"]:
        lines.append(f"| {r['noise']:g} | {r['closed_form']:.6f} | {r['gradient']:.6f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=4, help="random starts per point")
    parser.add_argument("--out", help="results .json (a .md beside it) or folder")
    parser.add_argument("--figure", help="draw the figure to this PNG")
    args = parser.parse_args(argv)
    clock = Clock()
    torch.set_num_threads(1)  # matrices of at most 64 x 64: threads only add synchronisation
    res = {
        "fully_connected": fully_connected(NOISES, args.restarts),
        "local": local_layer(NOISES, args.restarts),
        "water_filling": water_filling_check([0.01, 0.1, 1.0, 10.0]),
    }
    res["settings"] = {"restarts": args.restarts, "command": " ".join(sys.argv),
                       **clock.environment()}  # fmt: skip
    if args.figure:
        figure(res, args.figure)
    write_results(args.out, res, markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
