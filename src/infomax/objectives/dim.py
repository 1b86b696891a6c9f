"""Deep InfoMax objectives: critics, score tensors and the ``DIM`` method (Hjelm et al., ICLR 2019).

The MI terms of DIM (arXiv 1808.06670, Sec. 3) compare the code ``Y = E(x)`` with

- *global*: a high-level feature of the same image (here the ``conv`` tap, as in the reference
  ``GlobalDIM``), weight ``alpha``;
- *local*: every location of the ``local`` feature map, weight ``beta`` (the paper's DIM(L));

through a critic that scores (code, feature) pairs, fed to a variational bound from
:mod:`infomax.estimators.bounds` (``jsd``, ``infonce``, ``dv``). A prior term (weight ``gamma``)
comes from :mod:`infomax.objectives.prior`.

Critics (``critic=``):

- ``"dot"`` (encode-and-dot-product, the current reference code: rdevon/DIM
  ``cortex_DIM/models/dim.py`` ``LocalDIM`` / ``GlobalDIM`` and ``nn_modules/mi_networks.py``
  ``MI1x1ConvNet``): features and code are each embedded into ``mi_units`` dimensions and every
  pair in the batch is scored by a dot product, one matmul for the whole ``(N, N, L)`` tensor.
  Positives are the diagonal of the first two dimensions (``pos_mask=None``).
- ``"concat"`` (concat-and-convolve, the first version, rdevon/DIM ``DIM.py`` @126ccf3): ``Y`` is
  tiled over the local map, concatenated and scored by 1x1 convolutions [512, 512, 1]; the
  negative of each (image, location) is the same location of another image (a random cyclic shift
  of the batch per location, so never the image itself). Scores have layout ``(N, 2, L)`` (index
  1: 0 = positive, 1 = shuffled negative) with ``pos_mask`` of shape ``(1, 2, 1)``.

Shapes: ``N`` images, ``L = H * W`` local positions, ``U = mi_units``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from infomax.distributed import SINGLE, BatchGroup
from infomax.estimators.bounds import Bound, get_bound
from infomax.models.registry import create_encoder
from infomax.objectives.base import StepContext, TrainingLosses
from infomax.objectives.prior import AdversarialPrior, gaussian_kl, reparameterize
from infomax.rng import Gen, randint
from infomax.transforms import DimAugment

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DIM",
    "PRESETS",
    "ConcatGlobalCritic",
    "ConcatLocalCritic",
    "DotGlobalCritic",
    "DotLocalCritic",
    "MIProjection",
    "dim_bound",
    "dot_scores",
    "shifted_indices",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

ESTIMATORS = ("jsd", "infonce", "dv")
_ESTIMATOR_ALIASES = {"nce": "infonce", "js": "jsd", "jsd": "jsd", "infonce": "infonce", "dv": "dv"}
CRITICS = ("dot", "concat")
PRIORS = ("adversarial", "gaussian", "none")

#: Paper presets (Sec. 4.2): DIM(G) alpha=1, beta=0, gamma=1; DIM(L) alpha=0, beta=1, gamma=0.1;
#: each with the three estimators. ``dim-l-gaussian``: the non-adversarial variant of Su (2018)
#: with that author's weights (alpha 0.5, beta 1.5, gamma 0.01), JSD and shuffled negatives.
PRESETS: dict[str, dict[str, Any]] = {
    **{
        f"dim-g-{e}": dict(alpha=1.0, beta=0.0, gamma=1.0, estimator=e, prior="adversarial")
        for e in ESTIMATORS
    },
    **{
        f"dim-l-{e}": dict(alpha=0.0, beta=1.0, gamma=0.1, estimator=e, prior="adversarial")
        for e in ESTIMATORS
    },
    "dim-l-gaussian": dict(
        alpha=0.5, beta=1.5, gamma=0.01, estimator="jsd", prior="gaussian", critic="concat"
    ),
}
PRESETS["dim-g"] = PRESETS["dim-g-jsd"]
PRESETS["dim-l"] = PRESETS["dim-l-jsd"]


# ----------------------------------------------------------------------------- pure functions


def dot_scores(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """All-pairs dot products ``scores[i, j, ...] = <anchors[i], candidates[j, ...]>`` in float32.

    One matmul (einsum) for the whole batch, computed with autocast off so the scores are exact
    float32 whatever the precision of the embeddings (rdevon/DIM ``dim_losses.py``:
    ``u = torch.mm(g, l.t()).reshape(N, N, -1)``).

    Shape:
        ``anchors`` (N, U); ``candidates`` (M, U) or (M, L, U) -> (N, M) or (N, M, L).
    """
    if anchors.dim() != 2 or candidates.dim() not in (2, 3):
        raise ValueError(
            f"anchors must be (N, U) and candidates (M, U) or (M, L, U); got "
            f"{tuple(anchors.shape)} and {tuple(candidates.shape)}"
        )
    if anchors.shape[-1] != candidates.shape[-1]:
        raise ValueError(
            f"embedding sizes differ: anchors {anchors.shape[-1]}, candidates "
            f"{candidates.shape[-1]}"
        )
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        a, c = anchors.float(), candidates.float()
        if c.dim() == 2:
            return a @ c.t()
        return torch.einsum("nu,mlu->nml", a, c)


def shifted_indices(
    n: int, positions: int, device: torch.device | str | None = None, gen: Gen = None
) -> torch.Tensor:
    """Indices ``(i + k_l) mod n`` with a random shift ``k_l`` in ``[1, n-1]`` per position ``l``.

    Picks, for every image ``i`` and position ``l``, another image of the batch (never ``i``): the
    shuffled negatives of the concat critic (rdevon/DIM first version ``DIM.py`` ``random_permute``
    permutes the batch independently per location; a cyclic shift is a permutation without fixed
    points, so no negative is accidentally a positive).

    The shifts are one draw for the whole (global) batch, the same on every process.

    Shape:
        -> (n, positions) int64.
    """
    if n < 2:
        raise ValueError(f"shuffled negatives need a batch of at least 2 images, got {n}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    shift = randint(1, n, (positions,), gen, device, shared=True)
    return (torch.arange(n, device=device)[:, None] + shift[None, :]) % n


def dim_bound(
    scores: torch.Tensor,
    pos_mask: torch.Tensor | None,
    estimator: str,
    group: BatchGroup = SINGLE,
) -> Bound:
    """The DIM MI estimate and loss of a score tensor with a variational bound.

    ``estimator``: ``jsd`` (Nowozin et al., 2016; DIM eq. 4), ``infonce`` (van den Oord et al.,
    2018; DIM eq. 5) or ``dv`` (Donsker-Varadhan; Belghazi et al., 2018). Scores are cast to
    float32.

    For ``jsd`` the reported ``mi`` is the Donsker-Varadhan value of the same critic (the one MI
    figure of a JSD-trained critic in infomax, :func:`infomax.estimators.bounds.jsd_bound`),
    finite also for the large scores of wide dot-product critics.

    Several processes: ``scores`` are the rows of this process's anchors against the candidates
    of the global batch. The JSD and InfoNCE losses are means over rows, so each process's share
    averages to the one-process loss; DV's ``log E_neg[exp T]`` is not, so for ``dv`` the rows of
    every process are gathered first (with gradients) and each process evaluates the whole bound.
    A logged JSD estimate (DV of the local rows) is then the mean over processes of their rows'
    values, close to but not exactly the one-process figure.
    """
    name = _canonical_estimator(estimator)
    s = scores.float()
    if name == "dv" and group.distributed:
        s, pos_mask = _gather_rows(s, pos_mask, group)
    bound = get_bound(name)(s, pos_mask)
    return Bound(mi=bound.mi.detach(), loss=bound.loss)


def _gather_rows(
    s: torch.Tensor, pos_mask: torch.Tensor | None, group: BatchGroup
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The score rows of every process, and their positive mask."""
    if pos_mask is not None and pos_mask.shape[0] > 1:  # a per-row mask: gather it too
        rows = pos_mask.expand(s.shape[0], *pos_mask.shape[1:]).to(torch.uint8)
        pos_mask = group.gather(rows).bool()
    return group.gather(s), pos_mask


