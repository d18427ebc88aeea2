"""Calibrated edge confidence: p-values of edges given the causal order, FDR control, link types.

lingam's bootstrap probability (the share of resamples in which an edge survives BIC pruning) is kept for
comparison with the paper, but it is not a calibrated test: on null windows it reports edges far more often
than its threshold suggests.  The calibrated criterion used here (chosen by ``benchmarks/bench_confidence.py``,
see ``docs/confidence.md``) is:

1. **Order t-test.**  Given the fitted causal order, each variable is regressed (ordinary least squares with
   an intercept) on all variables before it; the p-value of ``i <- j`` is the two-sided t-test of ``j``'s
   coefficient (``n - k - 1`` degrees of freedom for ``k`` predecessors).  Edges against the order or
   forbidden by the prior knowledge get p = 1.  Under "no direct effect" the p-value is uniform, so an edge
   is reported in at most ``alpha`` of null windows.
1b. **Spatially honest p-values** (when the cells' grid positions are known).  Cell errors are spatially
   correlated (shared corners, overlapping column tails, scan lines), so ``n`` cells carry less than ``n``
   independent pieces of information.  The t statistic is divided by ``sqrt(f)`` and the degrees of freedom
   become ``n / f - k - 1``, with the variance inflation (Clifford-Richardson / Bartlett)
   ``f = 1 + sum_{h != 0, |h| <= max_lag} N_h rho_x(h) rho_e(h) / n`` of the partialled regressor ``x`` (``j``
   given the other predecessors of ``i``) and the residual ``e`` of ``i``, from their autocorrelations
   ``rho`` at every grid lag ``h`` within ``max_lag`` cells (Chebyshev) over the ``N_h`` cell pairs at that
   lag.  ``f`` is floored at 1, so the correction never makes the test less conservative than the
   independent-cells test: :func:`spatial_inflation`.  Across the windows of a sliding run each window's
   ``f`` is floored at its 0.75 quantile over windows (:func:`pooled_inflation`).
2. **Optional FDR control** over all windows and edges of a run (Benjamini-Hochberg, or Benjamini-Yekutieli
   for any dependence between overlapping windows): :func:`fdr_adjust`.
3. **Direction from the bootstrap.**  A linked pair ``(a, b)`` (either direction passes) is stated as
   ``a <- b`` when at least ``min_direction`` of the bootstrap resamples that contain the link put it that
   way; otherwise both directions are marked significant (link type "both": linked, direction not resolved,
   as the paper reads a <-> b).  Without bootstrap the direction of the full fit is stated.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ..options import FDR_METHODS as _FDR_METHODS
from ..options import CausalOptions
from . import _twins as _twins_module

__all__ = [
    "LINK_TYPES",
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_DIRECTION",
    "FDR_METHODS",
    "order_pvalues",
    "order_pvalues_from_covariance",
    "spatial_inflation",
    "pooled_inflation",
    "DEFAULT_SPATIAL_MAX_LAG",
    "fdr_adjust",
    "edge_decision",
    "check_decision_options",
    "link_type",
]

#: Link-type codes of :func:`link_type`: 0 none, 1 ``a <- b``, 2 ``b <- a``, 3 both directions.
LINK_TYPES = ("none", "a <- b", "b <- a", "both")
#: Default per-edge level of the order t-test (false-edge rate per null edge and window; the options' default).
DEFAULT_ALPHA = CausalOptions.alpha
#: Default share of the linked resamples that must agree on a direction to state it.
DEFAULT_MIN_DIRECTION = CausalOptions.min_direction
#: Largest grid lag (cells, Chebyshev distance) of the autocorrelations in :func:`spatial_inflation`.
DEFAULT_SPATIAL_MAX_LAG = CausalOptions.spatial_max_lag
#: Quantile over windows at which :func:`pooled_inflation` floors each window's inflation.
DEFAULT_POOL_QUANTILE = 0.75
#: Tolerance of the bootstrap-share comparison with ``min_direction`` (shares are ratios of counts).
_SHARE_TOLERANCE = 1e-9
#: FDR procedures accepted by ``fdr=``.
FDR_METHODS = _FDR_METHODS


def order_pvalues(X, orders, *, mask=None, prior=None, positions=None,
                  max_lag: int = DEFAULT_SPATIAL_MAX_LAG, pool: bool = False) -> np.ndarray:
    """Two-sided p-values of every edge given each dataset's causal order (OLS t-test).

    Parameters
    ----------
    X : (m, n, p) float array
        ``m`` datasets (any units; the test is scale-free).
    orders : (m, p) int array
        Causal order of each dataset (causes first); a row starting with -1 (degenerate fit) gives NaN.
    mask : (m, n) bool array, optional
        Valid rows of each dataset (default all).
    prior : (p, p) int array, optional
        lingam prior knowledge; edges with ``prior[i, j] == 0`` get p = 1.
    positions : (m, n, 2) int array, optional
        Grid index (i, j) of every row (cells); given, the test is spatially honest (see
        :func:`spatial_inflation`); default: rows are independent.
    max_lag : int
        Largest grid lag, in cells, of the spatial autocorrelations (with ``positions``).
    pool : bool
        Floor each dataset's inflation at its 0.75 quantile over datasets (windows of one image share the
        noise's spatial structure): :func:`pooled_inflation`.

    Returns
    -------
    (m, p, p) float array
        ``P[k, i, j]`` = p-value of ``i <- j`` in dataset ``k``; 1 where ``j`` is not before ``i``.
    """
    X = np.asarray(X, dtype=float)
    m, n_max, p = X.shape
    if mask is None:
        n = np.full(m, float(n_max))
        Xc = X - X.mean(axis=1, keepdims=True)
    else:
        mask = np.asarray(mask, dtype=bool)
        n = mask.sum(axis=1).astype(float)
        w = mask[..., None]
        Xc = np.where(w, X - (np.where(w, X, 0.0).sum(axis=1) / n[:, None])[:, None, :], 0.0)
    S = np.matmul(np.swapaxes(Xc, 1, 2), Xc) / n[:, None, None]
    inflation = None
    if positions is not None:
        valid = np.full((m, n_max), True) if mask is None else mask
        inflation = spatial_inflation(Xc, orders, positions, mask=valid, max_lag=max_lag)
        if pool and m > 1:
            inflation = pooled_inflation(inflation)
    return order_pvalues_from_covariance(S, n, orders, prior=prior, inflation=inflation)


def pooled_inflation(inflation, *, quantile: float = DEFAULT_POOL_QUANTILE) -> np.ndarray:
    """Floor every window's inflation ``f[k, i, j]`` at a quantile over windows of the values above 1.

    The windows of one image share the spatial structure of its noise, but one small window's estimate of it is
    noisy and biased low (its own mean is removed; lags beyond ``max_lag`` are left out).  On null grids with a
    correlation length of 3 cells and 10-cell windows (8 seeds) the false-edge rate is 8.2 % without pooling,
    6.0 % with the median, 4.0 % [worst seed 4.9 %] with the 0.75 quantile (the default) and 2.3 % with 0.9;
    power on the planted grids stays 1.000 (``tests/test_spatial_pvalues.py``).  Windows with a larger own
    estimate keep it.

    Parameters
    ----------
    inflation : (m, p, p) float array
        From :func:`spatial_inflation` (NaN for degenerate windows).
    quantile : float
        Quantile (0-1) over the windows of each edge's inflation, taken over the windows where it exceeds 1.

    Returns
    -------
    (m, p, p) float array
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be between 0 and 1, got {quantile!r}")
    f = np.asarray(inflation, dtype=float)
    above = np.where(f > 1.0, f, np.nan)
    counts = np.sum(np.isfinite(above), axis=0)
    with np.errstate(invalid="ignore"):
        pooled = np.nanquantile(np.where(counts[None] > 0, above, 1.0), quantile, axis=0)
    return np.fmax(f, pooled[None]) if f.size else f


