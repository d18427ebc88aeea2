"""``fit_lingam``: DirectLiNGAM on a descriptor table, with prior knowledge and a seeded bootstrap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from .._warn import warn
from ..lattice import DESCRIPTORS
from ..options import CausalOptions, takes_options
from ..progress import report
from ..provenance import make_provenance
from .confidence import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_DIRECTION,
    DEFAULT_SPATIAL_MAX_LAG,
    edge_decision,
    fdr_adjust,
    order_pvalues_from_covariance,
    spatial_inflation,
)
from .eiv import eiv_adjacency, sigma_columns
from .engine import bootstrap_indices
from .methods import resolve_method
from .prior import DEFAULT_EXOGENOUS, describe_prior_knowledge, resolve_prior
from .result import LingamResult
from .toolbox import error_independence_pvalues, total_effects_from_data

__all__ = [
    "fit_lingam",
    "DEFAULT_EXOGENOUS",
    "validate_table",
    "near_deterministic",
    "warn_deterministic",
    "DeterministicDescriptorWarning",
    "ErrorDependenceWarning",
]

#: Descriptors known to be computed from others (dropped first when a near-deterministic group is found).
DERIVED_DESCRIPTORS: tuple[str, ...] = ("Vol",)

_TINY = np.finfo(float).tiny
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


def _prepared(X, data, names, *, eiv: bool, drop_deterministic: bool) -> dict:
    """Validated complete rows, their statistics and uncertainties; near-deterministic variables reported
    (and with ``drop_deterministic`` left out)."""
    sigma = _eiv_sigma(X, data, names) if eiv else None
    clean, n_dropped, mean, scale, standard, correlation, inverse = _validate(data, names)
    found = _near_deterministic(correlation, names, inverse=inverse)
    dropped = list(found) if drop_deterministic else []
    if found:
        warn_deterministic(found, dropped)
        keep = [k for k, name in enumerate(names) if name not in dropped]
        clean, names, sigma = clean[:, keep], [names[k] for k in keep], None if sigma is None else sigma[:, keep]
        scale, standard, correlation = scale[keep], standard[:, keep], correlation[np.ix_(keep, keep)]
    return {"names": names, "clean": clean, "n_dropped": n_dropped, "scale": scale, "standard": standard,
            "correlation": correlation, "sigma": sigma, "dropped": dropped}


def _grid_positions(X, data) -> np.ndarray | None:
    """(n_complete, 2) grid (i, j) of the rows ``validate_table`` keeps, or None without integer grid columns."""
    table = X.table if hasattr(X, "table") and isinstance(getattr(X, "table"), pd.DataFrame) else X
    if not isinstance(table, pd.DataFrame) or not {"i", "j"} <= set(map(str, table.columns)):
        return None
    ij = table[["i", "j"]].to_numpy()
    if not np.all(np.isfinite(ij)) or not np.array_equal(ij, np.round(ij)) or len(ij) != len(data):
        return None
    ij = ij.astype(np.int64)[np.all(np.isfinite(data), axis=1)]
    if len(np.unique(ij, axis=0)) != len(ij):
        return None  # repeated grid indices: not one cell per row
    return ij


def _error_independence(Z, B, names, alpha: float, max_rows: int):
    """HSIC p-values of the fitted errors (rows subsampled above ``max_rows``), warning when the model does not
    fit; returns (p-values or None, rows used)."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 0:
        raise ValueError(f"independence_max_samples must be a whole number >= 0, got {max_rows!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"independence_alpha must be between 0 and 1 (e.g. 0.01), got {alpha!r}")
    n, p = Z.shape
    if max_rows == 0 or n < 6:
        return None, 0
    rows = np.round(np.linspace(0, n - 1, max_rows)).astype(np.int64) if n > max_rows else slice(None)
    P = error_independence_pvalues(Z[rows], B)
    n_pairs = p * (p - 1) // 2
    bad = [(names[u], names[v], P[u, v]) for u in range(p) for v in range(u + 1, p) if P[u, v] < alpha / n_pairs]
    if bad:
        listing = ", ".join(f"{a}/{b}" for a, b, _ in sorted(bad, key=lambda x: x[2])[:4])
        warn(
            f"The linear non-Gaussian model does not fit: the errors of {listing}"
            f"{' and more' if len(bad) > 4 else ''} are dependent (HSIC, family-wise level {alpha} over {n_pairs} "
            "pairs). A hidden common cause, a non-linear or cyclic relation, or errors shared between cells break "
            "LiNGAM's assumptions; read the orders and links with care (result.error_independence_summary()).",
            ErrorDependenceWarning,
        )
    return P, int(min(n, max_rows))


class _Bootstrap(NamedTuple):
    """The bootstrap stage of :func:`fit_lingam`: the seed used (drawn when none was given), the share of
    resamples with each edge, and the non-degenerate resamples' adjacencies, orders and rows."""

    seed: int | None
    probabilities: np.ndarray | None = None
    adjacency: np.ndarray | None = None
    orders: np.ndarray | None = None
    rows: np.ndarray | None = None
    n_failed: int = 0


def _bootstrap_stage(Z, pk, method, n_bootstrap: int, chunk: int, seed, min_causal_effect: float, *,
                     keep_rows: bool, progress, cancel, total: int) -> _Bootstrap:
    """Fit the resamples of the seeded generator (none for ``n_bootstrap == 0``) and drop degenerate ones."""
    if not n_bootstrap:
        return _Bootstrap(seed)
    if seed is None:  # record a fresh seed so the run can be repeated exactly
        seed = int(np.random.SeedSequence().entropy % (2**63))
    boot_orders, boot_B, boot_idx = _bootstrap(Z, pk, method, n_bootstrap, chunk, np.random.default_rng(seed),
                                               keep_rows=keep_rows, progress=progress, cancel=cancel, total=total)
    failed = boot_orders[:, 0] < 0
    n_failed = int(failed.sum())
    if n_failed == n_bootstrap:
        raise ValueError("Every bootstrap resample was degenerate (constant column); use more rows.")
    boot_B, boot_orders, boot_idx = boot_B[~failed], boot_orders[~failed], boot_idx[~failed]
    probabilities = (np.abs(boot_B) > min_causal_effect).mean(axis=0)
    return _Bootstrap(seed, probabilities, boot_B, boot_orders, boot_idx, n_failed)


def _order_pvalues(t: dict, orders, pk, positions, max_lag: int) -> np.ndarray:
    """(p, p) p-values of the order t-test, with the cells' spatial autocorrelation when ``positions`` is given."""
    n = len(t["clean"])
    inflation = None if positions is None else spatial_inflation(t["standard"][None], orders, positions[None],
                                                                 max_lag=max_lag)
    return order_pvalues_from_covariance(t["correlation"][None], n, orders, prior=pk, inflation=inflation)[0]


def _eiv_stage(t: dict, B, boot: _Bootstrap):
    """``(adjacency_eiv, bootstrap_adjacency_eiv)`` corrected for the cells' measurement noise (None without
    ``sigma_<name>`` columns; the second also None without kept bootstrap rows)."""
    if t["sigma"] is None:
        return None, None
    sigma, clean = t["sigma"], t["clean"]
    eiv_B = eiv_adjacency(clean[None], np.mean(sigma**2, axis=0)[None], B)[0]
    if boot.rows is None:
        return eiv_B, None
    return eiv_B, eiv_adjacency(clean[boot.rows], np.mean(sigma[boot.rows] ** 2, axis=1), boot.adjacency)


def _bootstrap(Z, pk, method, n_bootstrap: int, chunk: int, rng, *, keep_rows: bool, progress, cancel, total: int):
    """Fit ``n_bootstrap`` resamples of ``Z`` in chunks; returns orders, adjacencies and (``keep_rows``) the rows."""
    n, p = Z.shape
    boot_orders = np.empty((n_bootstrap, p), dtype=np.int64)
    boot_B = np.empty((n_bootstrap, p, p))
    boot_idx = np.empty((n_bootstrap, n if keep_rows else 0), dtype=np.int64)
    for c in range(-(-n_bootstrap // chunk)):
        sl = slice(c * chunk, min(n_bootstrap, (c + 1) * chunk))
        idx = bootstrap_indices(n, sl.stop - sl.start, rng)  # = rows sl of bootstrap_indices(n, n_bootstrap)
        boot_orders[sl], boot_B[sl] = method.fit_batch(Z[idx], None, pk)
        if keep_rows:
            boot_idx[sl] = idx
        report(progress, 2 + c, total, cancel)
    return boot_orders, boot_B, boot_idx


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
    clean, n_dropped = _validate(data, names)[:2]
    return (clean.copy() if clean is data else clean), n_dropped


def _validate(data: np.ndarray, names):
    """:func:`validate_table`, also returning the column means, standard deviations, standardised rows,
    correlation matrix and its inverse (None when it is not well conditioned)."""
    if np.isfinite(data).all():  # the common case: no row to drop, no copy
        clean, n_dropped = data, 0
    else:
        finite = np.all(np.isfinite(data), axis=1)
        clean, n_dropped = data[finite], int((~finite).sum())
    n, p = clean.shape
    if n <= p + 1:
        raise ValueError(
            f"Only {n} complete rows ({n_dropped} dropped for NaN) for {p} variables; need more than "
            f"{p + 1}. Use a larger region or fewer variables."
        )
    mean = clean.sum(axis=0) / n  # = clean.mean(axis=0), bit for bit, without its Python wrapper
    centred = clean - mean
    std = np.sqrt(np.einsum("ij,ij->j", centred, centred) / n)
    _check_not_constant(clean, mean, std, names)
    standard = centred / std
    corr = standard.T @ standard / n
    twins = np.abs(corr) > 1 - 1e-9
    if np.count_nonzero(twins) > p:  # more than the diagonal (1 to rounding): a pair of duplicate columns
        np.fill_diagonal(twins, False)
        i, j = np.argwhere(np.tril(twins))[0]
        raise ValueError(
            f"Columns {names[j]!r} and {names[i]!r} are duplicates up to scale (correlation "
            f"{corr[i, j]:+.10f}); keep only one of them."
        )
    try:  # trace(corr^-1) >= 1 / smallest eigenvalue: a cheap bound before the eigendecomposition
        inverse = np.linalg.inv(corr)
        well_posed = np.trace(inverse) < 1e10
    except np.linalg.LinAlgError:
        well_posed = False
    evals, evecs = (np.ones(1), None) if well_posed else np.linalg.eigh(corr)
    if evals[0] < 1e-10:
        involved = [names[k] for k in np.argsort(-np.abs(evecs[:, 0]))[:3] if abs(evecs[k, 0]) > 0.1]
        raise ValueError(
            f"The columns are linearly dependent (e.g. one of {involved} is a combination of the others); "
            "drop a derived column (such as Vol when a, b and alpha are present only if they are exactly related)."
        )
    return clean, n_dropped, mean, std, standard, corr, inverse if well_posed else None


def _check_not_constant(clean, mean, std, names) -> None:
    """Refuse columns whose standard deviation is below 1e-12 of their largest magnitude.

    ``max |x| <= |mean| + sqrt(n) std``, so a column passes without the (n, p) scan for its maximum when its
    std exceeds 1e-12 of that bound (every column of real data).
    """
    bound = np.maximum(np.abs(mean) + np.sqrt(len(clean)) * std, _TINY)
    if np.all(std > 1e-12 * bound):
        return
    const = std <= 1e-12 * np.maximum(np.abs(clean).max(axis=0), _TINY)
    if const.any():
        raise ValueError(f"Columns {[names[k] for k in np.flatnonzero(const)]} are constant; remove them from the "
                         "variables.")


def _eiv_sigma(X, data, names) -> np.ndarray:
    """(n_complete, p) per-cell uncertainty of ``names`` for the rows ``validate_table`` keeps."""
    table = X.table if hasattr(X, "table") and isinstance(getattr(X, "table"), pd.DataFrame) else X
    sigma = sigma_columns(table, names) if isinstance(table, pd.DataFrame) else None
    if sigma is None:
        raise ValueError(
            f"eiv=True needs per-cell uncertainty columns sigma_<name> (e.g. sigma_Py) for some of {list(names)}; "
            "the table has none (build the cells with uncertainties, or add them)."
        )
    return sigma[np.all(np.isfinite(data), axis=1)]


class ErrorDependenceWarning(UserWarning):
    """The error-independence test rejects: the linear non-Gaussian acyclic model does not fit the data."""


class DeterministicDescriptorWarning(UserWarning):
    """A variable is a near-exact linear function of the others (LiNGAM cannot orient such relations)."""


def near_deterministic(data, names, *, r2_threshold: float = 0.999) -> dict:
    """Variables that the other variables predict almost exactly (linear R^2 above ``r2_threshold``).

    Parameters
    ----------
    data : (n, p) float array
        Complete rows (no NaN).
    names : sequence of str
    r2_threshold : float
        R^2 of the linear regression of a variable on all the others above which it is reported.

    Returns
    -------
    dict
        ``{name: R^2}`` of the variables to leave out, in the order they would be dropped: a known derived
        descriptor (:data:`DERIVED_DESCRIPTORS`, e.g. ``Vol = a b sin(alpha)``) first, else the highest R^2,
        re-checking the rest after each drop (dropping one member of a group frees the others).
    """
    return _near_deterministic(np.corrcoef(np.asarray(data, dtype=float), rowvar=False), names, r2_threshold)


def _near_deterministic(correlation: np.ndarray, names, r2_threshold: float = 0.999, *, inverse=None) -> dict:
    """:func:`near_deterministic` from the (p, p) correlation matrix (and its inverse, if already computed).

    R^2 of variable ``k`` on all the others is ``1 - 1 / (corr^-1)[k, k]``.
    """
    if inverse is not None:
        r2 = 1.0 - 1.0 / np.diag(inverse)
        if not np.any(r2 > r2_threshold):  # the common case: nothing to report, one inverse for everything
            return {}
    names = [str(n) for n in names]
    keep = list(range(len(names)))
    found: dict = {}
    while len(keep) > 1:
        corr = correlation[np.ix_(keep, keep)]
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                r2 = 1.0 - 1.0 / np.diag(np.linalg.inv(corr))
            except np.linalg.LinAlgError:
                r2 = 1.0 - 1.0 / np.diag(np.linalg.pinv(corr))
        above = [k for k in range(len(keep)) if r2[k] > r2_threshold]
        if not above:
            break
        derived = [k for k in above if names[keep[k]] in DERIVED_DESCRIPTORS]
        drop = derived[0] if derived else max(above, key=lambda k: r2[k])
        found[names[keep[drop]]] = float(min(r2[drop], 1.0))
        del keep[drop]
    return found


def warn_deterministic(found: Mapping, dropped) -> None:
    """Emit the :class:`DeterministicDescriptorWarning` for the output of :func:`near_deterministic`."""
    listing = ", ".join(f"{n} (R^2 = {r:.4f})" for n, r in found.items())
    action = (f"left out: {', '.join(dropped)}" if dropped else
              "leave them out (tick 'leave out deterministic descriptors'; drop_deterministic=True), or "
              "choose variables without them")
    warn(
        f"Near-deterministic variables: {listing} are almost exact linear functions of the other variables, which "
        f"breaks LiNGAM's assumptions (their edges cannot be oriented); {action}.",
        DeterministicDescriptorWarning,
    )


@takes_options(CausalOptions, aliases={"names": "variables", "method": "backend"})
def fit_lingam(
    X,
    *,
    variables=None,
    prior_knowledge="default",
    n_bootstrap: int = 0,
    seed=None,
    standardize: bool = True,
    min_causal_effect: float = 0.0,
    units: Mapping | None = None,
    backend=None,
    alpha: float = DEFAULT_ALPHA,
    fdr: str | None = None,
    min_direction: float = DEFAULT_MIN_DIRECTION,
    drop_deterministic: bool = False,
    eiv: bool = False,
    spatial: bool = True,
    spatial_max_lag: int = DEFAULT_SPATIAL_MAX_LAG,
    independence_alpha: float = 0.01,
    independence_max_samples: int = 1000,
    progress=None,
    cancel=None,
    null=None,
) -> LingamResult:
    """Fit DirectLiNGAM to a table of descriptors.

    Parameters
    ----------
    X : DataFrame, (n, p) array or Cells
        One row per unit cell (sample), one column per variable (e.g. ``cells.table[DESCRIPTORS]``); a
        DataFrame uses all its columns unless ``names`` is given.  A ``Cells`` object gives its 8
        descriptors and their units.  Rows with NaN/inf in a selected column are dropped and counted
        (``result.n_dropped``).
    variables : sequence of str, optional
        Columns to use (DataFrame) or names of the array's columns (default ``x0, x1, ...``); formerly
        ``names``, which still works with a DeprecationWarning.
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
    backend : "engine", "lingam" or CausalMethod, optional
        Causal-discovery backend (:mod:`napari_causal_lattice.causal.methods`); default the fast engine
        (formerly ``method``).
    alpha, fdr, min_direction
        The calibrated edge test (``result.significant``, ``p_values``): level, optional FDR control over
        the p(p-1) edges (``"bh"`` / ``"by"``) and the bootstrap share that states a direction; see
        :mod:`napari_causal_lattice.causal.confidence` and ``docs/confidence.md``.
    drop_deterministic : bool
        Leave out variables that are near-exact linear functions of the others (R^2 > 0.999); they are always
        reported with a :class:`DeterministicDescriptorWarning`.
    eiv : bool
        Also give coefficients corrected for measurement noise (``adjacency_eiv``, ``bootstrap_adjacency_eiv``,
        in descriptor units), from the per-cell uncertainty columns ``sigma_<name>`` of the table (regression
        calibration, :mod:`napari_causal_lattice.causal.eiv`).  Needs a DataFrame or Cells with such columns.
    spatial, spatial_max_lag : bool, int
        Spatially honest p-values (default): when the table has grid columns ``i`` and ``j`` (cells), the order
        t-test counts the spatial autocorrelation of the cells up to ``spatial_max_lag`` cells (an effective
        sample size; ``docs/confidence.md``).  ``spatial=False``, or a table without ``i, j``: cells independent.
    independence_alpha : float
        Family-wise level of the error-independence check (Bonferroni over the p(p-1)/2 pairs): when a pair's
        HSIC p-value (``result.error_independence_p_values``, as lingam's ``get_error_independence_p_values``)
        is below ``independence_alpha / n_pairs``, an :class:`ErrorDependenceWarning` says the model does not fit.
    independence_max_samples : int
        The HSIC test costs O(n^2) (about 0.15 s at 1,000 rows and 8 variables, 0.6 s at 2,000, 5.5 s at
        5,000; lingam's own takes all rows and n^2 memory per variable); above this many rows it runs on this
        many evenly spaced rows (recorded in
        ``params["independence_rows"]``); 0 skips it (``error_independence_p_values`` is None).
    progress, cancel
        See :mod:`napari_causal_lattice.progress`; reported once per chunk of (at most) 50 resamples.
    null : InstrumentNull, optional
        Test the edges against this instrument null as well (:func:`napari_causal_lattice.null.instrument_null`
        of the image ``X`` came from): ``significant`` keeps only edges that beat both, ``null_p_values`` and
        ``instrument`` are filled in (:meth:`InstrumentNull.apply`).
    options : CausalOptions, optional
        All of the options above at once (:mod:`napari_causal_lattice.options`); keywords given as well
        replace its fields.

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
    >>> res = fit_lingam(np.c_[z1, z0], variables=["z1", "z0"], standardize=False)
    >>> [res.names[k] for k in res.causal_order]
    ['z0', 'z1']
    >>> round(res.coefficient("z1", "z0"), 1)
    3.0
    """
    n_bootstrap = int(n_bootstrap)  # options are validated by CausalOptions (see takes_options)
    method = resolve_method(backend)
    data, names, table_units = _as_table(X, variables)
    t = _prepared(X, data, names, eiv=eiv, drop_deterministic=drop_deterministic)
    pk, _ = resolve_prior(prior_knowledge, t["names"])
    Z = t["standard"] if standardize else t["clean"]
    orders, B, boot = _fit_stage(Z, pk, method, n_bootstrap, seed, min_causal_effect, keep_rows=eiv,
                                 progress=progress, cancel=cancel)
    positions = _grid_positions(X, data) if spatial else None
    p_values = _order_pvalues(t, orders, pk, positions, spatial_max_lag)
    independence, independence_rows = _error_independence(Z, B[0], t["names"], independence_alpha,
                                                          independence_max_samples)
    tested = fdr_adjust(p_values, fdr) if fdr else p_values
    significant = edge_decision(tested, boot.probabilities, alpha=alpha, min_direction=min_direction)
    eiv_B, eiv_boot = _eiv_stage(t, B, boot)
    params = _fit_params(t, pk, method, boot, n_bootstrap=n_bootstrap, standardize=standardize,
                         min_causal_effect=min_causal_effect, alpha=alpha, fdr=fdr, min_direction=min_direction,
                         eiv=eiv, spatial=positions is not None, spatial_max_lag=spatial_max_lag,
                         independence_alpha=independence_alpha, independence_rows=independence_rows)
    result = LingamResult(
        names=tuple(t["names"]),
        causal_order=orders[0],
        adjacency=B[0],
        probabilities=boot.probabilities,
        bootstrap_adjacency=boot.adjacency,
        bootstrap_orders=boot.orders,
        p_values=p_values,
        significant=significant,
        total_effects=total_effects_from_data(Z, B[0], orders[0]),
        error_independence_p_values=independence,
        adjacency_eiv=eiv_B,
        bootstrap_adjacency_eiv=eiv_boot,
        n_samples=len(t["clean"]),
        n_dropped=t["n_dropped"],
        units={**table_units, **dict(units or {})},
        scale=t["scale"],
        standardized=bool(standardize),
        prior_knowledge=pk,
        params=params,
        provenance=make_provenance("fit_lingam", params, seed=boot.seed),
    )
    return result if null is None else null.apply(result)


def _fit_stage(Z, pk, method, n_bootstrap: int, seed, min_causal_effect: float, *, keep_rows: bool, progress,
               cancel):
    """The global fit of ``Z`` ((n, p) rows) and its bootstrap: ``(orders, B, _Bootstrap)``, ``orders`` (1, p)
    and ``B`` (1, p, p) (B[0, i, j]: effect of j on i).  Progress counts the global fit and each resample chunk."""
    n, p = Z.shape
    chunk = max(1, min(_BOOT_CHUNK, _CHUNK_VALUES // (n * p)))
    total = 1 + -(-n_bootstrap // chunk)
    report(progress, 0, total, cancel)
    orders, B = method.fit_batch(Z[None], None, pk)
    if orders[0, 0] < 0:
        raise ValueError("The variables are degenerate (a residual became constant); check for derived columns.")
    report(progress, 1, total, cancel)
    boot = _bootstrap_stage(Z, pk, method, n_bootstrap, chunk, seed, min_causal_effect, keep_rows=keep_rows,
                            progress=progress, cancel=cancel, total=total)
    return orders, B, boot


def _fit_params(t: dict, pk, method, boot: _Bootstrap, *, n_bootstrap: int, standardize: bool,
                min_causal_effect: float, alpha: float, fdr, min_direction: float, eiv: bool, spatial: bool,
                spatial_max_lag: int, independence_alpha: float, independence_rows: int) -> dict:
    """The ``params`` (and provenance) record of a :func:`fit_lingam` result."""
    names = t["names"]
    return {
        "names": list(names),
        "prior_knowledge": "none" if pk is None else describe_prior_knowledge(pk, names),
        "n_bootstrap": n_bootstrap,
        "n_bootstrap_degenerate": boot.n_failed,
        "seed": boot.seed,
        "standardize": bool(standardize),
        "min_causal_effect": float(min_causal_effect),
        "method": method.name,
        "alpha": float(alpha),
        "fdr": fdr,
        "min_direction": float(min_direction),
        "dropped_deterministic": t["dropped"],
        "eiv": bool(eiv),
        "spatial": spatial,
        "spatial_max_lag": int(spatial_max_lag),
        "independence_alpha": float(independence_alpha),
        "independence_rows": independence_rows,
    }
