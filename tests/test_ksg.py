"""KSG estimator: closed-form Gaussian MI, independence, invariances, brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infomax.estimators.ksg import ksg_estimate, ksg_mi, ksg_pointwise, ksg_stderr, preprocess


def corr_gauss(n: int, rho: float, d: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    return x, y


def gauss_mi(rho: float, d: int = 1) -> float:
    return -0.5 * d * math.log(1 - rho**2)


def brute_force_ksg(x: np.ndarray, y: np.ndarray, k: int = 3, algorithm: int = 1) -> float:
    """Kraskov et al. (2004) eqs. 8 and 9 with explicit Python loops (reference)."""
    from scipy.special import digamma

    n = len(x)
    total = 0.0
    for i in range(n):
        dx = [np.abs(x[i] - x[j]).max() for j in range(n)]
        dy = [np.abs(y[i] - y[j]).max() for j in range(n)]
        dz = [max(dx[j], dy[j]) if j != i else np.inf for j in range(n)]
        nbrs = sorted(range(n), key=lambda j: dz[j])[:k]
        if algorithm == 1:
            eps = dz[nbrs[-1]]
            nx = sum(1 for j in range(n) if j != i and dx[j] < eps)
            ny = sum(1 for j in range(n) if j != i and dy[j] < eps)
            total += digamma(nx + 1) + digamma(ny + 1)
        else:
            ex = max(dx[j] for j in nbrs)
            ey = max(dy[j] for j in nbrs)
            nx = sum(1 for j in range(n) if j != i and dx[j] <= ex)
            ny = sum(1 for j in range(n) if j != i and dy[j] <= ey)
            total += digamma(nx) + digamma(ny)
    extra = -1.0 / k if algorithm == 2 else 0.0
    return digamma(k) + digamma(n) + extra - total / n


@pytest.mark.parametrize("algorithm", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_loop(algorithm, k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((50, 2))
    y = x[:, :1] ** 3 + 0.5 * rng.standard_normal((50, 3))
    ref = brute_force_ksg(x, y, k=k, algorithm=algorithm)
    got = ksg_mi(x, y, k=k, algorithm=algorithm, transform="none", jitter=0.0)
    assert got == pytest.approx(ref, abs=1e-10)


def test_chunking_does_not_change_result():
    x, y = corr_gauss(300, 0.7, d=2)
    full = ksg_mi(x, y, chunk_elements=10**9)
    chunked = ksg_mi(x, y, chunk_elements=1000)  # 3 rows per chunk
    assert chunked == pytest.approx(full, abs=1e-12)


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
def test_correlated_gaussians(rho):
    x, y = corr_gauss(2000, rho, seed=1)
    assert ksg_mi(x, y) == pytest.approx(gauss_mi(rho), abs=0.06)


def test_multivariate_gaussian():
    x, y = corr_gauss(2000, 0.8, d=2, seed=2)
    assert ksg_mi(x, y) == pytest.approx(gauss_mi(0.8, d=2), abs=0.1)


def test_independent_is_near_zero():
    rng = np.random.default_rng(3)
    x = rng.exponential(size=(2000, 1))
    y = rng.standard_normal((2000, 2))
    assert abs(ksg_mi(x, y)) < 0.03


def test_symmetry():
    x, y = corr_gauss(500, 0.6, d=2, seed=4)
    y = np.concatenate([y, y[:, :1] ** 2], axis=1)
    assert ksg_mi(x, y, jitter=0) == pytest.approx(ksg_mi(y, x, jitter=0), abs=1e-12)


def test_invariance_under_monotone_transforms():
    x, y = corr_gauss(1000, 0.8, seed=5)
    base = ksg_mi(x, y)
    # the rank transform makes the estimate exactly invariant to increasing maps
    assert ksg_mi(np.exp(x), np.sinh(2 * y) ** 3) == pytest.approx(base, abs=1e-12)
    # and to decreasing ones up to the tie-breaking jitter (ranks are mirrored)
    assert ksg_mi(-x, y) == pytest.approx(base, abs=0.02)
    # without it the estimate changes but stays close to the truth at this MI
    std = ksg_mi(np.exp(x), y**3, transform="standardize")
    assert std == pytest.approx(gauss_mi(0.8), abs=0.12)


def test_ties_are_broken_by_jitter():
    rng = np.random.default_rng(6)
    x = rng.integers(0, 50, size=(1000, 1)).astype(float)
    y = x + rng.standard_normal((1000, 1))
    est = ksg_mi(x, y, transform="standardize")
    assert math.isfinite(est)
    assert ksg_mi(x, y, transform="standardize", seed=1) != est  # the seed drives the jitter


def test_torch_input_and_float32():
    x, y = corr_gauss(400, 0.7, seed=7)
    a = ksg_mi(x, y)
    b = ksg_mi(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert b == pytest.approx(a, abs=0.02)


def test_stderr_is_plausible():
    x, y = corr_gauss(2000, 0.9, seed=8)
    mi, se = ksg_estimate(x, y)
    assert mi == pytest.approx(ksg_mi(x, y), abs=1e-12)
    assert 0.003 < se < 0.05
    assert ksg_stderr(x, y) == pytest.approx(se, abs=1e-12)
    assert math.isnan(ksg_stderr(x[:30], y[:30]))


def test_rank_preprocess_is_gaussian_scores():
    x = torch.tensor([[3.0], [1.0], [2.0]], dtype=torch.float64)
    z = preprocess(x, "rank", jitter=0)
    expected = torch.special.ndtri(torch.tensor([[0.75], [0.25], [0.5]], dtype=torch.float64))
    assert torch.allclose(z, expected)


def test_errors():
    x, y = corr_gauss(50, 0.5)
    with pytest.raises(ValueError, match="same number of samples"):
        ksg_mi(x, y[:40])
    with pytest.raises(ValueError, match="k must"):
        ksg_mi(x, y, k=50)
    with pytest.raises(ValueError, match="algorithm"):
        ksg_pointwise(torch.from_numpy(x), torch.from_numpy(y), algorithm=3)
    with pytest.raises(ValueError, match="NaN"):
        ksg_mi(np.full((50, 1), np.nan), y)
    with pytest.raises(ValueError, match="preprocessing"):
        ksg_mi(x, y, transform="copula")


# ------------------------------------------------------------------ backends, conditional form


@pytest.mark.parametrize("algorithm", [1, 2])
def test_tree_and_torch_backends_agree(algorithm):
    x, y = corr_gauss(600, 0.7, d=2, seed=11)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    a = ksg_pointwise(xt, yt, 3, algorithm=algorithm, backend="tree")
    b = ksg_pointwise(xt, yt, 3, algorithm=algorithm, backend="torch", chunk_elements=5000)
    torch.testing.assert_close(a, b)
    small = ksg_pointwise(xt[:150], yt[:150], 3, algorithm=algorithm, backend="tree")
    assert float(small.mean()) == pytest.approx(brute_force_ksg(x[:150], y[:150], 3, algorithm))


def test_tree_backend_matches_loop_reference_with_duplicates():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((120, 1))
    y = x + 0.3 * rng.standard_normal((120, 1))
    x[5] = x[6]  # an exact duplicate in X
    ref = brute_force_ksg(x, y, 3)
    got = float(ksg_pointwise(torch.from_numpy(x), torch.from_numpy(y), 3, backend="tree").mean())
    assert got == pytest.approx(ref, abs=1e-9)


def _gauss_chain_and_collider(n: int, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, 1))
    # chain X -> Z -> Y: X and Y independent given Z
    z = a + 0.5 * rng.standard_normal((n, 1))
    y = z + 0.5 * rng.standard_normal((n, 1))
    chain = (a, y, z)
    # collider X -> Z <- Y with Z = X + Y + N(0, 1): I(X; Y) = 0, I(X; Y | Z) from the partial
    # correlation -(1/3) / (2/3) = -0.5: -0.5 log(1 - 0.25)
    b = rng.standard_normal((n, 1))
    collider = (a, b, a + b + rng.standard_normal((n, 1)))
    return chain, collider


def test_frenzel_pompe_chain_and_collider_closed_forms():
    from infomax.estimators.ksg import ksg_cmi_pointwise

    (cx, cy, cz), (kx, ky, kz) = _gauss_chain_and_collider(3000, 13)
    t = torch.from_numpy
    assert float(ksg_cmi_pointwise(t(cx), t(cy), t(cz), 3).mean()) == pytest.approx(0.0, abs=0.03)
    collider = float(ksg_cmi_pointwise(t(kx), t(ky), t(kz), 3).mean())
    assert collider == pytest.approx(-0.5 * math.log(0.75), abs=0.03)  # 0.144
    assert ksg_mi(kx, ky) == pytest.approx(0.0, abs=0.03)
    # backends agree on the conditional form too
    a = ksg_cmi_pointwise(t(kx[:400]), t(ky[:400]), t(kz[:400]), 3, backend="tree")
    b = ksg_cmi_pointwise(t(kx[:400]), t(ky[:400]), t(kz[:400]), 3, backend="torch")
    torch.testing.assert_close(a, b)


def test_frenzel_pompe_reduces_to_ksg_for_constant_z():
    x, y = corr_gauss(500, 0.8, seed=14)
    z = np.zeros((500, 1))
    t = torch.from_numpy
    from infomax.estimators.ksg import ksg_cmi_pointwise

    cmi = float(ksg_cmi_pointwise(t(x), t(y), t(z), 3).mean())
    # with Z constant n_z = N - 1 for every sample: psi(N) - psi(k) differ only by that term
    assert cmi == pytest.approx(float(ksg_pointwise(t(x), t(y), 3).mean()), abs=1e-9)


def test_tree_counts_in_threads_equal_brute_force():
    """Above 10,000 samples the tree's radius counts run in row chunks on several threads: the
    same counts as the brute-force torch search, strict and inclusive."""
    from infomax.estimators.neighbors import count_within

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((12_000, 3)))
    r = torch.from_numpy(rng.uniform(0.0, 0.5, 12_000))
    for strict in (True, False):
        tree = count_within([x], r, strict=strict, backend="tree")
        brute = count_within([x], r, strict=strict, backend="torch")
        assert torch.equal(tree, brute)
