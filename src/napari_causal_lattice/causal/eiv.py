"""Errors in variables: coefficients corrected for per-cell measurement noise (regression calibration).

Measurement noise of a cause dilutes its coefficient: with a true spread ``s`` and noise ``sigma``, ordinary
regression returns ``b s**2 / (s**2 + sigma**2)`` instead of ``b``.  Given the per-cell 1-sigma uncertainty of
the descriptors (columns ``sigma_<name>`` of the cell table, same unit as the descriptor), each effect's
coefficients on its parents (the non-zero entries of a fit's adjacency) are re-estimated as

    beta = (S_PP - D_P)^-1 S_Pi,

with ``S`` the sample covariance of the descriptors (in their units) and ``D_P`` the diagonal of the mean
squared uncertainty of the parents.  Noise on the effect itself does not bias its coefficients.  The
correction assumes noise independent between cells and variables and of the true values; the causal order
and the set of parents stay those of the (uncorrected) LiNGAM fit.  Where ``S_PP - D_P`` is not positive
definite (noise as large as the spread) the corrected value is NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sigma_columns", "eiv_adjacency"]


def sigma_columns(table, names) -> np.ndarray | None:
    """(n, p) per-cell 1-sigma uncertainty of ``names`` from ``sigma_<name>`` columns, or None if there is none.

    Variables without a column get 0 (taken as exact); NaN uncertainties are read as 0.
    """
    columns = getattr(table, "columns", ())
    present = [f"sigma_{n}" in columns for n in names]
    if not any(present):
        return None
    out = np.zeros((len(table), len(names)))
    for k, (name, has) in enumerate(zip(names, present)):
        if has:
            out[:, k] = np.nan_to_num(np.asarray(table[f"sigma_{name}"], dtype=float), nan=0.0)
    return out


def eiv_adjacency(X, noise_var, B) -> np.ndarray:
    """Coefficients corrected for measurement noise, for each of ``m`` fits.

    Parameters
    ----------
    X : (m, n, p) float array
        Data of each fit in descriptor units (e.g. the bootstrap resamples).
    noise_var : (m, p) float array
        Mean squared 1-sigma uncertainty of each variable over each fit's rows (units squared).
    B : (m, p, p) float array
        Adjacency of each fit; only its support (which parents each effect has) is used.

    Returns
    -------
    (m, p, p) float array
        Corrected ``B[k, i, j]`` = effect of ``j`` on ``i`` in unit of ``i`` per unit of ``j``; 0 off the
        support; NaN for a fit whose corrected parent covariance is not positive definite.
    """
    X = np.asarray(X, dtype=float)
    m, n, p = X.shape
    Xc = X - X.mean(axis=1, keepdims=True)
    S = np.einsum("kni,knj->kij", Xc, Xc) / n
    out = np.zeros((m, p, p))
    support = np.nan_to_num(np.asarray(B, dtype=float)) != 0
    for k in range(m):
        for i in range(p):
            parents = np.flatnonzero(support[k, i])
            if parents.size == 0:
                continue
            A = S[k][np.ix_(parents, parents)] - np.diag(noise_var[k, parents])
            if np.linalg.eigvalsh(A)[0] <= 1e-12 * np.trace(S[k][np.ix_(parents, parents)]):
                out[k, i] = np.nan
                continue
            out[k, i, parents] = np.linalg.solve(A, S[k][parents, i])
    return out
