"""Batched DirectLiNGAM: the same algorithm and answers as ``lingam.DirectLiNGAM``, vectorised.

The algorithm has two stages, both reproduced from lingam 1.12 (``DirectLiNGAM`` with
``measure="pwling"`` and strong prior knowledge):

1. **Causal order** by the pairwise likelihood ratio of Hyvarinen & Smith (2013): at each step every
   remaining variable is scored by ``sum_j min(0, dMI(i, j))**2`` (maximum-entropy approximation of the
   differential entropies of standardised variables and regression residuals); the best candidate
   allowed by the partial orders of the prior knowledge is taken as the next variable and regressed out
   of the others.
2. **Pruning** by adaptive lasso: for each variable, an OLS on its standardised predecessors gives
   weights ``|beta|``, a LARS lasso path on the weighted predictors is scored with BIC exactly like
   ``sklearn.linear_model.LassoLarsIC(criterion="bic")``, and the kept predictors are refitted by OLS on
   the original data.

Each stage is one numba kernel over a batch of datasets (``_order_kernel``, ``_prune_kernel``; they release
the GIL, so batches are spread over threads).  Stage 2 only needs each dataset's covariance matrix (our own
port of scikit-learn's Gram-based LARS; no scikit-learn at run time).  The kernels are compiled once and
cached on disk; :mod:`napari_causal_lattice._warmup` compiles them in separate processes when the CLI or
the plugin starts, and meanwhile small batches run on the kernels' Python twins (:func:`_twin_fit_batch`,
:mod:`._twins`: the same code, the sample loops in NumPy; the same orders and edges, coefficients to 1e-12).
Compile time is kept down by the shape of the code (measured with an empty cache): one
signature per kernel, a flat call tree (numba re-optimises each callee inside every caller, so nesting
multiplies the work), no ``inline="always"``, and no array-to-slice assignment (its error message pulls in
numba's string formatting, several seconds of compiling).

Adjacency convention (lingam): ``B[i, j]`` is the direct effect of variable ``j`` on variable ``i``
("i <- j"), in the units of ``X[:, i]`` per unit of ``X[:, j]``.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic

from .. import _warmup
from . import _twins as _twins_module

__all__ = ["direct_lingam_batch", "direct_lingam", "bootstrap_indices", "partial_orders"]

# Maximum-entropy approximation constants (Hyvarinen 1998), as in lingam.
_K1 = 79.047
_K2 = 7.4129
_GAMMA = 0.37457
_H_GAUSS = (1.0 + np.log(2.0 * np.pi)) / 2.0


# --------------------------------------------------------------------------------------------------
# prior knowledge
# --------------------------------------------------------------------------------------------------
def _unique_rows(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(pairs) == 0:
        return pairs.reshape(0, 2), np.zeros(0, dtype=int)
    return np.unique(pairs, axis=0, return_counts=True)


def partial_orders(prior_knowledge: np.ndarray) -> np.ndarray:
    """Ordering constraints implied by a lingam prior-knowledge matrix.

    Parameters
    ----------
    prior_knowledge : (p, p) array
        lingam convention: ``pk[i, j] = 1`` a directed path ``j -> i`` exists, ``0`` no path ``j -> i``,
        ``-1`` (or NaN) unknown.

    Returns
    -------
    (q, 2) int array
        Rows ``(earlier, later)``: variable ``earlier`` must come before ``later`` in the causal order.
        Same rules as lingam's ``DirectLiNGAM._extract_partial_orders`` (two "no path" statements that
        contradict each other cancel out).

    Raises
    ------
    ValueError
        If a path is required in both directions, or the constraints form a cycle.
    """
    pk = np.asarray(prior_knowledge, dtype=float)
    return _partial_orders(pk.tobytes(), pk.shape).copy()


@functools.lru_cache(maxsize=64)
def _partial_orders(data: bytes, shape: tuple) -> np.ndarray:
    """:func:`partial_orders` of one matrix, remembered: every fit with the same prior re-derives it (~1 ms)."""
    pk = np.frombuffer(data).reshape(shape)
    path_pairs = np.argwhere(pk == 1)
    no_path_pairs = np.argwhere(pk == 0)

    both = np.concatenate([path_pairs, path_pairs[:, [1, 0]]])
    pairs, counts = _unique_rows(both)
    if np.any(counts > 1):
        bad = pairs[counts > 1].tolist()
        raise ValueError(
            f"The prior knowledge requires a directed path in both directions for index pairs {bad}; "
            "remove one of the two required edges."
        )
    sym = np.concatenate([no_path_pairs, no_path_pairs[:, [1, 0]]])
    pairs, counts = _unique_rows(sym)
    merged = np.concatenate([no_path_pairs, pairs[counts > 1]])
    pairs, counts = _unique_rows(merged)
    no_path_pairs = pairs[counts < 2]

    check = np.concatenate([path_pairs, no_path_pairs[:, [1, 0]]])
    if len(check) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    orders = np.unique(check, axis=0)[:, [1, 0]].astype(np.int64)
    _check_acyclic(orders, pk.shape[0])
    return orders


def _check_acyclic(orders: np.ndarray, p: int) -> None:
    remaining = set(range(p))
    edges = [tuple(e) for e in orders]
    while remaining:
        sources = [v for v in remaining if not any(b == v and a in remaining for a, b in edges)]
        if not sources:
            raise ValueError(
                "The prior knowledge is cyclic: the required/forbidden paths among variable indices "
                f"{sorted(remaining)} cannot all hold in one causal order; drop one of them."
            )
        remaining -= set(sources)


def _check_prior(prior_knowledge, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Partial orders (q, 2) and allowed-predictor mask (p, p) of a prior-knowledge matrix (or None)."""
    if prior_knowledge is None:
        allowed = ~np.eye(p, dtype=np.bool_)
        return np.zeros((0, 2), dtype=np.int64), allowed
    pk = np.asarray(prior_knowledge, dtype=float)
    if pk.shape != (p, p):
        raise ValueError(f"prior_knowledge must have shape ({p}, {p}) for {p} variables, got {pk.shape}.")
    pk = np.where(pk < 0, np.nan, pk)
    orders = partial_orders(pk)
    allowed = pk != 0
    np.fill_diagonal(allowed, False)
    return orders, allowed


