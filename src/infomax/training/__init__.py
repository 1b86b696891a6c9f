"""Training: run configs, the training loop, run folders and checkpoints.

- :mod:`infomax.training.config`: ``Config`` dataclasses, presets, dotted overrides.
- :mod:`infomax.training.runs`: run folders, checkpoints, :func:`load_run`.
- :mod:`infomax.training.trainer`: :func:`train` (the loop) and ``TrainResult``.
- :mod:`infomax.training.schedule`: learning-rate warm-up and step decay.
"""

from infomax.training.config import (
    Config,
    DataConfig,
    EvalConfig,
    TrainConfig,
    list_presets,
    load_config,
    register_method,
)
from infomax.training.runs import build_method, load_run
from infomax.training.trainer import TrainResult, train

__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "TrainConfig",
    "TrainResult",
    "build_method",
    "list_presets",
    "load_config",
    "load_run",
    "register_method",
    "train",
]
