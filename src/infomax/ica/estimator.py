"""``InfomaxICA``: infomax independent component analysis with a scikit-learn interface.

>>> import numpy as np
>>> from infomax.ica import InfomaxICA, amari_distance
>>> rng = np.random.default_rng(0)
>>> s = rng.laplace(size=(5000, 3))                  # independent sources, samples x sources
>>> a = rng.normal(size=(3, 3))                      # mixing
>>> ica = InfomaxICA(random_state=0).fit(s @ a.T)    # observations, samples x channels
>>> amari_distance(ica.components_, a) < 0.01
True

With scikit-learn installed the class is a ``BaseEstimator`` / ``TransformerMixin`` (so
``clone``, pipelines and grid search work); without it the same ``get_params`` / ``set_params`` /
``fit_transform`` are provided here.
"""

from __future__ import annotations

import inspect
import time
import warnings
from typing import Any

import numpy as np
import torch

from infomax.estimators.io import check_samples
from infomax.ica.formulas import SUPER_GAUSSIAN
from infomax.ica.solvers import (
    SolverResult,
    auto_subsample,
    solve_lbfgs,
    solve_natural_gradient,
)
from infomax.ica.whitening import pca_whitening
from infomax.runtime import resolve_device

__all__ = ["ConvergenceWarning", "InfomaxICA", "SOLVERS"]

SOLVERS = ("lbfgs", "natural_gradient")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}

try:  # scikit-learn is optional: the estimator protocol comes from it when it is there
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import TransformerMixin as _Transformer
    from sklearn.exceptions import ConvergenceWarning
except ImportError:  # pragma: no cover - exercised only without scikit-learn

    class ConvergenceWarning(UserWarning):  # type: ignore[no-redef]
        """The solver stopped before reaching its tolerance."""

    class _Base:  # type: ignore[no-redef]
        """``get_params`` / ``set_params`` in scikit-learn's convention: the parameters are the
        ``__init__`` arguments, stored unchanged as attributes of the same name."""

        @classmethod
        def _get_param_names(cls) -> list[str]:
            sig = inspect.signature(cls.__init__)
            return sorted(p for p in sig.parameters if p != "self")

        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params: Any):
            valid = self._get_param_names()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}")
                setattr(self, key, value)
            return self

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class _Transformer:  # type: ignore[no-redef]
        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)


