"""Evaluation of learned representations on frozen features.

- :func:`extract_features`, :class:`FeatureCache`: features of a dataset per tap, cached on disk by
  checkpoint, dataset, tap and precision.
- :func:`train_probe`: a linear probe or Deep InfoMax's 200-unit MLP probe on fixed features.
- :func:`knn_accuracy`, :func:`knn_predict`, :func:`nearest_neighbors`: weighted (Wu et al. 2018)
  or majority-vote kNN, chunked so memory stays bounded.
- :func:`evaluate_method`, :func:`format_table`: everything above for each probe tap.
- :func:`neighbors_grid`: a PNG of query images and their nearest neighbours.
- :func:`write_embeddings`, :func:`read_embeddings`: ``.npy`` / ``.npz`` / ``.pt`` / ``.csv``.

The protocol and its differences from the papers are described in ``docs/evaluation.md``.
"""

from infomax.evaluation.embeddings import EMBEDDING_FORMATS, read_embeddings, write_embeddings
from infomax.evaluation.evaluate import evaluate_features, evaluate_method, format_table
from infomax.evaluation.features import (
    FeatureCache,
    default_taps,
    extract_features,
    state_fingerprint,
)
from infomax.evaluation.knn import knn_accuracy, knn_predict, nearest_neighbors
from infomax.evaluation.neighbors import (
    NeighborsGrid,
    grid_size,
    neighbors_grid,
    render_neighbors_grid,
)
from infomax.evaluation.probes import (
    DIM_REFERENCE_MLP,
    PROBE_DEFAULTS,
    LinearProbe,
    MLPProbe,
    ProbeResult,
    build_probe,
    train_probe,
)

__all__ = [
    "DIM_REFERENCE_MLP",
    "EMBEDDING_FORMATS",
    "PROBE_DEFAULTS",
    "FeatureCache",
    "LinearProbe",
    "MLPProbe",
    "NeighborsGrid",
    "ProbeResult",
    "build_probe",
    "default_taps",
    "evaluate_features",
    "evaluate_method",
    "extract_features",
    "format_table",
    "grid_size",
    "knn_accuracy",
    "knn_predict",
    "nearest_neighbors",
    "neighbors_grid",
    "read_embeddings",
    "render_neighbors_grid",
    "state_fingerprint",
    "train_probe",
    "write_embeddings",
]