def spatial_inflation(X, orders, positions, *, mask=None, max_lag: int = DEFAULT_SPATIAL_MAX_LAG) -> np.ndarray:
    """Variance inflation of each order t-test from the spatial autocorrelation of the cells.

    For the edge ``i <- j`` the OLS coefficient is ``sum_c x_c e_c / sum_c x_c^2`` with ``x`` the regressor
    ``j`` partialled on the other predecessors of ``i`` and ``e`` the residual of ``i``; when both are
    spatially autocorrelated its variance is ``f`` times the independent-cells value, with
    ``f = 1 + sum_{h != 0} A_x(h) A_e(h) n / (N_h sum x^2 sum e^2)``, ``A(h)`` the sum of products over the
    ``N_h`` pairs of cells at grid lag ``h`` (Clifford, Richardson & Hemon 1989; Bartlett's formula for the
    variance of a cross-correlation).  Lags up to ``max_lag`` cells in each grid direction are summed; ``f``
    is floored at 1.

    Parameters
    ----------
    X : (m, n, p) float array
        ``m`` datasets (windows) of ``n`` rows (cells); rows outside ``mask`` are ignored.
    orders : (m, p) int array
        Causal orders; a row starting with -1 gives NaN.
    positions : (m, n, 2) int array
        Grid index (i, j) of every row (any offset; unique within a dataset).
    mask : (m, n) bool array, optional
        Valid rows (default all).
    max_lag : int
        Largest lag in cells (>= 1).

    Returns
    -------
    (m, p, p) float array
        ``f[k, i, j]`` for ``j`` before ``i`` (1 elsewhere); the effective sample size is ``n / f``.
    """
    X = np.asarray(X, dtype=float)
    m, n_max, p = X.shape
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ValueError(f"max_lag must be a whole number of cells >= 1, got {max_lag!r}")
    positions = np.asarray(positions)
    if positions.shape != (m, n_max, 2):
        raise ValueError(f"positions must have shape {(m, n_max, 2)} (grid i, j of every row), got {positions.shape}")
    mask = np.ones((m, n_max), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    lags = np.array([(a, b) for a in range(0, max_lag + 1) for b in range(-max_lag, max_lag + 1)
                     if a > 0 or b > 0], dtype=np.int64)  # one of each pair (h, -h)
    n = mask.sum(axis=1)
    degenerate = np.asarray(orders)[:, 0] < 0
    orders = np.where(degenerate[:, None], np.arange(p)[None], np.asarray(orders, dtype=np.int64))
    # every window's variables in causal order, centred over its valid rows, zero elsewhere
    Y = np.take_along_axis(X, orders[:, None, :], axis=2)
    Y = np.where(mask[..., None], Y - (np.where(mask[..., None], Y, 0.0).sum(axis=1) / np.maximum(n, 1)[:, None])[:, None],
                 0.0)
    S = np.swapaxes(Y, 1, 2) @ Y
    series, slots = [], []
    for t in range(1, p):
        with np.errstate(all="ignore"):
            inv = np.linalg.pinv(S[:, :t, :t], hermitian=True)
        series.append(Y[:, :, t] - np.einsum("mnk,mk->mn", Y[:, :, :t], np.einsum("mkl,ml->mk", inv, S[:, :t, t])))
        series.extend(np.moveaxis(Y[:, :, :t] @ inv, 2, 0))  # column j: j partialled on the other predecessors
        slots.append(len(series) - t - 1)
    stacked = np.ascontiguousarray(np.stack(series, axis=2))
    lag_sums, n_pairs = _kernel("_lag_sums", m)(stacked, np.ascontiguousarray(mask),
                                                np.ascontiguousarray(positions, dtype=np.int64), lags)
    power = np.einsum("mnq,mnq->mq", stacked, stacked)
    out = np.ones((m, p, p))
    rows = np.arange(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(n_pairs > 0, 2.0 / n_pairs, 0.0)  # (m, n_lags): both signs of each lag
        for t in range(1, p):
            e = slots[t - 1]
            for j in range(t):
                x = e + 1 + j
                cross = np.sum(lag_sums[:, :, e] * lag_sums[:, :, x] * weight, axis=1)
                f = 1.0 + cross * n / (power[:, e] * power[:, x])
                out[rows, orders[:, t], orders[:, j]] = np.where(np.isfinite(f), np.maximum(f, 1.0), 1.0)
    out[degenerate] = np.nan
    return out


def _lag_sums_numpy(series, mask, positions, lags):
    """:func:`_lag_sums` in NumPy (the kernel's Python twin while it compiles): the same sums in the same order
    (a cumulative sum over the cells adds them one by one, as the kernel does), so bit-identical."""
    m, n_max, nq = series.shape
    A = np.zeros((m, lags.shape[0], nq))
    N = np.zeros((m, lags.shape[0]))
    for k in range(m):
        cells = np.flatnonzero(mask[k])
        if cells.size == 0:
            continue
        ij = positions[k, cells] - positions[k, cells].min(axis=0)
        grid = -np.ones(tuple(ij.max(axis=0) + 1), dtype=np.int64)
        grid[ij[:, 0], ij[:, 1]] = cells
        for h, lag in enumerate(lags):
            r, s = ij[:, 0] + lag[0], ij[:, 1] + lag[1]
            inside = (r >= 0) & (r < grid.shape[0]) & (s >= 0) & (s < grid.shape[1])
            d = np.full(cells.size, -1)
            d[inside] = grid[r[inside], s[inside]]
            pairs = d >= 0
            N[k, h] = np.count_nonzero(pairs)
            products = series[k, cells[pairs]] * series[k, d[pairs]]
            A[k, h] = np.cumsum(np.concatenate([np.zeros((1, nq)), products]), axis=0)[-1]
    return A, N


@functools.cache
def _twins() -> dict:
    """The Python twins of this module's kernels (:mod:`._twins`)."""
    return _twins_module.python_twins(globals(), {"_lag_sums": _lag_sums_numpy})


def _kernel(name: str, n_datasets: int):
    """The compiled kernel ``name``, or its Python twin while the warmup children compile the kernels."""
    return _twins()[name] if _twins_module.compiling(n_datasets) else globals()[name]


@njit(cache=True, nogil=True)
def _lag_sums(series, mask, positions, lags):
    """``A[k, h, q]``: sum over the valid cell pairs of window ``k`` at grid lag ``h`` of the products of series
    ``q``; ``N[k, h]`` the number of such pairs."""
    m, n_max, nq = series.shape
    n_lags = lags.shape[0]
    A = np.zeros((m, n_lags, nq))
    N = np.zeros((m, n_lags))
    for k in range(m):
        i0, j0, i1, j1 = 1 << 60, 1 << 60, -(1 << 60), -(1 << 60)
        for c in range(n_max):
            if mask[k, c]:
                i0, j0 = min(i0, positions[k, c, 0]), min(j0, positions[k, c, 1])
                i1, j1 = max(i1, positions[k, c, 0]), max(j1, positions[k, c, 1])
        if i1 < i0:
            continue
        grid = -np.ones((i1 - i0 + 1, j1 - j0 + 1), dtype=np.int64)
        for c in range(n_max):
            if mask[k, c]:
                grid[positions[k, c, 0] - i0, positions[k, c, 1] - j0] = c
        for c in range(n_max):
            if not mask[k, c]:
                continue
            for h in range(n_lags):
                r, s = positions[k, c, 0] - i0 + lags[h, 0], positions[k, c, 1] - j0 + lags[h, 1]
                if r < 0 or r >= grid.shape[0] or s < 0 or s >= grid.shape[1]:
                    continue
                d = grid[r, s]
                if d < 0:
                    continue
                N[k, h] += 1.0
                for q in range(nq):
                    A[k, h, q] += series[k, c, q] * series[k, d, q]
    return A, N


def order_pvalues_from_covariance(S, n, orders, *, prior=None, inflation=None) -> np.ndarray:
    """:func:`order_pvalues` from each dataset's covariance (or correlation) matrix and sample count.

    Parameters
    ----------
    S : (m, p, p) float array
        Covariance (``1/n`` normalisation) or correlation matrix of each dataset; the test is scale-free.
    n : (m,) array
        Samples of each dataset.
    orders : (m, p) int array
        Causal orders; a row starting with -1 gives NaN.
    prior : (p, p) int array, optional
        Edges with ``prior[i, j] == 0`` get p = 1.
    inflation : (m, p, p) float array, optional
        Variance inflation ``f`` of each test (:func:`spatial_inflation`): the t statistic is divided by
        ``sqrt(f)`` and the degrees of freedom become ``n / f - k - 1`` (at least 1).

    Returns
    -------
    (m, p, p) float array
    """
    from scipy.special import stdtr

    S = np.ascontiguousarray(S, dtype=float)
    m, p, _ = S.shape
    n = np.full(m, n, dtype=float) if np.ndim(n) == 0 else np.array(np.broadcast_to(np.asarray(n, dtype=float), (m,)))
    tstat, dof = _kernel("_order_tstats", m)(S, n, np.ascontiguousarray(orders, dtype=np.int64))
    if inflation is not None:
        f = np.where(dof > 0, np.asarray(inflation, dtype=float), 1.0)
        tested = dof > 0
        tstat = np.where(tested, tstat / np.sqrt(f), tstat)
        dof = np.where(tested, np.maximum(dof - n[:, None, None] * (1.0 - 1.0 / f), 1.0), dof)
    with np.errstate(invalid="ignore"):
        P = np.where(dof > 0, 2.0 * stdtr(dof, -tstat), tstat)  # untested entries carry 1 or NaN in tstat
    if prior is not None:
        P[:, np.asarray(prior) == 0] = np.where(np.isnan(P[:, np.asarray(prior) == 0]), np.nan, 1.0)
    return P


@njit(cache=True, nogil=True)
def _order_tstats(S, n, orders):
    """|t| and degrees of freedom of every edge ``i <- j`` with ``j`` before ``i`` in each causal order.

    Variables are taken in causal order; ``S = L D L^T`` (unit lower ``L``, Cholesky): row ``t`` of
    ``M = L^-1`` holds minus the OLS coefficients of the ``t``-th variable on the ones before it, ``D[t]`` its
    residual variance, and ``sum_{j <= k < t} M[k, j]^2 / D[k]`` the ``j``-th diagonal entry of the inverse
    covariance of the first ``t`` variables.  Untested entries get ``dof = 0`` and ``tstat`` 1 (against the
    order, diagonal) or NaN (a degenerate order or a matrix that is not positive definite).
    """
    m, p, _ = S.shape
    tstat = np.ones((m, p, p))
    dof = np.zeros((m, p, p))
    R = np.zeros((p, p))
    M = np.zeros((p, p))
    D = np.zeros(p)
    for k in range(m):
        o = orders[k]
        ok = o[0] >= 0
        for i in range(p):
            if not ok:
                break
            for j in range(i + 1):
                acc = S[k, o[i], o[j]]
                for q in range(j):
                    acc -= R[i, q] * R[j, q]
                if i == j:
                    if not acc > 0.0:
                        ok = False
                        break
                    R[i, i] = np.sqrt(acc)
                else:
                    R[i, j] = acc / R[j, j]
        if not ok:
            tstat[k] = np.nan
            continue
        for i in range(p):
            D[i] = R[i, i] * R[i, i]
            M[i, i] = 1.0
            for j in range(i):
                acc = 0.0
                for q in range(j, i):
                    acc += R[i, q] / R[q, q] * M[q, j]
                M[i, j] = -acc
        for t in range(1, p):
            for j in range(t):
                c = 0.0
                for q in range(j, t):
                    c += M[q, j] * M[q, j] / D[q]
                f = n[k] - t - 1.0
                tstat[k, o[t], o[j]] = abs(M[t, j]) / np.sqrt(D[t] / f * c)
                dof[k, o[t], o[j]] = f
    return tstat, dof


def fdr_adjust(p_values, method: str = "bh") -> np.ndarray:
    """Benjamini-Hochberg (``"bh"``) or Benjamini-Yekutieli (``"by"``) adjusted p-values (q-values).

    Parameters
    ----------
    p_values : array of float
        Any shape; NaN entries (skipped windows, the diagonal) are left NaN and do not count as tests.
        Entries equal to 1 (edges against the causal order) count as tests, which keeps the procedure
        conservative.
    method : {"bh", "by"}
        BH controls the FDR for independent or positively dependent tests; BY for any dependence
        (overlapping windows share cells), at a cost in power.

    Returns
    -------
    array of float, same shape
        Reject at FDR level ``q`` where the adjusted value is ``<= q``.
    """
    if method not in FDR_METHODS:
        raise ValueError(f"fdr must be None, 'bh' (Benjamini-Hochberg) or 'by' (Benjamini-Yekutieli), got {method!r}")
    p_values = np.asarray(p_values, dtype=float)
    flat = p_values.ravel()
    finite = np.flatnonzero(np.isfinite(flat))
    out = np.full(flat.shape, np.nan)
    m = finite.size
    if m == 0:
        return out.reshape(p_values.shape)
    order = finite[np.argsort(flat[finite], kind="stable")]
    factor = m / np.arange(1, m + 1)
    if method == "by":
        factor = factor * np.sum(1.0 / np.arange(1, m + 1))
    adjusted = np.minimum.accumulate((flat[order] * factor)[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(p_values.shape)


def check_decision_options(alpha, fdr, min_direction) -> None:
    """Raise ValueError for an ``alpha``, ``fdr`` or ``min_direction`` the edge decision cannot use."""
    if fdr is not None and fdr not in FDR_METHODS:
        raise ValueError(f"fdr must be None, 'bh' (Benjamini-Hochberg) or 'by' (Benjamini-Yekutieli), got {fdr!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.01), got {alpha!r}")
    if not 0.5 <= min_direction <= 1.0:
        raise ValueError(f"min_direction must be between 0.5 and 1, got {min_direction!r}")


def edge_decision(p_values, probabilities=None, *, alpha: float = DEFAULT_ALPHA,
                  min_direction: float = DEFAULT_MIN_DIRECTION) -> np.ndarray:
    """Significant edges from (adjusted) p-values and, when available, bootstrap probabilities.

    Parameters
    ----------
    p_values : (..., p, p) float array
        p-values (or FDR-adjusted q-values) of ``i <- j``; NaN where not fitted.
    probabilities : (..., p, p) float array, optional
        lingam bootstrap probabilities, used only to state the direction of a linked pair.
    alpha : float
        Level: a pair is linked when either direction has ``p <= alpha``.
    min_direction : float
        A linked pair is stated ``a <- b`` when ``P(a <- b) / (P(a <- b) + P(b <- a)) >= min_direction``;
        when neither direction reaches it, both are marked (link type "both").

    Returns
    -------
    (..., p, p) bool array
    """
    check_decision_options(alpha, None, min_direction)
    passed = np.asarray(p_values, dtype=float) <= alpha  # NaN (not fitted) compares False
    if probabilities is None:
        return passed
    prob = np.asarray(probabilities, dtype=float)
    prob = np.where(np.isnan(prob), 0.0, prob)
    linked = passed | np.swapaxes(passed, -1, -2)
    total = prob + np.swapaxes(prob, -1, -2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, prob / total, np.where(passed, 1.0, 0.0))
    # a direction is stated when its share reaches min_direction (a tolerance for shares such as 90/100 that
    # floating point puts a hair below 0.9); a linked pair keeps a direction unless only the other one is stated,
    # so neither stated, or both in a tie, marks the pair "both" and a linked pair is never dropped
    stated = share >= min_direction - _SHARE_TOLERANCE
    return linked & (stated | ~np.swapaxes(stated, -1, -2))


def link_type(significant, a: int, b: int) -> np.ndarray:
    """Link-type codes (see :data:`LINK_TYPES`) of the pair ``(a, b)`` from a significance mask.

    Parameters
    ----------
    significant : (..., p, p) bool array
    a, b : int
        Variable indices.

    Returns
    -------
    (...) int8 array
        0 none, 1 ``a <- b``, 2 ``b <- a``, 3 both.
    """
    s = np.asarray(significant, dtype=bool)
    return (s[..., a, b].astype(np.int8) + 2 * s[..., b, a].astype(np.int8)).astype(np.int8)
