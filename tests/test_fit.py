"""estimate_mi: KSG and neural estimators on easy cases, the held-out split, results, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from infomax.estimators.fit import (
    ESTIMATORS,
    NEURAL_ESTIMATORS,
    MIResult,
    choose_estimator,
    estimate_mi,
)
from infomax.estimators.neural import _fold_splits, _MarginalTransform, _split

RHO = 0.8
TRUE_MI = -0.5 * math.log(1 - RHO**2)  # 0.511 nats


def corr_gauss(n: int, rho: float = RHO, d: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y


def test_ksg_result_fields():
    x, y = corr_gauss(2000)
    res = estimate_mi(x, np.exp(y))
    assert isinstance(res, MIResult) and res.estimator == "ksg" and "KSG" in res.reason
    lo, hi = res.interval
    assert lo < res.mi < hi and hi - lo == pytest.approx(2 * 2.262 * res.stderr, rel=1e-3)
    assert res.warnings == [] and res.p_value is None
    assert res.mi == pytest.approx(TRUE_MI, abs=0.05)
    assert 0 < res.stderr < 0.05
    assert res.n_train == 0 and res.n_eval == 2000 and res.seconds > 0
    assert res.mi_bits == pytest.approx(res.mi / math.log(2))
    d = json.loads(json.dumps(res.to_dict()))
    assert d["n"] == 2000 and d["estimator"] == "ksg" and d["k"] == 3


def test_ksg_options_and_torch_input():
    x, y = corr_gauss(1000)
    a = estimate_mi(torch.from_numpy(x), torch.from_numpy(y), "ksg", k=5, ksg_algorithm=2)
    assert a.extra["k"] == 5 and a.extra["algorithm"] == 2
    b = estimate_mi(x, y, "ksg", ksg_transform="standardize")
    assert b.extra["transform"] == "standardize"
    assert a.mi == pytest.approx(b.mi, abs=0.05)


def test_split_is_disjoint_and_complete():
    gen = torch.Generator().manual_seed(3)
    tr, va, ev = _split(1001, 0.2, gen)
    assert len(tr) == 801 and len(va) == 100 and len(ev) == 100
    allidx = torch.cat([tr, va, ev])
    assert allidx.unique().numel() == 1001  # disjoint and covers every sample
    tr2, _, ev2 = _split(1001, 0.2, torch.Generator().manual_seed(3))
    assert torch.equal(tr, tr2) and torch.equal(ev, ev2)  # seeded


def test_fold_splits_evaluate_every_sample_once():
    splits = _fold_splits(1003, 5, torch.Generator().manual_seed(0))
    evals = torch.cat([ev for _, _, ev in splits])
    assert evals.unique().numel() == 1003 == evals.numel()
    for tr, va, ev in splits:
        assert torch.cat([tr, va, ev]).unique().numel() == 1003  # disjoint, complete
        assert len(va) == round(0.1 * (1003 - len(ev)))


def test_marginal_rank_transform():
    train = torch.tensor([[0.0], [10.0], [1.0], [3.0]])
    f = _MarginalTransform(train, "rank")
    z = f(train)[:, 0]
    expected = torch.special.ndtri(torch.tensor([1.0, 4.0, 2.0, 3.0]) / 5)
    assert torch.allclose(z, expected, atol=1e-6)
    new = f(torch.tensor([[-5.0], [0.5], [2.0], [100.0]]))[:, 0]
    assert bool((new[1:] > new[:-1]).all()) and bool(torch.isfinite(new).all())


def _neural(name: str, x, y, **kw):
    opts = dict(hidden=64, embed_dim=16, steps=400, batch_size=128, lr=2e-3, eval_every=50,
                patience=4, progress=False, seed=0, folds=1, device="cpu")  # fmt: skip
    opts.update(kw)
    return estimate_mi(x, y, name, **opts)


@pytest.mark.parametrize("name", NEURAL_ESTIMATORS)
def test_neural_estimators_easy_case(name):
    x, y = corr_gauss(3000, seed=1)
    res = _neural(name, x, y)
    assert res.estimator == name
    assert res.n_train == 2400 and res.n_eval == 300
    assert res.extra["fits"][0]["n_val"] == 300
    assert res.mi == pytest.approx(TRUE_MI, abs=0.15), res.extra
    assert 0 < res.stderr < 0.2
    assert res.extra["fits"][0]["steps_run"] <= 400
    json.dumps(res.to_dict())
    if name == "infonce":
        assert res.extra["cap_nats"] == pytest.approx(math.log(300))


def test_neural_independent_is_small():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 1))
    res = _neural("infonce", x, y)
    assert abs(res.mi) < 0.05


def test_concat_critic_and_rank_transform():
    x, y = corr_gauss(1500, seed=2)
    res = _neural("nwj", x, np.exp(y), critic="concat", batch_size=64, transform="rank")
    assert res.extra["settings"]["critic"] == "concat"
    assert res.mi == pytest.approx(TRUE_MI, abs=0.2)


def test_neural_is_seeded():
    x, y = corr_gauss(1000, seed=3)
    a = _neural("dv", x, y, steps=100)
    b = _neural("dv", x, y, steps=100)
    assert a.mi == b.mi


def test_progress_bar_goes_to_stderr(capsys):
    x, y = corr_gauss(500)
    _neural("infonce", x, y, steps=20, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""


def test_errors():
    x, y = corr_gauss(100)
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_mi(x, y, "mutual")
    with pytest.raises(ValueError, match="holdout"):
        estimate_mi(x, y, "infonce", holdout=1.5)
    with pytest.raises(ValueError, match="critic"):
        estimate_mi(x, y, "infonce", critic="bilinear")
    with pytest.raises(ValueError, match="critic"):
        estimate_mi(x, y, "infonce", critic="mlp")
    with pytest.raises(ValueError, match="folds"):
        estimate_mi(x, y, "infonce", folds=0)
    with pytest.raises(ValueError, match="too few .* 5-fold"):
        estimate_mi(x[:20], y[:20], "infonce")
    with pytest.raises(ValueError, match="permutations"):
        estimate_mi(x, y, permutations=-1)
    with pytest.raises(ValueError, match="z has 50 samples"):
        estimate_mi(x, y, z=x[:50])
    with pytest.raises(ValueError, match="--discrete names w"):
        estimate_mi(x, y, discrete="x,w")
    with pytest.raises(ValueError, match="same number|samples"):
        estimate_mi(x, y[:50])
    with pytest.raises(ValueError, match="at least 5"):
        estimate_mi(x[:20], y[:20], "infonce", holdout=0.2, folds=1)
    with pytest.raises(ValueError, match="steps"):
        estimate_mi(x, y, "infonce", steps=0)
    assert set(ESTIMATORS) == {"auto", "ksg", "plugin", "ross", "mixed", *NEURAL_ESTIMATORS}


# ------------------------------------------------------------------------- cross-fitting, auto


def test_cross_fitted_infonce_and_separable_alias():
    """5 folds, a fresh critic each: every sample evaluated once, the stderr from the spread of
    the fold figures (so it covers training), a t interval with 4 degrees of freedom."""
    x, y = corr_gauss(1000, seed=5)
    res = _neural("infonce", x, y, folds=5, critic="separable", steps=100, hidden=32, batch_size=64)
    fits = res.extra["fits"]
    assert len(fits) == 5 and res.n_eval == 1000 and res.extra["settings"]["critic"] == "dot"
    values = np.array([f["mi"] for f in fits])
    assert res.mi == pytest.approx(values.mean())
    assert res.stderr == pytest.approx(values.std(ddof=1) / math.sqrt(5))
    assert res.interval[1] - res.interval[0] == pytest.approx(2 * 2.776 * res.stderr, rel=1e-3)
    assert res.mi == pytest.approx(TRUE_MI, abs=0.15)
    assert res.extra["cap_nats"] == pytest.approx(math.log(200))


@pytest.mark.parametrize("name", [b for b in NEURAL_ESTIMATORS if b != "mine"])
def test_critics_trained_together_take_the_steps_they_would_take_alone(name):
    """The stacked (vmapped) step of several critics is each critic's own step: same losses,
    same gradients, nothing shared between folds (checked against separate critics; SGD, so
    that the parameters can be compared after several steps: Adam is elementwise as well, but
    amplifies float rounding where a gradient is almost zero)."""
    import copy as copy_mod

    from infomax.estimators.critics import make_critic
    from infomax.estimators.neural import _Stacked, figure_fn

    torch.manual_seed(0)
    alone = [make_critic("dot", 2, 3, 16, 4, 2) for _ in range(3)]
    stacked = _Stacked([copy_mod.deepcopy(m) for m in alone])
    fig = figure_fn(name)
    opt = torch.optim.SGD(stacked.params.values(), lr=0.1)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1) for m in alone]
    for _ in range(3):
        xb, yb = torch.randn(3, 32, 2), torch.randn(3, 32, 3)
        losses = stacked.losses(fig, xb, yb)
        opt.zero_grad()
        losses.sum().backward()
        for f, (m, o) in enumerate(zip(alone, opts)):
            loss = fig(m(xb[f], yb[f])).loss
            expected = float(loss.detach())
            assert float(losses[f].detach()) == pytest.approx(expected, rel=1e-5, abs=1e-6)
            o.zero_grad()
            loss.backward()
            for key, p in m.named_parameters():
                assert torch.allclose(stacked.params[key].grad[f], p.grad, atol=1e-6), key
            o.step()
        opt.step()
    for f, m in enumerate(alone):
        for key, value in m.state_dict().items():
            assert torch.allclose(stacked.state(f)[key], value, atol=1e-5), (name, f, key)
        xs, ys = torch.randn(5, 2), torch.randn(7, 3)
        assert torch.allclose(stacked.critic(f)(xs, ys), m(xs, ys), atol=1e-5)


@pytest.mark.parametrize("name", NEURAL_ESTIMATORS)
def test_cross_fitted_bounds_on_an_easy_case(name):
    """Every bound cross-fitted over 3 folds (trained together; MINE one by one): near the truth,
    each fold early-stopped on its own, every sample evaluated once."""
    x, y = corr_gauss(1500, seed=8)
    res = _neural(name, x, y, folds=3, steps=300)
    fits = res.extra["fits"]
    assert len(fits) == 3 and res.n_eval == 1500
    assert res.mi == pytest.approx(TRUE_MI, abs=0.15), [f["mi"] for f in fits]
    assert all(0 < f["best_step"] <= f["steps_run"] <= 300 for f in fits)
    assert all(len(f["val_history"]) == f["steps_run"] // 50 for f in fits)


def test_large_held_out_sets_are_evaluated_in_blocks(monkeypatch):
    """Validation capped at VAL_MAX; held-out figures averaged over blocks of EVAL_BLOCK
    samples (the InfoNCE cap then log of the block), single-split stderr from the blocks."""
    from infomax.estimators import neural

    x, y = corr_gauss(2000, seed=9)
    whole = _neural("infonce", x, y, folds=2, steps=150)
    monkeypatch.setattr(neural, "VAL_MAX", 60)
    monkeypatch.setattr(neural, "EVAL_BLOCK", 300)
    res = _neural("infonce", x, y, folds=2, steps=150)
    fits = res.extra["fits"]
    assert [f["n_val"] for f in fits] == [60, 60] and [f["n_eval"] for f in fits] == [1000, 1000]
    assert [f["eval_block"] for f in fits] == [250, 250]  # 1000 in 4 blocks
    assert res.extra["cap_nats"] == pytest.approx(math.log(250))
    assert res.mi == pytest.approx(TRUE_MI, abs=0.15) and whole.extra["cap_nats"] > 6.9
    one = _neural("infonce", x, y, folds=1, steps=150, holdout=0.5)  # 940 evaluation samples
    assert one.extra["fits"][0]["eval_block"] == 235 and one.extra["df"] == 3
    assert one.extra["stderr_method"].startswith("std over 4 blocks") and one.stderr > 0


def test_choose_estimator_rules():
    c = np.zeros(1, bool)
    d = np.ones(1, bool)
    assert choose_estimator({"x": 1, "y": 1}, {"x": c, "y": c}, 1000)[0] == ("ksg",)
    assert choose_estimator({"x": 5, "y": 5}, {"x": c, "y": c}, 1000)[0] == ("ksg", "infonce")
    assert choose_estimator({"x": 30, "y": 30}, {"x": c, "y": c}, 1000)[0] == ("infonce",)
    assert choose_estimator({"x": 1, "y": 1}, {"x": d, "y": d}, 1000)[0] == ("plugin",)
    assert choose_estimator({"x": 1, "y": 1}, {"x": d, "y": c}, 1000)[0] == ("ross",)
    both = np.array([True, False])
    assert choose_estimator({"x": 2, "y": 1}, {"x": both, "y": c}, 1000)[0] == ("mixed",)
    three = {"x": d, "y": c, "z": c}
    assert choose_estimator({"x": 1, "y": 1, "z": 1}, three, 1000)[0] == ("mixed",)


def test_auto_mid_dimension_runs_both_and_reports_the_larger():
    x, y = corr_gauss(800, d=3, seed=6)
    res = _neural("auto", x, y, folds=2, steps=100, hidden=32)
    est = res.extra["estimates"]
    assert set(est) == {"ksg", "infonce"}
    assert res.estimator == max(est, key=lambda m: est[m]["mi"])
    assert res.mi == pytest.approx(max(v["mi"] for v in est.values()))
    assert "reported" in res.reason


def test_permutation_p_value():
    x, y = corr_gauss(400, seed=7)
    dep = estimate_mi(x, y, permutations=19)
    assert dep.p_value == pytest.approx(1 / 20)  # no shuffle reaches the observed figure
    rng = np.random.default_rng(8)
    ind = estimate_mi(rng.standard_normal(400), rng.standard_normal(400), permutations=19)
    assert ind.p_value > 0.1
    assert ind.extra["permutation"]["statistic"] == "ksg"
    with pytest.raises(ValueError, match="discrete Z"):
        estimate_mi(x, y, z=rng.standard_normal(400), permutations=5)


# ------------------------------------------------------------------------------ conditional MI


def _collider(n: int, seed: int):
    """X, Y independent N(0, 1), Z = X + Y + N(0, 1): I(X; Y) = 0, I(X; Y | Z) = -0.5 log 0.75."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, 1)), rng.standard_normal((n, 1))
    return x, y, x + y + rng.standard_normal((n, 1))


def test_conditional_ksg_through_estimate_mi():
    x, y, z = _collider(2000, 9)
    r = estimate_mi(x, y, z=z)
    assert r.conditional and r.estimator == "ksg" and r.extra["dim_z"] == 1
    assert r.mi == pytest.approx(-0.5 * math.log(0.75), abs=0.04)
    assert r.interval[0] < r.mi < r.interval[1]
    assert abs(estimate_mi(x, y).mi) < 0.03


@pytest.mark.slow
def test_conditional_neural_chain_rule_collider():
    x, y, z = _collider(4000, 10)
    r = _neural("infonce", x, y, z=z, folds=3, steps=600)
    assert r.conditional and set(r.extra["chain_rule"]) == {"i_x_yz", "i_x_z"}
    assert r.mi == pytest.approx(-0.5 * math.log(0.75), abs=0.1)
    assert any("chain rule" in w for w in r.warnings)
