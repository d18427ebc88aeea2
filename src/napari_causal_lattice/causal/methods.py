"""One seam for causal-discovery backends: the :class:`CausalMethod` protocol and the two shipped methods.

Every function that fits causal graphs (``fit_lingam``, ``sliding_lingam``, ``compare_images``,
``wall_profile``) takes ``method=`` and calls only ``method.fit_batch``.  Two methods ship:

* :class:`EngineMethod` (``"engine"``, the default): the batched numba DirectLiNGAM of
  :mod:`napari_causal_lattice.causal.engine`.
* :class:`LingamMethod` (``"lingam"``): the ``lingam`` package's ``DirectLiNGAM``, one dataset at a time, as
  a reference (slow; imported on first use only, it takes ~1.3 s).

Adding another backend (ICA-LiNGAM, a GPU kernel) means writing a picklable object with a ``name`` string
and a ``fit_batch`` method of the signature below, and passing it as ``method=``::

    class ICALiNGAMMethod:
        name = "lingam.ICALiNGAM"

        def fit_batch(self, X, mask=None, prior=None, *, workers=None):
            ...  # fit each X[k][mask[k]]; return orders (m, p) int, B (m, p, p) float

A degenerate dataset must come back with order ``-1`` (all entries) and ``B`` NaN, not an exception.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .engine import direct_lingam_batch

__all__ = ["CausalMethod", "EngineMethod", "LingamMethod", "resolve_method", "METHODS"]


@runtime_checkable
class CausalMethod(Protocol):
    """What a causal-discovery backend provides.

    Attributes
    ----------
    name : str
        Recorded in the provenance of every result.
    """

    name: str

    def fit_batch(self, X, mask=None, prior=None, *, workers=None):
        """Fit ``m`` datasets.

        Parameters
        ----------
        X : (m, n, p) float array
            Datasets (samples x variables), fitted as given (already standardized if wanted).
        mask : (m, n) bool array or None
            Valid rows of each dataset (None: all).
        prior : (p, p) int array or None
            lingam prior-knowledge matrix (``pk[i, j]`` is about a path ``j -> i``).
        workers : int or None
            Threads the method may use (1 when it is called from a thread pool); results must not depend on it.

        Returns
        -------
        orders : (m, p) int array
            Causal order of each dataset (causes first); ``-1`` for a degenerate dataset.
        B : (m, p, p) float array
            ``B[k, i, j]`` = direct effect of ``j`` on ``i``; NaN for a degenerate dataset.
        """


@dataclass(frozen=True)
class EngineMethod:
    """The fast batched DirectLiNGAM engine (default); same answers as lingam's DirectLiNGAM to ~1e-10."""

    name: str = "engine"

    def fit_batch(self, X, mask=None, prior=None, *, workers=None):
        return direct_lingam_batch(X, prior_knowledge=prior, mask=mask, workers=workers)


@dataclass(frozen=True)
class LingamMethod:
    """The reference backend: ``lingam.DirectLiNGAM`` fitted dataset by dataset (slow, for cross-checks)."""

    name: str = "lingam"

    def __post_init__(self):
        try:
            missing = importlib.util.find_spec("lingam") is None
        except (ImportError, ValueError):  # a broken or blocked install
            missing = True
        if missing:
            raise ImportError('method="lingam" needs the lingam package (an optional extra). Install it with\n'
                              '    pip install "napari-causal-lattice[lingam]"\n'
                              'or use the default method="engine", which gives the same answers.')

    def fit_batch(self, X, mask=None, prior=None, *, workers=None):
        import lingam  # lazy: importing lingam takes over a second

        X = np.asarray(X, dtype=float)
        m, n, p = X.shape
        mask = np.ones((m, n), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        orders = np.full((m, p), -1, dtype=np.int64)
        B = np.full((m, p, p), np.nan)
        pk = None if prior is None else np.asarray(prior, dtype=int)
        for k in range(m):
            model = lingam.DirectLiNGAM(prior_knowledge=pk)
            try:
                model.fit(X[k][mask[k]])
            except (ValueError, np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError):
                continue
            adjacency = np.asarray(model.adjacency_matrix_, dtype=float)
            if np.all(np.isfinite(adjacency)):
                orders[k] = model.causal_order_
                B[k] = adjacency
        return orders, B


#: Methods known by name.
METHODS = {"engine": EngineMethod, "lingam": LingamMethod}


def resolve_method(method) -> CausalMethod:
    """The method object for ``method``: None / ``"engine"``, ``"lingam"`` or any object with ``fit_batch``.

    Raises
    ------
    ValueError
        An unknown method name.
    TypeError
        Anything else that has no ``fit_batch`` method.
    """
    if method is None:
        return EngineMethod()
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"Unknown causal method {method!r}; use one of {sorted(METHODS)} or an object with "
                             "a fit_batch(X, mask, prior) method (see napari_causal_lattice.causal.methods).")
        return METHODS[method]()
    if callable(getattr(method, "fit_batch", None)):
        return method
    raise TypeError(f"method must be 'engine', 'lingam' or an object with a fit_batch(X, mask, prior) method, got "
                    f"{type(method).__name__}.")
