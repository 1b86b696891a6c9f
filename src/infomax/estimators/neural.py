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

The fold critics are trained *together*: their parameters are stacked (``torch.func``) and one
vectorised step (:func:`torch.func.vmap`) updates all of them, each on a batch of its own training
part with its own Adam state, which is the same as training them one after the other but makes
one large step of several small ones (1.3-1.45x faster on 2 CPU cores, docs/mi_accuracy.md; a
GPU, where one small critic leaves most of the device idle, should gain more: not yet measured).
Each critic keeps its own early stopping: one that stops is restored to its best state while the
others go on. MINE, whose gradient correction has a moving-average state, trains its critics one
at a time.

Inputs get a per-coordinate transform fitted on each training part, by default ``"rank"`` (the
empirical CDF, interpolated, then the normal quantile: Gaussian marginals, the same copula
transform that makes KSG robust to heavy tails; an increasing map of each coordinate, so the MI
is unchanged); ``"standardize"`` is the alternative (docs/mi_accuracy.md compares them).

The figure of a JSD-trained critic is its Donsker-Varadhan value (:func:`bounds.jsd_bound`),
MINE's too (its moving average only corrects the training gradient); InfoNCE's can never exceed
``log M`` for ``M`` evaluation samples (``cap_nats``). On large data the validation set is capped
at :data:`VAL_MAX` samples and the held-out figure is the size-weighted mean of the figures of
random blocks of at most :data:`EVAL_BLOCK` samples (each block its own negatives; then ``M`` is
the smallest block's size, and the single-split standard error is the spread over blocks).
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
#: at most this many validation samples for early stopping (the rest of a large set trains)
VAL_MAX = 4096
#: held-out figures on more samples are averaged over random blocks of at most this many
#: (an M x M score matrix of 20,000 samples is 1.6 GB and dominated the time of large estimates)
EVAL_BLOCK = 4096


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
    n_val = min(n_hold // 2, VAL_MAX)
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
        n_val = min(VAL_MAX, max(5, int(round(_VAL_FRACTION * len(rest)))))
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


def _held_out_scores(critic, xh: torch.Tensor, yh: torch.Tensor, cfg: NeuralSettings):
    """Scores of every held-out pair (``critic(x, y)``), in chunks of rows of x that bound the
    concat critic's memory."""
    rows = max(1, 2**24 // ((cfg.hidden if cfg.critic == "concat" else 1) * len(yh)))
    with torch.no_grad():
        s = torch.cat([critic(xh[i : i + rows], yh) for i in range(0, len(xh), rows)])
    return s.float()


def _new_critic(cfg: NeuralSettings, dims: tuple[int, int], seed: int, device) -> torch.nn.Module:
    """A freshly initialised critic, its initialisation drawn from ``seed`` alone."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        model = make_critic(cfg.critic, dims[0], dims[1], cfg.hidden, cfg.embed_dim, cfg.layers)
    return model.to(device)


class _EarlyStopping:
    """One critic's best validation figure, its state then, and the patience count."""

    def __init__(self, state: dict, patience: int):
        self.best, self.state, self.best_step = -math.inf, state, 0
        self.patience, self.since, self.history = patience, 0, []
        self.reason, self.steps_run, self.done = "max steps", 0, False

    def update(self, step: int, val: float, state_fn) -> None:
        """Record the validation figure ``val`` at ``step``; ``state_fn()`` copies the state."""
        self.history.append(round(val, 4))
        self.steps_run = step
        if math.isfinite(val) and val > self.best + 1e-3:
            self.best, self.state, self.best_step, self.since = val, state_fn(), step, 0
        else:
            self.since += 1
            if self.since >= self.patience:
                self.stop(step, "early stopping")

    def stop(self, step: int, reason: str) -> None:
        self.reason, self.steps_run, self.done = reason, step, True

    def info(self, batch: int) -> dict:
        return {"steps_run": self.steps_run, "best_step": self.best_step,
                "stop_reason": self.reason, "val_mi": self.best, "val_history": self.history,
                "batch_size": batch}  # fmt: skip


def _train(name, cfg: NeuralSettings, fold: dict, seed: int, device, bar) -> tuple[Any, dict]:
    """Train one fresh critic on ``fold["train"]``, early-stopped on ``fold["val"]``."""
    (x_tr, y_tr), (x_va, y_va) = fold["train"], fold["val"]
    n_train = x_tr.shape[0]
    batch = min(cfg.batch_size, n_train)
    gen = torch.Generator().manual_seed(int(seed))
    model = _new_critic(cfg, (x_tr.shape[1], y_tr.shape[1]), seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = bounds.MINE() if name == "mine" else figure_fn(name, cfg.smile_clip)
    fig = figure_fn(name, cfg.smile_clip)
    stop = _EarlyStopping(copy.deepcopy(model.state_dict()), cfg.patience)
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
            stop.stop(step, "non-finite training loss")
            break
        val = float(fig(_held_out_scores(model, x_va, y_va, cfg)).mi)
        bar.set_postfix(val_mi=f"{val:.3f}")
        stop.update(step, val, lambda: copy.deepcopy(model.state_dict()))
        if stop.done:
            break
    model.load_state_dict(stop.state)
    return model, stop.info(batch)


def _padded(blocks: list[torch.Tensor]) -> torch.Tensor:
    """``(F, n_max, d)``: the folds' training tensors stacked, shorter ones padded with zeros."""
    out = blocks[0].new_zeros(len(blocks), max(b.shape[0] for b in blocks), blocks[0].shape[1])
    for f, b in enumerate(blocks):
        out[f, : b.shape[0]] = b
    return out


class _Stacked:
    """Several critics of one architecture as stacked parameters (:mod:`torch.func`)."""

    def __init__(self, models: list[torch.nn.Module]):
        self.models = models
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")

    def critic(self, f: int):
        """Critic ``f`` as a function ``(x, y) -> scores`` on the live stacked parameters."""
        params = {k: v[f] for k, v in self.params.items()}
        buffers = {k: v[f] for k, v in self.buffers.items()}
        return lambda x, y: torch.func.functional_call(self.base, (params, buffers), (x, y))

    def state(self, f: int) -> dict:
        live = {**self.params, **self.buffers}
        return {k: v[f].detach().clone() for k, v in live.items()}

    def losses(self, loss_fn, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """``(F,)`` losses, critic ``f`` on batch ``(xb[f], yb[f])``, in one vectorised call."""

        def one(p, b, x, y):
            return loss_fn(torch.func.functional_call(self.base, (p, b), (x, y))).loss

        return torch.func.vmap(one)(self.params, self.buffers, xb, yb)


def _train_together(name, cfg: NeuralSettings, folds: list[dict], seeds, device, bar) -> list:
    """Train one fresh critic per fold at once (see the module docstring): ``[(model, info)]``."""
    xs, ys = [f["train"][0] for f in folds], [f["train"][1] for f in folds]
    sizes = torch.tensor([len(a) for a in xs])
    n_min, batch = int(sizes.min()), min(cfg.batch_size, int(sizes.min()))
    x_pad, y_pad = _padded(xs), _padded(ys)
    stacked = _Stacked([_new_critic(cfg, (xs[0].shape[1], ys[0].shape[1]), s, device)
                        for s in seeds])  # fmt: skip
    opt = torch.optim.Adam(stacked.params.values(), lr=cfg.lr)
    fig = figure_fn(name, cfg.smile_clip)
    stops = [_EarlyStopping(stacked.state(f), cfg.patience) for f in range(len(folds))]
    gen = torch.Generator().manual_seed(int(seeds[0]))
    pad = torch.arange(x_pad.shape[1])[None, :] >= sizes[:, None]
    perm, pos = None, n_min
    for step in range(1, cfg.steps + 1):
        if pos + batch > n_min:  # an epoch: every fold's own samples in a random order
            keys = torch.rand(pad.shape, generator=gen).masked_fill(pad, 2.0)
            perm, pos = keys.argsort(dim=1)[:, :n_min].to(device), 0
        idx = perm[:, pos : pos + batch, None]
        pos += batch
        xb = x_pad.gather(1, idx.expand(-1, -1, x_pad.shape[2]))
        yb = y_pad.gather(1, idx.expand(-1, -1, y_pad.shape[2]))
        losses = stacked.losses(fig, xb, yb)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        bar.update(sum(not st.done for st in stops))
        if step % cfg.eval_every and step != cfg.steps:
            continue
        finite = torch.isfinite(losses.detach()).tolist()
        for f, st in enumerate(stops):
            if st.done:
                continue
            if not finite[f]:
                st.stop(step, "non-finite training loss")
                continue
            val = float(fig(_held_out_scores(stacked.critic(f), *folds[f]["val"], cfg)).mi)
            st.update(step, val, functools.partial(stacked.state, f))
        if all(st.done for st in stops):
            break
    for model, st in zip(stacked.models, stops):  # the last step is always a validation
        model.load_state_dict(st.state)
    return [(model, st.info(batch)) for model, st in zip(stacked.models, stops)]


def _converged(info: dict, cfg: NeuralSettings) -> bool:
    """Early stopping ended the run, or the last quarter of validations did not improve."""
    if info["stop_reason"] == "early stopping":
        return True
    if info["stop_reason"] != "max steps" or not info["val_history"]:
        return False
    return info["best_step"] <= 0.75 * info["steps_run"]


def _fold_data(cfg: NeuralSettings, x, y, split, device) -> dict:
    """Transforms fitted on the training part of ``split = (train, val, eval)``, applied to all
    samples: ``{"train": (x, y), "val": (x, y), "eval": (x, y)}`` on ``device``."""
    tr, va, ev = split
    fx = _MarginalTransform(x[tr], cfg.transform)
    fy = _MarginalTransform(y[tr], cfg.transform)
    xt, yt = fx(x).to(device), fy(y).to(device)
    tr, va, ev = tr.to(device), va.to(device), ev.to(device)
    return {"train": (xt[tr], yt[tr]), "val": (xt[va], yt[va]), "eval": (xt[ev], yt[ev])}


def _held_out_fit(name, cfg: NeuralSettings, model, fold: dict, info: dict) -> dict:
    """A trained critic's figure on its fold's evaluation samples, added to ``info`` (in blocks
    of at most :data:`EVAL_BLOCK` samples when there are more)."""
    x_ev, y_ev = fold["eval"]
    fig = figure_fn(name, cfg.smile_clip)
    m = len(x_ev)
    blocks = torch.tensor_split(torch.arange(m, device=x_ev.device), math.ceil(m / EVAL_BLOCK))
    figures, sizes = [], []
    for b in blocks:  # the evaluation part is already in random order
        scores = _held_out_scores(model, x_ev[b], y_ev[b], cfg)
        figures.append(float(fig(scores).mi))
        sizes.append(len(b))
    mi = float(np.average(figures, weights=sizes))
    info.update(mi=mi, n_eval=m, eval_block=min(sizes), n_train=len(fold["train"][0]),
                n_val=len(fold["val"][0]), converged=_converged(info, cfg))  # fmt: skip
    if cfg.folds == 1 and len(blocks) == 1:
        info["jackknife"] = _jackknife(fig, scores, _JACKKNIFE_GROUPS)
        info["jackknife_df"] = min(_JACKKNIFE_GROUPS, m) - 1
    elif cfg.folds == 1:  # independent blocks: their spread
        info["jackknife"] = float(np.std(figures, ddof=1) / math.sqrt(len(figures)))
        info["jackknife_df"] = len(figures) - 1
    return info


def _fits(name, cfg: NeuralSettings, x, y, splits, seed: int, device, bar) -> list[dict]:
    """One trained critic per split and its held-out figure (together when they can be)."""
    folds = [_fold_data(cfg, x, y, sp, device) for sp in splits]
    seeds = [seed + 1000 * f for f in range(len(splits))]
    if len(folds) > 1 and name != "mine":  # MINE's moving average is state of one critic
        trained = _train_together(name, cfg, folds, seeds, device, bar)
    else:
        trained = [_train(name, cfg, fold, s, device, bar) for fold, s in zip(folds, seeds)]
    return [_held_out_fit(name, cfg, m, fold, info) for (m, info), fold in zip(trained, folds)]


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
        fits = _fits(name, cfg, xt, yt, splits, seed, device, bar)
    values = np.array([f["mi"] for f in fits], dtype=np.float64)
    if cfg.folds == 1:
        stderr, df = fits[0]["jackknife"], fits[0]["jackknife_df"]
        if fits[0]["eval_block"] < fits[0]["n_eval"]:
            method = f"std over {df + 1} blocks of held-out samples / sqrt({df + 1}), one critic"
        else:
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
        out["cap_nats"] = math.log(min(f["eval_block"] for f in fits))
        out["train_cap_nats"] = math.log(fits[0]["batch_size"])
    return out
