"""Neural MI estimates: a critic trained with a variational bound, evaluated on held-out samples.

A critic (:mod:`infomax.estimators.critics`) is trained to maximise a bound
(:mod:`infomax.estimators.bounds`; Poole et al. 2019; Song & Ermon 2020 for SMILE; Belghazi et
al. 2018 for MINE; Hjelm et al. 2019 for the JSD), with early stopping on a validation set, and
the reported figure is the bound evaluated on samples that were used neither for fitting nor for
selecting the critic.

Cross-fitting (``folds >= 2``, the default 5): the samples are cut at random into ``folds``
parts; for each part a *fresh* critic (its own initialisation and batches) is trained on the
other parts (a tenth of which is kept aside for early stopping) and evaluated on that part. The
estimate is the mean of the ``folds`` held-out figures, so every sample is evaluated once, and
the standard error ``std(fold figures) / sqrt(folds)`` covers the variability of training (the
critic's initialisation, batches and early stopping) as well as that of the evaluation samples.
``folds=1`` is one split (``holdout`` fraction held out, half of it for early stopping) with a
delete-a-group jackknife over the evaluation samples for a fixed critic: cheaper, and it does not
cover the training's variability.

Inputs get a per-coordinate transform fitted on each training part, by default ``"rank"`` (the
empirical CDF, interpolated, then the normal quantile: Gaussian marginals, the same copula
transform that makes KSG robust to heavy tails; an increasing map of each coordinate, so the MI
is unchanged); ``"standardize"`` is the alternative (docs/mi_accuracy.md compares them).

The figure of a JSD-trained critic is its Donsker-Varadhan value (:func:`bounds.jsd_bound`),
MINE's too (its moving average only corrects the training gradient); InfoNCE's can never exceed
``log M`` for ``M`` evaluation samples (``cap_nats``).
"""

from __future__ import annotations

import copy
import functools
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from infomax.estimators import bounds
from infomax.estimators.critics import canonical_critic, make_critic

__all__ = ["BOUNDS", "NeuralSettings", "neural_estimate"]

BOUNDS = bounds.BOUND_NAMES
_JACKKNIFE_GROUPS = 20
_VAL_FRACTION = 0.1


@dataclass
class NeuralSettings:
    """Settings of a neural estimate (the ``estimate_mi`` keywords of the same names)."""

    critic: str = "dot"
    hidden: int = 256
    embed_dim: int = 32
    layers: int = 2
    steps: int = 3000
    batch_size: int = 256
    lr: float = 5e-4
    holdout: float = 0.2
    folds: int = 5
    eval_every: int = 50
    patience: int = 6
    transform: str = "rank"
    smile_clip: float = 5.0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        for label in ("steps", "batch_size", "eval_every", "patience", "hidden", "embed_dim"):
            value = getattr(self, label)
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{label} must be a positive integer, got {value}")
        if int(self.layers) < 1:
            raise ValueError(f"layers must be a positive integer, got {self.layers}")
        if int(self.folds) < 1:
            raise ValueError(f"folds must be 1 (one split) or >= 2 (cross-fit), got {self.folds}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be a fraction in (0, 1), got {self.holdout}")
        if self.transform not in ("standardize", "rank"):
            raise ValueError(
                f"unknown transform {self.transform!r}; choose 'rank' or 'standardize'"
            )
        self.critic = canonical_critic(self.critic)
        if self.critic == "bilinear":
            raise ValueError("the bilinear critic is linear in y; use critic 'dot' or 'concat'")


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
    """One split: (train, validation, evaluation) indices, the held-out part halved."""
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


