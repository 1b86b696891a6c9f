"""Infomax ICA: formulas against their definitions, separation of known sources scored by the
Amari distance, invariances, agreement with FastICA, the scikit-learn protocol, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from infomax.ica import ConvergenceWarning, InfomaxICA, amari_distance, pca_whitening
from infomax.ica.formulas import (
    density,
    density_stats,
    hessian_approximation,
    natural_gradient_update,
    negative_log_likelihood,
    precondition,
    relative_gradient,
    row_means,
)


def _mix(sources: np.ndarray, channels: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(channels or sources.shape[1], sources.shape[1]))
    return sources @ a.T, a


def _laplace(n=4000, k=4, seed=0):
    return np.random.default_rng(seed).laplace(size=(n, k))


# ---------------------------------------------------------------- the Amari distance


def test_amari_distance_matches_its_formula_and_invariances():
    p = np.array([[1.0, 0.5], [0.2, 2.0]])
    # rows: (1 + .25)/1 - 1 = .25, (.04 + 4)/4 - 1 = .01; columns: (1 + .04)/1 - 1 = .04,
    # (.25 + 4)/4 - 1 = .0625 -> (.26 + .1025) / 4
    assert amari_distance(p, np.eye(2)) == pytest.approx((0.26 + 0.1025) / 4)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    perm, scale = np.eye(5)[rng.permutation(5)], np.diag(rng.uniform(0.1, 10, 5))
    assert amari_distance(perm @ scale @ np.linalg.inv(a), a) == pytest.approx(0, abs=1e-12)
    w = rng.normal(size=(5, 5))
    d = amari_distance(w, a)
    assert d > 0.1
    assert amari_distance(perm @ w, a) == pytest.approx(d)  # the sources' order
    with pytest.raises(ValueError, match="square"):
        amari_distance(np.ones((2, 3)), np.ones((3, 3)))


# ---------------------------------------------------------------- formulas


def _loss(w, z, dens):
    y = w @ z
    g = 0.5 * dens.a[:, None] * y**2 + dens.b[:, None] / dens.c * torch.log(torch.cosh(dens.c * y))
    return -torch.linalg.slogdet(w)[1] + g.sum(0).mean()


@pytest.mark.parametrize("extended,sg", [(True, "logcosh"), (True, "lee"), (False, "logcosh")])
def test_loss_and_relative_gradient_equal_autograd(extended, sg):
    torch.manual_seed(0)
    z = torch.randn(3, 500, dtype=torch.float64)
    w = torch.eye(3, dtype=torch.float64) + 0.3 * torch.randn(3, 3, dtype=torch.float64)
    dens = density(torch.tensor([1.0, -1.0, 1.0]), extended, sg)
    stats = density_stats(w @ z, dens)
    wg = w.clone().requires_grad_(True)
    loss = _loss(wg, z, dens)
    loss.backward()
    assert float(negative_log_likelihood(w, stats.data_loss)) == pytest.approx(loss.item())
    # relative gradient = Euclidean gradient @ W^T
    torch.testing.assert_close(relative_gradient(stats.psi_y), wg.grad @ w.T)


def test_natural_gradient_update_is_the_extended_infomax_rule():
    rng = np.random.default_rng(1)
    z, w = rng.normal(size=(3, 200)), np.eye(3) + 0.1 * rng.normal(size=(3, 3))
    k, lr = np.array([1.0, -1.0, 1.0]), 0.05
    y = w @ z
    # Lee, Girolami & Sejnowski 1999: W += lr (I - K tanh(u) u^T - u u^T) W
    expected = w + lr * (np.eye(3) - (k[:, None] * np.tanh(y)) @ y.T / 200 - y @ y.T / 200) @ w
    got = natural_gradient_update(torch.tensor(w), torch.tensor(y),
                                  density(torch.tensor(k), True, "lee"), lr)  # fmt: skip
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # Bell & Sejnowski 1995 (logistic): W += lr (I + (1 - 2 logistic(u)) u^T) W
    logistic = 1 / (1 + np.exp(-y))
    expected = w + lr * (np.eye(3) + (1 - 2 * logistic) @ y.T / 200) @ w
    got = natural_gradient_update(torch.tensor(w), torch.tensor(y),
                                  density(torch.ones(3), False), lr)  # fmt: skip
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_preconditioner_solves_the_block_hessian_and_is_exact_at_the_solution():
    torch.manual_seed(0)
    n = 4
    y = torch.distributions.Laplace(0.0, 1.0).sample((n, 20000)).double()
    dens = density(torch.ones(n), True, "logcosh")
    stats = density_stats(y, dens)
    h = hessian_approximation(stats)
    g = torch.randn(n, n, dtype=torch.float64)
    x = precondition(g, h)
    for i in range(n):
        for j in range(n):
            if i == j:
                assert float(h[i, i] * x[i, i]) == pytest.approx(float(g[i, i]))
            else:
                assert float(h[i, j] * x[i, j] + x[j, i]) == pytest.approx(float(g[i, j]))
    # with independent sources the approximation is close to the true Hessian (autograd)
    z = y

    def loss_of(e):
        return _loss((torch.eye(n, dtype=torch.float64) + e) @ torch.eye(n, dtype=torch.float64),
                     z, dens)  # fmt: skip

    full = torch.autograd.functional.hessian(loss_of, torch.zeros(n, n, dtype=torch.float64))
    full = full.reshape(n * n, n * n)
    assert float(full[0 * n + 1, 0 * n + 1]) == pytest.approx(float(h[0, 1]), rel=0.05)
    assert float(full[0 * n + 1, 1 * n + 0]) == pytest.approx(1.0, rel=0.05)


def test_row_means_are_accurate_beyond_float32_sums():
    x = torch.rand(3, 100_003, generator=torch.Generator().manual_seed(0))
    exact = x.double().mean(dim=1)
    assert float((row_means(x) - exact).abs().max()) < 1e-8


def test_whitening_gives_identity_covariance_and_rank():
    x, _ = _mix(_laplace(2000, 3), channels=5)
    w = pca_whitening(torch.tensor(x), n_components=3)
    z = (torch.tensor(x) - w.mean) @ w.whitener.T
    torch.testing.assert_close(z.T @ z / len(z), torch.eye(3, dtype=torch.float64))
    assert w.rank == 3  # five channels mixing three sources
    torch.testing.assert_close(w.whitener @ w.dewhitener, torch.eye(3, dtype=torch.float64))


# ---------------------------------------------------------------- separation


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_separates_laplace_sources(dtype):
    x, a = _mix(_laplace())
    ica = InfomaxICA(dtype=dtype, device="cpu").fit(x)
    assert ica.converged_ and ica.n_iter_ > 1
    assert amari_distance(ica.components_, a) < 0.01
    assert (ica.signs_ == 1).all()


def test_sub_gaussian_sources_need_the_extended_rule():
    s = np.random.default_rng(0).uniform(-1, 1, size=(4000, 4))
    x, a = _mix(s)
    ica = InfomaxICA(device="cpu").fit(x)
    assert amari_distance(ica.components_, a) < 0.01
    assert (ica.signs_ == -1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = InfomaxICA(extended=False, device="cpu", max_iter=100).fit(x)
    assert amari_distance(plain.components_, a) > 0.1


def test_square_wave_and_student_t_as_in_mne():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1000, 1000)
    s = np.c_[np.sign(np.sin(t)), rng.standard_t(5, size=1000)]
    x, a = _mix(s)
    for sg in ("logcosh", "lee"):
        ica = InfomaxICA(device="cpu", super_gaussian=sg).fit(x)
        assert amari_distance(ica.components_, a) < 0.01
        assert sorted(ica.signs_.tolist()) == [-1, 1]  # the square wave is sub-Gaussian


def test_more_channels_than_sources_with_noise():
    s = _laplace(6000, 3)
    x, a = _mix(s, channels=8)
    x += 0.02 * x.std() * np.random.default_rng(5).normal(size=x.shape)
    ica = InfomaxICA(n_components=3, device="cpu").fit(x)
    assert ica.components_.shape == (3, 8) and ica.mixing_.shape == (8, 3)
    assert amari_distance(ica.components_, a) < 0.02


def test_natural_gradient_solver_separates_and_survives_a_blow_up():
    x, a = _mix(_laplace(1500, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 passes: not yet at 1e-12
        ica = InfomaxICA(solver="natural_gradient", device="cpu", random_state=0, max_iter=40)
        assert amari_distance(ica.fit(x).components_, a) < 0.05
        w = ica.components_
        from infomax.ica.solvers import solve_natural_gradient

        z = torch.tensor(ica.whitening_ @ (x - ica.mean_).T, dtype=torch.float32)
        res = solve_natural_gradient(z, torch.eye(3, dtype=torch.float64), lr=5.0, max_iter=40,
                                     generator=torch.Generator().manual_seed(0))  # fmt: skip
    # lr 5 blows up; the restarts halve it until it is stable, then it separates
    assert torch.isfinite(res.w).all() and res.n_iter <= 40
    assert amari_distance(res.w.numpy() @ ica.whitening_, a) < 0.05
    assert amari_distance(w, a) < 0.05


def test_warm_start_on_subsets_reaches_the_same_optimum():
    x, _ = _mix(_laplace(40_000, 3))
    kw = dict(device="cpu", dtype="float64")
    staged = InfomaxICA(subsample="auto", **kw).fit(x)
    direct = InfomaxICA(subsample=None, **kw).fit(x)
    np.testing.assert_allclose(staged.components_, direct.components_, atol=1e-5)


def test_equivariant_to_an_invertible_change_of_channels():
    """The ML optimum moves with the data: unmixing X B gives the same sources as X."""
    x, _ = _mix(_laplace(3000, 3))
    rng = np.random.default_rng(3)
    b = np.eye(3)[rng.permutation(3)] @ np.diag([0.01, 5.0, 300.0]) + 0.1 * rng.normal(size=(3, 3))
    s1 = InfomaxICA(device="cpu", dtype="float64").fit_transform(x)
    s2 = InfomaxICA(device="cpu", dtype="float64").fit_transform(x @ b)
    corr = np.abs(np.corrcoef(s1.T, s2.T)[:3, 3:])
    assert np.sort(corr.max(axis=1)).min() > 0.99999


def test_agrees_with_fastica_on_the_sources():
    decomposition = pytest.importorskip("sklearn.decomposition")
    x, _ = _mix(_laplace(5000, 4))
    ours = InfomaxICA(device="cpu").fit_transform(x)
    fast = decomposition.FastICA(whiten="unit-variance", random_state=0).fit_transform(x)
    corr = np.abs(np.corrcoef(ours.T, fast.T)[:4, 4:])
    assert corr.max(axis=1).min() > 0.99


# ---------------------------------------------------------------- the estimator protocol


def test_transform_inverse_and_attributes():
    x, _ = _mix(_laplace(3000, 3))
    ica = InfomaxICA(device="cpu").fit(x)
    s = ica.transform(x)
    np.testing.assert_allclose(s.std(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ica.inverse_transform(s), x, atol=1e-8)
    np.testing.assert_allclose(ica.components_ @ ica.mixing_, np.eye(3), atol=1e-10)
    np.testing.assert_allclose(ica.mean_, x.mean(axis=0))
    variance = (ica.mixing_**2).sum(axis=0)
    assert (np.diff(variance) <= 0).all()  # ordered by explained variance
    with pytest.raises(ValueError, match="columns"):
        ica.transform(x[:, :2])


def test_scikit_learn_clone_get_params_and_pipeline():
    base = pytest.importorskip("sklearn.base")
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    ica = InfomaxICA(n_components=2, max_iter=50, random_state=3, device="cpu")
    assert ica.get_params()["n_components"] == 2 and ica.get_params()["max_iter"] == 50
    twin = base.clone(ica)
    assert twin is not ica and twin.get_params() == ica.get_params()
    x, _ = _mix(_laplace(2000, 2), channels=3)
    pipe = pipeline.make_pipeline(preprocessing.StandardScaler(), InfomaxICA(n_components=2,
                                                                             device="cpu"))
    assert pipe.fit_transform(x).shape == (2000, 2)
    assert ica.set_params(tol=1e-5).tol == 1e-5


def test_not_converged_says_so():
    x, _ = _mix(_laplace(2000, 3))
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        ica = InfomaxICA(max_iter=2, device="cpu").fit(x)
    assert not ica.converged_ and ica.n_iter_ == 2


@pytest.mark.parametrize(
    "make,kwargs,match",
    [
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), {}, "NaN"),
        (lambda x: x[:3], {}, "more samples"),
        (lambda x: np.c_[x, x[:, :1] + x[:, 1:2]], {}, "rank 3 .*n_components=3"),
        (lambda x: x, {"n_components": 4}, "between 1 and 3"),
        (lambda x: np.c_[x, x[:, 0]], {"n_components": 4}, "rank 3"),
        (lambda x: np.zeros_like(x), {}, "constant"),
        (lambda x: x, {"solver": "sgd"}, "solver"),
    ],
)
def test_bad_input_is_a_clear_error(make, kwargs, match):
    x, _ = _mix(_laplace(500, 3))
    with pytest.raises(ValueError, match=match):
        InfomaxICA(device="cpu", **kwargs).fit(make(x))


def test_not_fitted_is_a_clear_error():
    with pytest.raises(ValueError, match="not fitted"):
        InfomaxICA().transform(np.ones((5, 2)))
