"""``estimate_mi``: one call from paired samples to a mutual-information estimate (nats).

Estimators:

- ``"ksg"`` (default, the most accurate on ``benchmarks/mi_accuracy.py``): the
  Kraskov-Stoegbauer-Grassberger kNN estimator (:mod:`infomax.estimators.ksg`) on all samples
  (nothing is fitted, so nothing is held out), after a per-coordinate rank (copula) transform.
- ``"infonce"``, ``"jsd"``, ``"dv"``, ``"mine"``, ``"nwj"``, ``"smile"``: a neural critic
  (:mod:`infomax.estimators.critics`) trained to maximise a variational bound
  (:mod:`infomax.estimators.bounds`; Poole et al. 2019, "On variational bounds of mutual
  information"; Song & Ermon 2020 for SMILE; Belghazi et al. 2018 for MINE; Hjelm et al. 2019 for
  the JSD). The samples are split at random into a training part and a held-out part
  (``holdout``, 20 % by default); the held-out part is halved into a *validation* set, used only
  for early stopping (the critic with the best validation estimate is kept), and an *evaluation*
  set on which the reported figure is computed, so the figure is neither fitted to nor selected on
  the points it is reported on.

The held-out figure uses all pairs of the evaluation set at once (an ``M x M`` score matrix: M
positive pairs, ``M (M - 1)`` negative ones), the largest "batch" available; for InfoNCE the
estimate can never exceed ``log M`` (``extra["cap_nats"]``). A critic trained with the JSD bound
estimates the log density ratio, and its MI figure is the DV bound evaluated on it
(``extra["nwj"]`` also gives the NWJ bound of ``critic + 1``, the choice of Poole et al.). MINE's
figure is the DV bound (its moving average only corrects the training gradient).

Uncertainty (``MIResult.stderr``, nats):

- KSG: the samples are cut into 10 disjoint random parts; ``std(part estimates) / sqrt(10)``,
  which assumes that the variance falls like 1/N (checked in ``docs/mi_accuracy.md``).
- neural: a delete-a-group jackknife over the evaluation samples (20 groups) of the held-out
  figure, with the trained critic fixed. It does not include the variability of training.

Neither covers the estimator's bias, which for kNN estimators grows with dimension and MI, and
for variational bounds is mostly a downward bias (they are lower bounds, InfoNCE capped at
``log M``).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from infomax.estimators.io import check_pair
from infomax.estimators.ksg import PREPROCESSING, _split_stderr, ksg_pointwise, preprocess

__all__ = ["ESTIMATORS", "NEURAL_ESTIMATORS", "MIResult", "estimate_mi"]

ESTIMATORS = ("ksg", "infonce", "jsd", "dv", "mine", "nwj", "smile")
NEURAL_ESTIMATORS = ESTIMATORS[1:]
CRITICS = ("separable", "concat")
_JACKKNIFE_GROUPS = 20


@dataclass
class MIResult:
    """A mutual-information estimate.

    Attributes:
        mi: the estimate in nats.
        estimator: the estimator's name.
        stderr: standard error of ``mi`` in nats (see the module docstring for what it covers);
            NaN when it could not be computed.
        n_train: samples used to fit a critic (0 for KSG).
        n_eval: samples the reported figure is computed on.
        seconds: wall-clock time of the estimate.
        extra: estimator details (settings, steps run, validation figure, InfoNCE cap, ...).
    """

    mi: float
    estimator: str
    stderr: float
    n_train: int
    n_eval: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mi_bits(self) -> float:
        """The estimate in bits."""
        return self.mi / math.log(2.0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None) with ``mi``, ``mi_bits``, ``stderr``, ``n``..."""
        d = asdict(self)
        extra = d.pop("extra")
        out = {
            "mi": self.mi,
            "mi_bits": self.mi_bits,
            "stderr": self.stderr,
            "stderr_bits": self.stderr / math.log(2.0),
            "estimator": self.estimator,
            "n": self.n_train + self.n_eval + int(extra.get("n_val", 0)),
        }
        out.update(d)
        out.update(extra)
        return {k: _json_safe(v) for k, v in out.items()}


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(w) for w in v]
    return v


def _to_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use --device cpu")
    return dev


