"""``estimate_mi``: one call from samples to a mutual-information estimate (nats) that says how
far it can be trusted.

``estimate_mi(x, y)`` estimates I(X; Y); ``estimate_mi(x, y, z=z)`` the conditional I(X; Y | Z).
Rows are samples. Estimators:

- ``"auto"`` (default): chosen from the data (:func:`choose_estimator`; the choice and the reason
  are in ``MIResult.estimator`` / ``MIResult.reason``).
- ``"ksg"``: Kraskov-Stoegbauer-Grassberger kNN (:mod:`infomax.estimators.ksg`) after a
  per-coordinate rank (copula) transform; conditional: Frenzel & Pompe 2007.
- ``"plugin"``: discrete variables, the plug-in estimate with the Miller-Madow correction.
- ``"ross"``: one discrete and one continuous variable (Ross 2014).
- ``"mixed"``: columns of both kinds, ties allowed (Gao et al. 2017; conditional: Mesner &
  Shalizi 2021). See :mod:`infomax.estimators.discrete`.
- ``"infonce"``, ``"jsd"``, ``"dv"``, ``"mine"``, ``"nwj"``, ``"smile"``: a critic trained with
  that variational bound, cross-fitted over 5 folds with fresh critics
  (:mod:`infomax.estimators.neural`).
  Conditional: the chain rule ``I(X; Y | Z) = I(X; (Y, Z)) - I(X; Z)`` with two such estimates
  (a difference of two lower bounds, which is not itself a bound).

Uncertainty: ``MIResult.stderr`` and a 95 % ``interval`` (Student-t with the stated degrees of
freedom). kNN and plug-in estimators: ``std`` of the estimates on 10 disjoint random parts over
``sqrt(10)`` (assumes a variance falling like 1/N). Neural: ``std`` over the cross-fitted folds
over ``sqrt(folds)``, which includes the variability of training. Neither covers the bias; the
calibration is measured in docs/mi_accuracy.md.

Trust: ``MIResult.warnings`` lists every reason not to take the figure at face value
(:mod:`infomax.estimators.trust`); ``infomax mi`` prints them on stderr.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from infomax.estimators import trust
from infomax.estimators.io import check_pair, check_samples
from infomax.estimators.ksg import PREPROCESSING, ksg_cmi_pointwise, ksg_pointwise, preprocess

__all__ = [
    "ESTIMATORS",
    "NEURAL_ESTIMATORS",
    "MIResult",
    "choose_estimator",
    "estimate_mi",
    "resolve_discrete",
]

NEURAL_ESTIMATORS = ("infonce", "jsd", "dv", "mine", "nwj", "smile")
ESTIMATORS = ("auto", "ksg", "plugin", "ross", "mixed", *NEURAL_ESTIMATORS)
#: ``auto`` uses KSG alone up to this many joint coordinates ...
AUTO_KSG_ONLY_DIM = 4
#: ... KSG and a cross-fitted InfoNCE bound up to this many, and InfoNCE alone beyond
AUTO_KSG_MAX_DIM = 50
_PARTS = 10


@dataclass
class MIResult:
    """A mutual-information estimate.

    Attributes:
        mi: the estimate in nats.
        estimator: the estimator that produced ``mi`` (for ``auto``, the one it chose).
        stderr: standard error of ``mi`` in nats (see the module docstring); NaN if unknown.
        n_train: samples used to fit a critic (per fold; 0 for kNN and plug-in estimators).
        n_eval: samples the reported figure is computed on.
        seconds: wall-clock time of the estimate.
        extra: estimator details (settings, per-fold figures, InfoNCE cap, ...).
        warnings: reasons not to trust the figure as it stands (empty when there are none).
        reason: why this estimator (``auto``) or "requested".
        interval: a 95 % interval ``(low, high)`` from ``stderr`` (sampling and training
            variability, not bias), or None.
        p_value: permutation p-value for ``I > 0`` (``permutations > 0``), else None.
        conditional: True for I(X; Y | Z).
    """

    mi: float
    estimator: str
    stderr: float
    n_train: int
    n_eval: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reason: str = "requested"
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    conditional: bool = False

    @property
    def mi_bits(self) -> float:
        """The estimate in bits."""
        return self.mi / math.log(2.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None): ``mi``, ``mi_bits``, ``stderr``, ``warnings``..."""
        d = asdict(self)
        extra = d.pop("extra")
        out = {
            "mi": self.mi,
            "mi_bits": self.mi_bits,
            "stderr": self.stderr,
            "stderr_bits": self.stderr / math.log(2.0),
            "estimator": self.estimator,
        }
        out.update(d)
        out["interval"] = list(self.interval) if self.interval else None
        out.update({k: v for k, v in extra.items() if k not in out})
        return {k: _json_safe(v) for k, v in out.items()}


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(w) for w in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return _json_safe(v.item())
    return v