# --------------------------------------------------------------------------------------------------
# stage 1: causal order (pairwise likelihood ratio, "pwling")
# --------------------------------------------------------------------------------------------------
# The entropy sums need log cosh(u) and u exp(-u^2 / 2) for every sample of every residual; they are
# computed with a vectorisable exp (Cody-Waite reduction + degree-13 Taylor polynomial, ~1 ulp) and
# log cosh(u) = |u| - log 2 + log(1 + exp(-2 |u|)), the last term summed as the log of a running product
# over blocks of samples (one scalar log per block instead of one per sample).  Agreement with numpy's log(cosh(u)): ~1e-15 relative on the sums.
_FM = {"reassoc", "contract", "nsz"}
_BLK = 256
_PAD = 32  # samples are zero-padded to a multiple of this (whole vector iterations)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_LOG2 = float(np.log(2.0))


@njit(fastmath=_FM, cache=True, nogil=True)
def _exp_poly(r):
    return 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (
        1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
            1 / 479001600 + r * (1 / 6227020800)))))))))))))


@intrinsic
def _int_bits_as_float(typingctx, x):
    """Reinterpret the bits of an int64 as a float64 (vectorises, unlike a memory round trip)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(fastmath=_FM, cache=True, nogil=True)
def _entropy_block(si, sj, rho, inv):
    """Sums over a block of log(1 + exp(-2|u|)) + |u| and u exp(-u^2/2), u = (si - rho sj) * inv."""
    sa = 0.0
    prod = 1.0
    g = 0.0
    for t in range(si.shape[0]):
        u = (si[t] - rho * sj[t]) * inv
        a = abs(u)
        x1 = -2.0 * a
        x1 = x1 if x1 > -700.0 else -700.0
        x2 = -0.5 * u * u
        x2 = x2 if x2 > -700.0 else -700.0
        k1 = np.floor(x1 * _LOG2E + 0.5)
        k2 = np.floor(x2 * _LOG2E + 0.5)
        r1 = (x1 - k1 * _LN2_HI) - k1 * _LN2_LO
        r2 = (x2 - k2 * _LN2_HI) - k2 * _LN2_LO
        e1 = _exp_poly(r1) * _int_bits_as_float((np.int64(k1) + 1023) << 52)
        e2 = _exp_poly(r2) * _int_bits_as_float((np.int64(k2) + 1023) << 52)
        sa += a
        prod *= 1.0 + e1
        g += u * e2
    return sa + np.log(prod), g


@njit(fastmath=_FM, cache=True, nogil=True)
def _entropy(si, sj, rho, inv, n):
    """Maximum-entropy approximation of the entropy of u = (si - rho sj) * inv (lingam's ``_entropy``).

    ``si``/``sj`` hold ``n`` samples followed by zero padding up to a multiple of the vector width
    (a zero sample adds exactly log 2 to the log-cosh sum, which is taken off again).
    """
    npad = si.shape[0]
    lc = 0.0
    g = 0.0
    for b0 in range(0, npad, _BLK):
        b1 = min(npad, b0 + _BLK)
        lp, gp = _entropy_block(si[b0:b1], sj[b0:b1], rho, inv)
        lc += lp
        g += gp
    mlc = (lc - (npad - n) * _LOG2) / n - _LOG2
    mg = g / n
    return _H_GAUSS - _K1 * (mlc - _GAMMA) ** 2 - _K2 * mg**2


@njit(fastmath=_FM, cache=True, nogil=True)
def _mean(x):
    s = 0.0
    for t in range(x.shape[0]):
        s += x[t]
    return s / x.shape[0]


@njit(fastmath=_FM, cache=True, nogil=True)
def _cov(x, mx, y, my):
    s = 0.0
    for t in range(x.shape[0]):
        s += (x[t] - mx) * (y[t] - my)
    return s / x.shape[0]


@njit(fastmath=_FM, cache=True, nogil=True)
def _candidates(remaining, orders0, alive, cand):
    """Mark in ``cand`` the variables the partial orders still in force allow next (lingam's
    _search_candidate); returns their number and the first of them (-1 if none)."""
    p = remaining.shape[0]
    for i in range(p):
        cand[i] = remaining[i]
    for q in range(orders0.shape[0]):
        if alive[q]:
            cand[orders0[q, 1]] = False
    ncand = 0
    first = -1
    for i in range(p):
        if cand[i]:
            ncand += 1
            if first < 0:
                first = i
    return ncand, first


@njit(fastmath=_FM, cache=True, nogil=True)
def _standardized_remaining(X, Z, remaining, smean, C, Hx, done, n):
    """z-score the remaining variables of X (p, n) into Z, with their means (``smean``), correlations (``C``) and
    entropies (``Hx``); clears the pair cache ``done``.  Returns False if a variable is constant."""
    p = X.shape[0]
    for i in range(p):
        if remaining[i]:
            xi = X[i]
            mu = _mean(xi)
            var = _cov(xi, mu, xi, mu)
            if not var > 0.0:
                return False
            sd = np.sqrt(var)
            zi = Z[i, :n]
            for t in range(n):
                zi[t] = (xi[t] - mu) / sd
            smean[i] = _mean(zi)
    for i in range(p):
        if remaining[i]:
            for j in range(i, p):
                if remaining[j]:
                    C[i, j] = _cov(Z[i, :n], smean[i], Z[j, :n], smean[j])
                    C[j, i] = C[i, j]
    for i in range(p):
        if remaining[i]:
            Hx[i] = _entropy(Z[i], Z[i], 0.0, 1.0, n)
            for j in range(p):
                done[i, j] = False
    return True


@njit(fastmath=_FM, cache=True, nogil=True)
def _most_exogenous(Z, C, Hx, Hr, done, cand, remaining, n, first):
    """The candidate whose pairwise likelihood-ratio measure (lingam's "pwling") is smallest, ``first`` on ties
    at infinity; -1 if a residual variance is not positive.  Residual entropies are cached in ``Hr``/``done``."""
    p = Z.shape[0]
    chosen = first
    best = np.inf
    for i in range(p):
        if not cand[i]:
            continue
        M = 0.0
        for j in range(p):
            if j == i or not remaining[j]:
                continue
            for swap in range(2):
                a, b = (j, i) if swap else (i, j)
                if not done[a, b]:
                    rho = C[a, b] / C[b, b]
                    rvar = C[a, a] - 2.0 * rho * C[a, b] + rho * rho * C[b, b]
                    if not rvar > 0.0:
                        return -1
                    Hr[a, b] = _entropy(Z[a], Z[b], rho, 1.0 / np.sqrt(rvar), n)
                    done[a, b] = True
            d = Hx[j] + Hr[i, j] - Hx[i] - Hr[j, i]
            if d < 0.0:
                M += d * d
        if M < best:
            best = M
            chosen = i
    return chosen


@njit(fastmath=_FM, cache=True, nogil=True)
def _regress_out(X, chosen, remaining, n):
    """Regress the chosen variable out of the remaining ones (on the raw data, as lingam); False if it is
    constant."""
    xm = X[chosen]
    mm = _mean(xm)
    vm = _cov(xm, mm, xm, mm)
    if not vm > 0.0:
        return False
    for i in range(X.shape[0]):
        if remaining[i]:
            xi = X[i]
            c = _cov(xi, _mean(xi), xm, mm) / vm
            for t in range(n):
                xi[t] -= c * xm[t]
    return True


@njit(fastmath=_FM, cache=True, nogil=True)
def _causal_order(X, orders0, order):
    """DirectLiNGAM causal order of one dataset X (p, n) (overwritten); returns False if degenerate.

    Each step picks the most exogenous allowed variable (:func:`_candidates`, :func:`_standardized_remaining`,
    :func:`_most_exogenous`) and regresses it out of the others (:func:`_regress_out`).
    """
    p, n = X.shape
    Z = np.zeros((p, -(-n // _PAD) * _PAD))
    remaining = np.ones(p, dtype=np.bool_)
    alive = np.ones(orders0.shape[0], dtype=np.bool_)
    C = np.empty((p, p))
    Hx = np.empty(p)
    Hr = np.empty((p, p))
    done = np.zeros((p, p), dtype=np.bool_)
    smean = np.empty(p)
    cand = np.empty(p, dtype=np.bool_)
    for step in range(p):
        ncand, chosen = _candidates(remaining, orders0, alive, cand)
        if ncand == 0:
            return False
        if ncand > 1:
            if not _standardized_remaining(X, Z, remaining, smean, C, Hx, done, n):
                return False
            chosen = _most_exogenous(Z, C, Hx, Hr, done, cand, remaining, n, chosen)
            if chosen < 0:
                return False
        order[step] = chosen
        remaining[chosen] = False
        for q in range(orders0.shape[0]):
            if orders0[q, 0] == chosen:
                alive[q] = False
        if not _regress_out(X, chosen, remaining, n):
            return False
    return True


@njit(cache=True, nogil=True)
def _order_kernel(X, mask, orders0, order, S, nvalid, bad):
    """Stage 1 of datasets X (m, n, p) on their valid samples (mask (m, n)).

    Writes each dataset's causal order (``order`` (m, p); -1 when degenerate or not finite), the biased
    covariance of its valid samples (``S`` (m, p, p)), their count (``nvalid`` (m,)) and ``bad`` (m,) for
    non-finite data.  One of the two top-level kernels (see :func:`_fit_batch`).
    """
    m, n, p = X.shape
    for d in range(m):
        nv = 0
        for t in range(n):
            if mask[d, t]:
                nv += 1
        nvalid[d] = nv
        Xd = np.empty((p, nv))
        k = 0
        finite = True
        for t in range(n):
            if mask[d, t]:
                for i in range(p):
                    v = X[d, t, i]
                    finite = finite and np.isfinite(v)
                    Xd[i, k] = v
                k += 1
        if not finite:
            bad[d] = True
            for i in range(p):
                order[d, i] = -1
            continue
        mu = np.empty(p)
        for i in range(p):
            mu[i] = _mean(Xd[i])
        for i in range(p):
            for j in range(i, p):
                S[d, i, j] = _cov(Xd[i], mu[i], Xd[j], mu[j])
                S[d, j, i] = S[d, i, j]
        ok = _causal_order(Xd, orders0, order[d])
        if ok:
            for i in range(p):
                ok = ok and S[d, i, i] > 0.0
        if not ok:
            for i in range(p):
                order[d, i] = -1


# --------------------------------------------------------------------------------------------------
# stage 2: adaptive-lasso pruning (LassoLarsIC, criterion="bic", port of scikit-learn's Gram path)
# --------------------------------------------------------------------------------------------------
_TINY32 = float(np.finfo(np.float32).tiny)
_EQ_TOL = float(np.finfo(np.float32).eps)
_EPS = float(np.finfo(np.float64).eps)
_BIG = float(np.finfo(np.float64).max)
_MAX_ITER = 500


@njit(cache=True, nogil=True)
def _min_pos(x):
    best = _BIG
    for v in x:
        if 0.0 < v < best:
            best = v
    return best


@njit(cache=True, nogil=True)
def _dot(a, b, n):
    s = 0.0
    for t in range(n):
        s += a[t] * b[t]
    return s


@njit(cache=True, nogil=True)
def _cho_solve(L, na, b):
    """Solve (L L^T) x = b with L lower triangular (na x na)."""
    y = np.empty(na)
    for i in range(na):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    x = np.empty(na)
    for i in range(na - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, na):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]
    return x


@njit(cache=True, nogil=True)
def _spd_solve(A, b):
    """Solve A x = b for a small symmetric positive-definite A (Cholesky)."""
    q = A.shape[0]
    L = np.zeros((q, q))
    for i in range(q):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                L[i, i] = np.sqrt(s) if s > 0.0 else np.nan
            else:
                L[i, j] = s / L[j, j]
    return _cho_solve(L, q, b)


@njit(cache=True, nogil=True)
def _cholesky_delete(L, n, go_out):
    """Remove row/column ``go_out`` of the n x n Cholesky factor L in place (Givens rotations)."""
    for i in range(go_out, n - 1):
        for k in range(i + 2):
            L[i, k] = L[i + 1, k]
    for i in range(go_out, n - 1):
        a = L[i, i]
        b = L[i, i + 1]
        roe = b if abs(b) > abs(a) else a
        scale = abs(a) + abs(b)
        if scale == 0.0:
            c, s, r = 1.0, 0.0, 0.0
        else:
            r = scale * np.sqrt((a / scale) ** 2 + (b / scale) ** 2)
            if roe < 0:
                r = -r
            c = a / r
            s = b / r
        L[i, i] = r
        if r < 0:
            L[i, i] = abs(r)
            c = -c
            s = -s
        L[i, i + 1] = 0.0
        for k in range(i + 1, n - 1):
            x = L[k, i]
            y = L[k, i + 1]
            L[k, i] = c * x + s * y
            L[k, i + 1] = c * y - s * x


@njit(cache=True, nogil=True)
def _most_correlated(buf, n_active, q):
    """``(C_idx, C_, C)``: the inactive feature most correlated with the residual (offset past the active ones),
    its correlation and the correlation's magnitude (zeros when every feature is active)."""
    C_idx = 0
    C_ = 0.0
    C = 0.0
    if q - n_active > 0:
        best = -1.0
        for t in range(n_active, q):
            if abs(buf[t]) > best:
                best = abs(buf[t])
                C_idx = t - n_active
        C_ = buf[n_active + C_idx]
        C = abs(C_)
    return C_idx, C_, C


@njit(cache=True, nogil=True)
def _swap_features(Gram, buf, indices, m, nn, q):
    """Swap features ``m`` and ``nn`` in the residual correlations, the index map and the Gram matrix."""
    tmp = buf[nn]
    buf[nn] = buf[m]
    buf[m] = tmp
    ti = indices[nn]
    indices[nn] = indices[m]
    indices[m] = ti
    for t in range(q):
        tmp = Gram[m, t]
        Gram[m, t] = Gram[nn, t]
        Gram[nn, t] = tmp
    for t in range(q):
        tmp = Gram[t, m]
        Gram[t, m] = Gram[t, nn]
        Gram[t, nn] = tmp


@njit(cache=True, nogil=True)
def _add_feature(Gram, buf, indices, L, sign_active, n_active, C_idx, C_, q):
    """Move the chosen feature into the active set's position ``n_active`` and grow the Cholesky factor L by one
    row.  Returns False for a degenerate regressor (scikit-learn zeroes its correlation and carries on)."""
    sign_active[n_active] = 1.0 if C_ > 0 else (-1.0 if C_ < 0 else 0.0)
    m = n_active
    nn = C_idx + n_active
    _swap_features(Gram, buf, indices, m, nn, q)
    c = Gram[n_active, n_active]
    for t in range(n_active):
        L[n_active, t] = Gram[n_active, t]
    for i in range(n_active):  # forward substitution with L[:na, :na]
        s = L[n_active, i]
        for k in range(i):
            s -= L[i, k] * L[n_active, k]
        L[n_active, i] = s / L[i, i]
    v = 0.0
    for t in range(n_active):
        v += L[n_active, t] * L[n_active, t]
    diag = max(np.sqrt(abs(c - v)), _EPS)
    L[n_active, n_active] = diag
    if diag < 1e-7:
        tmp = buf[m]
        buf[m] = buf[nn]
        buf[nn] = tmp
        buf[m] = 0.0
        tmp = buf[nn]
        buf[nn] = buf[m]
        buf[m] = tmp
        return False
    return True


@njit(cache=True, nogil=True)
def _equiangular(L, sign_active, n_active):
    """``(ls, AA)``: the equiangular direction of the active set (unit-normalised) and its normalisation,
    regularising the Cholesky factor when the Gram matrix is singular."""
    ls = _cho_solve(L, n_active, sign_active[:n_active])
    if n_active == 1 and ls[0] == 0.0:
        ls[0] = 1.0
        AA = 1.0
    else:
        AA = 1.0 / np.sqrt(_dot(ls, sign_active, n_active))
        if not np.isfinite(AA):
            i = 0
            L_ = np.empty((n_active, n_active))
            for t in range(n_active):
                for k in range(n_active):
                    L_[t, k] = L[t, k]
            while not np.isfinite(AA):
                for t in range(n_active):
                    L_[t, t] += (2.0**i) * _EPS
                ls = _cho_solve(L_, n_active, sign_active[:n_active])
                tmp = max(_dot(ls, sign_active, n_active), _EPS)
                AA = 1.0 / np.sqrt(tmp)
                i += 1
        for t in range(n_active):
            ls[t] *= AA
    return ls, AA


@njit(cache=True, nogil=True)
def _step_length(Gram, buf, ls, AA, C, n_active, q):
    """``(corr, gamma_)``: the inactive features' correlation with the direction, and the step to the next
    feature that joins (or to the end of the path)."""
    nrest = q - n_active
    corr = np.zeros(nrest)
    for t in range(nrest):
        s = 0.0
        for k in range(n_active):
            s += Gram[k, n_active + t] * ls[k]
        corr[t] = np.rint(s * 1e15) / 1e15
    g1 = _BIG
    g2 = _BIG
    for t in range(nrest):
        v1 = (C - buf[n_active + t]) / (AA - corr[t] + _TINY32)
        v2 = (C + buf[n_active + t]) / (AA + corr[t] + _TINY32)
        if 0.0 < v1 < g1:
            g1 = v1
        if 0.0 < v2 < g2:
            g2 = v2
    return corr, min(g1, g2, C / AA)


@njit(cache=True, nogil=True)
def _lasso_drop(coef, active, ls, sign_active, n_active, gamma_):
    """``(gamma_, drop_at)``: a shorter step and the active position of the coefficient that would cross zero
    first (the lasso modification; its sign flips), else the step unchanged and -1."""
    z = np.empty(n_active)
    for t in range(n_active):
        z[t] = -coef[active[t]] / (ls[t] + _TINY32)
    z_pos = _min_pos(z)
    drop_at = -1
    if z_pos < gamma_:
        for t in range(n_active - 1, -1, -1):
            if z[t] == z_pos:
                drop_at = t
                break
        sign_active[drop_at] = -sign_active[drop_at]
        gamma_ = z_pos
    return gamma_, drop_at


@njit(cache=True, nogil=True)
def _grown(coefs, alphas):
    """The path storage twice as long (drops make the path longer than q + 1), copied by loops."""
    q = coefs.shape[1]
    grown = np.zeros((2 * coefs.shape[0], q))
    grown_a = np.zeros(2 * alphas.shape[0])
    for k in range(coefs.shape[0]):
        grown_a[k] = alphas[k]
        for t in range(q):
            grown[k, t] = coefs[k, t]
    return grown, grown_a


@njit(cache=True, nogil=True)
def _remove_feature(Gram0, Cov0, Gram, buf, indices, L, active, sign_active, coef, n_active, drop_at, q):
    """Take active position ``drop_at`` out of the active set (Cholesky downdate, index and Gram shuffles) and
    restore its residual correlation; returns the new number of active features."""
    _cholesky_delete(L, n_active, drop_at)
    n_active -= 1
    dropped = active[drop_at]
    for t in range(drop_at, n_active):
        active[t] = active[t + 1]
    for i in range(drop_at, n_active):
        ti = indices[i]
        indices[i] = indices[i + 1]
        indices[i + 1] = ti
        for t in range(q):
            tmp = Gram[i, t]
            Gram[i, t] = Gram[i + 1, t]
            Gram[i + 1, t] = tmp
        for t in range(q):
            tmp = Gram[t, i]
            Gram[t, i] = Gram[t, i + 1]
            Gram[t, i + 1] = tmp
    s = Cov0[dropped]
    for t in range(q):
        s -= Gram0[dropped, t] * coef[t]
    buf[n_active] = s
    for t in range(drop_at, q - 1):
        sign_active[t] = sign_active[t + 1]
    sign_active[q - 1] = 0.0
    return n_active


@njit(cache=True, nogil=True)
def _lars_lasso_path(Gram0, Cov0, n_samples):
    """LARS lasso path from the Gram matrix (scikit-learn's ``lars_path(method="lasso")``).

    Returns the coefficients along the path, (n_steps, q).  Each step: the most correlated inactive feature
    joins (:func:`_add_feature`), the equiangular direction (:func:`_equiangular`) is followed for
    :func:`_step_length`, shortened where a coefficient would cross zero, which then leaves
    (:func:`_lasso_drop`, :func:`_remove_feature`).
    """
    q = Gram0.shape[0]
    Gram = Gram0.copy()
    buf = Cov0.copy()  # Cov of inactive features lives in buf[n_active:q]
    coefs = np.zeros((2 * q + 2, q))
    alphas = np.zeros(2 * q + 2)
    indices = np.empty(q, dtype=np.int64)
    for t in range(q):
        indices[t] = t
    active = np.empty(q, dtype=np.int64)
    sign_active = np.zeros(q)
    L = np.zeros((q, q))
    n_iter = 0
    n_active = 0
    drop = False
    while True:
        C_idx, C_, C = _most_correlated(buf, n_active, q)
        prev_alpha = alphas[n_iter - 1] if n_iter > 0 else 0.0
        alphas[n_iter] = C / n_samples
        if alphas[n_iter] <= _EQ_TOL:
            break
        if n_iter >= _MAX_ITER or n_active >= q:
            break
        if not drop:
            if not _add_feature(Gram, buf, indices, L, sign_active, n_active, C_idx, C_, q):
                continue
            active[n_active] = indices[n_active]
            n_active += 1
        if n_iter > 0 and prev_alpha < alphas[n_iter]:
            break
        ls, AA = _equiangular(L, sign_active, n_active)
        corr, gamma_ = _step_length(Gram, buf, ls, AA, C, n_active, q)
        gamma_, drop_at = _lasso_drop(coefs[n_iter], active, ls, sign_active, n_active, gamma_)
        drop = drop_at >= 0
        n_iter += 1
        if n_iter >= coefs.shape[0]:
            coefs, alphas = _grown(coefs, alphas)
        coef = coefs[n_iter]
        prev = coefs[n_iter - 1]
        for t in range(n_active):
            coef[active[t]] = prev[active[t]] + gamma_ * ls[t]
        for t in range(q - n_active):
            buf[n_active + t] -= gamma_ * corr[t]
        if drop:
            n_active = _remove_feature(Gram0, Cov0, Gram, buf, indices, L, active, sign_active, coef, n_active,
                                       drop_at, q)
    return coefs[: n_iter + 1]


@njit(cache=True, nogil=True)
def _standardized_ols(S, pred, target, Rpp, Rpt):
    """Correlations of the predictors (Rpp) and with the target (Rpt) from S; returns the OLS coefficients."""
    q = pred.shape[0]
    st = np.sqrt(S[target, target])
    for a in range(q):
        sa = np.sqrt(S[pred[a], pred[a]])
        Rpt[a] = S[pred[a], target] / (sa * st)
        for b in range(q):
            Rpp[a, b] = S[pred[a], pred[b]] / (sa * np.sqrt(S[pred[b], pred[b]]))
    return _spd_solve(Rpp, Rpt)


@njit(cache=True, nogil=True)
def _bic_best(coefs, Gram, Cov, n, beta, Rpt):
    """Index of the point of the lasso path with the lowest BIC, noise variance from the full OLS."""
    q = Cov.shape[0]
    fit = 0.0
    for a in range(q):
        fit += beta[a] * Rpt[a]
    sigma2 = n * (1.0 - fit) / (n - q - 1)
    best = 0
    best_crit = np.inf
    for k in range(coefs.shape[0]):
        rss = n
        df = 0
        for a in range(q):
            ca = coefs[k, a]
            rss -= 2.0 * ca * Cov[a]
            for b in range(q):
                rss += ca * Gram[a, b] * coefs[k, b]
            if abs(ca) > _EPS:
                df += 1
        crit = n * np.log(2.0 * np.pi * sigma2) + rss / sigma2 + np.log(n) * df
        if crit < best_crit:
            best_crit = crit
            best = k
    return best


@njit(cache=True, nogil=True)
def _refit(S, pred, target, keep, Bd):
    """OLS of the target on the kept predictors (original units) into row ``target`` of Bd."""
    q = pred.shape[0]
    idx = np.empty(q, dtype=np.int64)
    nk = 0
    for a in range(q):
        if keep[a]:
            idx[nk] = a
            nk += 1
    if nk > 0:
        Spp = np.empty((nk, nk))
        Spt = np.empty(nk)
        for a in range(nk):
            Spt[a] = S[pred[idx[a]], target]
            for b in range(nk):
                Spp[a, b] = S[pred[idx[a]], pred[idx[b]]]
        coef = _spd_solve(Spp, Spt)
        for a in range(nk):
            Bd[target, pred[idx[a]]] = coef[a]


@njit(cache=True, nogil=True)
def _prune_kernel(S, nvalid, order, allowed, B):
    """Stage 2 of every dataset: lingam's ``predict_adaptive_lasso`` of each variable on its allowed predecessors.

    ``S`` (m, p, p) covariances, ``nvalid`` (m,) sample counts, ``order`` (m, p) causal orders (-1: degenerate,
    B row set to NaN), ``allowed`` (p, p) predictor mask; writes the adjacency into ``B`` (m, p, p), which must
    hold zeros.  The adaptive lasso is spelled out here, its stages called side by side rather than nested:
    numba re-optimises every callee inside each caller, so a flat call tree compiles in less time.
    """
    m, p, _ = S.shape
    for d in range(m):
        if order[d, 0] < 0:
            for i in range(p):
                for j in range(p):
                    B[d, i, j] = np.nan
            continue
        n = float(nvalid[d])
        for pos in range(1, p):
            target = order[d, pos]
            q = 0
            for t in range(pos):
                if allowed[target, order[d, t]]:
                    q += 1
            if q == 0:
                continue
            pred = np.empty(q, dtype=np.int64)
            q = 0
            for t in range(pos):
                if allowed[target, order[d, t]]:
                    pred[q] = order[d, t]
                    q += 1
            Rpp = np.empty((q, q))
            Rpt = np.empty(q)
            beta = _standardized_ols(S[d], pred, target, Rpp, Rpt)
            Gram = np.empty((q, q))
            Cov = np.empty(q)
            for a in range(q):
                Cov[a] = Rpt[a] * abs(beta[a]) * n
                for b in range(q):
                    Gram[a, b] = Rpp[a, b] * abs(beta[a]) * abs(beta[b]) * n
            coefs = _lars_lasso_path(Gram, Cov, n)
            best = _bic_best(coefs, Gram, Cov, n, beta, Rpt)
            keep = np.empty(q, dtype=np.bool_)
            for a in range(q):
                keep[a] = abs(coefs[best, a] * abs(beta[a])) > 0.0
            _refit(S[d], pred, target, keep, B[d])


def compile_stage(stage: str) -> None:
    """Compile (or load from the disk cache) the kernel of one stage, ``"order"`` or ``"prune"``.

    Called on tiny inputs of exactly the argument types every fit passes, so the compiled signature is the one
    later fits use (the warmup children call this; see :mod:`napari_causal_lattice._warmup`).
    """
    p = 3
    orders0, allowed = _check_prior(None, p)
    order = np.empty((1, p), dtype=np.int64)
    S = np.empty((1, p, p))
    nvalid = np.empty(1, dtype=np.int64)
    if stage == "order":
        X = np.random.default_rng(0).standard_normal((1, 16, p))
        _order_kernel(X, np.ones((1, 16), dtype=np.bool_), orders0, order, S, nvalid, np.zeros(1, dtype=np.bool_))
    elif stage == "prune":
        S[0] = np.eye(p) + 0.5
        nvalid[0] = 16
        order[0] = np.arange(p)
        _prune_kernel(S, nvalid, order, allowed, np.zeros((1, p, p)))
    else:
        raise ValueError(f"stage must be 'order' or 'prune', got {stage!r}.")


def _fit_batch(X, mask, orders0, allowed, order, B, bad) -> None:
    """Both stages on the datasets X (m, n, p): two kernels, each compiled once and cached on disk."""
    m, _, p = X.shape
    S = np.empty((m, p, p))
    nvalid = np.empty(m, dtype=np.int64)
    _order_kernel(X, mask, orders0, order, S, nvalid, bad)
    _prune_kernel(S, nvalid, order, allowed, B)


#: Most datasets one process fits on the twins (a global fit and a 100-resample bootstrap, about 1 s of CPU); later
#: batches (sliding windows: thousands of fits) wait for the compiled kernels, which is then quicker.
_TWIN_BUDGET = 256
_twin_fits = {"used": 0, "lock": threading.Lock()}


def _on_twins(m: int) -> bool:
    """True if a batch of ``m`` datasets runs on the twins (the kernels compile, the batch fits in the budget)."""
    if not _twins_module.compiling(m, allowed=_twin_fits["used"] + m <= _TWIN_BUDGET):
        return False
    with _twin_fits["lock"]:
        _twin_fits["used"] += m
    return True


def _mean_numpy(x):
    """:func:`_mean` in NumPy, for the twins (sums in another order: equal to rounding)."""
    return x.sum() / x.shape[0]


def _cov_numpy(x, mx, y, my):
    """:func:`_cov` in NumPy, for the twins."""
    return np.dot(x - mx, y - my) / x.shape[0]


def _entropy_numpy(si, sj, rho, inv, n):
    """:func:`_entropy` in NumPy, for the twins: the same approximation on the ``n`` samples (padding left out)."""
    u = (si[:n] - rho * sj[:n]) * inv
    a = np.abs(u)
    log_cosh = a.sum() + np.log1p(np.exp(np.maximum(-2.0 * a, -700.0))).sum()
    g = np.dot(u, np.exp(np.maximum(-0.5 * u * u, -700.0)))
    mlc = log_cosh / n - _LOG2
    mg = g / n
    return _H_GAUSS - _K1 * (mlc - _GAMMA) ** 2 - _K2 * mg**2


def _standardized_remaining_numpy(X, Z, remaining, smean, C, Hx, done, n):
    """:func:`_standardized_remaining` in NumPy, for the twins (all remaining variables at once)."""
    rows = np.flatnonzero(remaining)
    centred = X[rows] - (X[rows].sum(axis=1) / X.shape[1])[:, None]
    var = np.einsum("ij,ij->i", centred, centred) / X.shape[1]
    if not np.all(var > 0.0):
        return False
    Zr = centred / np.sqrt(var)[:, None]
    Z[rows, :n] = Zr
    smean[rows] = Zr.sum(axis=1) / n
    Zc = Zr - smean[rows][:, None]
    C[np.ix_(rows, rows)] = Zc @ Zc.T / n
    for i in rows:
        Hx[i] = _entropy_numpy(Z[i], Z[i], 0.0, 1.0, n)
    done[rows] = False
    return True


def _regress_out_numpy(X, chosen, remaining, n):
    """:func:`_regress_out` in NumPy, for the twins."""
    xm = X[chosen]
    xm_c = xm - xm.sum() / n
    vm = np.dot(xm_c, xm_c) / n
    if not vm > 0.0:
        return False
    rows = np.flatnonzero(remaining)
    c = (X[rows] - (X[rows].sum(axis=1) / n)[:, None]) @ xm_c / n / vm
    X[rows] -= c[:, None] * xm[None, :]
    return True


@functools.cache
def _twins() -> dict:
    """The kernels' Python twins (:mod:`._twins`), with the sample loops of stage 1 in NumPy."""
    return _twins_module.python_twins(globals(), {
        "_mean": _mean_numpy, "_cov": _cov_numpy, "_entropy": _entropy_numpy,
        "_standardized_remaining": _standardized_remaining_numpy, "_regress_out": _regress_out_numpy})


def _twin_fit_batch(X, mask, orders0, allowed, order, B, bad) -> None:
    """:func:`_fit_batch` on the kernels' Python twins (while the kernels compile; same order, B to ~1e-15).

    Stage 1 is :func:`_order_kernel` with its per-dataset preparation in NumPy; stage 2 the twin of
    :func:`_prune_kernel`.
    """
    m, _, p = X.shape
    S = np.empty((m, p, p))
    nvalid = mask.sum(axis=1)
    twins = _twins()
    with np.errstate(all="ignore"):
        for d in range(m):
            Xd = np.ascontiguousarray(X[d][mask[d]].T)
            bad[d] = not np.isfinite(Xd).all()
            centred = Xd - (Xd.sum(axis=1) / nvalid[d])[:, None]
            S[d] = centred @ centred.T / nvalid[d]
            ok = not bad[d] and twins["_causal_order"](Xd, orders0, order[d]) and np.all(np.diag(S[d]) > 0.0)
            if not ok:
                order[d] = -1
        twins["_prune_kernel"](S, nvalid, order, allowed, B)


_warmup.install_compile_note()  # one line on stderr if this process compiles the kernels (not on cache loads)


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
@functools.cache
def _cpu_count() -> int:
    """CPU cores (asked once per process)."""
    return os.cpu_count() or 1


def _fit_threads(X, mask, orders0, allowed, order, B, bad, workers) -> None:
    """:func:`_fit_batch` with the datasets spread over ``workers`` threads (default all cores; one below 16)."""
    m = X.shape[0]
    n_threads = 1 if m < 16 else max(1, min(_cpu_count() if workers is None else int(workers), m // 8))
    if n_threads == 1:  # a single fit or a small batch: no thread pool, no partition
        _fit_batch(X, mask, orders0, allowed, order, B, bad)
        return

    def fit(sl):
        _fit_batch(X[sl], mask[sl], orders0, allowed, order[sl], B[sl], bad[sl])

    bounds = np.linspace(0, m, n_threads + 1).astype(int)
    parts = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    with ThreadPoolExecutor(n_threads) as pool:
        for job in [pool.submit(fit, sl) for sl in parts]:
            job.result()


def direct_lingam_batch(X, *, prior_knowledge=None, mask=None, workers=None):
    """Fit DirectLiNGAM to many datasets at once.

    Parameters
    ----------
    X : (m, n, p) array
        ``m`` datasets of ``n`` samples of ``p`` variables (any units; fitted as given, not standardised).
    prior_knowledge : (p, p) array, optional
        lingam-style matrix shared by all datasets: ``pk[i, j] = 1`` a path ``j -> i`` exists, ``0`` no
        path ``j -> i``, ``-1`` unknown (see :func:`napari_causal_lattice.causal.prior.make_prior_knowledge`).
    mask : (m, n) bool array, optional
        Valid samples of each dataset (e.g. sliding windows with different cell counts); the fit of
        dataset ``k`` uses ``X[k][mask[k]]`` only.  Each dataset needs more than ``p + 1`` valid samples.
    workers : int, optional
        Threads to spread the datasets over (default: all CPU cores; the kernel releases the GIL).  Results
        do not depend on it.  Pass 1 when calling from your own thread pool.

    Returns
    -------
    orders : (m, p) int array
        Causal order of each dataset (first = most exogenous).
    B : (m, p, p) float array
        Adjacency matrices, ``B[k, i, j]`` = direct effect of variable ``j`` on ``i`` in dataset ``k``
        (units of variable ``i`` per unit of variable ``j``).  A degenerate dataset (a variable or a residual
        with zero variance, e.g. a duplicated column) gets order ``-1`` and ``B`` NaN instead of an error.

    Notes
    -----
    Gives the same causal order and adjacency as ``lingam.DirectLiNGAM(prior_knowledge=pk).fit(X[k][mask[k]])``
    up to floating-point rounding (coefficients agree to ~1e-10).  While the warmup children compile the kernels
    (first start after installing), batches of at most 64 datasets run on the kernels' Python twins: the same
    orders and pruned edges, coefficients equal to rounding (~1e-15); once compiled, answers are bit-identical
    from run to run.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"X must be a (datasets, samples, variables) array, got shape {X.shape}.")
    m, n, p = X.shape
    if mask is None:
        mask = np.ones((m, n), dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (m, n):
        raise ValueError(f"mask must have shape {(m, n)} to match X, got {mask.shape}.")
    nvalid = mask.sum(axis=1)
    if m and nvalid.min() <= p + 1:
        raise ValueError(
            f"Every dataset needs more than p + 1 = {p + 1} valid samples; the smallest has {nvalid.min()}."
        )
    orders0, allowed = _check_prior(prior_knowledge, p)
    if m == 0:
        return np.zeros((0, p), dtype=np.int64), np.zeros((0, p, p))
    X = np.ascontiguousarray(X)
    mask = np.ascontiguousarray(mask)
    order = np.empty((m, p), dtype=np.int64)
    B = np.zeros((m, p, p))
    bad = np.zeros(m, dtype=np.bool_)
    if _on_twins(m):  # the warmup children are compiling: do not wait for them
        _twin_fit_batch(X, mask, orders0, allowed, order, B, bad)
    else:
        _fit_threads(X, mask, orders0, allowed, order, B, bad, workers)
    if bad.any():
        raise ValueError(
            f"X contains NaN or infinite values among the valid samples of dataset(s) "
            f"{np.flatnonzero(bad)[:5].tolist()}; drop those rows or mask them out."
        )
    return order, B


def direct_lingam(X, *, prior_knowledge=None):
    """Fit DirectLiNGAM to one dataset.

    Parameters
    ----------
    X : (n, p) array
        Samples x variables, fitted as given (not standardised).
    prior_knowledge : (p, p) array, optional
        lingam-style matrix, see :func:`direct_lingam_batch`.

    Returns
    -------
    order : (p,) int array
        Causal order.
    B : (p, p) float array
        Adjacency, ``B[i, j]`` = direct effect of ``j`` on ``i``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a (samples, variables) array, got shape {X.shape}.")
    order, B = direct_lingam_batch(X[None], prior_knowledge=prior_knowledge)
    return order[0], B[0]


def bootstrap_indices(n, n_bootstrap, rng):
    """Bootstrap resamples (sampling with replacement).

    Parameters
    ----------
    n : int
        Number of samples in the data.
    n_bootstrap : int
        Number of resamples.
    rng : numpy.random.Generator
        Source of randomness (``np.random.default_rng(seed)``); the same generator state gives the
        same resamples.

    Returns
    -------
    (n_bootstrap, n) int64 array
        Row indices of each resample.  Each resample is one ``rng.integers(0, n, n)`` draw, so drawing
        ``a`` then ``b`` resamples from one generator gives exactly the ``a + b`` resamples of a single call
        (bootstraps can be generated chunk by chunk).
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(seed).")
    n, n_bootstrap = int(n), int(n_bootstrap)
    if n < 1 or n_bootstrap < 0:
        raise ValueError(f"Need n >= 1 and n_bootstrap >= 0, got n={n}, n_bootstrap={n_bootstrap}.")
    out = np.empty((n_bootstrap, n), dtype=np.int64)
    for k in range(n_bootstrap):
        out[k] = rng.integers(0, n, n)
    return out