class InfomaxICA(_Transformer, _Base):
    """Infomax ICA (Bell & Sejnowski 1995), extended to sub-Gaussian sources (Lee, Girolami &
    Sejnowski 1999), after PCA whitening.

    Args:
        n_components: sources to estimate (default: all channels); fewer whitens onto the
            leading principal components first.
        extended: switch each component between a super- and a sub-Gaussian density by the
            sign of its kurtosis (extended infomax); ``False`` is Bell & Sejnowski's logistic
            density, which separates super-Gaussian sources only.
        super_gaussian: the extended density of super-Gaussian components: ``"logcosh"``
            (``psi = tanh``, the default, as picard) or ``"lee"`` (``psi = u + tanh u``, Lee et
            al. 1999 as EEGLAB and MNE-Python); see :func:`infomax.ica.formulas.density`.
        solver: ``"lbfgs"`` (the whole sample at once, preconditioned L-BFGS with a line
            search; Ablin et al. 2018) or ``"natural_gradient"`` (stochastic blocks with
            annealing and blow-up restarts, as EEGLAB's runica and MNE-Python).
        max_iter: iterations (``lbfgs``) or passes over the data (``natural_gradient``).
        tol: ``lbfgs``: the largest entry of the relative gradient at which to stop;
            ``natural_gradient``: the weight change (sum of squares per pass).
        dtype: ``"float32"`` (fast, the default) or ``"float64"`` for the solver's data; the
            whitening and the final matrices are always float64.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        random_state: seeds the block order of ``natural_gradient`` and a random ``w_init``.
        w_init: ``None`` (identity on the whitened data), ``"random"`` (a random orthogonal
            matrix), or an initial unmixing of the whitened data (n_components x n_components).
        subsample: ``lbfgs`` only: solve first on this many random samples and start the
            whole-sample solve from that solution (``"auto"``: ``max(10000, 20 k^2)`` samples
            when there are at least four times as many; ``None``: never). It changes the
            path, not the optimum.

    Attributes:
        components_: the unmixing matrix (n_components x channels); the sources are
            ``(X - mean_) @ components_.T``, each with unit variance, ordered by the variance
            they explain in ``X`` (largest first).
        mixing_: (channels x n_components), the pseudo-inverse of ``components_``.
        mean_: the channel means (channels,).
        whitening_: the PCA whitening matrix (n_components x channels).
        unmixing_: the unmixing of the whitened data (n_components x n_components).
        signs_: +1 (super-Gaussian density) or -1 (sub-Gaussian) for each component.
        n_iter_, converged_, stop_reason_, seconds_: how the solver ended and how long it took.
        n_features_in_, n_components_: channels seen in ``fit`` and sources estimated.
    """

    def __init__(
        self,
        n_components: int | None = None,
        extended: bool = True,
        solver: str = "lbfgs",
        max_iter: int = 500,
        tol: float = 1e-7,
        dtype: str = "float32",
        device: str = "auto",
        random_state: int | None = None,
        w_init: Any = None,
        subsample: int | str | None = "auto",
        super_gaussian: str = "logcosh",
    ) -> None:
        self.n_components = n_components
        self.extended = extended
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.w_init = w_init
        self.subsample = subsample
        self.super_gaussian = super_gaussian

    def _check_params(self) -> torch.dtype:
        if self.super_gaussian not in SUPER_GAUSSIAN:
            raise ValueError(f"super_gaussian must be one of {', '.join(SUPER_GAUSSIAN)}, got "
                             f"{self.super_gaussian!r}")  # fmt: skip
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, got {self.tol!r}")
        return _DTYPES[self.dtype]

    def _initial_unmixing(self, k: int, generator: torch.Generator) -> torch.Tensor:
        if self.w_init is None:
            return torch.eye(k, dtype=torch.float64)
        if isinstance(self.w_init, str):
            if self.w_init != "random":
                raise ValueError(f"w_init must be None, 'random' or a matrix, got {self.w_init!r}")
            q, r = torch.linalg.qr(torch.randn(k, k, generator=generator, dtype=torch.float64))
            return q * torch.sign(torch.diagonal(r))
        w0 = torch.as_tensor(np.asarray(self.w_init, dtype=np.float64))
        if w0.shape != (k, k):
            raise ValueError(f"w_init must have shape ({k}, {k}), got {tuple(w0.shape)}")
        return w0

    def fit(self, X, y=None, callback=None) -> InfomaxICA:
        """Estimate the unmixing from ``X`` (samples x channels). ``callback(iteration,
        value)`` is called once per solver iteration (e.g. to drive a progress bar)."""
        dtype = self._check_params()
        start = time.perf_counter()
        x = check_samples(X, name="X")
        dev = resolve_device(self.device)
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence(self.random_state).generate_state(1)[0])
        )
        xt = torch.as_tensor(x, dtype=torch.float64).to(dev)
        white = pca_whitening(xt, self.n_components)
        k = white.whitener.shape[0]
        z = ((xt - white.mean) @ white.whitener.T).T.to(dtype).contiguous()
        del xt
        w0 = self._initial_unmixing(k, generator)
        result = self._solve(z, w0, generator, callback)
        self._set_fitted(white, result, x.shape[1])
        self.seconds_ = time.perf_counter() - start
        if not result.converged:
            warnings.warn(
                f"InfomaxICA did not converge ({result.stop} after {result.n_iter} iterations); "
                "raise max_iter, or check the data (rank, outliers)",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _solve(self, z, w0, generator, callback) -> SolverResult:
        if self.solver == "lbfgs":
            sub = self.subsample
            if sub == "auto":
                sub = auto_subsample(z.shape[0], z.shape[1])
            elif sub is not None and not (isinstance(sub, int) and sub > z.shape[0]):
                raise ValueError(
                    f"subsample must be 'auto', None or an integer above n_components, got {sub!r}"
                )
            return solve_lbfgs(
                z, w0, self.extended, self.max_iter, self.tol, sub, generator, callback,
                super_gaussian=self.super_gaussian,
            )  # fmt: skip
        return solve_natural_gradient(
            z, w0, self.extended, self.max_iter, self.tol, generator=generator,
            callback=callback, super_gaussian=self.super_gaussian,
        )  # fmt: skip

    def _set_fitted(self, white, result: SolverResult, n_features: int) -> None:
        w = result.w.to(white.whitener.device)
        w = w / torch.sqrt((w @ w.T).diagonal())[:, None]  # unit-variance sources
        mixing = white.dewhitener @ torch.linalg.inv(w)
        order = torch.argsort(mixing.square().sum(dim=0), descending=True)
        w, mixing = w[order], mixing[:, order]
        sign = torch.sign(mixing[mixing.abs().argmax(dim=0), torch.arange(mixing.shape[1])])
        w, mixing = w * sign[:, None], mixing * sign[None, :]
        self.unmixing_ = w.cpu().numpy()
        self.whitening_ = white.whitener.cpu().numpy()
        self.components_ = (w @ white.whitener).cpu().numpy()
        self.mixing_ = mixing.cpu().numpy()
        self.mean_ = white.mean.cpu().numpy()
        self.signs_ = result.signs[order.cpu()].numpy().astype(np.int64)
        self.n_iter_ = result.n_iter
        self.converged_ = bool(result.converged)
        self.stop_reason_ = result.stop
        self.n_features_in_ = n_features
        self.n_components_ = int(w.shape[0])

    def _check_input(self, X, width_attr: str, what: str) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit first")
        x = check_samples(X, name="X")
        width = getattr(self, width_attr)
        if x.shape[1] != width:
            raise ValueError(f"X has {x.shape[1]} columns but {width} {what} were expected")
        return x

    def transform(self, X) -> np.ndarray:
        """The sources of ``X`` (samples x channels): ``(X - mean_) @ components_.T``."""
        x = self._check_input(X, "n_features_in_", "channels")
        return (x - self.mean_) @ self.components_.T

    def inverse_transform(self, X) -> np.ndarray:
        """Channels from sources (samples x n_components): ``S @ mixing_.T + mean_``."""
        s = self._check_input(X, "n_components_", "components")
        return s @ self.mixing_.T + self.mean_
