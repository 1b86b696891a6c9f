"""The method contract between the objectives (DIM, AMDIM, your own) and the trainer.

A *method* is an :class:`torch.nn.Module` that satisfies :class:`Method`:

- ``training_losses(images_uint8, context=None) -> TrainingLosses``: augments and normalises the
  uint8 batch itself and returns the losses of one step;
- ``aux_parameters() -> list[nn.Parameter]``: the parameters that ``aux_loss`` trains (the
  adversarial prior's discriminator; empty when there is none). ``loss`` trains every other one;
- ``features(images_uint8) -> dict[str, Tensor]``: the encoder's taps on normalised,
  un-augmented images, for evaluation (the caller sets eval mode and no_grad).

:class:`StepContext` carries what a step needs beyond its images: the step number, the random
numbers of the step (per image of the global batch, :class:`infomax.rng.BatchRandom`) and how the
global batch is split over processes (:class:`infomax.distributed.BatchGroup`), so that a method
gives the same losses with 1 or N processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from infomax.distributed import SINGLE, BatchGroup
from infomax.rng import Gen

__all__ = ["Method", "StepContext", "TrainingLosses", "check_method"]


@dataclass(frozen=True)
class StepContext:
    """One training step as a method sees it.

    Attributes:
        step: the optimiser step (0 outside a trainer).
        rng: the step's random numbers; ``None``: the global torch RNG.
        group: the split of the global batch over processes (one process by default).
    """

    step: int = 0
    rng: Gen = None
    group: BatchGroup = SINGLE


@dataclass(eq=False)
class TrainingLosses(Mapping):
    """What :meth:`Method.training_losses` returns.

    Attributes:
        loss: minimised with respect to every parameter but ``aux_parameters()``.
        aux_loss: minimised with respect to ``aux_parameters()`` only (``None``: no second
            optimiser).
        terms: detached components of the losses, logged; a non-finite one stops training as a
            non-finite ``loss`` does.
        estimates: detached values logged for information (MI estimates, discriminator logits);
            they may be infinite without stopping anything.
        features: detached ``(N, D)`` features for the online probes (``None``: no probes).

    ``losses["loss"]``, ``"aux_loss"``, ``"features"`` and the logged names also work, as with
    the plain dict that methods returned before.
    """

    loss: Tensor
    aux_loss: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)
    estimates: dict[str, Tensor] = field(default_factory=dict)
    features: Tensor | None = None

    def logged(self) -> dict[str, Tensor]:
        """Every logged scalar by name: ``loss``, ``aux_loss`` (if any), then the others."""
        out = {"loss": self.loss.detach()}
        if self.aux_loss is not None:
            out["aux_loss"] = self.aux_loss.detach()
        return {**out, **self.terms, **self.estimates}

    def checked(self) -> set[str]:
        """The logged names whose non-finite value stops training."""
        return {"loss", "aux_loss", *self.terms}

    def _all(self) -> dict[str, Tensor]:
        everything = {**self.logged(), "loss": self.loss, "aux_loss": self.aux_loss,
                      "features": self.features}  # fmt: skip
        return {k: v for k, v in everything.items() if v is not None}

    # the read-only Mapping interface (``out["loss"]``, ``set(out)``, ``"aux_loss" in out``)
    def __getitem__(self, key: str) -> Tensor:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


@runtime_checkable
class Method(Protocol):
    """The protocol every trainable method follows (see the module docstring)."""

    encoder: nn.Module

    def training_losses(
        self, images: Tensor, context: StepContext | None = None
    ) -> TrainingLosses: ...

    def aux_parameters(self) -> list[nn.Parameter]: ...

    def features(self, images: Tensor) -> dict[str, Tensor]: ...


def check_method(method: object, name: str = "method") -> None:
    """Raise a :class:`TypeError` naming what ``method`` lacks to be a :class:`Method`."""
    missing = [
        a for a in ("encoder", "training_losses", "aux_parameters", "features")
        if not hasattr(method, a)
    ]  # fmt: skip
    if missing or not isinstance(method, nn.Module):
        what = f"lacks {', '.join(missing)}" if missing else "is not an nn.Module"
        raise TypeError(
            f"{name} {type(method).__name__} {what}: a method is an nn.Module with encoder, "
            "training_losses(images, context), aux_parameters() and features(images) "
            "(infomax.objectives.base.Method)"
        )


def as_training_losses(out: TrainingLosses | dict) -> TrainingLosses:
    """A method's result as :class:`TrainingLosses`; a plain dict (the older contract: ``loss``,
    optional ``aux_loss`` and ``features``, other scalars logged, names starting with ``loss``
    checked) is converted."""
    if isinstance(out, TrainingLosses):
        return out
    if not isinstance(out, dict) or "loss" not in out:
        raise TypeError("training_losses() must return TrainingLosses (or a dict with 'loss')")
    rest = {
        k: (v.detach() if torch.is_tensor(v) else torch.tensor(float(v)))
        for k, v in out.items()
        if k not in ("loss", "aux_loss", "features")
    }
    return TrainingLosses(
        loss=out["loss"],
        aux_loss=out.get("aux_loss"),
        terms={k: v for k, v in rest.items() if k.startswith("loss")},
        estimates={k: v for k, v in rest.items() if not k.startswith("loss")},
        features=out.get("features"),
    )
