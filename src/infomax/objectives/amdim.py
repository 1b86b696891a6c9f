"""Augmented Multiscale Deep InfoMax: the multiscale NCE and the ``AMDIM`` method.

Bachman, Hjelm, Buchwalter, "Learning Representations by Maximizing Mutual Information Across
Views", NeurIPS 2019 (arXiv 1906.00910); reference code Philip-Bachman/amdim-public
(``costs.py`` ``NCE_MI_MULTI`` / ``LossMultiNCE``, ``model.py`` ``Model``).

Two augmented views of each image go through the encoder (:mod:`infomax.models.amdim`), giving
``r1`` (1x1), ``r5`` (5x5) and ``r7`` (7x7) embeddings of ``n_rkhs`` channels. A comparison
``"AtB"`` predicts every location of the ``rB`` map of one view from a *source* vector of the
other view: ``r1`` itself, or for ``A = 5`` / ``7`` one location drawn at random per image. For
every source image ``i`` the NCE scores it against every target location of every image in one
matmul (scores ``(N, N, L)``); the positives are the ``L`` locations of image ``i``'s other view,
the negatives all locations of the other images (:func:`amdim_nce`). Each comparison is computed
in both directions (view 1 -> 2 and 2 -> 1) and averaged; the objective is the sum over
comparisons plus the score regulariser (:func:`multiscale_nce`).

Shapes: ``N`` images, ``D = n_rkhs``, ``L = H * W`` target locations, ``K`` mixture components.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from infomax.distributed import SINGLE, BatchGroup
from infomax.estimators.bounds import infonce_terms
from infomax.models.registry import create_encoder
from infomax.objectives.base import StepContext, TrainingLosses
from infomax.rng import Gen, randint
from infomax.transforms import AmdimViews

__all__ = [
    "AMDIM",
    "AMDIMNCE",
    "COMPARISONS",
    "MixtureHead",
    "amdim_nce",
    "mixture_nce",
    "multiscale_nce",
    "parse_comparison",
    "sample_locations",
    "tanh_clip",
]

#: The reference's comparisons (``LossMultiNCE``): global->5x5, global->7x7, local 5x5->5x5.
COMPARISONS = ("1t5", "1t7", "5t5")
_SCALES = (1, 5, 7)

class AMDIMNCE(NamedTuple):
    """Result of :func:`amdim_nce` / :func:`mixture_nce` (float32).

    ``loss``: ``-mean(log_probs)`` (mixtures: minus the mixture objective); ``reg``: the weighted
    score regulariser ``reg_weight * mean(raw_scores ** 2)`` (not included in ``loss``);
    ``log_probs``: ``(N, L)`` log-softmax of each positive against itself plus the negatives of
    its row (mixtures: ``(N, K, L)``, one per component).
    """

    loss: torch.Tensor
    reg: torch.Tensor
    log_probs: torch.Tensor


# ----------------------------------------------------------------------------- pure functions


def tanh_clip(x: torch.Tensor, clip: float | None) -> torch.Tensor:
    """Soft clipping ``clip * tanh(x / clip)`` (identity when ``clip`` is ``None`` or <= 0)."""
    if clip is None or clip <= 0:
        return x
    return clip * torch.tanh(x / clip)


def _nce_log_probs(
    r_src: torch.Tensor, r_trg: torch.Tensor, tclip: float | None, offset: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-positive NCE log-probabilities ``(n, K, L)`` and the raw scores ``(n, K, N, L)``: the
    shared InfoNCE terms (:func:`infomax.estimators.bounds.infonce_terms`) of the clipped scores.

    ``r_src`` (n, K, D), ``r_trg`` (N, D, L); source ``i`` is paired with target ``offset + i``
    (``n < N`` when the targets are the global batch of several processes and the sources this
    process's slice). Scores are float32 with autocast off.
    """
    if r_src.dim() != 3 or r_trg.dim() != 3:
        raise ValueError(
            f"expected sources (N, [K,] D) and targets (N, D, L); got {tuple(r_src.shape)} and "
            f"{tuple(r_trg.shape)}"
        )
    n, k, d = r_src.shape
    big_n = r_trg.shape[0]
    if offset < 0 or offset + n > big_n or r_trg.shape[1] != d:
        raise ValueError(
            f"sources {tuple(r_src.shape)} (from target {offset}) and targets "
            f"{tuple(r_trg.shape)} must agree on N and D"
        )
    if big_n < 2:
        raise ValueError(f"the NCE needs at least 2 images per batch (negatives), got {big_n}")
    locs = r_trg.shape[2]
    with torch.autocast(device_type=r_src.device.type, enabled=False):
        src = r_src.float().reshape(n * k, d)
        trg = r_trg.float().transpose(0, 1).reshape(d, big_n * locs)  # (D, N*L)
        raw = (src @ trg).view(n, k, big_n, locs) / math.sqrt(d)
        # each (image, component) is an anchor row: its positives are every location of its own
        # image's target map, its negatives every location of every other image
        rows = torch.arange(n, device=raw.device)
        own = rows[:, None] + offset == torch.arange(big_n, device=raw.device)[None, :]
        mask = own.view(n, 1, big_n, 1).expand(n, k, big_n, 1).reshape(n * k, big_n, 1)
        terms, _, _ = infonce_terms(tanh_clip(raw, tclip).view(n * k, big_n, locs), mask)
        log_probs = terms.view(n, k, big_n, locs)[rows, :, rows + offset, :]  # (n, K, L)
    return log_probs, raw


