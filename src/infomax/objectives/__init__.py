"""Objectives: Deep InfoMax (:mod:`infomax.objectives.dim`, :mod:`infomax.objectives.prior`) and
AMDIM (:mod:`infomax.objectives.amdim`).

Names are imported lazily on first access, so importing this package is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DIM": "infomax.objectives.dim",
    "DIM_LOSS_PRESETS": ("infomax.objectives.dim", "PRESETS"),
    "AMDIM": "infomax.objectives.amdim",
    "multiscale_nce": "infomax.objectives.amdim",
    "amdim_nce": "infomax.objectives.amdim",
    "mixture_nce": "infomax.objectives.amdim",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'infomax.objectives' has no attribute {name!r}")
    module, attr = (target, name) if isinstance(target, str) else target
    return getattr(importlib.import_module(module), attr)
