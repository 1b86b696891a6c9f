"""Discrete and mixed MI: detection, plug-in (Miller-Madow via infomax.info), Ross 2014, the mixed
KSG of Gao et al. 2017 and its conditional form, through estimate_mi as well."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infomax import info
from infomax.estimators.discrete import (
    categorical_codes,
    detect_discrete,
    mixed_ksg_cmi,
    mixed_ksg_mi,
    plugin_cmi,
    plugin_mi,
    ross_mi,
)
from infomax.estimators.fit import estimate_mi
from infomax.estimators.ksg import preprocess


def _two_class_mixture(n: int, seed: int):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 2, n)
    return lab, lab * 2.0 + rng.standard_normal(n)


def _mixture_mi() -> float:
    """I(label; Y) for Y | label ~ N(2 label, 1), equal classes: h(Y) - h(N(0, 1)) by quadrature."""
    t = np.linspace(-12.0, 14.0, 200_001)
    f = 0.5 * (np.exp(-(t**2) / 2) + np.exp(-((t - 2) ** 2) / 2)) / math.sqrt(2 * math.pi)
    h = -np.sum(f * np.log(f)) * (t[1] - t[0])
    return float(h - 0.5 * math.log(2 * math.pi * math.e))  # 0.337 nats


def _rank(a):
    return preprocess(torch.from_numpy(np.asarray(a, float).reshape(len(a), -1)), "rank",
                      generator=torch.Generator().manual_seed(0))  # fmt: skip


def test_detect_discrete():
    rng = np.random.default_rng(0)
    a = np.c_[rng.integers(0, 5, 1000), rng.standard_normal(1000), np.arange(1000)]
    assert detect_discrete(a).tolist() == [True, False, False]  # 1000 levels: continuous


def test_plugin_is_infomax_info_with_miller_madow():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, 2000)
    b = (a + (rng.random(2000) < 0.3) * rng.integers(0, 3, 2000)) % 3
    assert plugin_mi(a, b) == info.mutual_information_from_samples(a, b, miller_madow=True)
    c = rng.integers(0, 2, 2000)
    # I(A; B | C) for C independent of (A, B) equals I(A; B) up to the corrections
    cmi = plugin_cmi(a[:, None], b[:, None], c[:, None])
    assert cmi == pytest.approx(plugin_mi(a, b), abs=0.01)


def test_ross_matches_scikit_learn_and_the_truth():
    from sklearn.feature_selection import mutual_info_classif

    lab, y = _two_class_mixture(2000, 2)
    ours = ross_mi(lab, torch.from_numpy(y[:, None]), 3)
    # scikit-learn's mutual_info_classif implements Ross 2014 (no jitter on unit-scale data)
    sk = mutual_info_classif(y[:, None], lab, n_neighbors=3, random_state=0)[0]
    assert ours == pytest.approx(sk, abs=0.01)
    assert ours == pytest.approx(_mixture_mi(), abs=0.05)


def test_mixed_ksg_limits():
    lab, y = _two_class_mixture(3000, 3)
    # discrete x continuous: equal to Ross's estimator, close to the truth
    mixed = mixed_ksg_mi(categorical_codes(lab[:, None]), _rank(y), 3)
    assert mixed == pytest.approx(ross_mi(lab, _rank(y), 3), abs=0.02)
    assert mixed == pytest.approx(_mixture_mi(), abs=0.05)
    # discrete x discrete: close to the plug-in estimate
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 3000)
    b = (a + rng.integers(0, 2, 3000)) % 3
    got = mixed_ksg_mi(categorical_codes(a[:, None]), categorical_codes(b[:, None]), 3)
    assert got == pytest.approx(plugin_mi(a, b), abs=0.02)
    # conditional: the label explains all of Y's dependence on X = label + noise
    x = lab + 0.5 * rng.standard_normal(3000)
    cmi = mixed_ksg_cmi(_rank(x), _rank(y), categorical_codes(lab[:, None]), 3)
    assert cmi == pytest.approx(0.0, abs=0.03)


def test_estimate_mi_routes_discrete_and_mixed():
    lab, y = _two_class_mixture(2000, 5)
    r = estimate_mi(lab, y)
    assert r.estimator == "ross" and "Ross" in r.reason
    assert r.mi == pytest.approx(_mixture_mi(), abs=0.06)
    r = estimate_mi(lab, (lab + (y > 3)) % 2)
    assert r.estimator == "plugin"
    r = estimate_mi(np.c_[lab, y], y + np.random.default_rng(6).standard_normal(2000))
    assert r.estimator == "mixed"
    r = estimate_mi(lab, y, discrete="none")
    assert r.estimator == "ksg"  # declared continuous: ties broken at random
    r = estimate_mi(lab.astype(float), y, z=lab, discrete="x,z")
    assert r.estimator == "mixed" and r.conditional and abs(r.mi) < 0.05
    r = estimate_mi(lab, y, z=np.random.default_rng(7).integers(0, 2, 2000), permutations=9)
    assert r.p_value == pytest.approx(0.1)  # shuffled within Z's strata, never reaches it


def test_plugin_undersampled_warning():
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 40, 200), rng.integers(0, 40, 200)
    r = estimate_mi(a, b, discrete=True)
    assert r.estimator == "plugin" and any("distinct joint values" in w for w in r.warnings)
