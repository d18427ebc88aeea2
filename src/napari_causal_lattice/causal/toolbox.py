"""lingam's model checks, written for this package: total causal effects and error-independence p-values.

The numbers are those of ``lingam`` 1.x (``_BaseLiNGAM.estimate_total_effect``,
``get_error_independence_p_values`` with its HSIC gamma test, and the bootstrap's path-sum total effects);
the code is our own, vectorised so that a fit with thousands of cells stays cheap:

* the HSIC test needs the ``n x n`` Gram matrices of every residual; lingam stores them (8 GB at n = 10,000),
  :func:`error_independence_pvalues` sums them on the fly in a numba kernel (memory ``O(n p)``);
* the total effects of every pair come from one covariance matrix instead of one regression per pair.

Adjacency convention: ``B[i, j]`` is the direct effect of ``j`` on ``i`` ("i <- j"); every (p, p) matrix
here reads the same way, ``T[i, j]`` the total effect of ``j`` on ``i``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _twins

__all__ = [
    "total_effects_from_data",
    "total_effects_from_adjacency",
    "error_independence_pvalues",
    "find_paths",
]


def total_effects_from_data(X, adjacency, causal_order) -> np.ndarray:
    """Total effect of every variable on every later one, as lingam's ``estimate_total_effect``.

    For a cause ``j`` and an effect ``i`` after it in ``causal_order``: the OLS coefficient of ``j`` when
    ``X[:, i]`` is regressed (with an intercept) on ``X[:, j]`` and the parents of ``j`` (non-zero entries of
    ``adjacency[j]``), i.e. the back-door adjustment by the parents.

    Parameters
    ----------
    X : (n, p) float array
        The data the model was fitted to.
    adjacency : (p, p) float array
    causal_order : (p,) int array

    Returns
    -------
    (p, p) float array
        ``T[i, j]`` = total effect of ``j`` on ``i`` in the units of ``X[:, i]`` per unit of ``X[:, j]``;
        0 where ``j`` is not before ``i`` in the causal order (lingam still regresses there, with a warning
        that the number "may be incorrect"; it is not a causal effect of the fitted model) and on the diagonal.
    """
    X = np.asarray(X, dtype=float)
    B = np.asarray(adjacency, dtype=float)
    order = [int(k) for k in causal_order]
    p = B.shape[0]
    centred = X - X.mean(axis=0)
    C = centred.T @ centred
    T = np.zeros((p, p))
    for pos, j in enumerate(order):
        later = order[pos + 1:]
        if not later:
            continue
        predictors = [j] + [int(k) for k in np.flatnonzero(np.abs(B[j]) > 0)]
        coef = np.linalg.lstsq(C[np.ix_(predictors, predictors)], C[np.ix_(predictors, later)], rcond=None)[0]
        T[later, j] = coef[0]
    return T


def total_effects_from_adjacency(B, orders=None) -> np.ndarray:
    """Sum over all directed paths of the products of direct effects, as lingam's bootstrap total effects.

    Parameters
    ----------
    B : (..., p, p) float array
        Acyclic adjacency matrices (``B[i, j]``: ``i <- j``).
    orders : (..., p) int array, optional
        Causal orders; entries whose cause is not before the effect are set to 0 (lingam fills only those).

    Returns
    -------
    (..., p, p) float array
        ``T = B + B^2 + ... + B^(p-1)`` (the path sums of an acyclic ``B``; exact zeros where no path exists,
        unlike ``(I - B)^-1 - I``).
    """
    B = np.nan_to_num(np.asarray(B, dtype=float))
    p = B.shape[-1]
    T = B.copy()
    power = B
    for _ in range(p - 2):
        power = power @ B
        T = T + power
    if orders is not None:
        orders = np.asarray(orders, dtype=np.int64)
        rank = np.empty_like(orders)
        np.put_along_axis(rank, orders, np.broadcast_to(np.arange(p), orders.shape), axis=-1)
        T = np.where(rank[..., None, :] < rank[..., :, None], T, 0.0)
    return T


def _kernel_width(x: np.ndarray) -> float:
    """lingam's median heuristic: sqrt(0.5 median of the positive squared distances of the first 100 points)."""
    x = x[:100].reshape(-1, 1)
    G = np.sum(x * x, 1).reshape(-1, 1)
    dists = G + G.T - 2 * np.dot(x, x.T)
    dists = (dists - np.tril(dists)).reshape(-1)
    positive = dists[dists > 0]
    return float(np.sqrt(0.5 * np.median(positive))) if positive.size else 0.0


def _centred_gram_rows(E, inv2w2, rows, r, s):
    """(p, len(rows), n) rows of the centred RBF Gram matrices of every column of ``E`` (row sums ``r``, totals
    ``s``; both None: the plain Gram rows)."""
    n = E.shape[0]
    d = E[rows].T[:, :, None] - E.T[:, None, :]
    K = np.exp(-d * d * inv2w2[:, None, None])
    K[:, np.arange(len(rows)), rows] = 1.0
    if r is None:
        return K
    return K - (r[:, rows, None] + r[:, None, :]) / n + (s / (n * n))[:, None, None]


