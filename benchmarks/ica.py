"""Infomax ICA against MNE-Python's infomax, picard and scikit-learn's FastICA.

Every method gets the same mixtures (samples x channels, float64 NumPy) and is scored by the
Amari distance of (its unmixing) @ (the true mixing), picard's normalisation (0 = perfect), and
by the wall time of the whole fit (whitening included). Rounds are interleaved (each round runs
every method once, in turn) and the table gives the median time and the Amari distance of the
last round. The comparison packages are not infomax dependencies; install them with

    pip install mne python-picard scikit-learn

Methods: ``infomax`` (``InfomaxICA``, extended, L-BFGS, float32; ``infomax-f64`` in float64;
``infomax-lee`` with Lee et al.'s super-Gaussian rule, MNE's objective), ``infomax-natgrad``
(its stochastic natural-gradient solver, not run by default), ``mne``
(``mne.preprocessing.infomax(extended=True)`` on data PCA-whitened the same way), ``picard``
(``picard(extended=True, ortho=False)``, the same infomax objective), ``fastica``
(``sklearn.decomposition.FastICA``, logcosh, unit-variance whitening).

    python -m benchmarks.ica --out docs/ica_benchmark.json
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python -m benchmarks.ica
    python -m benchmarks.ica --cases large --methods infomax,picard --rounds 1
    python -m benchmarks.ica --figure docs/img/ica_separation.png --cases ""
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Clock, cpu_name, write_results
from infomax.ica import InfomaxICA, amari_distance
from infomax.runtime import cpu_has_fast_bf16

# name -> (sources description, channels, samples, noise)
CASES = {
    "laplace-4": ("4 Laplace", 4, 5_000, 0.0),
    "uniform-8": ("8 uniform (sub-Gaussian)", 8, 20_000, 0.0),
    "mixed-16": ("8 Laplace + 8 uniform", 16, 50_000, 0.0),
    "square-t": ("square wave + Student-t (MNE's test)", 2, 1_000, 0.0),
    "noisy-10-of-20": ("10 Laplace in 20 noisy channels", 20, 50_000, 0.05),
    "large": ("32 Laplace", 32, 200_000, 0.0),
}
METHODS = ("infomax", "infomax-f64", "infomax-lee", "infomax-natgrad", "mne", "picard", "fastica")
DEFAULT_METHODS = ("infomax", "infomax-f64", "infomax-lee", "mne", "picard", "fastica")


def make_case(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """``(X samples x channels, mixing channels x sources, sources)`` of a case."""
    _, channels, n, noise = CASES[name]
    rng = np.random.default_rng(seed)
    if name == "square-t":
        t = np.linspace(0, 1000, n)
        s = np.c_[np.sign(np.sin(t)), rng.standard_t(5, size=n)]  # as in MNE's infomax test
        k = 2
    elif name.startswith("uniform"):
        k = channels
        s = rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, k))
    elif name.startswith("mixed"):
        k = channels
        s = np.c_[rng.laplace(size=(n, k // 2)), rng.uniform(-1, 1, size=(n, k - k // 2))]
    elif name.startswith("noisy"):
        k = channels // 2
        s = rng.laplace(size=(n, k))
    else:
        k = channels
        s = rng.laplace(size=(n, k))
    a = rng.normal(size=(channels, k))
    x = s @ a.T
    if noise:
        x += noise * x.std() * rng.normal(size=x.shape)
    return x, a, k


def _whiten(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA whitening for MNE's infomax (which expects whitened data): (Z, K) with Z = Xc K^T."""
    xc = x - x.mean(axis=0)
    lam, vec = np.linalg.eigh(xc.T @ xc / len(xc))
    lam, vec = lam[::-1][:k], vec[:, ::-1][:, :k]
    whitener = vec.T / np.sqrt(lam)[:, None]
    return xc @ whitener.T, whitener