def _canonical_estimator(name: str) -> str:
    key = str(name).lower()
    if key not in _ESTIMATOR_ALIASES:
        raise ValueError(f"unknown DIM estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    return _ESTIMATOR_ALIASES[key]


def _locations(feature_map: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W, C)."""
    if feature_map.dim() != 4:
        raise ValueError(f"expected a (N, C, H, W) feature map, got {tuple(feature_map.shape)}")
    return feature_map.flatten(2).transpose(1, 2)


# ----------------------------------------------------------------------------- critic networks


class MIProjection(nn.Module):
    """Embedding net of the dot critic (rdevon/DIM ``MI1x1ConvNet`` / ``MIFCNet``).

    ``LayerNorm(block(x) + shortcut(x))`` with ``block = linear (no bias) -> BN -> ReLU -> linear``
    and ``shortcut`` a bias-free linear map initialised near the identity (off-diagonal weights
    uniform in [-0.01, 0.01], diagonal 1) when ``units >= in_features``. Acting on the channel
    axis it is the reference's 1x1-conv net: batch norm statistics pool all images and positions.

    Shape:
        (..., in_features) -> (..., units).
    """

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        if units < 1:
            raise ValueError(f"mi_units must be >= 1, got {units}")
        self.in_features, self.units = int(in_features), int(units)
        self.block = nn.Sequential(
            nn.Linear(in_features, units, bias=False),
            nn.BatchNorm1d(units),
            nn.ReLU(inplace=True),
            nn.Linear(units, units),
        )
        self.shortcut = nn.Linear(in_features, units, bias=False)
        self.norm = nn.LayerNorm(units)
        if units >= in_features:
            with torch.no_grad():
                self.shortcut.weight.uniform_(-0.01, 0.01)
                idx = torch.arange(in_features)
                self.shortcut.weight[idx, idx] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        h = x.reshape(-1, self.in_features)
        h = self.norm(self.block(h) + self.shortcut(h))
        return h.reshape(*lead, self.units)


class DotLocalCritic(nn.Module):
    """Local encode-and-dot-product critic: scores ``[i, j, l] = <g(y_i), f(local_{j,l})>``.

    Reference: rdevon/DIM ``models/dim.py`` ``LocalDIM.build`` (``MI1x1ConvNet`` on the local map
    and on ``Y`` seen as a 1x1 map) and ``dim_losses.py`` (``u = mm(g, l.t())``).
    """

    def __init__(self, local_channels: int, code_dim: int, units: int = 2048) -> None:
        super().__init__()
        self.local_net = MIProjection(local_channels, units)
        self.code_net = MIProjection(code_dim, units)

    def forward(
        self, local: torch.Tensor, code: torch.Tensor, context: StepContext | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        group = (context or StepContext()).group
        candidates = group.gather(self.local_net(_locations(local)))
        mask = group.positive_mask(code.shape[0], code.device, trailing=1)
        return dot_scores(self.code_net(code), candidates), mask


class DotGlobalCritic(nn.Module):
    """Global encode-and-dot-product critic: scores (N, N), ``[i, j] = <g(y_i), f(conv_j)>``.

    Reference: rdevon/DIM ``models/dim.py`` ``GlobalDIM.build``: the feature side copies the
    encoder's layers after the tapped feature with the last replaced by ``linear(mi_units)`` (here:
    flatten -> [linear(h) + BN + ReLU for h in hidden] -> linear(mi_units)); the code side is
    ``layers[global_idx:]`` with the same replacement, i.e. a single ``linear(mi_units)``.
    """

    def __init__(
        self, feature_dim: int, code_dim: int, units: int = 2048, hidden: Sequence[int] = (1024,)
    ) -> None:
        super().__init__()
        if units < 1:
            raise ValueError(f"mi_units must be >= 1, got {units}")
        layers: list[nn.Module] = []
        d = feature_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            d = h
        layers.append(nn.Linear(d, units))
        self.feature_net = nn.Sequential(*layers)
        self.code_net = nn.Linear(code_dim, units)

    def forward(
        self, feature: torch.Tensor, code: torch.Tensor, context: StepContext | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        group = (context or StepContext()).group
        candidates = group.gather(self.feature_net(feature.flatten(1)))
        mask = group.positive_mask(code.shape[0], code.device)
        return dot_scores(self.code_net(code), candidates), mask


class ConcatLocalCritic(nn.Module):
    """Concat-and-convolve local critic: 1x1 convs [512, 512, 1] on ``[tile(Y), local]``.

    Reference: rdevon/DIM first version ``DIM.py`` (``topnet``: ``SimpleConvEncoder`` with
    ``f_size=1, dim_h=[512, 512, 1]``, no batch norm; scores of positives and of local maps
    shuffled across the batch). The first 1x1 conv on the concatenation is computed as
    ``W_local @ local + W_code @ y`` (identical, without materialising the tiled tensor), so a
    negative costs only a gather of the local half.

    Returns scores (N, 2, L) (index 0 = positive, 1 = shuffled negative) and the positive mask
    ``(1, 2, 1)``.
    """

    def __init__(self, local_channels: int, code_dim: int, hidden: Sequence[int] = (512, 512)):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("the concat critic needs at least one hidden layer")
        self.local_in = nn.Linear(local_channels, hidden[0])
        self.code_in = nn.Linear(code_dim, hidden[0], bias=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(hidden[-1], 1))
        self.top = nn.Sequential(*layers)

    def forward(
        self, local: torch.Tensor, code: torch.Tensor, context: StepContext | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = context or StepContext()
        a = self.local_in(_locations(local))  # (n, L, H)
        n, positions = a.shape[:2]
        a_all = ctx.group.gather(a)  # (N, L, H): the negatives come from the global batch
        idx = shifted_indices(a_all.shape[0], positions, a.device, ctx.rng)
        start = ctx.group.offset(n)
        a_neg = a_all[idx[start : start + n], torch.arange(positions, device=a.device)]
        b = self.code_in(code)[:, None, :]  # (N, 1, H)
        scores = self.top(torch.stack([a + b, a_neg + b], dim=1)).squeeze(-1)  # (N, 2, L)
        mask = (torch.arange(2, device=scores.device) == 0).view(1, 2, 1)  # no host copy
        return scores.float(), mask


class ConcatGlobalCritic(nn.Module):
    """Concat global critic: an MLP [512, 512, 1] on ``[Y, flatten(conv)]``, shuffled negatives.

    The global counterpart of :class:`ConcatLocalCritic` (one "location"). Returns scores (N, 2)
    and the positive mask ``(1, 2)``.
    """

    def __init__(self, feature_dim: int, code_dim: int, hidden: Sequence[int] = (512, 512)):
        super().__init__()
        self.inner = ConcatLocalCritic(feature_dim, code_dim, hidden)

    def forward(
        self, feature: torch.Tensor, code: torch.Tensor, context: StepContext | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scores, mask = self.inner(feature.flatten(1)[:, :, None, None], code, context)
        return scores[..., 0], mask[..., 0]


# ----------------------------------------------------------------------------- the method


def _settings(preset: str | None, **given: Any) -> dict[str, Any]:
    """The preset's loss settings with the explicitly given ones on top, checked."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown DIM preset {preset!r}; valid: {', '.join(sorted(PRESETS))}")
    cfg: dict[str, Any] = {"critic": "dot", **PRESETS[preset or "dim-l-jsd"]}
    cfg.update({k: v for k, v in given.items() if v is not None})
    out = {
        "estimator": _canonical_estimator(cfg["estimator"]),
        "critic": str(cfg["critic"]).lower(),
        "prior": str(cfg["prior"]).lower(),
        **{k: float(cfg[k]) for k in ("alpha", "beta", "gamma")},
    }
    if out["critic"] not in CRITICS:
        raise ValueError(f"unknown DIM critic {cfg['critic']!r}; valid: {', '.join(CRITICS)}")
    if out["prior"] not in PRIORS:
        raise ValueError(f"unknown DIM prior {cfg['prior']!r}; valid: {', '.join(PRIORS)}")
    if min(out["alpha"], out["beta"], out["gamma"]) < 0:
        raise ValueError("alpha, beta and gamma must be >= 0")
    if out["alpha"] == 0 and out["beta"] == 0 and (out["gamma"] == 0 or out["prior"] == "none"):
        raise ValueError("nothing to train: set alpha (global MI) or beta (local MI) > 0")
    return out


