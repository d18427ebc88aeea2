"""``fit_lingam``: DirectLiNGAM on a descriptor table, with prior knowledge and a seeded bootstrap."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..lattice import DESCRIPTORS
from ..progress import report
from ..provenance import make_provenance
from .engine import bootstrap_indices, direct_lingam_batch
from .prior import describe_prior_knowledge, make_prior_knowledge
from .result import LingamResult

__all__ = ["fit_lingam", "DEFAULT_EXOGENOUS", "validate_table"]

#: Descriptors treated as exogenous by default (the paper's prior knowledge: column intensities are
#: set by the chemistry/thickness, not by the distortions).
DEFAULT_EXOGENOUS: tuple[str, ...] = ("I14", "I5")

_BOOT_CHUNK = 50  # resamples per engine call (progress/cancel granularity) ...
_CHUNK_VALUES = 4_000_000  # ... and at most this many resampled values in memory at once


def _as_table(X, names) -> tuple[np.ndarray, list[str], dict]:
    units: dict = {}
    if hasattr(X, "table") and isinstance(getattr(X, "table"), pd.DataFrame):  # a Cells object
        units = dict(getattr(X, "units", {}) or {})
        X = X.table
        if names is None:
            names = [c for c in DESCRIPTORS if c in X.columns]
    if isinstance(X, pd.DataFrame):
        units = {**dict(X.attrs.get("units", {}) or {}), **units}
        if names is not None:
            names = [str(n) for n in names]
            missing = [n for n in names if n not in X.columns]
            if missing:
                raise ValueError(f"Columns {missing} are not in the table; it has {list(map(str, X.columns))}.")
            X = X[names]
        names = [str(c) for c in X.columns]
        data = X.to_numpy()
        if data.dtype.kind not in "biuf":  # a column of another type: check them one by one (slower)
            bad = [n for n in names if not pd.api.types.is_numeric_dtype(X[n])]
            if bad:
                raise TypeError(f"Columns {bad} are not numeric; select numeric descriptor columns only.")
            data = X.to_numpy(dtype=float)
        data = data.astype(float, copy=False)
    else:
        try:
            data = np.asarray(X, dtype=float)
        except (TypeError, ValueError):
            raise TypeError("X must be a DataFrame or a numeric (samples, variables) array.") from None
        if data.ndim != 2:
            raise ValueError(f"X must be 2-D (samples, variables), got shape {data.shape}.")
        if names is None:
            names = [f"x{k}" for k in range(data.shape[1])]
        names = [str(n) for n in names]
        if len(names) != data.shape[1]:
            raise ValueError(f"{len(names)} names given for {data.shape[1]} columns.")
    if len(set(names)) != len(names):
        raise ValueError(f"Variable names must be unique, got {names}.")
    if len(names) < 2:
        raise ValueError(f"Causal discovery needs at least 2 variables, got {names}.")
    return data, names, units


def validate_table(data: np.ndarray, names) -> tuple[np.ndarray, int]:
    """Drop rows with NaN/inf and check the table can be fitted.

    Parameters
    ----------
    data : (n, p) float array
    names : sequence of str

    Returns
    -------
    clean : (n_kept, p) array
    n_dropped : int

    Raises
    ------
    ValueError
        Too few rows (need more than p + 1), a constant column, or linearly dependent columns.
    """
    finite = np.isfinite(data).all(axis=1)
    n_dropped = int(finite.size - np.count_nonzero(finite))
    clean = data[finite] if n_dropped else data
    n, p = clean.shape
    if n <= p + 1:
        raise ValueError(
            f"Only {n} complete rows ({n_dropped} dropped for NaN) for {p} variables; need more than "
            f"{p + 1}. Use a larger region or fewer variables."
        )
    centred = clean - clean.mean(axis=0)
    cov = centred.T @ centred / n  # one product gives the std and the correlations (fast for many fits)
    std = np.sqrt(np.diag(cov))
    scale = np.maximum(np.abs(clean).max(axis=0), np.finfo(float).tiny)
    const = [names[k] for k in np.flatnonzero(std <= 1e-12 * scale)]
    if const:
        raise ValueError(f"Columns {const} are constant; remove them from the variables.")
    corr = np.clip(cov / np.outer(std, std), -1.0, 1.0)
    if np.linalg.eigvalsh(corr)[0] >= 1e-9:  # the usual case: no pair nor group of columns is degenerate
        return clean, n_dropped
    # a pair with |r| > 1 - 1e-9 makes the smallest eigenvalue < 1e-9 (interlacing), so it is found here
    duplicates = np.argwhere(np.abs(np.tril(corr, -1)) > 1 - 1e-9)
    if len(duplicates):
        i, j = duplicates[0]
        raise ValueError(
            f"Columns {names[j]!r} and {names[i]!r} are duplicates up to scale (correlation "
            f"{corr[i, j]:+.10f}); keep only one of them."
        )
    evals, evecs = np.linalg.eigh(corr)
    if evals[0] < 1e-10:
        involved = [names[k] for k in np.argsort(-np.abs(evecs[:, 0]))[:3] if abs(evecs[k, 0]) > 0.1]
        raise ValueError(
            f"The columns are linearly dependent (e.g. one of {involved} is a combination of the others); "
            "drop a derived column (such as Vol when a, b and alpha are present only if they are exactly related)."
        )
    return clean, n_dropped


def _resolve_prior(prior_knowledge, names):
    if isinstance(prior_knowledge, str):
        if prior_knowledge != "default":
            raise ValueError(
                f"prior_knowledge must be 'default', None, a matrix, a list or a dict; got {prior_knowledge!r}."
            )
        exo = [n for n in DEFAULT_EXOGENOUS if n in names]
        return make_prior_knowledge(names, exogenous=exo) if exo else None
    if prior_knowledge is None:
        return None
    if isinstance(prior_knowledge, Mapping):
        allowed = {"exogenous", "sink", "forbidden", "required", "matrix"}
        unknown = set(prior_knowledge) - allowed
        if unknown:
            raise ValueError(f"Unknown prior-knowledge keys {sorted(unknown)}; use {sorted(allowed)}.")
        return make_prior_knowledge(names, **prior_knowledge)
    arr = np.asarray(prior_knowledge, dtype=object)
    if arr.ndim == 2 and arr.shape == (len(names), len(names)) and not isinstance(arr.flat[0], str):
        return make_prior_knowledge(names, matrix=np.asarray(prior_knowledge, dtype=float))
    if isinstance(prior_knowledge, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in prior_knowledge):
        items = list(prior_knowledge)
        edges = [v for v in items if "<-" in v or "->" in v]
        exogenous = [v for v in items if v not in edges]
        return make_prior_knowledge(names, exogenous=exogenous, required=edges)
    raise TypeError(
        "prior_knowledge must be 'default', None, a (p, p) lingam matrix, a list of exogenous names "
        "(and 'effect <- cause' required edges), or a dict with keys exogenous/sink/forbidden/required."
    )


def fit_lingam(
    X,
    *,
    names=None,
    prior_knowledge="default",
    n_bootstrap: int = 0,
    seed=None,
    standardize: bool = True,
    min_causal_effect: float = 0.0,
    units: Mapping | None = None,
    progress=None,
    cancel=None,
) -> LingamResult:
    """Fit DirectLiNGAM to a table of descriptors.

    Parameters
    ----------
    X : DataFrame, (n, p) array or Cells
        One row per unit cell (sample), one column per variable (e.g. ``cells.table[DESCRIPTORS]``); a
        DataFrame uses all its columns unless ``names`` is given.  A ``Cells`` object gives its 8
        descriptors and their units.  Rows with NaN/inf in a selected column are dropped and counted
        (``result.n_dropped``).
    names : sequence of str, optional
        Columns to use (DataFrame) or names of the array's columns (default ``x0, x1, ...``).
    prior_knowledge : "default", None, (p, p) array, list or dict
        ``"default"``: I14 and I5 exogenous when present; ``None``: none; a lingam matrix; a list of
        exogenous names (strings with an arrow are required edges, e.g. ``"Px <- I5"``); or a dict with
        keys ``exogenous``, ``sink``, ``forbidden``, ``required`` (see :func:`make_prior_knowledge`).
    n_bootstrap : int
        Number of bootstrap resamples (0 = none); resample ``k`` is row ``k`` of
        ``bootstrap_indices(n_samples, n_bootstrap, np.random.default_rng(seed))``.
    seed : int or None
        Seed of the resampling generator; the same seed gives bit-identical results.
    standardize : bool
        Fit z-scored variables (default).  ``adjacency`` is then in std per std; use
        ``result.adjacency_in_units()`` for physical couplings.  ``False`` fits the data as given (the same
        answers as ``lingam.DirectLiNGAM(prior_knowledge=pk).fit(X)``).
    min_causal_effect : float
        ``|B| > min_causal_effect`` counts an edge as present in a resample (lingam's convention), in the
        units of ``adjacency``.
    units : mapping, optional
        Unit of each variable (default: ``X.attrs["units"]`` of a DataFrame, else unknown).
    progress, cancel
        See :mod:`napari_causal_lattice.progress`; reported once per chunk of (at most) 50 resamples.

    Returns
    -------
    LingamResult

    Raises
    ------
    ValueError
        Too few complete rows (need more than p + 1), constant or linearly dependent columns, unknown names
        or inconsistent (cyclic) prior knowledge, ``n_bootstrap < 0``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z0 = rng.uniform(-1, 1, 2000)
    >>> z1 = 3 * z0 + rng.uniform(-1, 1, 2000)
    >>> res = fit_lingam(np.c_[z1, z0], names=["z1", "z0"], standardize=False)
    >>> [res.names[k] for k in res.causal_order]
    ['z0', 'z1']
    >>> round(res.coefficient("z1", "z0"), 1)
    3.0
    """
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)):
        raise TypeError(f"n_bootstrap must be a whole number of resamples, got {n_bootstrap!r}.")
    n_bootstrap = int(n_bootstrap)
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}.")
    if isinstance(seed, np.random.Generator):
        raise TypeError("seed must be a whole number >= 0 or None, not a numpy Generator (it cannot be stored with "
                        "the result to repeat the fit); pass e.g. seed=int(rng.integers(2**32)).")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(
            f"seed must be a whole number >= 0 or None (the same seed gives the same result), got {seed!r}."
        )
    if min_causal_effect < 0:
        raise ValueError(f"min_causal_effect must be >= 0, got {min_causal_effect}.")
    data, names, table_units = _as_table(X, names)
    unit_map = {**table_units, **dict(units or {})}
    pk = _resolve_prior(prior_knowledge, names)
    clean, n_dropped = validate_table(data, names)
    n, p = clean.shape
    mean = clean.mean(axis=0)
    scale = clean.std(axis=0)
    Z = (clean - mean) / scale if standardize else clean

    chunk = max(1, min(_BOOT_CHUNK, _CHUNK_VALUES // (n * p)))
    n_chunks = -(-n_bootstrap // chunk)
    total = 1 + n_chunks
    report(progress, 0, total, cancel)
    orders, B = direct_lingam_batch(Z[None], prior_knowledge=pk)
    if orders[0, 0] < 0:
        raise ValueError("The variables are degenerate (a residual became constant); check for derived columns.")
    report(progress, 1, total, cancel)

    probabilities = boot_B = boot_orders = None
    n_failed = 0
    if n_bootstrap:
        if seed is None:  # record a fresh seed so the run can be repeated exactly
            seed = int(np.random.SeedSequence().entropy % (2**63))
        rng = np.random.default_rng(seed)
        boot_orders = np.empty((n_bootstrap, p), dtype=np.int64)
        boot_B = np.empty((n_bootstrap, p, p))
        for c in range(n_chunks):
            sl = slice(c * chunk, min(n_bootstrap, (c + 1) * chunk))
            idx = bootstrap_indices(n, sl.stop - sl.start, rng)  # = rows sl of bootstrap_indices(n, n_bootstrap)
            boot_orders[sl], boot_B[sl] = direct_lingam_batch(Z[idx], prior_knowledge=pk)
            report(progress, 2 + c, total, cancel)
        failed = boot_orders[:, 0] < 0
        n_failed = int(failed.sum())
        if n_failed == n_bootstrap:
            raise ValueError("Every bootstrap resample was degenerate (constant column); use more rows.")
        boot_B, boot_orders = boot_B[~failed], boot_orders[~failed]
        probabilities = (np.abs(boot_B) > min_causal_effect).mean(axis=0)

    prior_desc = describe_prior_knowledge(pk, names) if pk is not None else None
    params = {
        "names": list(names),
        "prior_knowledge": "none" if pk is None else prior_desc,
        "n_bootstrap": n_bootstrap,
        "n_bootstrap_degenerate": n_failed,
        "seed": seed,
        "standardize": bool(standardize),
        "min_causal_effect": float(min_causal_effect),
        "engine": "napari_causal_lattice.causal.engine (DirectLiNGAM, pwling, adaptive lasso BIC)",
    }
    return LingamResult(
        names=tuple(names),
        causal_order=orders[0],
        adjacency=B[0],
        probabilities=probabilities,
        bootstrap_adjacency=boot_B,
        bootstrap_orders=boot_orders,
        n_samples=n,
        n_dropped=n_dropped,
        units=unit_map,
        scale=scale,
        standardized=bool(standardize),
        prior_knowledge=pk,
        params=params,
        provenance=make_provenance("fit_lingam", params, seed=seed),
    )
