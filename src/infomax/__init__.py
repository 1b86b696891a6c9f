"""infomax: learn representations by maximising mutual information, and estimate it.

Subpackages
-----------
- :mod:`infomax.info`: exact discrete information theory (entropy, MI, KL, JS, channel capacity).
- :mod:`infomax.estimators`: variational MI bounds (InfoNCE, JSD, DV, MINE, NWJ, SMILE), critics,
  the KSG nearest-neighbour estimator and a high-level ``estimate_mi``.
- :mod:`infomax.models`: encoders with named feature taps (DIM, AMDIM) and a registry.
- :mod:`infomax.objectives`: Deep InfoMax and AMDIM objectives built from the bounds.
- :mod:`infomax.transforms`: batched, on-device augmentations.
- :mod:`infomax.data`: datasets held in memory as uint8 and an on-device batch loader.
- :mod:`infomax.evaluation`: linear / MLP probes and kNN evaluation on frozen features.
- :mod:`infomax.training`: the training loop, run folders, checkpoints and configs.
- :mod:`infomax.cli`: the ``infomax`` command.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
