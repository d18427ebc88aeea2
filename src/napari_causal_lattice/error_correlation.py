"""Correlated x-position errors of neighbouring columns, estimated from the image's own columns.

The column sigmas of :func:`~napari_causal_lattice.columns.find_columns` are each column's own uncertainty,
independent between columns, plus the line shifts a scan row's columns share
(:func:`~napari_causal_lattice.scan.line_covariance`).  On real scans the x errors of neighbouring columns are
also positively correlated beyond that (shared probe tails, a misfit of the column model that neighbours share,
scan noise slower than one line): a difference of neighbours (``a``, ``Px``) then scatters less than independent
errors predict.  This module measures that correlation per neighbour class and turns it into a covariance that
:func:`~napari_causal_lattice.cells.build_cells` and
:func:`~napari_causal_lattice.descriptors.neighbour_sigma_ratio` add to the line covariance.

Neighbour classes (:data:`CLASSES`): A-A one step along ``v1`` and along ``v2``, B-B the same, and a B column
with its nearest A corners (the two of its edge in [110], all four in [001]).  For each class the x residuals
``e`` of the columns from the fitted lattice (an affine fit per sublattice on the grid) give two estimates of the
correlation ``rho`` of the own x errors, beyond the modelled line covariance ``L``:

* from the differences: ``rho_d = (mean(s_c^2 + s_d^2 + L_cc + L_dd - 2 L_cd) - var(e_c - e_d)) / (2 mean(s_c
  s_d))``, with ``s`` the own x sigmas: how much less the neighbours' differences scatter than independent errors
  of the stated size predict;
* from the products: ``rho_p = (cov(e_c, e_d) - mean(L_cd)) / mean(s_c s_d)``.

Both are needed: slow lattice distortion left in the residuals raises ``rho_p`` (it does not cancel in products),
stated sigmas that are too small lower ``rho_d``.  The smaller of the two is kept when it is above
``n_sigma`` standard errors of the estimate under independent errors (``sqrt(2 / M)`` times the predicted
difference variance over ``2 mean(s_c s_d)``, ``M`` pairs), and is capped at ``cap``.  Variances and covariances
are taken with the residuals clipped at ``clip`` robust standard deviations (nearly as efficient as plain moments,
and a stray column does not decide).  A class whose predicted difference variance is mostly the line part
(``max_line_share``) is not estimated: after a jitter correction the lines' remaining shifts are correlated between
nearby rows, which the line covariance leaves out, and the estimate would take that for a correlation of the own
errors (on the 0.3 px jitter synthetics the classes across rows have line shares of 0.31-0.58 and read up to 0.9;
on SrTiO3 [110] every class is below 0.09).

Measured on SrTiO3 [110] (``../shared/data/atomap_sto_adf_abf``): A-B 0.45 and B-B along v2 0.56, the others 0;
Px's neighbour ratio goes from 0.47 to 0.91.  The non-polar synthetics read 0 in every class but one seed's A-A
along v2 (0.2), so their sigmas do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from .scan import line_covariance

__all__ = ["CLASSES", "ErrorCorrelation", "estimate_x_correlation", "neighbour_pairs", "recorded_x_correlation"]

#: Neighbour classes whose x-error correlation is estimated.
CLASSES: tuple[str, ...] = ("A-A v1", "A-A v2", "B-B v1", "B-B v2", "A-B")

#: The corners of a cell ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)`` as grid steps ``(di, dj)``.
_CORNER_STEPS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])


@dataclass(frozen=True)
class ErrorCorrelation:
    """The correlation of the x-position errors of neighbouring columns, per neighbour class.

    Attributes
    ----------
    rho : dict
        Class (:data:`CLASSES`) -> correlation kept (0 where the estimate was not above the independent-error
        null, the line covariance dominated, or there were too few pairs).
    pairs : dict
        Class -> (M, 2) int array of the neighbouring columns (indices into the columns, smaller first).
    estimates : dict
        Class -> ``{"differences": rho_d, "products": rho_p, "pairs": M, "null": threshold, "line_share": share}``
        (NaN with fewer than ``min_pairs`` pairs).
    """

    rho: dict
    pairs: dict
    estimates: dict

    @property
    def correlated(self) -> bool:
        """True if any class has a correlation kept (else :meth:`matrix` is all zero)."""
        return any(rho > 0 for rho in self.rho.values())

    def summary(self) -> dict:
        """JSON-able record for the provenance: per class the kept rho (exact: the cells' sigmas use it) and the
        two estimates and the null threshold (3 decimals)."""
        return {name: {"rho": float(self.rho[name]),
                       **{k: (round(float(v), 3) if np.isfinite(v) else None) if k != "pairs" else int(v)
                          for k, v in self.estimates[name].items()}}
                for name in CLASSES}

    def matrix(self, sigma_x, n_columns: int) -> sparse.csr_matrix:
        """(N, N) sparse covariance px^2 of the x errors that neighbours share: ``rho * s_c * s_d`` for every
        neighbour pair of a class with ``rho > 0`` (both orders), 0 elsewhere and on the diagonal.

        Parameters
        ----------
        sigma_x : (N,) array
            Own x sigma of each column, px.
        n_columns : int
            N.
        """
        sigma_x = np.asarray(sigma_x, dtype=float)
        rows, cols, vals = [], [], []
        for name in CLASSES:
            pairs = self.pairs[name]
            if self.rho[name] <= 0 or len(pairs) == 0:
                continue
            value = self.rho[name] * sigma_x[pairs[:, 0]] * sigma_x[pairs[:, 1]]
            rows += [pairs[:, 0], pairs[:, 1]]
            cols += [pairs[:, 1], pairs[:, 0]]
            vals += [value, value]
        if not rows:
            return sparse.csr_matrix((n_columns, n_columns))
        return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(n_columns, n_columns))

    def cell_covariance(self, sigma_x, members) -> np.ndarray:
        """(n, k, k) covariance px^2 of the x errors of each cell's columns ``members`` (n, k) (indices into the
        columns, own x sigmas ``sigma_x`` (N,) px) that neighbours share (see :meth:`matrix`)."""
        members = np.asarray(members, dtype=np.int64)
        n, k = members.shape
        full = self.matrix(sigma_x, len(sigma_x))
        first = np.repeat(members, k, axis=1).reshape(-1)
        second = np.tile(members, (1, k)).reshape(-1)
        return np.asarray(full[first, second]).reshape(n, k, k)


def _unique_pairs(first, second) -> np.ndarray:
    """(M, 2) int array of the distinct unordered pairs ``(first, second)``, smaller index first."""
    pairs = np.sort(np.column_stack([first, second]).astype(np.int64), axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def neighbour_pairs(corners, b_index, cell_ij, motif, v1, v2) -> dict:
    """The neighbouring columns of each class (:data:`CLASSES`), from the cells.

    Parameters
    ----------
    corners : (n, 4) int array
        A corners of each cell (indices into the columns), ordered ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)``.
    b_index : (n,) int array
        B column of each cell.
    cell_ij : (n, 2) int array
        Grid index ``(i, j)`` of each cell.
    motif : Motif
        Where B sits in the cell (its nearest A corners are its A-B neighbours).
    v1, v2 : (2,) arrays
        Lattice vectors (y, x) px.

    Returns
    -------
    dict
        Class -> (M, 2) int array of distinct pairs, smaller index first.
    """
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 4)
    b_index = np.asarray(b_index, dtype=np.int64).reshape(-1)
    cell_ij = np.asarray(cell_ij, dtype=np.int64).reshape(-1, 2)
    out = {"A-A v1": _unique_pairs(corners[:, [0, 2]].ravel(), corners[:, [1, 3]].ravel()),
           "A-A v2": _unique_pairs(corners[:, [0, 1]].ravel(), corners[:, [2, 3]].ravel())}
    lookup = {(int(i), int(j)): int(b) for (i, j), b in zip(cell_ij, b_index)}
    for name, (di, dj) in (("B-B v1", (0, 1)), ("B-B v2", (1, 0))):
        pairs = [(b, lookup[(int(i) + di, int(j) + dj)]) for (i, j), b in zip(cell_ij, b_index)
                 if (int(i) + di, int(j) + dj) in lookup]
        out[name] = _unique_pairs(*np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T)
    to_corner = (_CORNER_STEPS - np.asarray(motif.b_site)) @ np.stack([np.asarray(v2, float), np.asarray(v1, float)])
    distance = np.hypot(*to_corner.T)
    nearest = np.flatnonzero(distance <= 1.05 * distance.min())
    out["A-B"] = _unique_pairs(np.repeat(b_index, len(nearest)), corners[:, nearest].ravel())
    return out


def _x_residuals(positions, corners, b_index, cell_ij, b_site) -> np.ndarray:
    """(N,) x residual px of each column from an affine fit of its sublattice's x on the grid (NaN for columns
    in no cell).  Not :func:`~napari_causal_lattice.lattice.fit_lattice`: that one builds a 2D lattice and refuses
    grids whose points lie on one line, which a sublattice thinned by edits can be; this fit only needs x."""
    positions = np.asarray(positions, dtype=float)
    out = np.full(len(positions), np.nan)
    a_grid = (cell_ij[:, None, :] + _CORNER_STEPS[None]).reshape(-1, 2)
    b_grid = cell_ij + np.asarray(b_site)
    for index, grid in ((corners.reshape(-1), a_grid), (b_index, b_grid)):
        index, first = np.unique(index, return_index=True)
        design = np.column_stack([np.ones(len(index)), grid[first]])
        coef = np.linalg.lstsq(design, positions[index, 1], rcond=None)[0]
        out[index] = positions[index, 1] - design @ coef
    return out


def _clipped(values, clip: float) -> np.ndarray:
    """``values`` minus their median, clipped at ``clip`` robust (MAD) standard deviations."""
    centred = values - np.median(values)
    scale = 1.4826 * np.median(np.abs(centred))
    return np.clip(centred, -clip * scale, clip * scale) if scale > 0 else centred


def _class_estimates(pairs, residual, sigma_x, line, clip: float) -> tuple[float, float, float, float]:
    """(rho from the differences, rho from the products, predicted difference variance / (2 mean s_c s_d), the
    line covariance's share of the predicted difference variance) of one class; ``line`` is ``(L_cc, L_dd,
    L_cd)`` per pair (px^2)."""
    c, d = pairs[:, 0], pairs[:, 1]
    lcc, ldd, lcd = line
    own = np.mean(sigma_x[c] * sigma_x[d])
    predicted = np.mean(sigma_x[c] ** 2 + sigma_x[d] ** 2 + lcc + ldd - 2.0 * lcd)
    diff_var = np.mean(_clipped(residual[c] - residual[d], clip) ** 2)
    sum_var = np.mean(_clipped(residual[c] + residual[d], clip) ** 2)
    rho_d = (predicted - diff_var) / (2.0 * own)
    rho_p = ((sum_var - diff_var) / 4.0 - np.mean(lcd)) / own
    line_share = np.mean(lcc + ldd - 2.0 * lcd) / predicted
    return float(rho_d), float(rho_p), float(predicted / (2.0 * own)), float(line_share)


def estimate_x_correlation(positions, sigma_x, corners, b_index, cell_ij, motif, v1, v2, *, width=None,
                           line_variance=None, n_sigma: float = 2.5, cap: float = 0.9, min_pairs: int = 20,
                           clip: float = 4.0, max_line_share: float = 0.25) -> ErrorCorrelation:
    """Correlation of the own x-position errors of neighbouring columns, per neighbour class (see the module).

    Parameters
    ----------
    positions : (N, 2) array
        Column positions (y, x) px.
    sigma_x : (N,) array
        Own x sigma of each column, px (NaN where unknown: those pairs are left out).
    corners, b_index, cell_ij, motif, v1, v2
        The cells, as in :func:`neighbour_pairs`.
    width : (N,) array, optional
        Gaussian width of each column px (for the line covariance).
    line_variance : (H,) array, optional
        Variance px^2 of each scan row's shift (:attr:`~napari_causal_lattice.scan.ScanDistortion.line_variance`);
        its covariance is already modelled and is taken out of the estimates.
    n_sigma : float
        A class's correlation is kept when above this many standard errors of the independent-error null.
    cap : float
        Largest correlation kept.
    min_pairs : int
        Fewest pairs a class needs to be estimated.
    clip : float
        Residual sums and differences are clipped at this many robust standard deviations.
    max_line_share : float
        A class is estimated only where the line covariance is at most this share of its pairs' predicted
        difference variance: the estimate is relative to the columns' own sigmas and cannot tell a correlation
        of the own errors from a line part that is wrong (the remaining line shifts after a jitter correction are
        correlated between nearby rows, which :func:`~napari_causal_lattice.scan.line_covariance` leaves out).

    Returns
    -------
    ErrorCorrelation
    """
    positions = np.asarray(positions, dtype=float)
    sigma_x = np.asarray(sigma_x, dtype=float)
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 4)
    b_index = np.asarray(b_index, dtype=np.int64).reshape(-1)
    cell_ij = np.asarray(cell_ij, dtype=np.int64).reshape(-1, 2)
    residual = _x_residuals(positions, corners, b_index, cell_ij, motif.b_site)
    all_pairs = neighbour_pairs(corners, b_index, cell_ij, motif, v1, v2)
    rho, estimates = {}, {}
    for name in CLASSES:
        pairs = all_pairs[name]
        pairs = pairs[np.all(np.isfinite(sigma_x[pairs]) & np.isfinite(residual[pairs]), axis=1)]
        m = len(pairs)
        if m < min_pairs:
            rho[name] = 0.0
            estimates[name] = {"differences": np.nan, "products": np.nan, "pairs": m, "null": np.nan,
                               "line_share": np.nan}
            continue
        if line_variance is None:
            line = (np.zeros(m),) * 3
        else:
            line = tuple(line_covariance(positions, width, line_variance, first, second)
                         for first, second in ((pairs[:, 0], None), (pairs[:, 1], None), (pairs[:, 0], pairs[:, 1])))
        rho_d, rho_p, scale, line_share = _class_estimates(pairs, residual, sigma_x, line, clip)
        null = n_sigma * scale * np.sqrt(2.0 / m)
        estimate = min(rho_d, rho_p)
        rho[name] = float(min(estimate, cap)) if estimate > null and line_share <= max_line_share else 0.0
        estimates[name] = {"differences": rho_d, "products": rho_p, "pairs": m, "null": float(null),
                           "line_share": line_share}
    return ErrorCorrelation(rho=rho, pairs=all_pairs, estimates=estimates)


def recorded_x_correlation(cells) -> ErrorCorrelation | None:
    """The correlation :func:`~napari_causal_lattice.cells.build_cells` used for ``cells`` (its provenance
    ``params["x_correlation"]``, also through the ``inputs`` of a later step such as
    :func:`~napari_causal_lattice.cells.referenced_polarization`), with the neighbour pairs rebuilt from the
    cells; None for cells made without it.
    """
    record, provenance = None, cells.provenance
    while record is None and isinstance(provenance, dict):
        record = provenance.get("params", {}).get("x_correlation")
        provenance = provenance.get("inputs", {}).get("cells")
    if not record:
        return None
    ij = cells.table[["i", "j"]].to_numpy()
    pairs = neighbour_pairs(cells.corners, cells.b_index, ij, cells.motif, cells.lattice.v1, cells.lattice.v2)
    rho = {name: float(record[name]["rho"]) for name in CLASSES}
    estimates = {name: {k: (np.nan if v is None else v) for k, v in record[name].items() if k != "rho"}
                 for name in CLASSES}
    return ErrorCorrelation(rho=rho, pairs=pairs, estimates=estimates)
