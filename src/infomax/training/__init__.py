"""Training: run configs, the training loop, run folders and checkpoints.

- :mod:`infomax.training.config`: ``Config`` dataclasses, presets, dotted overrides.
- :mod:`infomax.training.runs`: run folders, checkpoints, :func:`load_run`.
- :mod:`infomax.training.trainer`: :func:`train` and the loop that composes the parts below.
- :mod:`infomax.training.step`: one optimiser step (losses, backward, gradient averaging).
- :mod:`infomax.training.online_probes`: classifiers trained on detached features as it trains.
- :mod:`infomax.training.metrics`: metrics.csv, metrics.png, train.log, the progress bar.
- :mod:`infomax.training.checkpoints`: when and how checkpoints are written, resuming.
- :mod:`infomax.training.launch`: the run folder of each process; ``--nproc`` workers.
- :mod:`infomax.training.setup`: the device, datasets and derived model arguments of a run.
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
from infomax.training.trainer import TrainResult, resume_config, train

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
    "resume_config",
    "train",
]