def amdim_nce(
    r_src: torch.Tensor,
    r_trg: torch.Tensor,
    tclip: float | None = 20.0,
    reg_weight: float = 0.05,
    offset: int = 0,
) -> AMDIMNCE:
    """The AMDIM NCE of source vectors against target maps (amdim-public ``NCE_MI_MULTI``).

    ``raw[i, j, l] = <r_src[i], r_trg[j, :, l]> / sqrt(D)``; ``reg = reg_weight * mean(raw**2)``;
    ``s = tclip * tanh(raw / tclip)``; for each positive ``(i, i, l)``::

        log_probs[i, l] = s[i, i, l] - log(exp(s[i, i, l]) + sum_{j != i, m} exp(s[i, j, m]))

    and ``loss = -mean(log_probs)``. The same as :func:`infomax.estimators.bounds.infonce` on
    the clipped scores with the diagonal positive mask. float32 inside (safe under autocast).

    ``offset``: with several processes, ``r_src`` holds the ``n`` sources of this process and
    ``r_trg`` the targets of the global batch; source ``i`` is paired with target ``offset + i``.

    Shape:
        ``r_src`` (n, D); ``r_trg`` (N, D, L) (a feature map flattened over locations); ``loss``
        and ``reg`` scalars, ``log_probs`` (n, L).
    """
    if r_src.dim() != 2:
        raise ValueError(f"r_src must be (N, D), got {tuple(r_src.shape)}")
    log_probs, raw = _nce_log_probs(r_src[:, None, :], r_trg, tclip, offset)
    log_probs = log_probs[:, 0]
    return AMDIMNCE(-log_probs.mean(), reg_weight * raw.square().mean(), log_probs)


def mixture_nce(
    r_src: torch.Tensor,
    r_trg: torch.Tensor,
    tclip: float | None = 20.0,
    reg_weight: float = 0.05,
    tau: float = 0.4,
    alpha: float = 0.05,
    offset: int = 0,
) -> AMDIMNCE:
    """NCE with a mixture of ``K`` source vectors per image (AMDIM paper, Sec. 3.5).

    Each component ``j`` gets the per-positive NCE log-probability ``s_j[i, l]`` of
    :func:`amdim_nce`. The responsibilities ``q_j = softmax_j(s_j / tau)`` are a posterior over
    which component predicts the target location; the objective maximised is::

        mean_{i, l} [ sum_j q_j s_j + alpha * H(q) ]

    (``loss`` is its negative; gradients flow through ``q``). With ``K = 1``, ``q = 1``,
    ``H = 0`` and this is exactly :func:`amdim_nce`. ``reg`` covers the scores of all components.

    Shape:
        ``r_src`` (n, K, D); ``r_trg`` (N, D, L); ``log_probs`` (n, K, L); ``offset`` as in
        :func:`amdim_nce`.
    """
    if tau <= 0:
        raise ValueError(f"mixture temperature tau must be > 0, got {tau}")
    log_probs, raw = _nce_log_probs(r_src, r_trg, tclip, offset)
    q_log = torch.log_softmax(log_probs / tau, dim=1)
    q = q_log.exp()
    entropy = -(q * q_log).sum(dim=1)  # (N, L)
    objective = (q * log_probs).sum(dim=1) + alpha * entropy
    return AMDIMNCE(-objective.mean(), reg_weight * raw.square().mean(), log_probs)


