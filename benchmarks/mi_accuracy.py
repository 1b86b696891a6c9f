"""Accuracy of every ``infomax`` MI estimator on distributions with known mutual information.

Every case has an analytic I(X; Y). Beyond correlated Gaussians, the cases use the fact that an
invertible transform of X alone and of Y alone leaves I(X; Y) unchanged (cubes, exp, sinh, the
normal CDF, a monotone tanh warp), multivariate Gaussians with I = 0.5 log(det Sx det Sy / det S),
independent pairs (I = 0), X ~ U(0, 1) with Y = X + U(0, a) (I = a/2 - log a for a <= 1, from
h(Y) = a/2 for the trapezoidal density of Y and h(Y | X) = log a), and the bivariate Student-t
(I from the entropies of multivariate t laws; checked against a 400,000-sample Monte Carlo of
log p(x, y) - log p(x) - log p(y) with scipy, agreement within 0.001 nats).

Usage (results and discussion in docs/mi_accuracy.md)::

    python -m benchmarks.mi_accuracy                       # all estimators, low-dim cases
    python -m benchmarks.mi_accuracy --estimators ksg ksg-standardize --seeds 0 1 2 3 4
    python -m benchmarks.mi_accuracy --highdim              # the 10+10 and 25+25 cases too

Estimator names are those of ``infomax mi --estimator`` plus KSG variants:
``ksg`` (the default settings), ``ksg-standardize``, ``ksg-none`` (preprocessing), ``ksg2``
(algorithm 2), ``ksg-k10``. Progress goes to stderr, the table to stdout; ``--out FILE`` also
writes every row as JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln, ndtr

Sampler = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass
class Case:
    name: str
    true_mi: float
    sample: Sampler
    highdim: bool = False
    mid: bool = False  # 3 to 10 coordinates in all (the issue-12 cases up to 5 + 5)


def gauss_mi(rho: float, d: int = 1) -> float:
    """I(X; Y) for d independent coordinate pairs of correlation rho."""
    return -0.5 * d * math.log(1.0 - rho**2)


def _corr_gauss(rho: float, d: int = 1) -> Sampler:
    def sample(n, rng):
        x = rng.standard_normal((n, d))
        y = rho * x + math.sqrt(1.0 - rho**2) * rng.standard_normal((n, d))
        return x, y

    return sample


def _mapped(base: Sampler, fx: Callable, fy: Callable) -> Sampler:
    def sample(n, rng):
        x, y = base(n, rng)
        return fx(x), fy(y)

    return sample


def _random_cov(dx: int, dy: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dx + dy, dx + dy))
    cov = a @ a.T / (dx + dy) + 0.3 * np.eye(dx + dy)
    _, ld = np.linalg.slogdet(cov)
    _, ldx = np.linalg.slogdet(cov[:dx, :dx])
    _, ldy = np.linalg.slogdet(cov[dx:, dx:])
    return cov, 0.5 * (ldx + ldy - ld)


def _mv_gauss(cov: np.ndarray, dx: int) -> Sampler:
    chol = np.linalg.cholesky(cov)

    def sample(n, rng):
        z = rng.standard_normal((n, cov.shape[0])) @ chol.T
        return z[:, :dx], z[:, dx:]

    return sample


def uniform_noise_mi(a: float) -> float:
    """I(X; X + U(0, a)) for X ~ U(0, 1) and 0 < a <= 1: h(Y) - h(Y | X) = a / 2 - log a."""
    return a / 2.0 - math.log(a)


def _uniform_noise(a: float) -> Sampler:
    def sample(n, rng):
        x = rng.uniform(0.0, 1.0, (n, 1))
        return x, x + rng.uniform(0.0, a, (n, 1))

    return sample


def student_t_mi(nu: float, rho: float, d: int = 1) -> float:
    """I(X; Y) of a Student-t with nu degrees of freedom, X and Y of d coordinates each, and
    correlation rho between coordinate i of X and coordinate i of Y (identity otherwise).

    From h(t_p(nu, S)) = 0.5 log det S + log[(nu pi)^(p/2) G(nu/2) / G((nu+p)/2)]
    + (nu+p)/2 [psi((nu+p)/2) - psi(nu/2)] and I = h(X) + h(Y) - h(X, Y) (the marginals are
    t laws of d coordinates with the same nu).
    """
    p1 = p2 = d
    p = p1 + p2
    return (
        -0.5 * d * math.log(1.0 - rho**2)
        + gammaln(nu / 2)
        + gammaln((nu + p) / 2)
        - gammaln((nu + p1) / 2)
        - gammaln((nu + p2) / 2)
        + (nu + p1) / 2 * digamma((nu + p1) / 2)
        + (nu + p2) / 2 * digamma((nu + p2) / 2)
        - (nu + p) / 2 * digamma((nu + p) / 2)
        - nu / 2 * digamma(nu / 2)
    )


def _student_t(nu: float, rho: float, d: int = 1) -> Sampler:
    def sample(n, rng):
        x, y = _corr_gauss(rho, d)(n, rng)
        w = np.sqrt(rng.chisquare(nu, (n, 1)) / nu)
        return x / w, y / w

    return sample


def _independent(n, rng):
    return rng.exponential(1.0, (n, 1)), rng.standard_normal((n, 2))


def _independent_heavy(n, rng):
    return rng.standard_cauchy((n, 1)), rng.lognormal(0.0, 2.0, (n, 1))


def _sparse(dim: int, rhos: tuple[float, ...]) -> Sampler:
    """X, Y of ``dim`` coordinates each; coordinate i of Y depends on coordinate i of X with
    correlation rhos[i] for the first len(rhos) coordinates, the rest is independent noise."""
    r = np.zeros(dim)
    r[: len(rhos)] = rhos

    def sample(n, rng):
        x = rng.standard_normal((n, dim))
        return x, r * x + np.sqrt(1.0 - r**2) * rng.standard_normal((n, dim))

    return sample


def sparse_mi(rhos: tuple[float, ...]) -> float:
    return sum(gauss_mi(r) for r in rhos)


def spiral(x: np.ndarray, turns: float = 1.0) -> np.ndarray:
    """Rotate each point of the first two coordinates by ``2 pi turns |x|``: a diffeomorphism
    of the plane (the radius is kept, the angle shifted by a function of the radius), so the MI
    with anything is unchanged; no per-coordinate transform undoes it."""
    r = np.hypot(x[:, 0], x[:, 1])
    t = 2 * math.pi * turns * r
    c, s = np.cos(t), np.sin(t)
    out = x.copy()
    out[:, 0] = c * x[:, 0] - s * x[:, 1]
    out[:, 1] = s * x[:, 0] + c * x[:, 1]
    return out


def half_cube(x: np.ndarray) -> np.ndarray:
    """``x |x|^(1/2)``, the half-cube map of the bmi benchmark (increasing, per coordinate)."""
    return x * np.sqrt(np.abs(x))


def _gauss_plus_nonlinear(n, rng):
    """X ~ N(0, I2) spiral-warped; Y = X + N(0, 0.5^2 I2) also through a shear (invertible)."""
    x = rng.standard_normal((n, 2))
    y = x + 0.5 * rng.standard_normal((n, 2))
    return spiral(x, 0.5), np.c_[y[:, 0], y[:, 1] + 0.5 * y[:, 0] ** 3]


def make_cases() -> list[Case]:
    cov22, mi22 = _random_cov(2, 2, seed=11)
    cov33, mi33 = _random_cov(3, 3, seed=12)
    cov55, mi55 = _random_cov(5, 5, seed=13)
    cov2525, mi2525 = _random_cov(25, 25, seed=14)
    rho_hd = math.sqrt(1.0 - math.exp(-2.0 * 2.0 / 10))  # 2 nats over 10 coordinate pairs
    rho_25 = math.sqrt(1.0 - math.exp(-2.0 * 2.0 / 25))  # 2 nats over 25 coordinate pairs
    cube = np.power
    return [
        Case("gauss rho=0.5", gauss_mi(0.5), _corr_gauss(0.5)),
        Case("gauss rho=0.9", gauss_mi(0.9), _corr_gauss(0.9)),
        Case("gauss rho=0.99", gauss_mi(0.99), _corr_gauss(0.99)),
        Case(
            "gauss rho=0.9, y->y^3",
            gauss_mi(0.9),
            _mapped(_corr_gauss(0.9), lambda x: x, lambda y: cube(y, 3)),
        ),
        Case(
            "gauss rho=0.75, exp(x), sinh(2y)",
            gauss_mi(0.75),
            _mapped(_corr_gauss(0.75), np.exp, lambda y: np.sinh(2.0 * y)),
        ),
        Case(
            "gauss rho=0.8, Phi(x), y+0.8tanh(3y)",
            gauss_mi(0.8),
            _mapped(_corr_gauss(0.8), ndtr, lambda y: y + 0.8 * np.tanh(3.0 * y)),
        ),
        Case("gauss 2+2 random cov", mi22, _mv_gauss(cov22, 2)),
        Case(
            "gauss 3+3 random cov, cubed",
            mi33,
            _mapped(_mv_gauss(cov33, 3), lambda x: cube(x, 3), lambda y: cube(y, 3)),
        ),
        Case("independent exp / N(0,I2)", 0.0, _independent),
        Case("independent cauchy / lognormal", 0.0, _independent_heavy),
        Case("uniform, y=x+U(0,0.5)", uniform_noise_mi(0.5), _uniform_noise(0.5)),
        Case("uniform, y=x+U(0,0.2)", uniform_noise_mi(0.2), _uniform_noise(0.2)),
        Case("student-t nu=1 rho=0", student_t_mi(1, 0.0), _student_t(1, 0.0)),
        Case("student-t nu=1 rho=0.9", student_t_mi(1, 0.9), _student_t(1, 0.9)),
        Case("student-t nu=3 rho=0.5", student_t_mi(3, 0.5), _student_t(3, 0.5)),
        # --- issue 12: mid dimension, sparse interactions, warps, heavy tails (up to 5 + 5)
        Case("sparse 5+5 (2 of 5 pairs)", sparse_mi((0.9, 0.6)), _sparse(5, (0.9, 0.6)), mid=True),
        Case(
            "sparse 5+5, half-cube",
            sparse_mi((0.9, 0.6)),
            _mapped(_sparse(5, (0.9, 0.6)), half_cube, half_cube),
            mid=True,
        ),
        Case("gauss 5+5 random cov", mi55, _mv_gauss(cov55, 5), mid=True),
        Case("gauss 5+5 rho=0.5 each", gauss_mi(0.5, 5), _corr_gauss(0.5, 5), mid=True),
        Case(
            "spiral 2+2 (x spiral, y sheared)",
            2 * gauss_mi(1 / math.sqrt(1.25)),
            _gauss_plus_nonlinear,
            mid=True,
        ),
        Case(
            "spiral 2+2, 1.5 turns",
            2 * gauss_mi(1 / math.sqrt(1.25)),
            _mapped(_corr_gauss(1 / math.sqrt(1.25), 2), lambda x: spiral(x, 1.5), lambda y: y),
            mid=True,
        ),
        Case(
            "student-t 2+2 nu=2 rho=0.8", student_t_mi(2, 0.8, 2), _student_t(2, 0.8, 2), mid=True
        ),
        Case(
            "student-t 5+5 nu=3 rho=0.6, asinh",
            student_t_mi(3, 0.6, 5),
            _mapped(_student_t(3, 0.6, 5), np.arcsinh, lambda y: y),
            mid=True,
        ),
        Case(
            "independent 5+5 cauchy",
            0.0,
            lambda n, rng: (rng.standard_cauchy((n, 5)), rng.standard_cauchy((n, 5))),
            mid=True,
        ),
        # --- high dimension
        Case("gauss 10+10 rho_i (2 nats)", 2.0, _corr_gauss(rho_hd, 10), highdim=True),
        Case(
            "sparse 25+25 (3 of 25 pairs)",
            sparse_mi((0.9, 0.8, 0.6)),
            _sparse(25, (0.9, 0.8, 0.6)),
            highdim=True,
        ),
        Case("gauss 25+25 random cov", mi2525, _mv_gauss(cov2525, 25), highdim=True),
        Case("gauss 25+25 rho_i (2 nats)", 2.0, _corr_gauss(rho_25, 25), highdim=True),
    ]


# KSG variants: name -> keyword arguments of estimate_mi
KSG_VARIANTS: dict[str, dict] = {
    "ksg": {},
    "ksg-standardize": {"ksg_transform": "standardize"},
    "ksg-none": {"ksg_transform": "none"},
    "ksg2": {"ksg_algorithm": 2},
    "ksg-k10": {"k": 10},
}
NEURAL = ["infonce", "jsd", "dv", "mine", "nwj", "smile"]


def run_one(name: str, x: np.ndarray, y: np.ndarray, seed: int, options: dict):
    """One estimate; ``NAME@standardize`` runs a neural bound on standardised inputs."""
    from infomax.estimators.fit import estimate_mi

    if name in KSG_VARIANTS:
        return estimate_mi(x, y, "ksg", seed=seed, device="cpu", **KSG_VARIANTS[name])
    opts = dict(options)
    if "@" in name:
        name, opts["transform"] = name.split("@", 1)
    if name == "ksg":  # KSG settings only; the neural options do not apply
        opts = {}
    return estimate_mi(x, y, name, seed=seed, progress=False, device="cpu", **opts)


def _run_case(task: tuple) -> list[dict]:
    """All estimators on one (case, seed): a unit of work for the process pool."""
    case_name, seed, estimators, n, options, threads = task
    if threads:
        import torch

        torch.set_num_threads(threads)
    case = next(c for c in make_cases() if c.name == case_name)
    x, y = case.sample(n, np.random.default_rng(1000 * seed + 17))
    rows = []
    for est in estimators:
        t0 = time.perf_counter()
        res = run_one(est, x, y, seed, options)
        sec = time.perf_counter() - t0
        lo, hi = res.interval if res.interval else (math.nan, math.nan)
        rows.append(
            {
                "case": case.name,
                "seed": seed,
                "estimator": est,
                "chosen": res.estimator,
                "true_mi": case.true_mi,
                "mi": res.mi,
                "stderr": res.stderr,
                "interval": [lo, hi],
                "covered": bool(lo <= case.true_mi <= hi),
                "abs_error": abs(res.mi - case.true_mi),
                "seconds": sec,
                "group": _group(case),
                "highdim": case.highdim,
                "warnings": res.warnings,
            }
        )
        print(
            f"{case.name:38s} seed {seed} {est:16s} true {case.true_mi:6.3f} "
            f"est {res.mi:7.3f} +- {res.stderr:5.3f} ({sec:5.1f}s)",
            file=sys.stderr,
            flush=True,
        )
    return rows


def _group(case: Case) -> str:
    return "high" if case.highdim else ("mid" if case.mid else "low")


def _parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimators", nargs="+", default=["auto", "ksg", *NEURAL])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--n", type=int, default=5000, help="samples per case (default 5000)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="estimate_mi options for the neural estimators, e.g. --set steps=1000 lr=1e-3",
    )
    parser.add_argument("--highdim", action="store_true", help="add the 10+10 and 25+25 cases")
    parser.add_argument("--only-highdim", action="store_true")
    parser.add_argument("--only-mid", action="store_true", help="only the 3 to 10 dim cases")
    parser.add_argument("--only-low", action="store_true", help="only the 1+1 to 3+3 cases")
    parser.add_argument("--cases", nargs="+", default=None, help="substrings of case names")
    parser.add_argument("--out", default=None, help="write all rows as JSON to this file")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per worker (default: torch's)"
    )
    parser.add_argument(
        "--calibrate",
        type=int,
        default=0,
        metavar="REPS",
        help="instead of the accuracy table: for each case and estimator, draw REPS independent "
        "samples and compare the spread of the estimates with the reported stderr",
    )
    parser.add_argument(
        "--first-seed", type=int, default=0,
        help="with --calibrate: seeds first_seed .. first_seed + REPS - 1 (to split a calibration "
        "over processes; every run is also printed as a JSON line on stderr)",
    )  # fmt: skip
    parser.add_argument(
        "--merge-calibration", nargs="+", default=None, metavar="JSONL",
        help="print one calibration table from the stderr files of --calibrate runs (split over "
        "processes with --first-seed) and exit",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.merge_calibration:
        return merge_calibration(args.merge_calibration)
    options = _parse_options(args.set)

    cases = make_cases()
    if args.only_highdim:
        cases = [c for c in cases if c.highdim]
    elif args.only_mid:
        cases = [c for c in cases if c.mid]
    elif args.only_low:
        cases = [c for c in cases if not (c.mid or c.highdim)]
    elif not args.highdim:
        cases = [c for c in cases if not c.highdim]
    if args.cases:
        cases = [c for c in cases if any(s in c.name for s in args.cases)]

    if args.calibrate:
        return calibrate(cases, args.estimators, args.calibrate, args.n, options, args.first_seed)

    tasks = [
        (case.name, seed, args.estimators, args.n, options, args.threads)
        for case in cases
        for seed in args.seeds
    ]
    t0 = time.perf_counter()
    if args.jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.jobs) as pool:
            results = pool.map(_run_case, tasks, chunksize=1)
    else:
        results = [_run_case(t) for t in tasks]
    rows = [r for rs in results for r in rs]
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"argv": sys.argv[1:], "options": options, "rows": rows}, fh, indent=1)
    print(f"# {' '.join(sys.argv)}  ({time.perf_counter() - t0:.0f} s wall)")
    print_tables(rows, args.estimators)
    return 0


def calibrate(
    cases: list[Case], estimators: list[str], reps: int, n: int, options, first_seed: int = 0
) -> int:
    """Calibration of the reported interval over ``reps`` independent samples per case.

    Coverage is measured against the estimator's own mean over the samples (what the interval
    claims to cover: sampling and training variability), the bias against the truth separately.
    Every run is also printed on stderr as a JSON line; ``--merge-calibration`` turns such lines
    from several processes into one table.
    """
    print(f"\ninterval calibration: {reps} independent samples (seeds) of n = {n} per case\n")
    t_all = time.perf_counter()
    records = []
    for case in cases:
        for est in estimators:
            for rep in range(first_seed, first_seed + reps):
                x, y = case.sample(n, np.random.default_rng(10_000 + rep))
                t0 = time.perf_counter()
                r = run_one(est, x, y, rep, options)
                lo, hi = r.interval if r.interval else (math.nan, math.nan)
                records.append({"case": case.name, "estimator": est, "seed": rep, "mi": r.mi,
                                "stderr": r.stderr, "interval": [lo, hi],
                                "true_mi": case.true_mi, "seconds": time.perf_counter() - t0})
                print(json.dumps(records[-1]), file=sys.stderr, flush=True)  # fmt: skip
    print_calibration(records)
    print(f"\n({time.perf_counter() - t_all:.0f} s in all)")
    return 0


def print_calibration(records: list[dict]) -> None:
    """The calibration table of run records (``case``, ``estimator``, ``mi``, ``stderr``,
    ``interval``, ``true_mi``, ``seconds``), one row per case and estimator."""
    print(
        "| case | estimator | runs | true MI | mean | bias | sd of estimates | median stderr | "
        "sd / stderr | 95% interval covers the mean | covers the truth | s per run |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups = dict.fromkeys((r["case"], r["estimator"]) for r in records)
    for case, est in groups:
        res = [r for r in records if r["case"] == case and r["estimator"] == est]
        mis = [r["mi"] for r in res]
        mean, sd = statistics.fmean(mis), statistics.stdev(mis)
        se = statistics.median(r["stderr"] for r in res)
        ivs = [r["interval"] for r in res if math.isfinite(r["interval"][0])]
        cov_mean = sum(lo <= mean <= hi for lo, hi in ivs) / max(len(ivs), 1)
        true = res[0]["true_mi"]
        cov_true = sum(lo <= true <= hi for lo, hi in ivs) / max(len(ivs), 1)
        secs = statistics.median(r["seconds"] for r in res)
        print(f"| {case} | {est} | {len(res)} | {true:.3f} | {mean:.3f} | {mean - true:+.3f} | "
              f"{sd:.4f} | {se:.4f} | {sd / se:.2f} | {cov_mean:.2f} | {cov_true:.2f} | "
              f"{secs:.1f} |", flush=True)  # fmt: skip


def merge_calibration(paths: list[str]) -> int:
    """One calibration table from the JSON lines that ``--calibrate`` runs wrote on stderr."""
    records = []
    for path in paths:
        with open(path) as fh:
            records += [json.loads(line) for line in fh if line.startswith("{")]
    if not records:
        raise SystemExit(f"no calibration records (JSON lines) in {', '.join(paths)}")
    print_calibration(records)
    return 0


def print_tables(rows: list[dict], estimators: list[str]) -> None:
    """Markdown tables: mean estimate per case and estimator, then error and coverage summaries."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    print(f"\nestimate (nats), mean over seeds {seeds}; n = samples per case\n")
    print("| case | true MI | " + " | ".join(estimators) + " |")
    print("|---|---:|" + "---:|" * len(estimators))
    for case in cases:
        cr = [r for r in rows if r["case"] == case]
        cells = []
        for est in estimators:
            er = [r for r in cr if r["estimator"] == est]
            cell = f"{statistics.fmean(r['mi'] for r in er):.3f}" if er else ""
            if est == "auto" and er:
                cell += " " + "/".join(sorted({r["chosen"] for r in er}))
            if er and any(r["warnings"] for r in er):
                cell += " (w)"
            cells.append(cell)
        print(f"| {case} | {cr[0]['true_mi']:.3f} | " + " | ".join(cells) + " |")
    print("\n(w): at least one run came with warnings; auto: the estimator(s) it reported")
    groups = (("low", "low-dimensional (1+1 to 3+3)"), ("mid", "mid-dimensional (up to 5+5)"),
              ("high", "high-dimensional (10+10, 25+25)"))  # fmt: skip
    for group, label in groups:
        grp = [r for r in rows if r.get("group", "high" if r["highdim"] else "low") == group]
        if not grp:
            continue
        print(f"\n{label} cases: abs error over cases x seeds, interval coverage, seconds\n")
        print("| estimator | median abs error | mean abs error | max abs error | worst case | "
              "95% interval covers truth | median s |")  # fmt: skip
        print("|---|---:|---:|---:|---|---:|---:|")
        for est in estimators:
            er = [r for r in grp if r["estimator"] == est]
            if not er:
                continue
            errs = [r["abs_error"] for r in er]
            worst = max(er, key=lambda r: r["abs_error"])["case"]
            cover = statistics.fmean(1.0 if r.get("covered") else 0.0 for r in er)
            secs = [r["seconds"] for r in er]
            print(
                f"| {est} | {statistics.median(errs):.3f} | {statistics.fmean(errs):.3f} | "
                f"{max(errs):.3f} | {worst} | {cover:.2f} | {statistics.median(secs):.1f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
