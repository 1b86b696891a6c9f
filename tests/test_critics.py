"""Tests for infomax.estimators.critics: shapes, pair semantics, validation."""

from __future__ import annotations

import pytest
import torch

from infomax.estimators.critics import (
    BilinearCritic,
    ConcatCritic,
    DotCritic,
    SeparableCritic,
    canonical_critic,
    make_critic,
    mlp,
)


def _xy(n=5, m=4, dx=3, dy=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dx, generator=g), torch.randn(m, dy, generator=g)


def test_mlp_layers_and_activation():
    net = mlp(3, 8, 2, layers=2, activation="relu")
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(3, 8), (8, 8), (8, 2)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 2
    assert len(mlp(3, 8, 2, layers=0)) == 1
    assert isinstance(mlp(3, 8, 2, layers=1, activation="tanh")[1], torch.nn.Tanh)
    assert isinstance(mlp(3, 8, 2, layers=1, activation=torch.nn.GELU)[1], torch.nn.GELU)
    assert net(torch.randn(7, 3)).shape == (7, 2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SeparableCritic(3, 2, hidden=16, embed_dim=4),
        lambda: ConcatCritic(3, 2, hidden=16),
        lambda: BilinearCritic(3, 2),
    ],
    ids=["separable", "concat", "bilinear"],
)
def test_shapes_and_gradients(make):
    critic = make()
    x, y = _xy()
    s = critic(x, y)
    assert s.shape == (5, 4)
    s.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
    xs, ys = _xy(6, 6)
    assert critic(xs, ys).shape == (6, 6)


def test_separable_is_dot_product_of_embeddings():
    critic = SeparableCritic(3, 2, hidden=16, embed_dim=4, layers=1)
    x, y = _xy()
    s = critic(x, y)
    for i in range(5):
        for j in range(4):
            expected = critic.g(x[i]) @ critic.h(y[j])
            torch.testing.assert_close(s[i, j], expected, rtol=1e-5, atol=1e-6)


def test_concat_equals_loop_over_pairs():
    critic = ConcatCritic(3, 2, hidden=16, layers=2)
    x, y = _xy()
    s = critic(x, y)
    ref = torch.empty(5, 4)
    for i in range(5):
        for j in range(4):
            ref[i, j] = critic.net(torch.cat([x[i], y[j]]))[0]
    torch.testing.assert_close(s, ref, rtol=1e-5, atol=1e-6)
    # diagonal = f(x_i, y_i) on paired samples
    xs, ys = _xy(6, 6)
    torch.testing.assert_close(critic(xs, ys).diagonal(), critic.pair(xs, ys), rtol=1e-5, atol=1e-6)


def test_bilinear_formula():
    critic = BilinearCritic(3, 2)
    x, y = _xy()
    torch.testing.assert_close(critic(x, y), x @ critic.weight @ y.T)
    assert torch.allclose(critic(x, y)[1, 2], x[1] @ critic.weight @ y[2])


def test_critic_with_bound_end_to_end():
    from infomax.estimators.bounds import infonce

    torch.manual_seed(0)
    critic = SeparableCritic(2, 2, hidden=32, embed_dim=8)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        x = torch.randn(32, 2, generator=g)
        y = x + 0.3 * torch.randn(32, 2, generator=g)
        loss = infonce(critic(x, y)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(32, 2, generator=g)
    y = x + 0.3 * torch.randn(32, 2, generator=g)
    with torch.no_grad():
        assert infonce(critic(x, y)).mi.item() > 1.0  # true MI = 2 log(sqrt(1.09)/0.3) = 2.49


def test_validation():
    with pytest.raises(ValueError, match="dim_x"):
        SeparableCritic(0, 2)
    with pytest.raises(ValueError, match="embed_dim"):
        SeparableCritic(2, 2, embed_dim=0)
    with pytest.raises(ValueError, match="hidden"):
        ConcatCritic(2, 2, hidden=0)
    with pytest.raises(ValueError, match="layers"):
        ConcatCritic(2, 2, layers=0)
    with pytest.raises(ValueError, match="layers"):
        mlp(2, 4, 1, layers=-1)
    with pytest.raises(ValueError, match="activation"):
        mlp(2, 4, 1, activation="swishy")
    with pytest.raises(ValueError, match="dim_y"):
        BilinearCritic(2, 2.5)  # type: ignore[arg-type]
    critic = SeparableCritic(3, 2, hidden=8, embed_dim=4)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3\)"):
        critic(torch.randn(4, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"y must have shape \(M, 2\)"):
        critic(torch.randn(4, 3), torch.randn(4))


def test_one_name_for_the_dot_critic():
    assert SeparableCritic is DotCritic
    assert canonical_critic("separable") == canonical_critic("dot") == "dot"
    assert isinstance(make_critic("separable", 3, 2, hidden=8, embed_dim=4), DotCritic)
    assert isinstance(make_critic("concat", 3, 2, hidden=8), ConcatCritic)
    assert isinstance(make_critic("bilinear", 3, 2), BilinearCritic)
    with pytest.raises(ValueError, match="alias of 'dot'"):
        canonical_critic("mlp")
