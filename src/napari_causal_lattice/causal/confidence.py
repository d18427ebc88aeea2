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
2. **Optional FDR control** over all windows and edges of a run (Benjamini-Hochberg, or Benjamini-Yekutieli
   for any dependence between overlapping windows): :func:`fdr_adjust`.
3. **Direction from the bootstrap.**  A linked pair ``(a, b)`` (either direction passes) is stated as
   ``a <- b`` when at least ``min_direction`` of the bootstrap resamples that contain the link put it that
   way; otherwise both directions are marked significant (link type "both": linked, direction not resolved,
   as the paper reads a <-> b).  Without bootstrap the direction of the full fit is stated.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LINK_TYPES",
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_DIRECTION",
    "FDR_METHODS",
    "order_pvalues",
    "fdr_adjust",
    "edge_decision",
    "link_type",
]

#: Link-type codes of :func:`link_type`: 0 none, 1 ``a <- b``, 2 ``b <- a``, 3 both directions.
LINK_TYPES = ("none", "a <- b", "b <- a", "both")
#: Default per-edge level of the order t-test (false-edge rate per null edge and window).
DEFAULT_ALPHA = 0.01
#: Default share of the linked resamples that must agree on a direction to state it.
DEFAULT_MIN_DIRECTION = 0.75
#: FDR procedures accepted by ``fdr=``.
FDR_METHODS = ("bh", "by")


def order_pvalues(X, orders, *, mask=None, prior=None) -> np.ndarray:
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

    Returns
    -------
    (m, p, p) float array
        ``P[k, i, j]`` = p-value of ``i <- j`` in dataset ``k``; 1 where ``j`` is not before ``i``.
    """
    from scipy.special import stdtr

    X = np.asarray(X, dtype=float)
    m, n_max, p = X.shape
    mask = np.ones((m, n_max), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    orders = np.asarray(orders, dtype=np.int64)
    n = mask.sum(axis=1).astype(float)
    w = mask[..., None]
    mean = np.where(w, X, 0.0).sum(axis=1) / n[:, None]
    Xc = np.where(w, X - mean[:, None, :], 0.0)
    S = np.einsum("kni,knj->kij", Xc, Xc) / n[:, None, None]
    good = orders[:, 0] >= 0
    S[~good] = np.eye(p)  # degenerate fits: any invertible stand-in, their p-values become NaN below
    order = np.where(good[:, None], orders, np.arange(p)[None])
    rows = np.arange(m)[:, None, None]
    Ss = S[rows, order[:, :, None], order[:, None, :]]  # covariance in causal order
    P = np.ones((m, p, p))
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(1, p):
            A, b = Ss[:, :t, :t], Ss[:, :t, t]
            A_inv = np.linalg.inv(A)
            beta = np.einsum("kij,kj->ki", A_inv, b)
            dof = n - t - 1
            resid = np.maximum(Ss[:, t, t] - np.einsum("ki,ki->k", b, beta), 0.0)
            se = np.sqrt(resid[:, None] / dof[:, None] * np.diagonal(A_inv, axis1=1, axis2=2))
            tstat = np.abs(beta) / se
            pv = 2.0 * stdtr(dof[:, None], -tstat)
            pv = np.where(np.isfinite(pv), pv, np.where(beta == 0, 1.0, 0.0))
            P[np.arange(m)[:, None], order[:, t][:, None], order[:, :t]] = pv
    if prior is not None:
        P[:, np.asarray(prior) == 0] = 1.0
    P[~good] = np.nan
    P[:, np.arange(p), np.arange(p)] = np.where(good[:, None], 1.0, np.nan)
    return P


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
        raise ValueError(f"fdr must be one of {FDR_METHODS} (Benjamini-Hochberg / -Yekutieli) or None, got {method!r}")
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
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (e.g. 0.01), got {alpha!r}")
    if not 0.5 <= min_direction <= 1.0:
        raise ValueError(f"min_direction must be between 0.5 and 1, got {min_direction!r}")
    P = np.asarray(p_values, dtype=float)
    passed = np.nan_to_num(P, nan=1.0) <= alpha
    if probabilities is None:
        return passed
    prob = np.nan_to_num(np.asarray(probabilities, dtype=float), nan=0.0)
    linked = passed | np.swapaxes(passed, -1, -2)
    total = prob + np.swapaxes(prob, -1, -2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, prob / total, np.where(passed, 1.0, 0.0))
    return linked & (share > 1.0 - min_direction)


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
