"""Separate a recording into independent components with infomax ICA.

X holds one sample per row and one channel per column (.npy, .npz[:KEY] or numeric .csv, as
for 'infomax mi'). The data are centred and PCA-whitened (onto the --n-components leading
principal components, all channels by default), then unmixed by extended infomax (Bell &
Sejnowski 1995; Lee, Girolami & Sejnowski 1999), solved on the whole sample by preconditioned
L-BFGS (Ablin, Cardoso & Gramfort 2018). The sources written to -o have unit variance and are
ordered by the variance they explain in X; --unmixing writes W (components x channels) with
sources = (X - mean) @ W.T, mean being the column mean of X; --mixing writes A (channels x
components) with X ~ sources @ A.T + mean. Outputs are .npy or .csv, chosen by extension; an
existing file is never replaced unless --force is given.

examples:
  infomax ica eeg.npy -o sources.npy --unmixing W.npy --mixing A.npy
  infomax ica data.npz:x -o s.npy --n-components 20 --json
  infomax ica mixtures.csv -o sources.csv --no-extended
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

HELP = "independent component analysis by (extended) infomax: sources, unmixing and mixing"

_OUT_EXTENSIONS = (".npy", ".csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("x", metavar="X", help="samples x channels: .npy, .npz[:KEY] or .csv")
    parser.add_argument("-o", "--out", required=True, metavar="S",
                        help="where to write the sources (samples x components): .npy or .csv")
    parser.add_argument("--n-components", type=int, metavar="K",
                        help="sources to estimate (default: all channels)")
    parser.add_argument("--no-extended", action="store_true",
                        help="Bell & Sejnowski's logistic density only (super-Gaussian sources)")
    parser.add_argument("--unmixing", metavar="W", help="also write W (components x channels)")
    parser.add_argument("--mixing", metavar="A", help="also write A (channels x components)")
    parser.add_argument("--solver", choices=("lbfgs", "natural_gradient"), default="lbfgs",
                        help="lbfgs (default, whole sample) or natural_gradient (blocks)")
    parser.add_argument("--max-iter", type=int, default=500, help="iterations (default: 500)")
    parser.add_argument("--tol", type=float, default=1e-7,
                        help="gradient tolerance (default: 1e-7; float32 stops at its floor)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="solver precision (default: float32)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout and nothing else")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _check_outputs(args: argparse.Namespace) -> list[Path]:
    paths = [Path(p) for p in (args.out, args.unmixing, args.mixing) if p]
    if len({p.resolve() for p in paths}) < len(paths):
        raise ValueError("-o, --unmixing and --mixing must be different files")
    for p in paths:
        if p.suffix.lower() not in _OUT_EXTENSIONS:
            raise ValueError(f"{p}: the output must end in .npy or .csv")
        if p.exists() and not args.force:
            raise ValueError(f"{str(p)!r} exists; pass --force to replace it, or choose another")
        if not p.parent.exists():
            raise FileNotFoundError(f"the folder of {p} does not exist; create it first")
    return paths


def _save(path: Path, array) -> None:
    import numpy as np

    from infomax.runtime import atomic_write

    if path.suffix.lower() == ".csv":
        atomic_write(path, lambda tmp: np.savetxt(tmp, array, delimiter=",", fmt="%.10g"))
    else:
        atomic_write(path, lambda tmp: np.save(tmp, array))


def _progress(args: argparse.Namespace):
    """A progress bar that appears only on fits longer than a second (``None`` when quiet)."""
    if args.quiet or args.json:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=args.max_iter, desc="ica", unit="it", delay=1.0, file=sys.stderr,
               leave=False)  # fmt: skip

    def callback(it: int, value: float) -> None:
        bar.update(it - bar.n)
        bar.set_postfix_str(f"{value:.1e}", refresh=False)

    return bar, callback


def run(args: argparse.Namespace) -> int:
    from infomax.estimators.io import load_samples
    from infomax.ica import ConvergenceWarning, InfomaxICA

    _check_outputs(args)
    x = load_samples(args.x)
    ica = InfomaxICA(n_components=args.n_components, extended=not args.no_extended,
                     solver=args.solver, max_iter=args.max_iter, tol=args.tol,
                     dtype=args.dtype, device=args.device, random_state=args.seed)  # fmt: skip
    bar, callback = _progress(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            sources = ica.fit(x, callback=callback).transform(x)
        finally:
            if bar is not None:
                bar.close()
    _save(Path(args.out), sources)
    if args.unmixing:
        _save(Path(args.unmixing), ica.components_)
    if args.mixing:
        _save(Path(args.mixing), ica.mixing_)
    for w in caught:
        print(f"infomax ica: warning: {w.message}", file=sys.stderr)
    sub = int((ica.signs_ < 0).sum())
    summary = {
        "iterations": ica.n_iter_, "converged": ica.converged_, "stop_reason": ica.stop_reason_,
        "seconds": round(ica.seconds_, 3), "n_samples": int(x.shape[0]),
        "n_channels": int(x.shape[1]), "n_components": ica.n_components_,
        "sub_gaussian": sub, "sources": str(args.out), "unmixing": args.unmixing,
        "mixing": args.mixing, "x": str(args.x),
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return 0
    state = "converged" if ica.converged_ else f"NOT converged ({ica.stop_reason_})"
    print(f"{ica.n_components_} components from {x.shape[1]} channels x {x.shape[0]} samples "
          f"({sub} sub-Gaussian): {state} in {ica.n_iter_} iterations, "
          f"{ica.seconds_:.1f} s")  # fmt: skip
    written = [p for p in (args.out, args.unmixing, args.mixing) if p]
    print(f"wrote {', '.join(written)}")
    return 0
