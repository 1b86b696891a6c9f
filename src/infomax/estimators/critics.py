"""Critics for variational MI bounds: modules returning all-pairs score matrices.

Each critic maps a batch ``x`` of shape ``(N, dim_x)`` and ``y`` of shape ``(M, dim_y)`` to a
score matrix ``(N, M)`` with ``scores[i, j] = f(x_i, y_j)``; for paired samples (``M = N``)
the diagonal holds the positive (joint) pairs, the score-tensor convention of
:mod:`infomax.estimators.bounds`.

References: Poole et al. 2019, "On variational bounds of mutual information" (separable and
concat critics); Song & Ermon 2020 and ermongroup/smile-mi-estimator (benchmark settings:
hidden 256, embedding 32, ReLU).

>>> critic = DotCritic(20, 20, hidden=64, embed_dim=16)
>>> critic(torch.randn(8, 20), torch.randn(8, 20)).shape
torch.Size([8, 8])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "CRITICS",
    "BilinearCritic",
    "ConcatCritic",
    "DotCritic",
    "SeparableCritic",
    "canonical_critic",
    "make_critic",
    "mlp",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "lrelu": nn.LeakyReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def _positive_int(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def mlp(
    in_dim: int,
    hidden: int,
    out_dim: int,
    layers: int = 2,
    activation: str | Callable[[], nn.Module] = "relu",
) -> nn.Sequential:
    """A multilayer perceptron with ``layers`` hidden layers of width ``hidden``.

    ``Linear(in_dim, hidden), act, [Linear(hidden, hidden), act] * (layers - 1),
    Linear(hidden, out_dim)``; ``layers=0`` is a single ``Linear(in_dim, out_dim)``. (The
    ``layers`` argument of ermongroup/smile-mi-estimator's ``mlp`` counts the extra
    hidden-to-hidden layers: its ``layers=2`` is ``layers=3`` here.)

    Args:
        activation: a name in :data:`ACTIVATIONS` or a zero-argument callable returning a module.

    Shape:
        input ``(*, in_dim)``; output ``(*, out_dim)``.
    """
    _positive_int("in_dim", in_dim)
    _positive_int("out_dim", out_dim)
    _positive_int("layers", layers, minimum=0)
    if layers > 0:
        _positive_int("hidden", hidden)
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; valid names: {', '.join(ACTIVATIONS)}"
            )
        act = ACTIVATIONS[activation]
    elif callable(activation):
        act = activation
    else:
        raise ValueError(f"activation must be a name or a callable, got {activation!r}")
    mods: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), act()]
        width = hidden
    mods.append(nn.Linear(width, out_dim))
    return nn.Sequential(*mods)


def _check_pair(x: Tensor, y: Tensor, dim_x: int, dim_y: int) -> None:
    if x.dim() != 2 or x.shape[1] != dim_x:
        raise ValueError(f"x must have shape (N, {dim_x}), got {tuple(x.shape)}")
    if y.dim() != 2 or y.shape[1] != dim_y:
        raise ValueError(f"y must have shape (M, {dim_y}), got {tuple(y.shape)}")


class DotCritic(nn.Module):
    """Dot-product critic ``f(x, y) = g(x)^T h(y)``: Poole et al. 2019's "separable" critic.

    One name in infomax, ``"dot"`` (as in the DIM objective); ``"separable"`` is accepted as an
    alias (:func:`canonical_critic`) and :class:`SeparableCritic` is this class.

    ``g`` and ``h`` are :func:`mlp` s with ``layers`` hidden layers of width ``hidden`` and output
    ``embed_dim``; all pairs cost one ``(N, embed) x (embed, M)`` matrix product.

    Shape:
        x ``(N, dim_x)``, y ``(M, dim_y)`` -> scores ``(N, M)``, ``scores[i, j] = f(x_i, y_j)``.
    """

    def __init__(
        self,
        dim_x: int,
        dim_y: int,
        hidden: int = 256,
        embed_dim: int = 32,
        layers: int = 2,
        activation: str | Callable[[], nn.Module] = "relu",
    ) -> None:
        super().__init__()
        self.dim_x = _positive_int("dim_x", dim_x)
        self.dim_y = _positive_int("dim_y", dim_y)
        _positive_int("embed_dim", embed_dim)
        self.g = mlp(dim_x, hidden, embed_dim, layers, activation)
        self.h = mlp(dim_y, hidden, embed_dim, layers, activation)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _check_pair(x, y, self.dim_x, self.dim_y)
        return self.g(x) @ self.h(y).T


class ConcatCritic(nn.Module):
    """Concat critic ``f(x, y) = MLP([x, y])`` evaluated on all ``N x M`` pairs (Poole et al.).

    Vectorised without Python loops: the first linear layer acts on ``[x_i, y_j]`` as
    ``W_x x_i + W_y y_j + b``, computed once per sample and broadcast to ``(N, M, hidden)``; the
    remaining layers run on the ``N M`` rows. Memory and time grow as ``N M hidden``.

    Shape:
        x ``(N, dim_x)``, y ``(M, dim_y)`` -> scores ``(N, M)``, ``scores[i, j] = f(x_i, y_j)``.
    """

    def __init__(
        self,
        dim_x: int,
        dim_y: int,
        hidden: int = 256,
        layers: int = 2,
        activation: str | Callable[[], nn.Module] = "relu",
    ) -> None:
        super().__init__()
        self.dim_x = _positive_int("dim_x", dim_x)
        self.dim_y = _positive_int("dim_y", dim_y)
        _positive_int("layers", layers)  # the first-layer split needs a hidden layer
        self.net = mlp(dim_x + dim_y, hidden, 1, layers, activation)

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        """``f(x_k, y_k)`` for aligned rows (no all-pairs expansion): ``(K,)``."""
        return self.net(torch.cat([x, y], dim=-1)).squeeze(-1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _check_pair(x, y, self.dim_x, self.dim_y)
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        w_x, w_y = first.weight[:, : self.dim_x], first.weight[:, self.dim_x :]
        hx = F.linear(x, w_x, first.bias)  # (N, hidden)
        hy = F.linear(y, w_y)  # (M, hidden)
        h = hx[:, None, :] + hy[None, :, :]  # (N, M, hidden)
        return self.net[1:](h).squeeze(-1)


class BilinearCritic(nn.Module):
    """Bilinear critic ``f(x, y) = x^T W y`` (Oord et al. 2018's log-bilinear CPC score).

    Shape:
        x ``(N, dim_x)``, y ``(M, dim_y)`` -> scores ``(N, M)``.
    """

    def __init__(self, dim_x: int, dim_y: int) -> None:
        super().__init__()
        self.dim_x = _positive_int("dim_x", dim_x)
        self.dim_y = _positive_int("dim_y", dim_y)
        self.weight = nn.Parameter(torch.empty(dim_x, dim_y))
        # unit-variance scores for unit-variance inputs
        nn.init.normal_(self.weight, std=(dim_x * dim_y) ** -0.5)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _check_pair(x, y, self.dim_x, self.dim_y)
        return x @ self.weight @ y.T


SeparableCritic = DotCritic  # Poole et al. 2019's name for the same critic

#: critic names; ``"separable"`` is an accepted alias of ``"dot"``
CRITICS = ("dot", "concat", "bilinear")
_CRITIC_ALIASES = {"dot": "dot", "separable": "dot", "concat": "concat", "bilinear": "bilinear"}


def canonical_critic(name: str) -> str:
    """The canonical name of a critic: ``"dot"`` (alias ``"separable"``), ``"concat"``,
    ``"bilinear"``."""
    key = str(name).lower()
    if key not in _CRITIC_ALIASES:
        raise ValueError(
            f"unknown critic {name!r}; choose one of {', '.join(CRITICS)} ('separable' is an "
            "alias of 'dot')"
        )
    return _CRITIC_ALIASES[key]


def make_critic(
    name: str,
    dim_x: int,
    dim_y: int,
    hidden: int = 256,
    embed_dim: int = 32,
    layers: int = 2,
    activation: str | Callable[[], nn.Module] = "relu",
) -> nn.Module:
    """A critic by name (see :data:`CRITICS`); ``embed_dim`` is used by ``"dot"`` only."""
    kind = canonical_critic(name)
    if kind == "dot":
        return DotCritic(dim_x, dim_y, hidden, embed_dim, layers, activation)
    if kind == "concat":
        return ConcatCritic(dim_x, dim_y, hidden, layers, activation)
    return BilinearCritic(dim_x, dim_y)
