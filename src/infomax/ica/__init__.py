"""Infomax independent component analysis in PyTorch.

- :class:`InfomaxICA` (:mod:`infomax.ica.estimator`): the scikit-learn-style estimator.
- :mod:`infomax.ica.formulas`: the loss, the relative gradient, the natural-gradient rule, the
  Hessian approximation, kurtosis and the Amari distance, as pure functions.
- :mod:`infomax.ica.solvers`: preconditioned L-BFGS on the whole sample, and the classic
  stochastic natural gradient with annealing.
- :mod:`infomax.ica.whitening`: PCA whitening with an optional reduction to ``n_components``.
"""

from infomax.ica.estimator import SOLVERS, ConvergenceWarning, InfomaxICA
from infomax.ica.formulas import amari_distance, excess_kurtosis
from infomax.ica.solvers import solve_lbfgs, solve_natural_gradient
from infomax.ica.whitening import pca_whitening

__all__ = [
    "SOLVERS",
    "ConvergenceWarning",
    "InfomaxICA",
    "amari_distance",
    "excess_kurtosis",
    "pca_whitening",
    "solve_lbfgs",
    "solve_natural_gradient",
]