def estimate_mi(
    x: Any,
    y: Any,
    estimator: str = "ksg",
    *,
    k: int = 3,
    ksg_algorithm: int = 1,
    ksg_transform: str = "rank",
    critic: str = "separable",
    hidden: int = 256,
    embed_dim: int = 32,
    layers: int = 2,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 5e-4,
    holdout: float = 0.2,
    eval_every: int = 100,
    patience: int = 6,
    transform: str = "standardize",
    smile_clip: float = 5.0,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = True,
) -> MIResult:
    """Estimate I(X; Y) in nats from paired samples (row i of ``x`` goes with row i of ``y``).

    Args:
        x, y: array-likes (NumPy, torch, lists) of shape (N,) or (N, d); at least 10 rows.
        estimator: ``"ksg"`` or a neural bound ``"infonce"``, ``"jsd"``, ``"dv"``, ``"mine"``,
            ``"nwj"``, ``"smile"`` (see the module docstring).
        k, ksg_algorithm, ksg_transform: KSG neighbours, algorithm (1 or 2) and per-coordinate
            preprocessing (``"rank"``, ``"standardize"``, ``"none"``).
        critic: ``"separable"`` (``g(x)^T h(y)``, cheap) or ``"concat"`` (an MLP on every pair
            ``[x_i, y_j]``, costs ``batch_size^2`` MLP evaluations per step).
        hidden, embed_dim, layers: critic width, separable embedding size, hidden layers.
        steps: maximum training steps (early stopping usually ends sooner).
        batch_size: training batch (InfoNCE's training objective cannot exceed log(batch)).
        lr: Adam learning rate.
        holdout: fraction of samples held out (half for early stopping, half for the figure).
        eval_every, patience: validate every ``eval_every`` steps; stop after ``patience``
            validations without improvement.
        transform: neural estimators' per-coordinate input transform, fitted on the training
            part: ``"standardize"`` (zero mean, unit variance) or ``"rank"`` (empirical CDF of
            the training part, then the normal quantile; invertible, so MI is unchanged).
        smile_clip: SMILE's clipping threshold tau.
        seed: seeds the split, batches, initialisation and the KSG jitter.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
        progress: show a tqdm progress bar on stderr while training.

    Returns:
        :class:`MIResult`.
    """
    t0 = time.perf_counter()
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    xn, yn = check_pair(_to_numpy(x), _to_numpy(y), names=("x", "y"))
    dev = _resolve_device(device)
    if estimator == "ksg":
        result = _estimate_ksg(xn, yn, k, ksg_algorithm, ksg_transform, seed, dev)
    else:
        result = _estimate_neural(
            xn,
            yn,
            estimator,
            critic=critic,
            hidden=hidden,
            embed_dim=embed_dim,
            layers=layers,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            holdout=holdout,
            eval_every=eval_every,
            patience=patience,
            transform=transform,
            smile_clip=smile_clip,
            seed=seed,
            device=dev,
            progress=progress,
        )
    result.seconds = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------------------- KSG


def _estimate_ksg(x, y, k, algorithm, transform, seed, device) -> MIResult:
    if transform not in PREPROCESSING:
        raise ValueError(f"unknown KSG transform {transform!r}; choose one of {PREPROCESSING}")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must satisfy 1 <= k < number of samples ({n}), got {k}")
    gen = torch.Generator().manual_seed(int(seed))
    xt = preprocess(torch.from_numpy(x).to(device), transform, generator=gen)
    yt = preprocess(torch.from_numpy(y).to(device), transform, generator=gen)
    mi = float(ksg_pointwise(xt, yt, k, algorithm=algorithm).mean())
    se = _split_stderr(xt, yt, k, 10, algorithm, seed, 2**22)
    extra = {
        "k": k,
        "algorithm": algorithm,
        "transform": transform,
        "stderr_method": "std over 10 disjoint random parts / sqrt(10)",
        "dim_x": x.shape[1],
        "dim_y": y.shape[1],
    }
    return MIResult(mi, "ksg", se, 0, n, 0.0, extra)


# -------------------------------------------------------------------------------------- neural