def _fold_splits(n: int, folds: int, gen: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    """Cross-fitting: for each of ``folds`` parts, (train, validation, evaluation=part)."""
    if n // folds < 5 or (n - n // folds) * _VAL_FRACTION < 5:
        raise ValueError(
            f"{n} samples are too few for {folds}-fold cross-fitting (each part needs at least "
            "5 samples and each validation set 5); use more samples, fewer folds, or ksg"
        )
    perm = torch.randperm(n, generator=gen)
    parts = torch.tensor_split(perm, folds)
    out = []
    for f in range(folds):
        rest = torch.cat([p for g, p in enumerate(parts) if g != f])
        rest = rest[torch.randperm(len(rest), generator=gen)]
        n_val = max(5, int(round(_VAL_FRACTION * len(rest))))
        out.append((rest[n_val:], rest[:n_val], parts[f]))
    return out


def figure_fn(name: str, smile_clip: float = 5.0):
    """The function ``scores -> Bound`` whose ``mi`` is reported for a critic trained with
    bound ``name`` (SMILE with its clip; every other bound as :func:`bounds.get_bound`)."""
    if name == "smile":
        return functools.partial(bounds.smile_bound, clip=smile_clip)
    return bounds.get_bound(name)


def _jackknife(fig, scores: torch.Tensor, groups: int) -> float:
    m = scores.shape[0]
    g = min(groups, m)
    if g < 2:
        return math.nan
    ids = torch.arange(m, device=scores.device) % g
    values = [float(fig(scores[ids != j][:, ids != j]).mi) for j in range(g)]
    v = torch.tensor(values, dtype=torch.float64)
    return float(torch.sqrt((g - 1) / g * ((v - v.mean()) ** 2).sum()))


def _held_out_scores(model, xh: torch.Tensor, yh: torch.Tensor, rows: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        s = torch.cat([model(xh[i : i + rows], yh) for i in range(0, len(xh), rows)])
    model.train()
    return s.float()


def _train(name, cfg: NeuralSettings, data, seed: int, device, bar) -> tuple[Any, dict]:
    """Train a fresh critic on ``data = (x_tr, y_tr, x_va, y_va)``; keep the best on validation."""
    x_tr, y_tr, x_va, y_va = data
    n_train = x_tr.shape[0]
    batch = min(cfg.batch_size, n_train)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        model = make_critic(cfg.critic, x_tr.shape[1], y_tr.shape[1], cfg.hidden,
                            cfg.embed_dim, cfg.layers)  # fmt: skip
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = bounds.MINE() if name == "mine" else figure_fn(name, cfg.smile_clip)
    fig = figure_fn(name, cfg.smile_clip)
    rows = max(1, 2**24 // ((cfg.hidden if cfg.critic == "concat" else 1) * len(x_va)))
    best = {"val": -math.inf, "state": copy.deepcopy(model.state_dict()), "step": 0}
    history, since, reason, step = [], 0, "max steps", 0
    perm, pos = torch.randperm(n_train, generator=gen).to(device), 0
    for step in range(1, cfg.steps + 1):
        if pos + batch > n_train:
            perm, pos = torch.randperm(n_train, generator=gen).to(device), 0
        idx = perm[pos : pos + batch]
        pos += batch
        loss = loss_fn(model(x_tr[idx], y_tr[idx])).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
        if step % cfg.eval_every and step != cfg.steps:
            continue
        if not math.isfinite(float(loss.detach())):
            reason = "non-finite training loss"
            break
        val = float(fig(_held_out_scores(model, x_va, y_va, rows)).mi)
        history.append(round(val, 4))
        bar.set_postfix(val_mi=f"{val:.3f}")
        if math.isfinite(val) and val > best["val"] + 1e-3:
            best, since = {"val": val, "state": copy.deepcopy(model.state_dict()), "step": step}, 0
        else:
            since += 1
            if since >= cfg.patience:
                reason = "early stopping"
                break
    model.load_state_dict(best["state"])
    info = {"steps_run": step, "best_step": best["step"], "stop_reason": reason,
            "val_mi": best["val"], "val_history": history, "batch_size": batch}  # fmt: skip
    return (model, rows), info


def _converged(info: dict, cfg: NeuralSettings) -> bool:
    """Early stopping ended the run, or the last quarter of validations did not improve."""
    if info["stop_reason"] == "early stopping":
        return True
    if info["stop_reason"] != "max steps" or not info["val_history"]:
        return False
    return info["best_step"] <= 0.75 * info["steps_run"]


def _one_fit(name, cfg, x, y, split, seed, device, bar) -> dict:
    """Fit transforms and a critic on ``split = (train, val, eval)``; the held-out figure."""
    tr, va, ev = split
    fx = _MarginalTransform(x[tr], cfg.transform)
    fy = _MarginalTransform(y[tr], cfg.transform)
    xt, yt = fx(x).to(device), fy(y).to(device)
    tr, va, ev = tr.to(device), va.to(device), ev.to(device)
    (model, rows), info = _train(name, cfg, (xt[tr], yt[tr], xt[va], yt[va]), seed, device, bar)
    scores = _held_out_scores(model, xt[ev], yt[ev], rows)
    fig = figure_fn(name, cfg.smile_clip)
    info.update(mi=float(fig(scores).mi), n_eval=len(ev), n_train=len(tr), n_val=len(va),
                converged=_converged(info, cfg))  # fmt: skip
    if cfg.folds == 1:
        info["jackknife"] = _jackknife(fig, scores, _JACKKNIFE_GROUPS)
    return info


def neural_estimate(
    x: np.ndarray,
    y: np.ndarray,
    name: str,
    cfg: NeuralSettings,
    *,
    seed: int = 0,
    device: torch.device | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Cross-fitted (or single-split) neural estimate; see the module docstring.

    Returns a dict with ``mi``, ``stderr``, ``df`` (degrees of freedom of the standard error:
    ``folds - 1``, or the jackknife's groups - 1), ``n_train``, ``n_eval`` (per fit), ``fits``
    (one summary per critic) and the settings.
    """
    if name not in BOUNDS:
        raise ValueError(f"unknown bound {name!r}; choose one of {', '.join(BOUNDS)}")
    cfg.check()
    device = device or torch.device("cpu")
    gen = torch.Generator().manual_seed(int(seed))
    n = x.shape[0]
    if cfg.folds == 1:
        splits = [_split(n, cfg.holdout, gen)]
    else:
        splits = _fold_splits(n, int(cfg.folds), gen)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    from tqdm.auto import tqdm

    with tqdm(total=cfg.steps * len(splits), desc=f"{name} critic", disable=not progress,
              file=sys.stderr, leave=False, dynamic_ncols=True) as bar:  # fmt: skip
        fits = [
            _one_fit(name, cfg, xt, yt, sp, seed + 1000 * f, device, bar)
            for f, sp in enumerate(splits)
        ]
    values = np.array([f["mi"] for f in fits], dtype=np.float64)
    if cfg.folds == 1:
        stderr, df = fits[0]["jackknife"], min(_JACKKNIFE_GROUPS, fits[0]["n_eval"]) - 1
        method = f"jackknife over {df + 1} groups of held-out samples, one fixed critic"
    else:
        stderr, df = float(values.std(ddof=1) / math.sqrt(len(values))), len(values) - 1
        method = f"std over {len(values)} cross-fitted folds / sqrt({len(values)}), fresh critics"
    out: dict[str, Any] = {
        "mi": float(values.mean()),
        "stderr": stderr,
        "df": df,
        "stderr_method": method,
        "n_train": fits[0]["n_train"],
        "n_eval": sum(f["n_eval"] for f in fits),
        "fits": fits,
        "settings": asdict(cfg),
        "device": str(device),
    }
    if name == "infonce":
        out["cap_nats"] = math.log(min(f["n_eval"] for f in fits))
        out["train_cap_nats"] = math.log(fits[0]["batch_size"])
    return out