def parse_comparison(name: str) -> tuple[int, int]:
    """``"1t5"`` -> ``(1, 5)``: source and target scales, each 1, 5 or 7."""
    parts = str(name).lower().split("t")
    try:
        src, trg = (int(p) for p in parts)
    except ValueError:
        src = trg = -1
    if len(parts) != 2 or src not in _SCALES or trg not in _SCALES:
        raise ValueError(f"comparison must look like '1t5' with scales in {_SCALES}, got {name!r}")
    return src, trg


def sample_locations(feature_map: torch.Tensor, generator: Gen = None) -> torch.Tensor:
    """One random location per image of a ``(N, D, H, W)`` map -> ``(N, D)``.

    The location index is drawn on the map's device (no host synchronisation), independently per
    image (amdim-public ``LossMultiNCE._sample_src_ftr``); ``generator``: see :mod:`infomax.rng`.
    """
    n, d = feature_map.shape[:2]
    flat = feature_map.flatten(2)
    idx = randint(0, flat.shape[2], (n,), generator, feature_map.device)
    return flat.gather(2, idx.view(n, 1, 1).expand(n, d, 1)).squeeze(2)


def _source(
    taps: dict[str, torch.Tensor],
    scale: int,
    mixture: torch.Tensor | None,
    generator: Gen,
) -> torch.Tensor:
    if scale == 1:
        if mixture is not None:
            return mixture
        return taps["r1"].flatten(1)[:, None, :]
    return sample_locations(taps[f"r{scale}"], generator)[:, None, :]


def multiscale_nce(
    taps1: dict[str, torch.Tensor],
    taps2: dict[str, torch.Tensor],
    comparisons: Sequence[str] = COMPARISONS,
    tclip: float | None = 20.0,
    reg_weight: float = 0.05,
    mixtures: tuple[torch.Tensor, torch.Tensor] | None = None,
    mixture_tau: float = 0.4,
    mixture_alpha: float = 0.05,
    generator: Gen = None,
    group: BatchGroup = SINGLE,
) -> dict[str, torch.Tensor]:
    """The AMDIM objective over several comparisons, both directions (amdim-public
    ``LossMultiNCE``).

    For each comparison ``"AtB"``: ``0.5 * (nce(src_A(view1), rB(view2)) + nce(src_A(view2),
    rB(view1)))``, where the ``A = 5`` / ``7`` source is one random location per image.
    ``mixtures`` (optional): the ``(N, K, D)`` mixture components of ``r1`` of each view, used
    for the ``A = 1`` sources through :func:`mixture_nce`. ``group``: with several processes,
    the taps are this process's slice of the global batch; the targets of every process are
    gathered (with gradients) and each local source is scored against all of them.

    Returns ``nce_AtB`` for each comparison, ``reg`` (the sum over comparisons of the
    direction-averaged regularisers, as the reference) and ``loss = sum nce_AtB + reg``; all
    float32 scalars.
    """
    if not comparisons:
        raise ValueError("at least one comparison is needed, e.g. ('1t5', '1t7', '5t5')")
    out: dict[str, torch.Tensor] = {}
    regs: list[torch.Tensor] = []
    for name in comparisons:
        a, b = parse_comparison(name)
        pair = []
        for src_taps, trg_taps, mix in (
            (taps1, taps2, None if mixtures is None else mixtures[0]),
            (taps2, taps1, None if mixtures is None else mixtures[1]),
        ):
            src = _source(src_taps, a, mix, generator)
            trg = group.gather(trg_taps[f"r{b}"].flatten(2))
            offset = group.offset(src.shape[0])
            if src.shape[1] > 1:
                pair.append(
                    mixture_nce(
                        src, trg, tclip, reg_weight, mixture_tau, mixture_alpha, offset
                    )
                )
            else:
                pair.append(amdim_nce(src[:, 0], trg, tclip, reg_weight, offset))
        out[f"nce_{a}t{b}"] = 0.5 * (pair[0].loss + pair[1].loss)
        regs.append(0.5 * (pair[0].reg + pair[1].reg))
    out["reg"] = torch.stack(regs).sum()
    out["loss"] = torch.stack([out[f"nce_{n.lower()}"] for n in comparisons]).sum() + out["reg"]
    return out


# ----------------------------------------------------------------------------- modules


