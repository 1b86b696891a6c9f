"""Warnings on figures that should not be trusted (MIResult.warnings, infomax.estimators.trust)."""

from __future__ import annotations

import math

import numpy as np

from infomax.estimators import trust
from infomax.estimators.fit import estimate_mi


def test_knn_dimension_and_large_mi():
    assert trust.knn_max_dim(5000) == 9 and trust.knn_max_dim(100_000) == 12
    assert trust.knn_warnings(4, 5000, 0.5) == []
    (w,) = trust.knn_warnings(20, 5000, 0.5)
    assert "20 dimensions from 5000 samples" in w
    assert any("exponentially" in w for w in trust.knn_warnings(2, 1000, 4.0))


def test_neural_checks():
    ok = {"mi": 1.0, "stderr": 0.05, "cap_nats": math.log(1000), "fits": [{"converged": True}]}
    assert trust.neural_warnings("infonce", ok) == []
    near = dict(ok, mi=math.log(1000) - 1.0)
    assert "near its cap" in trust.neural_warnings("infonce", near)[0]
    neg = {"mi": -9.26, "stderr": 0.1, "fits": []}
    assert "far below zero" in trust.neural_warnings("jsd", neg)[0]
    assert trust.neural_warnings("jsd", {"mi": -0.02, "stderr": 0.02, "fits": []}) == []
    stuck = dict(ok, fits=[{"converged": False, "stop_reason": "max steps"}, {"converged": True}])
    assert "did not converge for 1 of 2" in trust.neural_warnings("infonce", stuck)[0]


def test_disagreement_and_sample_size():
    assert trust.disagreement(("ksg", 1.0, 0.02), ("infonce", 1.03, 0.02)) == []
    assert "disagree" in trust.disagreement(("ksg", 0.4, 0.02), ("infonce", 1.4, 0.05))[0]
    assert trust.sample_size_warnings(20, 5000, 1.0) == []
    assert "4000 coordinates for 5000 samples" in trust.sample_size_warnings(4000, 5000, 0.15)[0]


def test_wide_data_gets_a_warning_through_estimate_mi():
    """Many coordinates for few samples: the figure comes with the warning that it can be far
    below the truth (here 200 + 200 dims for 400 samples, 460 nats in truth)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 200))
    y = x + 0.1 * rng.standard_normal((400, 200))
    r = estimate_mi(x, y, "infonce", folds=1, steps=30, eval_every=10, hidden=32, embed_dim=8,
                    progress=False, device="cpu")  # fmt: skip
    assert r.estimator == "infonce"
    assert any("400 coordinates for 400 samples" in w for w in r.warnings)
    assert r.mi <= math.log(40) + 1e-6  # a held-out InfoNCE figure on 40 samples: log(40) at most


def test_ksg_in_many_dimensions_warns():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 6))
    y = x + rng.standard_normal((600, 6))
    r = estimate_mi(x, y, "ksg")
    assert any("kNN estimate in 12 dimensions" in w for w in r.warnings)
    r = estimate_mi(x[:, :1], y[:, :1], "ksg")
    assert r.warnings == []


def test_mine_bound_far_below_zero_is_flagged():
    """A critic trained with a huge learning rate on heavy tails: whatever the figure, a value
    far below zero must come with the warning (and a sane one without)."""
    rng = np.random.default_rng(2)
    x = rng.standard_cauchy((600, 1))
    y = x + rng.standard_cauchy((600, 1))
    r = estimate_mi(x, y, "nwj", transform="standardize", lr=0.05, steps=60, eval_every=20,
                    folds=1, hidden=32, embed_dim=8, progress=False, device="cpu")  # fmt: skip
    far = r.mi < -max(0.05, 3 * r.stderr)
    assert far == any("far below zero" in w for w in r.warnings)


def _spiral_pair():
    """``(rng, x, y, warped)``: Y = X + N(0, 0.25 I) in 2 + 2 dimensions, and X rotated by an
    angle growing with its radius (1.5 turns per unit), which keeps I(X; Y)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 2))
    y = x + 0.5 * rng.standard_normal((2000, 2))
    r = np.hypot(x[:, 0], x[:, 1])
    c, s = np.cos(3 * math.pi * r), np.sin(3 * math.pi * r)
    return rng, x, y, np.c_[c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]]


def test_ksg_falling_with_k_is_flagged_on_a_spiral():
    """A spiral warp (rotation by an angle growing with the radius) keeps the MI but bends the
    dependence at the kNN scale: KSG falls steeply from k = 3 to k = 30 and must say so; on a
    smooth Gaussian it does not."""
    rng, x, y, warped = _spiral_pair()
    res = estimate_mi(warped, y, "ksg")
    assert res.extra["k_drop"]["k"] == 30 and res.extra["k_drop"]["drop"] > trust.KSG_K_DROP
    assert any("falls by" in w for w in res.warnings)
    plain = estimate_mi(x, x + rng.standard_normal((2000, 2)), "ksg")  # 0.69 nats, smooth
    assert abs(plain.extra["k_drop"]["drop"]) < 0.06 and plain.warnings == []
    assert "reported" in trust.disagreement(("a", 0.5, 0.01), ("b", 1.0, 0.01), "b")[0]


def test_auto_runs_the_curved_dependence_critic_when_ksg_falls_with_k(monkeypatch):
    """``auto`` on a spiral: KSG falls with k, so a cross-fitted InfoNCE bound is run with the
    curved-dependence settings on top of the user's, and the larger figure is reported."""
    from infomax.estimators import fit

    seen = {}

    def fake_neural(name, ctx):  # stands in for five trained critics
        seen["name"], seen["cfg"] = name, ctx.cfg
        return {"mi": 1.5, "stderr": 0.02, "df": 4, "n_train": 1440, "n_eval": 2000,
                "fits": [], "cap_nats": math.log(400), "train_cap_nats": math.log(256)}  # fmt: skip

    monkeypatch.setattr(fit, "_run_neural", fake_neural)
    rng, x, y, warped = _spiral_pair()
    res = estimate_mi(warped, y, hidden=64, progress=False)
    assert seen["name"] == "infonce"
    for key, value in fit.CURVED_CRITIC.items():
        assert getattr(seen["cfg"], key) == value
    assert seen["cfg"].hidden == 64  # the user's other settings are kept
    assert res.estimator == "infonce" and res.mi == 1.5
    assert "curved dependence" in res.reason and res.extra["estimates"]["ksg"]["mi"] < 1.5
    smooth = estimate_mi(x, x + rng.standard_normal((2000, 2)), progress=False)  # no fall with k
    assert smooth.estimator == "ksg" and "infonce" not in smooth.extra.get("estimates", {})