class _MarginalTransform:
    """Per-coordinate transform fitted on training samples (``standardize`` or ``rank``)."""

    def __init__(self, train: torch.Tensor, method: str):
        if method not in ("standardize", "rank"):
            raise ValueError(f"unknown transform {method!r}; choose 'standardize' or 'rank'")
        self.method = method
        self.mean = train.mean(0)
        std = train.std(0) if train.shape[0] > 1 else torch.ones_like(self.mean)
        self.std = torch.where(std > 0, std, torch.ones_like(std))
        self.sorted = torch.sort(train, dim=0).values.t().contiguous()  # (d, n)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        if self.method == "standardize":
            return (a - self.mean) / self.std
        n = self.sorted.shape[1]
        at = a.t().contiguous()
        # linear interpolation of the (0-based) rank among the training values
        hi = torch.searchsorted(self.sorted, at).clamp(1, n - 1)
        lo = hi - 1
        s_lo = self.sorted.gather(1, lo)
        s_hi = self.sorted.gather(1, hi)
        width = (s_hi - s_lo).clamp_min(1e-300)
        rank = lo + ((at - s_lo) / width).clamp(0.0, 1.0)
        rank = torch.where(at < self.sorted[:, :1], torch.full_like(rank, -0.5), rank)
        rank = torch.where(at > self.sorted[:, -1:], torch.full_like(rank, n - 0.5), rank)
        u = (rank + 1.0) / (n + 1.0)
        return torch.special.ndtri(u).t().contiguous()