class MixtureHead(nn.Module):
    """``K`` mixture components of a global feature (AMDIM paper, Sec. 3.5).

    ``f^j = f + W2_j ReLU(W1 f + b1) + b2_j``: one fully connected layer with a ReLU and a
    residual connection from ``f`` to every component.

    Shape:
        (N, D) -> (N, K, D).
    """

    def __init__(self, dim: int, n_mixtures: int, hidden: int | None = None) -> None:
        super().__init__()
        if n_mixtures < 2:
            raise ValueError(f"a mixture head needs n_mixtures >= 2, got {n_mixtures}")
        self.dim, self.n_mixtures = int(dim), int(n_mixtures)
        hidden = int(hidden or dim)
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, n_mixtures * dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        delta = self.out(F.relu(self.hidden(f))).view(-1, self.n_mixtures, self.dim)
        return f[:, None, :] + delta


def _make_views(
    augment: dict[str, Any] | str,
    image_size: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> AmdimViews:
    norm: dict[str, Any] = {}
    if mean is not None:
        norm["mean"] = tuple(float(m) for m in mean)
    if std is not None:
        norm["std"] = tuple(float(s) for s in std)
    if isinstance(augment, str):
        return AmdimViews.preset(augment, **norm)
    if isinstance(augment, dict):
        kwargs = dict(augment)
        if "mean" in kwargs or "std" in kwargs:
            raise ValueError("set the normalisation with AMDIM(mean=..., std=...), not in augment")
        preset = kwargs.pop("preset", None)
        if preset is not None:
            return AmdimViews.preset(preset, **kwargs, **norm)
        kwargs.setdefault("image_size", image_size)
        return AmdimViews(**kwargs, **norm)
    raise ValueError(
        "augment must be an AmdimViews preset name ('cifar', 'stl10', 'imagenet128') or a dict "
        f"of its arguments (optionally with 'preset'), got {augment!r}"
    )


class AMDIM(nn.Module):
    """Augmented Multiscale Deep InfoMax (Bachman et al., NeurIPS 2019) as one method.

    Follows the method protocol of ``docs/architecture.md``: :meth:`training_losses`,
    :meth:`aux_parameters`, :meth:`features`.

    Args:
        encoder: registered encoder name (``amdim32``, ``amdim64``, ``amdim128``, ``*-tiny``).
        in_channels: channels of the images.
        image_size: size of the stored images; the encoder is built for the augmentation's
            output size (``AmdimViews.image_size``, e.g. 64 for the ``stl10`` preset).
        ndf, n_rkhs, n_depth, use_bn: encoder settings (reference 128, 1024, 3, False).
        tclip: soft clip of the scores (reference 20; ``None`` or 0: no clip).
        reg_weight: weight of ``mean(raw_scores ** 2)`` (reference code 0.05).
        comparisons: the NCE comparisons, ``"AtB"`` with ``A``, ``B`` in 1, 5, 7 (reference
            ``("1t5", "1t7", "5t5")``).
        n_mixtures: mixture components of ``r1`` for the ``1tB`` comparisons (1: none).
        mixture_tau, mixture_alpha: temperature of the responsibilities and weight of their
            entropy (:func:`mixture_nce`).
        augment: an :class:`~infomax.transforms.AmdimViews` preset (``cifar``, ``stl10``,
            ``imagenet128``) or a dict of its arguments, optionally with ``preset`` to start from,
            e.g. ``{"preset": "cifar", "enable_jitter": False}``.
        mean, std: per-channel normalisation in [0, 1] units (default: the preset's).
        joint_views: encode both views as one batch of ``2N`` (faster; batch-norm statistics
            pooled over both views). ``False``: one encoder call per view, as the reference.

    >>> m = AMDIM(encoder="amdim32-tiny", ndf=8, n_rkhs=32, n_depth=1)        # doctest: +SKIP
    >>> out = m.training_losses(torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8))
    >>> out["loss"].backward()                                                # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: str = "amdim32",
        in_channels: int = 3,
        image_size: int = 32,
        ndf: int = 128,
        n_rkhs: int = 1024,
        n_depth: int = 3,
        use_bn: bool = False,
        tclip: float | None = 20.0,
        reg_weight: float = 0.05,
        comparisons: Sequence[str] = COMPARISONS,
        n_mixtures: int = 1,
        mixture_tau: float = 0.4,
        mixture_alpha: float = 0.05,
        augment: dict[str, Any] | str = "cifar",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        joint_views: bool = True,
    ) -> None:
        super().__init__()
        self.comparisons = tuple(str(c).lower() for c in comparisons)
        if not self.comparisons:
            raise ValueError("at least one comparison is needed, e.g. ['1t5', '1t7', '5t5']")
        for c in self.comparisons:
            parse_comparison(c)
        if reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0, got {reg_weight}")
        if n_mixtures < 1:
            raise ValueError(f"n_mixtures must be >= 1, got {n_mixtures}")
        if mixture_tau <= 0:
            raise ValueError(f"mixture_tau must be > 0, got {mixture_tau}")
        for name, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) != in_channels:
                raise ValueError(
                    f"{name} needs one value per channel ({in_channels}), got {len(values)}"
                )
        self.in_channels = int(in_channels)
        self.tclip = None if tclip is None else float(tclip)
        self.reg_weight = float(reg_weight)
        self.n_mixtures = int(n_mixtures)
        self.mixture_tau, self.mixture_alpha = float(mixture_tau), float(mixture_alpha)
        self.joint_views = bool(joint_views)
        self.transform = _make_views(augment, image_size, mean, std)
        if len(self.transform.normalize.mean.flatten()) != in_channels:
            raise ValueError(
                f"the augmentation normalises {len(self.transform.normalize.mean.flatten())} "
                f"channels but in_channels={in_channels}: pass mean=..., std=..."
            )
        self.encoder = create_encoder(
            encoder,
            in_channels=in_channels,
            image_size=self.transform.image_size,
            ndf=ndf,
            n_rkhs=n_rkhs,
            n_depth=n_depth,
            use_bn=use_bn,
        )
        self.probe_taps = tuple(getattr(self.encoder, "probe_taps", ("features",)))
        self.mixture: MixtureHead | None = (
            MixtureHead(n_rkhs, self.n_mixtures) if self.n_mixtures > 1 else None
        )

    def _check(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images (N, {self.in_channels}, H, W), got {tuple(images.shape)}"
            )

    def aux_parameters(self) -> list[nn.Parameter]:
        """No auxiliary (adversarial) parameters: empty."""
        return []

    def encode_pair(
        self, view1: torch.Tensor, view2: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The encoder's taps on two already augmented and normalised views ``(N, C, S, S)``.

        ``joint_views``: one encoder call on the ``2N`` images (batch-norm statistics pooled
        over both views); otherwise one call per view, as the reference.
        """
        if view1.shape != view2.shape:
            raise ValueError(
                f"the two views must have the same shape, got {tuple(view1.shape)} and "
                f"{tuple(view2.shape)}"
            )
        if self.joint_views:
            taps = self.encoder(torch.cat((view1, view2), dim=0))
            n = view1.shape[0]
            return {k: t[:n] for k, t in taps.items()}, {k: t[n:] for k, t in taps.items()}
        return self.encoder(view1), self.encoder(view2)

    def training_losses(
        self, images: torch.Tensor, context: StepContext | None = None
    ) -> TrainingLosses:
        """Losses of one batch of uint8 images (two views made and normalised here).

        ``loss`` is the sum of the comparisons' NCE losses plus ``reg``; the terms (checked)
        are ``nce_AtB`` per comparison and ``reg``; ``features`` is the detached ``(N, n_rkhs)``
        ``r1`` of view 1 for online probes. No host-device synchronisation. ``context``: the
        step's random numbers (views, source locations) and batch split (trainer).
        """
        self._check(images)
        ctx = context or StepContext()
        v1, v2 = self.transform.views(images, ctx.rng)
        return self.view_losses(v1, v2, ctx)

    def view_losses(
        self, view1: torch.Tensor, view2: torch.Tensor, context: StepContext | None = None
    ) -> TrainingLosses:
        """:meth:`training_losses` of two already augmented, normalised views (float
        ``(N, C, S, S)`` each, ``S`` the encoder's input size). For benchmarks that time the
        model and the loss without the augmentation."""
        ctx = context or StepContext()
        taps1, taps2 = self.encode_pair(view1, view2)
        mixtures = None
        if self.mixture is not None:
            mixtures = (self.mixture(taps1["features"]), self.mixture(taps2["features"]))
        out = multiscale_nce(
            taps1, taps2, self.comparisons, self.tclip, self.reg_weight, mixtures,
            self.mixture_tau, self.mixture_alpha, ctx.rng, ctx.group,
        )  # fmt: skip
        loss = out.pop("loss")
        return TrainingLosses(
            loss=loss,
            terms={k: v.detach() for k, v in out.items()},
            features=taps1["features"].detach(),
        )

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The encoder's taps on normalised, un-augmented images (caller sets eval / no_grad)."""
        self._check(images)
        return self.encoder(self.transform.eval_transform(images))