def run_method(method: str, x: np.ndarray, k: int, device: str) -> tuple[np.ndarray, dict]:
    """Fit one method; return (unmixing sources x channels, details)."""
    if method.startswith("infomax"):
        dtype = "float64" if method == "infomax-f64" else "float32"
        solver = "natural_gradient" if method == "infomax-natgrad" else "lbfgs"
        sg = "lee" if method == "infomax-lee" else "logcosh"
        ica = InfomaxICA(n_components=k, solver=solver, dtype=dtype, device=device,
                         super_gaussian=sg)  # fmt: skip
        ica.fit(x)
        return ica.components_, {"n_iter": ica.n_iter_, "converged": ica.converged_}
    if method == "mne":
        from mne.preprocessing import infomax

        z, whitener = _whiten(x, k)
        w, n_iter = infomax(z, extended=True, rng=np.random.default_rng(0), verbose=False,
                            return_n_iter=True)  # fmt: skip
        return w @ whitener, {"n_iter": int(n_iter)}
    if method == "picard":
        from picard import picard

        kk, w, _, n_iter = picard(
            x.T, n_components=k, ortho=False, extended=True, random_state=0,
            return_n_iter=True,
        )  # fmt: skip
        return w @ kk, {"n_iter": int(n_iter)}
    if method == "fastica":
        from sklearn.decomposition import FastICA

        ica = FastICA(n_components=k, whiten="unit-variance", random_state=0, max_iter=1000)
        ica.fit(x)
        return ica.components_, {"n_iter": int(ica.n_iter_)}
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def benchmark(cases, methods, rounds: int, device: str) -> list[dict]:
    rows = []
    for case in cases:
        x, a, k = make_case(case)
        times: dict[str, list[float]] = {m: [] for m in methods}
        last: dict[str, dict] = {}
        for _ in range(rounds):
            for m in methods:
                start = time.perf_counter()
                w, details = run_method(m, x, k, device)
                times[m].append(time.perf_counter() - start)
                last[m] = {"amari": amari_distance(w, a), **details}
                print(f"{case:>15} {m:>15}: {times[m][-1]:8.2f} s  amari {last[m]['amari']:.2e}",
                      flush=True)  # fmt: skip
        for m in methods:
            rows.append({"case": case, "method": m, "seconds": statistics.median(times[m]),
                         "all_seconds": times[m], **last[m]})  # fmt: skip
    return rows


def markdown(rows: list[dict], settings: dict) -> str:
    lines = [
        "| case | sources | channels x samples | method | Amari distance | seconds | iterations |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        desc, channels, n, _ = CASES[r["case"]]
        lines.append(
            f"| {r['case']} | {desc} | {channels} x {n:,} | {r['method']} | {r['amari']:.1e} "
            f"| {r['seconds']:.2f} | {r.get('n_iter', '')} |"
        )
    env = settings["environment"]
    lines.append("")
    lines.append(
        f"{settings['cpu']}, torch {env['torch']}, {env['threads']} torch threads (OMP_NUM_THREADS="
        f"{settings['omp_threads']}), device "
        f"{settings['device']}; median of {settings['rounds']} interleaved round(s); load "
        f"average {env['load_average_start']:.1f} at the start, {env['load_average_end']:.1f} "
        "at the end."
    )
    return "\n".join(lines)


def separation_figure(path: str, device: str) -> None:
    """Four signals mixed into four channels and unmixed by InfomaxICA, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(1)
    t = np.linspace(0, 8, 4000)
    s = np.c_[np.sin(2 * np.pi * 1.3 * t), np.sign(np.sin(2 * np.pi * 0.7 * t)),
              2 * ((0.9 * t) % 1) - 1, rng.laplace(size=t.size) * 0.5]  # fmt: skip
    a = rng.normal(size=(4, 4))
    x = s @ a.T
    ica = InfomaxICA(random_state=0, device=device).fit(x)
    y = ica.transform(x)
    dist = amari_distance(ica.components_, a)
    # match each recovered source to the true source it correlates with most, for display
    corr = np.corrcoef(s.T, y.T)[:4, 4:]
    order = np.abs(corr).argmax(axis=1)
    fig, axes = plt.subplots(4, 3, figsize=(10, 5.5), sharex=True)
    titles = ["sources", "mixtures (the data)", f"InfomaxICA (Amari distance {dist:.1e})"]
    for i in range(4):
        sign = np.sign(corr[i, order[i]])
        for j, sig in enumerate((s[:, i], x[:, i], sign * y[:, order[i]])):
            axes[i, j].plot(t, sig, lw=0.6, color=("C0", "C7", "C3")[j])
            axes[i, j].set_yticks([])
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path} (Amari distance {dist:.2e})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases (default: all of {', '.join(CASES)})")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                        help=f"comma-separated methods among {', '.join(METHODS)}")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--device", default="auto", help="infomax's device (default auto)")
    parser.add_argument("--out", help="results .json (a .md beside it) or folder")
    parser.add_argument("--figure", help="also draw a separation figure to this PNG")
    args = parser.parse_args(argv)
    clock = Clock()
    if args.figure:
        separation_figure(args.figure, args.device)
    cases = [c for c in args.cases.split(",") if c]
    methods = [m for m in args.methods.split(",") if m]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    if not cases:
        return 0
    rows = benchmark(cases, methods, args.rounds, args.device)
    cpu = f"CPU {cpu_name()} (native bf16: {'yes' if cpu_has_fast_bf16() else 'no'})"
    if torch.cuda.is_available() and args.device != "cpu":
        cpu += f", GPU {torch.cuda.get_device_name()}"
    settings = {"cases": cases, "methods": methods, "rounds": args.rounds,
                "device": args.device, "cpu": cpu, "command": " ".join(sys.argv),
                "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset")}  # fmt: skip
    settings["environment"] = clock.environment()
    write_results(args.out, {"rows": rows, "settings": settings}, markdown(rows, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