def _split(n: int, holdout: float, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    n_hold = int(round(holdout * n))
    n_val = n_hold // 2
    n_eval = n_hold - n_val
    n_train = n - n_hold
    if n_val < 5 or n_eval < 5 or n_train < 5:
        raise ValueError(
            f"{n} samples with holdout={holdout} leave {n_train} for training, {n_val} for "
            f"validation and {n_eval} for evaluation; neural estimators need at least 5 in each "
            "(use more samples, another holdout, or --estimator ksg)"
        )
    perm = torch.randperm(n, generator=gen)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def _build_critic(critic: str, dx: int, dy: int, hidden: int, embed_dim: int, layers: int):
    from infomax.estimators import critics as critics_mod

    if critic == "separable":
        return critics_mod.SeparableCritic(
            dx, dy, hidden=hidden, embed_dim=embed_dim, layers=layers
        )
    if critic == "concat":
        return critics_mod.ConcatCritic(dx, dy, hidden=hidden, layers=layers)
    raise ValueError(f"unknown critic {critic!r}; choose one of {', '.join(CRITICS)}")


def _figure(name: str, scores: torch.Tensor, smile_clip: float) -> torch.Tensor:
    """The MI figure reported for a critic trained with bound ``name`` (see module docstring)."""
    from infomax.estimators import bounds

    if name == "infonce":
        return bounds.infonce(scores).mi
    if name == "nwj":
        return bounds.nwj_bound(scores).mi
    if name == "smile":
        return bounds.smile_bound(scores, clip=smile_clip).mi
    return bounds.dv_bound(scores).mi  # dv, mine, jsd


def _jackknife(name: str, scores: torch.Tensor, smile_clip: float, groups: int) -> float:
    m = scores.shape[0]
    g = min(groups, m)
    if g < 2:
        return math.nan
    ids = torch.arange(m, device=scores.device) % g
    values = []
    for j in range(g):
        keep = ids != j
        values.append(float(_figure(name, scores[keep][:, keep], smile_clip)))
    v = torch.tensor(values, dtype=torch.float64)
    return float(torch.sqrt((g - 1) / g * ((v - v.mean()) ** 2).sum()))


def _estimate_neural(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    *,
    critic: str,
    hidden: int,
    embed_dim: int,
    layers: int,
    steps: int,
    batch_size: int,
    lr: float,
    holdout: float,
    eval_every: int,
    patience: int,
    transform: str,
    smile_clip: float,
    seed: int,
    device: torch.device,
    progress: bool,
) -> MIResult:
    from infomax.estimators import bounds

    for label, value in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("eval_every", eval_every),
        ("patience", patience),
        ("hidden", hidden),
        ("embed_dim", embed_dim),
        ("layers", layers),
    ):
        if int(value) < 1:
            raise ValueError(f"{label} must be a positive integer, got {value}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if critic not in CRITICS:
        raise ValueError(f"unknown critic {critic!r}; choose one of {', '.join(CRITICS)}")

    n = x.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    tr, va, ev = _split(n, holdout, gen)
    xt = torch.from_numpy(x).float()
    yt = torch.from_numpy(y).float()
    fx = _MarginalTransform(xt[tr], transform)
    fy = _MarginalTransform(yt[tr], transform)
    xt, yt = fx(xt).to(device), fy(yt).to(device)
    x_tr, y_tr = xt[tr.to(device)], yt[tr.to(device)]
    x_va, y_va = xt[va.to(device)], yt[va.to(device)]
    x_ev, y_ev = xt[ev.to(device)], yt[ev.to(device)]
    n_train = len(tr)
    batch = min(batch_size, n_train)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        model = _build_critic(critic, x.shape[1], y.shape[1], hidden, embed_dim, layers)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    bound_fn = bounds.get_bound(name)
    ema = None

    def train_loss(scores: torch.Tensor) -> torch.Tensor:
        nonlocal ema
        if name == "mine":
            out, ema = bounds.mine_bound(scores, ema=ema)
            return out.loss
        if name == "smile":
            return bounds.smile_bound(scores, clip=smile_clip).loss
        return bound_fn(scores).loss

    # held-out score matrices are computed in row chunks: the concat critic holds
    # rows x M x hidden activations
    per_row = (hidden if critic == "concat" else 1) * max(len(va), len(ev))
    rows_per_chunk = max(1, 2**24 // per_row)

    @torch.no_grad()
    def held_out_scores(xh: torch.Tensor, yh: torch.Tensor) -> torch.Tensor:
        model.eval()
        s = torch.cat(
            [model(xh[i : i + rows_per_chunk], yh) for i in range(0, len(xh), rows_per_chunk)]
        )
        model.train()
        return s

    from tqdm.auto import tqdm

    bar = tqdm(
        total=steps,
        desc=f"{name} critic",
        disable=not progress,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    best_val = -math.inf
    best_state = copy.deepcopy(model.state_dict())
    best_step = 0
    since_best = 0
    stop_reason = "max steps"
    step = 0
    perm = torch.randperm(n_train, generator=gen).to(device)
    pos = 0
    val_history = []
    try:
        for step in range(1, steps + 1):
            if pos + batch > n_train:
                perm = torch.randperm(n_train, generator=gen).to(device)
                pos = 0
            idx = perm[pos : pos + batch]
            pos += batch
            loss = train_loss(model(x_tr[idx], y_tr[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            if step % eval_every == 0 or step == steps:
                if not math.isfinite(float(loss.detach())):
                    stop_reason = "non-finite training loss"
                    break
                val = float(_figure(name, held_out_scores(x_va, y_va), smile_clip))
                val_history.append(round(val, 4))
                bar.set_postfix(val_mi=f"{val:.3f}")
                if math.isfinite(val) and val > best_val + 1e-3:
                    best_val, best_step, since_best = val, step, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                    if since_best >= patience:
                        stop_reason = "early stopping"
                        break
    finally:
        bar.close()
    model.load_state_dict(best_state)
    scores = held_out_scores(x_ev, y_ev).float()
    mi = float(_figure(name, scores, smile_clip))
    se = _jackknife(name, scores, smile_clip, _JACKKNIFE_GROUPS)
    m = scores.shape[0]
    extra: dict[str, Any] = {
        "critic": critic,
        "hidden": hidden,
        "embed_dim": embed_dim,
        "layers": layers,
        "batch_size": batch,
        "lr": lr,
        "holdout": holdout,
        "transform": transform,
        "n_val": len(va),
        "steps_run": step,
        "best_step": best_step,
        "stop_reason": stop_reason,
        "val_mi": best_val,
        "val_history": val_history,
        "stderr_method": f"jackknife over {min(_JACKKNIFE_GROUPS, m)} groups of held-out samples",
        "device": str(device),
        "dim_x": x.shape[1],
        "dim_y": y.shape[1],
    }
    if name == "infonce":
        extra["cap_nats"] = math.log(m)
        extra["train_cap_nats"] = math.log(batch)
    if name == "jsd":
        extra["nwj"] = float(bounds.nwj_bound(scores + 1.0).mi)
    if name == "smile":
        extra["smile_clip"] = smile_clip
    return MIResult(mi, name, se, n_train, m, 0.0, extra)
