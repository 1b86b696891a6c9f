"""Linsker's noisy linear layer: closed forms, invariances, water-filling, the two regimes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infomax.linsker import (
    apply_constraint,
    gaussian_channel_capacity,
    gaussian_entropy,
    linear_gaussian_mi,
    local_mask,
    maximize_linear_mi,
    stationary_covariance,
    total_power_optimum,
    water_filling,
)

D = torch.float64


def _spd(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=D)
    return a @ a.T + 0.5 * torch.eye(n, dtype=D)


def _w(m, n, seed=1):
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed), dtype=D)


def test_gaussian_entropy_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    c = _spd(4)
    expected = stats.multivariate_normal(mean=np.zeros(4), cov=c.numpy()).entropy()
    assert float(gaussian_entropy(c)) == pytest.approx(expected, rel=1e-12)


def test_mi_is_the_entropy_difference_with_input_and_output_noise():
    c, w = _spd(5), _w(3, 5)
    n_in, n_out = 0.3 * _spd(5, seed=2), _spd(3, seed=3)
    h_y = gaussian_entropy(w @ (c + n_in) @ w.T + n_out)
    h_y_given_x = gaussian_entropy(w @ n_in @ w.T + n_out)
    mi = linear_gaussian_mi(w, c, output_noise=n_out, input_noise=n_in)
    assert float(mi) == pytest.approx(float(h_y - h_y_given_x), rel=1e-12)
    # one unit: 1/2 log(1 + w^2 lambda / sigma^2)
    one = linear_gaussian_mi(torch.tensor([[2.0]], dtype=D), torch.tensor([[3.0]], dtype=D), 0.5)
    assert float(one) == pytest.approx(0.5 * math.log(1 + 4 * 3 / 0.5))


def test_gradient_from_autograd_equals_the_matrix_formula():
    c, w = _spd(4), _w(2, 4).requires_grad_(True)
    linear_gaussian_mi(w, c, output_noise=0.7).backward()
    wd = w.detach()
    # d/dW 1/2 log det(W C W^T + s I) = (W C W^T + s I)^{-1} W C
    expected = torch.linalg.solve(wd @ c @ wd.T + 0.7 * torch.eye(2, dtype=D), wd @ c)
    torch.testing.assert_close(w.grad, expected)


def test_invariances():
    c, w = _spd(4), _w(3, 4)
    base = float(linear_gaussian_mi(w, c, output_noise=0.5))
    q, _ = torch.linalg.qr(_w(3, 3, seed=7))
    # rotating the outputs (white output noise)
    assert float(linear_gaussian_mi(q @ w, c, output_noise=0.5)) == pytest.approx(base)
    # scaling the weights and the noise's standard deviation together
    assert float(linear_gaussian_mi(3 * w, c, output_noise=4.5)) == pytest.approx(base)
    # re-expressing the input: x' = A x, W' = W A^{-1}
    a = _spd(4, seed=9)
    w2 = w @ torch.linalg.inv(a)
    assert float(linear_gaussian_mi(w2, a @ c @ a.T, output_noise=0.5)) == pytest.approx(base)
    # an invertible W with input noise only keeps all the information the input carries
    n_in = 0.2 * torch.eye(4, dtype=D)
    square = _w(4, 4, seed=11)
    expected = 0.5 * (torch.logdet(c + n_in) - torch.logdet(n_in))
    got = linear_gaussian_mi(square, c, output_noise=0.0, input_noise=n_in)
    assert float(got) == pytest.approx(float(expected))


def test_no_noise_is_a_clear_error():
    with pytest.raises(ValueError, match="infinite"):
        linear_gaussian_mi(_w(2, 3), _spd(3), output_noise=0.0)
    with pytest.raises(ValueError, match="input_cov"):
        linear_gaussian_mi(_w(2, 3), _spd(4))


def test_water_filling_known_allocation():
    p, mu = water_filling(torch.tensor([2.0, 1.0, 4.0]), 3.0)
    torch.testing.assert_close(p, torch.tensor([1.0, 2.0, 0.0], dtype=D))
    assert mu == pytest.approx(3.0)
    cap = gaussian_channel_capacity(torch.tensor([2.0, 1.0, 4.0]), 3.0)
    assert cap == pytest.approx(0.5 * (math.log(1 + 1 / 2) + math.log(1 + 2 / 1)))
    # every other split of the budget does worse
    rng = np.random.default_rng(0)
    for _ in range(50):
        split = rng.dirichlet(np.ones(3)) * 3.0
        assert 0.5 * np.log1p(split / np.array([2.0, 1.0, 4.0])).sum() <= cap + 1e-12


def test_total_power_optimum_is_water_filling_and_gradient_ascent_reaches_it():
    cov = stationary_covariance(6, 2.0)
    for noise in (0.05, 2.0):
        closed, w_star = total_power_optimum(cov, 2, power=2.0, output_noise=noise)
        assert float((w_star**2).sum()) == pytest.approx(2.0)
        assert float(linear_gaussian_mi(w_star, cov, noise)) == pytest.approx(closed)
        found = maximize_linear_mi(cov, 2, "total_power", power=2.0, output_noise=noise)
        assert found.mi == pytest.approx(closed, rel=1e-6)
        w_rand = apply_constraint(_w(2, 6), "total_power", 2.0)
        assert float(linear_gaussian_mi(w_rand, cov, noise)) < closed


def _signal_corr(w, cov):
    s = w @ cov @ w.T
    return float(s[0, 1] / torch.sqrt(s[0, 0] * s[1, 1]))


def test_low_noise_spreads_outputs_high_noise_makes_them_redundant():
    cov = stationary_covariance(6, 2.0)
    lam, vec = torch.linalg.eigh(cov)
    top = vec[:, -1]
    high = maximize_linear_mi(cov, 2, "unit_norm", output_noise=100.0).weights
    # high noise: both outputs take the direction of largest variance (highest SNR)
    assert abs(_signal_corr(high, cov)) > 0.999
    assert (high @ top).abs().min() > 0.99
    low = maximize_linear_mi(cov, 2, "unit_norm", output_noise=1e-3).weights
    # low noise: two orthogonal filters in the leading eigen-directions (the largest, then the
    # degenerate cos/sin pair of the next spatial frequency)
    assert torch.allclose(lam[-3], lam[-2])
    assert abs(float(low[0] @ low[1])) < 1e-3
    assert float((low @ vec[:, -3:]).square().sum()) == pytest.approx(2.0, abs=1e-3)
    assert abs(_signal_corr(low, cov)) < abs(_signal_corr(high, cov)) - 0.3
    torch.testing.assert_close(low.norm(dim=1), torch.ones(2, dtype=D))


def test_stationary_covariance_is_circulant_positive_and_unit_variance():
    c = stationary_covariance(8, 2.0)
    assert torch.allclose(c.diagonal(), torch.ones(8, dtype=D))
    assert torch.allclose(c[1], torch.roll(c[0], 1))  # circulant
    lam = torch.linalg.eigvalsh(c)
    spectrum = torch.fft.fft(c[0]).real  # eigenvalues = the power spectrum
    torch.testing.assert_close(torch.sort(spectrum).values, lam)
    assert float(lam.min()) > 0
    c2 = stationary_covariance((4, 5), 1.5, kind="gaussian")
    assert c2.shape == (20, 20) and float(torch.linalg.eigvalsh(c2).min()) > -1e-12
    with pytest.raises(ValueError, match="kind"):
        stationary_covariance(4, kind="cauchy")


def test_local_mask_windows():
    mask = local_mask(12, 4, 1)
    assert mask.sum(dim=1).tolist() == [3, 3, 3, 3]
    assert mask[0].nonzero().flatten().tolist() == [0, 1, 11]  # periodic
    w = apply_constraint(_w(4, 12), "unit_norm", 1.0, mask)
    assert bool((w[~mask] == 0).all())
    torch.testing.assert_close(w.norm(dim=1), torch.ones(4, dtype=D))