def _hsic_sums_numpy(E, inv2w2, block: int = 128):
    """:func:`_hsic_sums` in NumPy (the kernel's Python twin while it compiles), ``block`` rows at a time.

    The same sums over the full (symmetric) matrices; numpy's ``exp`` and summation order make it agree with the
    kernel to rounding (about 1e-15 relative), not bit for bit.
    """
    n, p = E.shape
    starts = range(0, n, block)
    r = np.concatenate([_centred_gram_rows(E, inv2w2, np.arange(a, min(n, a + block)), None, None).sum(axis=2)
                        for a in starts], axis=1)
    s = r.sum(axis=1)
    stat = np.zeros((p, p))
    sq = np.zeros((p, p))
    upper = np.triu(np.ones((p, p), dtype=bool), 1)
    for a in starts:
        rows = np.arange(a, min(n, a + block))
        Kc = _centred_gram_rows(E, inv2w2, rows, r, s).reshape(p, -1)
        stat += np.where(upper, Kc @ Kc.T, 0.0)
        Kc[:, np.arange(len(rows)) * n + rows] = 0.0  # the diagonal a == b is left out of sq
        squared = Kc * Kc
        sq += np.where(upper, squared @ squared.T, 0.0)
    return stat, sq, s - n


@njit(cache=True, nogil=True)
def _hsic_sums(E, inv2w2):
    """Sums over the centred RBF Gram matrices of every pair of columns of ``E`` without storing them.

    Returns ``stat[u, v] = sum_ab Kc_u Kc_v``, ``sq[u, v] = sum_{a != b} (Kc_u Kc_v)^2`` and the off-diagonal
    Gram sums ``off[u]``.
    """
    n, p = E.shape
    r = np.zeros((p, n))
    for a in range(n):
        for v in range(p):
            r[v, a] += 1.0
        for b in range(a + 1, n):
            for v in range(p):
                d = E[a, v] - E[b, v]
                k = math.exp(-d * d * inv2w2[v])
                r[v, a] += k
                r[v, b] += k
    s = np.zeros(p)
    for v in range(p):
        s[v] = r[v].sum()
    off = s - n
    stat = np.zeros((p, p))
    sq = np.zeros((p, p))
    kc = np.empty(p)
    for a in range(n):
        for b in range(a, n):
            for v in range(p):
                if a == b:
                    k = 1.0
                else:
                    d = E[a, v] - E[b, v]
                    k = math.exp(-d * d * inv2w2[v])
                kc[v] = k - (r[v, a] + r[v, b]) / n + s[v] / (n * n)
            w = 1.0 if a == b else 2.0
            for u in range(p):
                for v in range(u + 1, p):
                    prod = kc[u] * kc[v]
                    stat[u, v] += w * prod
                    if a != b:
                        sq[u, v] += w * prod * prod
    return stat, sq, off


def error_independence_pvalues(X, adjacency) -> np.ndarray:
    """p-values of independence between the error variables, as lingam's ``get_error_independence_p_values``.

    The errors are ``E = X - X B^T``; each pair is tested with the HSIC gamma approximation (RBF kernels,
    median-heuristic widths from the first 100 rows, the same formulas as ``lingam.hsic.hsic_test_gamma``).
    A small p-value says the two errors are dependent: the linear non-Gaussian acyclic model does not fit
    (a hidden common cause, a non-linear relation, a cycle, or errors shared between cells).

    Parameters
    ----------
    X : (n, p) float array
        The data the model was fitted to.
    adjacency : (p, p) float array

    Returns
    -------
    (p, p) float array
        Symmetric, diagonal 0 (as lingam's).  Time ``O(n^2 p^2)``, memory ``O(n p)``.
    """
    from scipy.stats import gamma

    X = np.asarray(X, dtype=float)
    n, p = X.shape
    E = X - (np.asarray(adjacency, dtype=float) @ X.T).T
    widths = np.array([_kernel_width(E[:, v]) for v in range(p)])
    with np.errstate(divide="ignore"):
        inv2w2 = np.where(widths > 0, 1.0 / (2.0 * widths**2), np.inf)
    hsic_sums = _hsic_sums_numpy if _twins.compiling() else _hsic_sums
    stat, sq, off = hsic_sums(np.ascontiguousarray(E), inv2w2)
    P = np.zeros((p, p))
    mu = off / n / (n - 1)
    for u in range(p):
        for v in range(u + 1, p):
            test_stat = stat[u, v] / n
            var = sq[u, v] / 36.0 / n / (n - 1)
            var = 72 * (n - 4) * (n - 5) / n / (n - 1) / (n - 2) / (n - 3) * var
            mean = (1 + mu[u] * mu[v] - mu[u] - mu[v]) / n
            with np.errstate(divide="ignore", invalid="ignore"):
                P[u, v] = P[v, u] = gamma.sf(test_stat, mean**2 / var, scale=var * n / mean)
    return P


def find_paths(B, cause: int, effect: int, min_causal_effect: float = 0.0) -> tuple[list, list]:
    """Every directed path ``cause -> ... -> effect`` of one adjacency and the product of its coefficients.

    The depth-first order of lingam's ``find_all_paths`` (children visited in increasing index).

    Returns
    -------
    paths : list of lists of int
        Variable indices from ``cause`` to ``effect``.
    effects : list of float
    """
    B = np.asarray(B, dtype=float)
    children = [list(np.flatnonzero(np.abs(np.nan_to_num(B[:, k])) > min_causal_effect)) for k in range(len(B))]
    paths, effects = [], []

    def walk(path):
        here = path[-1]
        if here == effect:
            paths.append(list(path))
            effects.append(float(np.prod([B[path[t + 1], path[t]] for t in range(len(path) - 1)])))
            return
        if len(path) > len(B):
            raise ValueError("the adjacency has a cycle; paths are defined for acyclic graphs only")
        for child in children[here]:
            walk(path + [int(child)])

    walk([int(cause)])
    return paths, effects