def _make_transform(
    augment: dict[str, Any] | str | None, mean: Sequence[float], std: Sequence[float]
) -> DimAugment:
    if augment is None:
        return DimAugment(mean=mean, std=std)
    if isinstance(augment, str):
        return DimAugment.preset(augment, mean=mean, std=std)
    if isinstance(augment, dict):
        if "mean" in augment or "std" in augment:
            raise ValueError("set the normalisation with DIM(mean=..., std=...), not in augment")
        return DimAugment(mean=mean, std=std, **augment)
    raise ValueError(
        "augment must be None, a DimAugment preset name or a dict of its arguments, got "
        f"{augment!r}"
    )


class DIM(nn.Module):
    """Deep InfoMax (Hjelm et al., ICLR 2019): encoder + MI critics + prior, as one method.

    Follows the method protocol of ``docs/architecture.md``: :meth:`training_losses`,
    :meth:`aux_parameters`, :meth:`features`. The default is the DIM(L)-JSD preset with the
    adversarial prior; ``preset`` picks one of :data:`PRESETS` and explicit arguments override it.

    Args:
        encoder: registered encoder name (``dim32``, ``dim64``, ``dim32-tiny``, ...).
        in_channels, image_size, code_dim: passed to the encoder.
        estimator: ``jsd``, ``infonce`` (alias ``nce``) or ``dv``.
        critic: ``dot`` (encode-and-dot-product, all pairs) or ``concat`` (concat-and-convolve,
            shuffled negatives).
        mi_units: embedding size of the dot critic (reference 2048).
        alpha, beta, gamma: weights of the global MI, local MI and prior terms.
        prior: ``adversarial`` (uniform prior, discriminator, the paper), ``gaussian`` (KL to
            N(0, I) with a log-variance head on the ``fc`` tap; the MI terms use the
            reparameterised ``z``) or ``none``.
        preset: a key of :data:`PRESETS`; ``None`` means ``dim-l-jsd``.
        mean, std: per-channel normalisation in [0, 1] units (default CIFAR-10 statistics).
        augment: the training augmentation, an ``infomax.transforms.DimAugment`` preset name
            (``cifar``: none, ``cifar_light``, ``stl10``: random 64x64 crops) or a dict of its
            keyword arguments (``crop_size``, ``padding``, ``flip_p``, ``pad_mode``); ``None``: no
            augmentation (the reference setting for CIFAR). With a crop, the encoder is built for
            ``crop_size`` inputs and :meth:`features` takes the centre crop.
        gradient_penalty: weight of the discriminator's gradient penalty (reference 1.0).
        encoder_kwargs: extra keyword arguments of the encoder (e.g. ``width``).

    >>> dim = DIM.from_preset("dim-l-infonce", encoder="dim32-tiny", mi_units=64)  # doctest: +SKIP
    >>> out = dim.training_losses(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
    >>> out["loss"].backward()                                                    # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: str = "dim32",
        in_channels: int = 3,
        image_size: int = 32,
        code_dim: int = 64,
        estimator: str | None = None,
        critic: str | None = None,
        mi_units: int = 2048,
        alpha: float | None = None,
        beta: float | None = None,
        gamma: float | None = None,
        prior: str | None = None,
        preset: str | None = None,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        augment: dict[str, Any] | str | None = None,
        gradient_penalty: float = 1.0,
        encoder_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        cfg = _settings(preset, estimator=estimator, critic=critic, alpha=alpha, beta=beta,
                        gamma=gamma, prior=prior)  # fmt: skip
        self.estimator, self.critic, self.prior = cfg["estimator"], cfg["critic"], cfg["prior"]
        self.alpha, self.beta, self.gamma = cfg["alpha"], cfg["beta"], cfg["gamma"]
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(
                f"mean and std need one value per channel ({in_channels}); got {len(mean)} and "
                f"{len(std)} values: pass mean=..., std=... for this dataset"
            )
        self.in_channels = int(in_channels)
        self.transform = _make_transform(augment, mean, std)
        # a training crop fixes the encoder's input size (STL-10: 64x64 crops of 96x96 images)
        image_size = int(self.transform.crop_size or image_size)
        self.encoder = create_encoder(
            encoder,
            in_channels=in_channels,
            image_size=image_size,
            code_dim=code_dim,
            **(encoder_kwargs or {}),
        )
        self.probe_taps = tuple(getattr(self.encoder, "probe_taps", ("conv", "fc", "y")))
        shapes = self._tap_shapes(in_channels, image_size)
        fc_dim, code = shapes["fc"][0], shapes["y"][0]
        self.global_critic, self.local_critic = self._critics(shapes, mi_units)
        self.adversarial: AdversarialPrior | None = None
        self.logvar_head: nn.Linear | None = None
        if self.gamma > 0 and self.prior == "adversarial":
            self.adversarial = AdversarialPrior(code, penalty=gradient_penalty)
        if self.prior == "gaussian":
            # Gaussian encoder q(z|x) = N(y, exp(logvar)): the encoder's y is the mean, this head
            # on the fc tap gives the log-variance (bojone/infomax: two Dense heads on the same
            # hidden layer), so the encoder itself stays the paper's.
            self.logvar_head = nn.Linear(fc_dim, code)

    def _critics(
        self, shapes: dict[str, tuple[int, ...]], mi_units: int
    ) -> tuple[nn.Module | None, nn.Module | None]:
        """The global and local critics (``None`` where the term's weight is 0)."""
        local_channels, conv_dim = shapes["local"][0], math.prod(shapes["conv"])
        code = shapes["y"][0]
        global_critic = local_critic = None
        if self.alpha > 0:
            if self.critic == "dot":
                hidden = tuple(getattr(self.encoder, "fc_widths", (shapes["fc"][0],)))
                global_critic = DotGlobalCritic(conv_dim, code, mi_units, hidden)
            else:
                global_critic = ConcatGlobalCritic(conv_dim, code)
        if self.beta > 0:
            if self.critic == "dot":
                local_critic = DotLocalCritic(local_channels, code, mi_units)
            else:
                local_critic = ConcatLocalCritic(local_channels, code)
        return global_critic, local_critic

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> DIM:
        """A DIM built from :data:`PRESETS` ``name``, with ``overrides`` taking precedence."""
        return cls(preset=name, **overrides)

    def _tap_shapes(self, in_channels: int, image_size: int) -> dict[str, tuple[int, ...]]:
        shapes = getattr(self.encoder, "tap_shapes", None)
        if shapes is None:  # an encoder without declared shapes: one dry run on two images
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                taps = self.encoder(torch.zeros(2, in_channels, image_size, image_size))
            self.encoder.train(was_training)
            shapes = {k: tuple(v.shape[1:]) for k, v in taps.items()}
        missing = {"local", "conv", "fc", "y"} - set(shapes)
        if missing:
            raise ValueError(
                f"DIM needs an encoder with taps local, conv, fc, y; missing {sorted(missing)}"
            )
        return dict(shapes)

    def _checked(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images (N, {self.in_channels}, H, W), got {tuple(images.shape)}"
            )
        return images

    def aux_parameters(self) -> list[nn.Parameter]:
        """The adversarial discriminator's parameters (empty without an adversarial prior)."""
        return [] if self.adversarial is None else list(self.adversarial.parameters())

    def training_losses(
        self, images: torch.Tensor, context: StepContext | None = None
    ) -> TrainingLosses:
        """Losses of one batch of uint8 images (augmented and normalised here).

        ``loss`` trains all parameters but :meth:`aux_parameters`, ``aux_loss`` (the adversarial
        prior's discriminator loss) those only; ``features`` is the detached flattened ``conv``
        tap, for online probes. Terms (checked): ``loss_global``, ``loss_local``, ``prior`` (the
        generator loss or the KL). Estimates: ``mi_global``, ``mi_local`` (nats; for ``jsd`` the
        DV value of its critic, see :func:`dim_bound`) and, for the adversarial prior,
        ``gradient_penalty``, ``d_prior``, ``d_code`` (mean discriminator logits). No host-device
        synchronisation. ``context``: the step's random numbers and batch split (trainer).
        """
        ctx = context or StepContext()
        taps = self.encoder(self.transform(self._checked(images), ctx.rng))
        code = taps["y"]
        out = TrainingLosses(loss=code.new_zeros(()), features=taps["conv"].detach().flatten(1))
        losses: list[torch.Tensor] = []
        if self.logvar_head is not None:
            mu, logvar = code.float(), self.logvar_head(taps["fc"]).float()
            kl = gaussian_kl(mu, logvar)
            code = reparameterize(mu, logvar, ctx.rng)
            out.terms["prior"] = kl.detach()
            if self.gamma > 0:
                losses.append(self.gamma * kl)
        for name, critic, feature, weight in (
            ("global", self.global_critic, "conv", self.alpha),
            ("local", self.local_critic, "local", self.beta),
        ):
            if critic is not None:
                bound = dim_bound(*critic(taps[feature], code, ctx), self.estimator, ctx.group)
                losses.append(weight * bound.loss)
                out.terms[f"loss_{name}"] = bound.loss.detach()
                out.estimates[f"mi_{name}"] = bound.mi.detach()
        if self.adversarial is not None:
            adv = self.adversarial(taps["y"], ctx.rng)
            losses.append(self.gamma * adv["generator_loss"])
            out.aux_loss = adv["discriminator_loss"]
            out.terms["prior"] = adv["generator_loss"].detach()
            for key in ("gradient_penalty", "d_prior", "d_code"):
                out.estimates[key] = adv[key]
        out.loss = torch.stack([t.float() for t in losses]).sum()
        return out

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's taps on normalised, un-augmented images (caller sets eval / no_grad)."""
        return self.encoder(self.transform.eval_transform(self._checked(images)))