def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def resolve_discrete(
    discrete: bool | str | Iterable[str] | None, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per variable name, a bool per column: discrete or not.

    ``discrete``: ``None`` or ``"auto"`` detects integer columns with few levels
    (:func:`infomax.estimators.discrete.detect_discrete`); ``True`` / ``False`` (or ``"all"`` /
    ``"none"``) for every column; or names among the variables (``"x,z"`` or ``["x", "z"]``)
    whose columns are all discrete, the others continuous.
    """
    from infomax.estimators.discrete import detect_discrete

    if discrete is None or discrete == "auto":
        return {k: detect_discrete(a) for k, a in arrays.items()}
    if isinstance(discrete, bool) or discrete in ("all", "none"):
        flag = discrete is True or discrete == "all"
        return {k: np.full(a.shape[1], flag) for k, a in arrays.items()}
    names = discrete.split(",") if isinstance(discrete, str) else list(discrete)
    names = [str(s).strip().lower() for s in names if str(s).strip()]
    unknown = [s for s in names if s not in arrays]
    if unknown:
        raise ValueError(
            f"--discrete names {', '.join(unknown)}, which is not among the variables "
            f"{', '.join(arrays)}; give a comma-separated subset such as 'x' or 'x,z'"
        )
    return {k: np.full(a.shape[1], k in names) for k, a in arrays.items()}


def choose_estimator(dims: dict[str, int], kinds: dict[str, np.ndarray], n: int) -> tuple:
    """What ``auto`` runs: ``(estimators to run, reason)`` from dimensions, kinds and ``n``.

    - every column discrete: ``plugin``; one variable discrete and the other continuous
      (no Z): ``ross``; any other mixture: ``mixed``;
    - continuous, at most :data:`AUTO_KSG_ONLY_DIM` joint coordinates: ``ksg`` (the most
      accurate there, docs/mi_accuracy.md);
    - up to :data:`AUTO_KSG_MAX_DIM`: ``ksg`` and a cross-fitted ``infonce``; the larger figure
      is reported (the held-out InfoNCE figure is a lower bound in expectation; kNN estimates fall
      below the truth in many dimensions), and a disagreement beyond the error bars is a warning;
    - beyond: ``infonce`` alone (kNN is both biased and slow there).
    """
    flags = np.concatenate(list(kinds.values()))
    dim = sum(dims.values())
    if flags.all():
        return ("plugin",), "every column is discrete: plug-in estimate with Miller-Madow"
    if flags.any():
        full = {k: bool(v.all()) for k, v in kinds.items()}
        none = {k: not v.any() for k, v in kinds.items()}
        if "z" not in kinds and ((full["x"] and none["y"]) or (full["y"] and none["x"])):
            return ("ross",), "one variable discrete, the other continuous: Ross (2014)"
        return ("mixed",), "discrete and continuous columns: mixed KSG (Gao et al. 2017)"
    if dim <= AUTO_KSG_ONLY_DIM:
        return ("ksg",), f"continuous, {dim} coordinates: KSG on ranks, accurate in low dimension"
    if dim <= AUTO_KSG_MAX_DIM:
        return ("ksg", "infonce"), (
            f"continuous, {dim} coordinates: KSG and a cross-fitted InfoNCE bound, the larger "
            "figure reported (kNN estimates fall below the truth in many dimensions)"
        )
    return ("infonce",), (
        f"continuous, {dim} coordinates: cross-fitted InfoNCE bound (kNN is unreliable and slow "
        f"beyond {AUTO_KSG_MAX_DIM})"
    )


def estimate_mi(
    x: Any,
    y: Any,
    estimator: str = "auto",
    *,
    z: Any = None,
    discrete: bool | str | Iterable[str] | None = None,
    k: int = 3,
    ksg_algorithm: int = 1,
    ksg_transform: str = "rank",
    critic: str = "dot",
    hidden: int = 256,
    embed_dim: int = 32,
    layers: int = 2,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 5e-4,
    folds: int = 5,
    holdout: float = 0.2,
    eval_every: int = 50,
    patience: int = 6,
    transform: str = "rank",
    smile_clip: float = 5.0,
    permutations: int = 0,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> MIResult:
    """Estimate I(X; Y), or I(X; Y | Z) with ``z``, in nats from paired samples.

    Args:
        x, y, z: array-likes (NumPy, torch, lists) of shape (N,) or (N, d); row i of each is
            one joint sample; at least 10 rows.
        estimator: ``"auto"`` or one of :data:`ESTIMATORS` (see the module docstring).
        discrete: which columns are discrete: ``None`` detects them, ``True``/``False`` for all,
            or variable names such as ``"x"`` or ``["x", "z"]`` (see :func:`resolve_discrete`).
        k, ksg_algorithm, ksg_transform: kNN neighbours, KSG algorithm (1 or 2; the conditional
            and mixed forms use 1) and per-coordinate preprocessing (``"rank"``,
            ``"standardize"``, ``"none"``).
        critic, hidden, embed_dim, layers, steps, batch_size, lr, folds, holdout, eval_every,
            patience, transform, smile_clip: the neural settings
            (:class:`infomax.estimators.neural.NeuralSettings`): critic ``"dot"`` (alias
            ``"separable"``) or ``"concat"``; ``folds`` fresh critics cross-fitted (1: one split
            holding out ``holdout``); inputs ``"rank"``- or ``"standardize"``-transformed.
        permutations: if > 0, a permutation test of ``I = 0`` (``MIResult.p_value``); seed:
            seeds splits, batches, initialisations, tie-breaking and permutations.
        device: ``"auto"`` (GPU when available), ``"cpu"``, ``"cuda"``; progress: a bar.
    """
    from infomax.runtime import resolve_device

    t0 = time.perf_counter()  # validation first, then the choice, the runs, the result
    _check_names(estimator, ksg_transform, permutations)
    arrays = _check_inputs(x, y, z)
    n = arrays["x"].shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < number of samples ({n}), got {k}")
    kinds = resolve_discrete(discrete, arrays)
    dims = {key: a.shape[1] for key, a in arrays.items()}
    auto = choose_estimator(dims, kinds, n) if estimator == "auto" else None
    names, reason = auto or ((estimator,), "requested")
    from infomax.estimators.neural import NeuralSettings

    cfg = NeuralSettings(critic, hidden, embed_dim, layers, steps, batch_size, lr, holdout,
                         folds, eval_every, patience, transform, smile_clip)  # fmt: skip
    ctx = _Context(arrays, kinds, k, ksg_algorithm, ksg_transform, cfg, seed,
                   resolve_device(device), progress)  # fmt: skip
    runs = {name: _run(name, ctx) for name in names}
    if estimator == "auto":
        names, reason = _second_opinion(names, reason, runs, ctx)
    result = _combine(runs, names, reason, dims, n)
    if permutations:
        # the statistic: the kNN / plug-in estimator run here, else the one for these kinds
        stat = next((m for m in names if m not in NEURAL_ESTIMATORS), None) or _fast_kind(kinds)
        obs = runs[stat]["mi"] if stat in runs else None
        test = _permutation_test(ctx, stat, int(permutations), obs)
        result.p_value, result.extra["permutation"] = test
    result.conditional = "z" in arrays
    result.seconds = time.perf_counter() - t0
    return result


#: the critic ``auto`` trains for curved dependence: deeper, faster and more patient than the
#: default, because unrolling a spiral is learned slowly (docs/mi_accuracy.md: on the 1.5-turn
#: spiral 1.168 instead of 0.539 nats for a true 1.609, the same on the 0.5-turn one)
CURVED_CRITIC = {"layers": 3, "lr": 2e-3, "patience": 20}


def _second_opinion(names: tuple, reason: str, runs: dict, ctx: _Context) -> tuple:
    """``auto`` with KSG alone: if KSG falls steeply with k (curved dependence), run a
    cross-fitted InfoNCE bound with the :data:`CURVED_CRITIC` settings as well (added to
    ``runs``); the new ``(names, reason)``."""
    drop = runs.get("ksg", {}).get("k_drop", {}).get("drop", 0.0)
    if names != ("ksg",) or drop <= trust.KSG_K_DROP:
        return names, reason
    settings = ", ".join(f"{key} {v}" for key, v in CURVED_CRITIC.items())
    reason += (f"; but KSG falls by {drop:.2f} nats from k = {ctx.k} to "
               f"{runs['ksg']['k_drop']['k']} (curved dependence), so a cross-fitted "
               f"InfoNCE bound was run too (critic for curved dependence: {settings})")  # fmt: skip
    curved = dataclasses.replace(ctx.cfg, **CURVED_CRITIC)
    runs["infonce"] = _run("infonce", dataclasses.replace(ctx, cfg=curved))
    return ("ksg", "infonce"), reason


def _check_names(estimator: str, ksg_transform: str, permutations: int) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if ksg_transform not in PREPROCESSING:
        raise ValueError(f"unknown KSG transform {ksg_transform!r}; choose one of {PREPROCESSING}")
    if isinstance(permutations, bool) or int(permutations) < 0:
        raise ValueError(f"permutations must be an integer >= 0, got {permutations}")


def _check_inputs(x: Any, y: Any, z: Any) -> dict[str, np.ndarray]:
    xn, yn = check_pair(_to_numpy(x), _to_numpy(y), names=("x", "y"))
    arrays = {"x": xn, "y": yn}
    if z is not None:
        zn = check_samples(_to_numpy(z), "z")
        if zn.shape[0] != xn.shape[0]:
            raise ValueError(
                f"z has {zn.shape[0]} samples (rows) but x and y have {xn.shape[0]}; row i of "
                "each must be the same sample"
            )
        arrays["z"] = zn
    return arrays


@dataclass
class _Context:
    arrays: dict[str, np.ndarray]
    kinds: dict[str, np.ndarray]
    k: int
    algorithm: int
    transform: str
    cfg: Any
    seed: int
    device: torch.device
    progress: bool
    _prepared: dict[str, torch.Tensor] | None = None

    def prepared(self) -> dict[str, torch.Tensor]:
        """kNN inputs: continuous columns preprocessed, discrete ones as spread-out codes."""
        if self._prepared is None:
            from infomax.estimators.discrete import categorical_codes

            gen = torch.Generator().manual_seed(int(self.seed))
            out = {}
            for key, a in self.arrays.items():
                cols = torch.empty(a.shape, dtype=torch.float64)
                disc = self.kinds[key]
                if (~disc).any():
                    cont = torch.from_numpy(np.ascontiguousarray(a[:, ~disc]))
                    cols[:, torch.from_numpy(~disc)] = preprocess(
                        cont, self.transform, generator=gen
                    )
                if disc.any():
                    cols[:, torch.from_numpy(disc)] = categorical_codes(a[:, disc])
                out[key] = cols.to(self.device)
            self._prepared = out
        return self._prepared


def _fast_kind(kinds: dict[str, np.ndarray]) -> str:
    """The non-neural estimator that fits these column kinds (the permutation statistic)."""
    names, _ = choose_estimator({key: 1 for key in kinds}, kinds, 10**6)
    return names[0]


def _statistic(name: str, ctx: _Context):
    """``f(idx, perm) -> float``: the ``name`` estimate on rows ``idx`` (None: all), with the
    rows of X replaced by rows ``perm`` (None: unpermuted)."""
    from infomax.estimators import discrete as D

    cond = "z" in ctx.arrays
    src = ctx.arrays if name == "plugin" else None

    def pick(key, idx, perm):
        a = src[key] if src is not None else ctx.prepared()[key]
        rows = idx if key != "x" or perm is None else (perm if idx is None else perm[idx])
        if rows is None:
            return a
        return a[rows] if src is not None else a[torch.as_tensor(rows, device=a.device)]

    def f(idx=None, perm=None) -> float:
        x, y = pick("x", idx, perm), pick("y", idx, perm)
        zz = pick("z", idx, perm) if cond else None
        if name == "ksg":
            if cond:
                return float(ksg_cmi_pointwise(x, y, zz, ctx.k).mean())
            return float(ksg_pointwise(x, y, ctx.k, algorithm=ctx.algorithm).mean())
        if name == "plugin":
            return D.plugin_cmi(x, y, zz) if cond else D.plugin_mi(x, y)
        if name == "mixed":
            return D.mixed_ksg_cmi(x, y, zz, ctx.k) if cond else D.mixed_ksg_mi(x, y, ctx.k)
        if cond:
            raise ValueError("the Ross estimator is for I(X; Y); with --given use mixed or auto")
        disc_x = bool(ctx.kinds["x"].all())
        if not disc_x and not ctx.kinds["y"].all():
            raise ValueError(
                "the Ross estimator needs one variable all discrete (--discrete x or y); "
                "use mixed or auto"
            )
        raw_rows = idx if idx is not None else slice(None)
        if disc_x:
            lab = ctx.arrays["x"] if perm is None else ctx.arrays["x"][perm]
            return D.ross_mi(lab[raw_rows], y, ctx.k)
        return D.ross_mi(ctx.arrays["y"][raw_rows], x, ctx.k)

    return f


def _split_stderr(stat, n: int, seed: int, min_part: int) -> tuple[float, int]:
    """``std(estimates on disjoint random parts) / sqrt(parts)`` and its degrees of freedom."""
    m = min(_PARTS, n // min_part)
    if m < 2:
        return math.nan, 0
    perm = np.random.default_rng(int(seed) + 1).permutation(n)
    size = n // m
    est = np.array([stat(np.sort(perm[j * size : (j + 1) * size])) for j in range(m)])
    return float(est.std(ddof=1) / math.sqrt(m)), m - 1


def _run(name: str, ctx: _Context) -> dict[str, Any]:
    """One estimator on the context's data: mi, stderr, df, method, sample counts, details."""
    n = ctx.arrays["x"].shape[0]
    if name in NEURAL_ESTIMATORS:
        return _run_neural(name, ctx)
    stat = _statistic(name, ctx)
    mi = stat()
    se, df = _split_stderr(stat, n, ctx.seed, max(20, 4 * ctx.k))
    method = f"std over {df + 1} disjoint random parts / sqrt({df + 1})"
    out = {"mi": mi, "stderr": se, "df": df, "n_train": 0, "n_eval": n, "stderr_method": method}
    if name in ("ksg", "mixed", "ross"):
        out.update(k=ctx.k, transform=ctx.transform)
    if name == "ksg":
        out["algorithm"] = 1 if "z" in ctx.arrays else ctx.algorithm
        k_big = max(30, 10 * ctx.k)
        if k_big < n // 4 and n <= 50_000:  # how much it falls as the neighbourhoods grow
            big = _statistic(name, dataclasses.replace(ctx, k=k_big, _prepared=ctx._prepared))
            out["k_drop"] = {"k": k_big, "mi": big(), "drop": mi - big()}
    if name == "plugin":
        joint = np.hstack(list(ctx.arrays.values()))
        out["cells"] = int(np.unique(joint, axis=0).shape[0])
    return out


def _run_neural(name: str, ctx: _Context) -> dict[str, Any]:
    from infomax.estimators.neural import neural_estimate

    def fit(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, Any]:
        return neural_estimate(a, b, name, ctx.cfg, seed=seed, device=ctx.device,
                               progress=ctx.progress)  # fmt: skip

    x, y = ctx.arrays["x"], ctx.arrays["y"]
    if "z" not in ctx.arrays:
        return fit(x, y, ctx.seed)
    zz = ctx.arrays["z"]
    joint, marg = fit(x, np.hstack([y, zz]), ctx.seed), fit(x, zz, ctx.seed + 7)
    out = dict(joint)
    out.update(
        mi=joint["mi"] - marg["mi"],
        stderr=math.hypot(joint["stderr"], marg["stderr"]),
        df=min(joint["df"], marg["df"]),
        chain_rule={"i_x_yz": joint["mi"], "i_x_z": marg["mi"]},
        fits=joint["fits"] + marg["fits"],
        stderr_method=joint["stderr_method"] + ", for each term of the chain rule",
    )
    return out


def _interval(mi: float, se: float, df: int) -> tuple[float, float] | None:
    if not math.isfinite(se) or df < 1:
        return None
    from scipy.stats import t

    half = float(t.ppf(0.975, df)) * se
    return (mi - half, mi + half)


def _combine(runs: dict, names: tuple, reason: str, dims: dict, n: int) -> MIResult:
    """The reported figure, with the reason for it and every warning that applies."""
    dim = sum(dims.values())
    warns: list[str] = []
    chosen = names[0]
    if len(names) == 2:  # auto: KSG and InfoNCE
        a, b = runs[names[0]], runs[names[1]]
        chosen = names[1] if b["mi"] > a["mi"] else names[0]
        reason += f"; {names[0]} {a['mi']:.3f}, {names[1]} {b['mi']:.3f}: {chosen} reported"
        warns += trust.disagreement(
            (names[0], a["mi"], a["stderr"]), (names[1], b["mi"], b["stderr"]), chosen
        )
    r = runs[chosen]
    if chosen in ("ksg", "mixed", "ross"):
        warns += trust.knn_warnings(dim, n, r["mi"])
        warns += trust.k_drop_warnings(r.get("k_drop"))
    if chosen in NEURAL_ESTIMATORS:
        warns += trust.neural_warnings(chosen, r)
        if "chain_rule" in r:
            warns.append(
                "conditional MI from a neural estimator is the difference of two lower bounds "
                "(chain rule), which is not itself a bound; the conditional KSG (--estimator "
                "ksg) is more reliable in low dimension"
            )
    if chosen == "plugin" and r.get("cells", 0) > n / 5:
        warns.append(
            f"{r['cells']} distinct joint values for {n} samples: the plug-in estimate is "
            "biased upwards when most values are seen only a few times, even with Miller-Madow"
        )
    warns += trust.sample_size_warnings(dim, n, r["mi"])
    extra = {key: v for key, v in r.items() if key not in ("mi", "stderr", "n_train", "n_eval")}
    extra.update({f"dim_{key}": d for key, d in dims.items()}, n=n)
    if len(runs) > 1:
        extra["estimates"] = {m: {"mi": v["mi"], "stderr": v["stderr"]} for m, v in runs.items()}
    return MIResult(
        mi=float(r["mi"]), estimator=chosen, stderr=float(r["stderr"]), n_train=r["n_train"],
        n_eval=r["n_eval"], seconds=0.0, extra=extra, warnings=warns, reason=reason,
        interval=_interval(r["mi"], r["stderr"], r["df"]),
    )  # fmt: skip


def _permutation_test(ctx: _Context, name: str, count: int, observed: float | None):
    """p-value of ``I = 0``: X's rows shuffled ``count`` times (within the strata of a discrete
    Z for conditional MI), ``p = (1 + #{shuffled >= observed}) / (1 + count)``."""
    stat = _statistic(name, ctx)
    obs = stat() if observed is None else observed
    n = ctx.arrays["x"].shape[0]
    rng = np.random.default_rng(int(ctx.seed) + 12345)
    strata = None
    if "z" in ctx.arrays:
        if not ctx.kinds["z"].all():
            raise ValueError(
                "a permutation test of conditional MI needs a discrete Z (X is shuffled within "
                "each value of Z); discretise Z, declare it with --discrete z, or drop "
                "--permutations"
            )
        strata = np.unique(ctx.arrays["z"], axis=0, return_inverse=True)[1].reshape(-1)
    null = []
    for _ in range(count):  # each shuffle is one full (vectorised) estimate
        if strata is None:
            perm = rng.permutation(n)
        else:
            perm = np.arange(n)
            for s in np.unique(strata):
                rows = np.flatnonzero(strata == s)
                perm[rows] = rng.permutation(rows)
        null.append(stat(None, perm))
    null_arr = np.asarray(null)
    p = float((1 + np.sum(null_arr >= obs)) / (1 + count))
    info = {"statistic": name, "observed": float(obs), "count": count,
            "null_mean": float(null_arr.mean()), "null_max": float(null_arr.max())}  # fmt: skip
    return p, info
