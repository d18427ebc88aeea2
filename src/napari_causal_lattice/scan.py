"""Scan distortion of STEM images: fast-scan line jitter from one image, frame series registration.

A STEM image is written line by line; each fast-scan line (image row) can land shifted along x (line jitter:
probe-position noise, stage and field interference), and the slow scan drifts.  Both move every column of a
row together, so they pass as structure (row stripes in a, b, alpha, Px) unless they are measured.

One image (:func:`estimate_scan_distortion`): the column model fitted on the image (the sum of the fitted
Gaussians) is compared with the image row by row.  Row ``r``'s content shifted by ``s_r`` along x leaves a
residual ``image - model = -s_r d model / dx`` (plus noise and a row constant), so a linear least-squares fit
per row gives a raw shift ``e_r``.  The column fits have already absorbed part of the jitter: each column's
fitted x is the mean of ``s`` over its rows, weighted by ``sum_x (dG/dx)^2`` on each row.  So
``e = (I - K) s`` with ``K`` the (sparse) operator "average over the rows of the columns that cover this
row", which removes the slow part of ``s`` (a shift shared by all rows, or a shear, is the lattice itself and
cannot be told apart in one image).  ``s`` is recovered by a ridge (Gaussian prior) solution whose jitter
variance is set from the data (expectation-maximisation), which also gives each line's remaining uncertainty.
This is written here rather than taken from a library because it has to use the column model of this package.

Frame series (:func:`register_frames`): frames are aligned rigidly on the first (phase correlation), then
every line of every frame on the mean of the aligned frames, and averaged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import linalg, ndimage, sparse
from scipy.sparse.linalg import spsolve
from threadpoolctl import threadpool_limits

from . import _gaussfit
from .provenance import make_provenance

__all__ = ["ScanDistortion", "estimate_scan_distortion", "correct_scan", "line_covariance", "register_frames",
           "Registered", "combine_orthogonal", "OrthogonalPair"]

#: Rows solved per dense block when computing each line's posterior uncertainty (plus a margin each side).
_BLOCK = 128
_MARGIN = 64


@dataclass(frozen=True)
class ScanDistortion:
    """Scan distortion estimated from one image.

    Attributes
    ----------
    shifts : (H,) float array
        Apparent shift in px along x of each image row's content (line jitter), relative to the lattice:
        row ``r`` of the image shows the specimen moved by ``shifts[r]`` px.  Slow shifts (a shift common to
        all rows, a shear) are part of the lattice in one image and read 0.
    sigma : (H,) float array
        1-sigma uncertainty in px of each row's shift after the estimate (the jitter left in a corrected row):
        the posterior of the ridge solution with the row noise rescaled by its reduced chi-square and the lattice
        terms integrated out.  On synthetics with 0.3 px jitter (12 x 12 cells, seeds 0-3) the error over the
        covered rows is 0.8-1.6 of it (rms of error / sigma).
    drift : (H,) float array
        Slow, non-linear x displacement (px) of the A columns from the straight lattice, as a smooth function
        of the row (a cubic in y without its linear part): slow-scan drift or lattice bending, which one image
        cannot tell apart.  Corrected with the jitter when significant (:meth:`drift_significant`).
    pixel_size : float or None
        pm per px (None when unknown).
    applied : bool
        True when the image was corrected for the line jitter (rows resampled) before the final column fit.
    provenance : dict
        How the estimate was made.
    drift_sigma : (H,) float array, optional
        1-sigma uncertainty px of ``drift`` per row (from the polynomial fit's covariance); default zeros.
    drift_applied : bool
        True when the rows were also resampled to undo ``drift`` (states saved before load as False).
    """

    shifts: np.ndarray
    sigma: np.ndarray
    drift: np.ndarray
    pixel_size: float | None = None
    applied: bool = False
    provenance: dict = field(default_factory=dict)
    drift_sigma: np.ndarray | None = None
    drift_applied: bool = False

    def __post_init__(self):
        shifts = np.asarray(self.shifts, dtype=float).reshape(-1)
        if self.drift_sigma is None:
            object.__setattr__(self, "drift_sigma", np.zeros_like(shifts))
        object.__setattr__(self, "drift_applied", bool(self.drift_applied))
        for name in ("shifts", "sigma", "drift", "drift_sigma"):
            arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != shifts.shape:
                raise ValueError(f"{name} must have shape {shifts.shape} (one value per image row), got {arr.shape}")
            object.__setattr__(self, name, arr)
        if self.pixel_size is not None:
            object.__setattr__(self, "pixel_size", float(self.pixel_size))
        object.__setattr__(self, "applied", bool(self.applied))

    @property
    def rms_px(self) -> float:
        """Root-mean-square line jitter in px."""
        return float(np.sqrt(np.mean(self.shifts**2))) if self.shifts.size else 0.0

    @property
    def rms_pm(self) -> float | None:
        """Root-mean-square line jitter in pm (None without a pixel size)."""
        return None if self.pixel_size is None else self.rms_px * self.pixel_size

    @property
    def residual_px(self) -> float:
        """Median uncertainty in px of the per-line shifts: the jitter a corrected line keeps (rows far from any
        column carry no information and keep the prior, so the median, not the mean, is typical)."""
        return float(np.median(self.sigma)) if self.sigma.size else 0.0

    @property
    def drift_px(self) -> float:
        """Peak-to-peak slow drift (non-linear part) in px."""
        return float(np.ptp(self.drift)) if self.drift.size else 0.0

    @property
    def correction(self) -> np.ndarray:
        """(H,) px: the shifts the image was resampled by (:func:`correct_scan`): the jitter when ``applied``
        plus the drift when ``drift_applied``."""
        return self.shifts * self.applied + self.drift * self.drift_applied

    def drift_significant(self, *, n_sigma: float = 3.0, min_px: float = 0.1) -> bool:
        """True when the drift departs from a straight line by more than ``n_sigma`` times its uncertainty and
        by at least ``min_px`` px somewhere."""
        peak = np.abs(self.drift)
        return bool(peak.size and peak.max() >= min_px and np.any(peak > n_sigma * self.drift_sigma))

    @property
    def line_variance(self) -> np.ndarray:
        """(H,) variance in px^2 of the x shift left in each image row, shared by every column on that row: the
        estimate's remaining uncertainty ``sigma**2`` when corrected, the shift itself ``shifts**2`` when not."""
        return self.sigma**2 if self.applied else self.shifts**2

    def scan_sigma(self, positions, width) -> np.ndarray:
        """Position uncertainty (N, 2) px per axis (y, x) that the line jitter adds to each column.

        After correction a column keeps the remaining uncertainty of the lines it covers (``sigma``), without
        correction the jitter itself (``shifts``); averaged over the rows of a Gaussian of standard deviation
        ``width`` (px) with weights ``exp(-(r - y)^2 / width^2)`` (:func:`line_covariance`).  The y part is 0
        (line jitter moves along x).  Columns on the same rows share this part: see :func:`line_covariance`.

        Parameters
        ----------
        positions : (N, 2) array
            Column positions (y, x) px.
        width : (N,) array or float
            Gaussian sigma of each column, px.
        """
        pos = np.asarray(positions, dtype=float).reshape(-1, 2)
        out = np.zeros((len(pos), 2))
        out[:, 1] = np.sqrt(line_covariance(pos, width, self.line_variance))
        return out

    def summary(self) -> str:
        """One line: jitter rms (px and pm), its remaining uncertainty and whether it was corrected."""
        pm = "" if self.rms_pm is None else f" = {self.rms_pm:.1f} pm"
        done = "corrected" if self.applied else "not corrected"
        drift = "corrected" if self.drift_applied else "not corrected"
        return (f"line jitter {self.rms_px:.3f} px rms{pm} ({done}; +- {self.residual_px:.3f} px per line left), "
                f"slow drift {self.drift_px:.2f} px ({drift})")

    def to_state(self) -> dict:
        """Nested dict of arrays and plain values; :meth:`from_state` restores it exactly."""
        return {"shifts": self.shifts.copy(), "sigma": self.sigma.copy(), "drift": self.drift.copy(),
                "pixel_size": self.pixel_size, "applied": self.applied, "provenance": json.dumps(self.provenance),
                "drift_sigma": self.drift_sigma.copy(), "drift_applied": self.drift_applied}

    @classmethod
    def from_state(cls, state: dict) -> "ScanDistortion":
        prov = state.get("provenance", "{}")
        return cls(shifts=state["shifts"], sigma=state["sigma"], drift=state["drift"],
                   pixel_size=state.get("pixel_size"), applied=bool(state.get("applied", False)),
                   provenance=json.loads(prov) if isinstance(prov, str) else dict(prov),
                   drift_sigma=state.get("drift_sigma"), drift_applied=bool(state.get("drift_applied", False)))


def _line_weights(y, width, rows, h):
    """Weights (M, L) of the image rows ``rows`` (M, L) in the x position of columns at rows ``y`` (M,) of
    Gaussian sigma ``width`` (M,) px (``sum_x (dG/dx)^2`` per row), normalised over the rows inside the image."""
    w = np.exp(-((rows - y[:, None]) ** 2) / width[:, None] ** 2) * ((rows >= 0) & (rows < h))
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)


def line_covariance(positions, width, line_variance, first=None, second=None) -> np.ndarray:
    """Covariance in px^2 of the x errors of pairs of columns from the line shifts they share.

    A column's fitted x moves by the weighted mean of the shifts of the rows it covers (weights
    ``exp(-(r - y)^2 / width^2)``, the row's share of ``sum_x (dG/dx)^2``), so two columns on the same rows share
    that error (it cancels in x differences along a row, not across rows): ``cov(c, d) = sum_r w_cr w_dr v_r``
    with ``v`` the variance of each row's shift left after the jitter stage (:attr:`ScanDistortion.line_variance`),
    independent between rows.

    Parameters
    ----------
    positions : (N, 2) array
        Column positions (y, x) px.
    width : (N,) array or float
        Gaussian sigma of each column, px (non-finite or non-positive: 2 px).
    line_variance : (H,) array
        Variance px^2 of each image row's remaining shift.
    first, second : (M,) int arrays, optional
        The pairs of columns; ``second`` defaults to ``first`` (variances) and ``first`` to all columns.

    Returns
    -------
    (M,) float array
    """
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    width = np.broadcast_to(np.asarray(width, dtype=float), (len(pos),))
    width = np.where(np.isfinite(width) & (width > 0), width, 2.0)
    v = np.asarray(line_variance, dtype=float).reshape(-1)
    h = len(v)
    first = np.arange(len(pos)) if first is None else np.asarray(first, dtype=np.int64).reshape(-1)
    second = first if second is None else np.asarray(second, dtype=np.int64).reshape(-1)
    if len(first) == 0:
        return np.zeros(0)
    reach = int(np.ceil(3.0 * width.max())) + 1
    steps = np.arange(-reach, reach + 1)
    out = np.empty(len(first))
    chunk = max(1, (1 << 20) // len(steps))
    for start in range(0, len(first), chunk):
        c, d = first[start : start + chunk], second[start : start + chunk]
        rows_c = np.rint(pos[c, 0]).astype(np.int64)[:, None] + steps
        rows_d = np.rint(pos[d, 0]).astype(np.int64)[:, None] + steps
        w_c = _line_weights(pos[c, 0], width[c], rows_c, h)
        # d's weights on c's rows, with d's own normalisation
        norm_d = np.exp(-((rows_d - pos[d, :1]) ** 2) / width[d, None] ** 2) * ((rows_d >= 0) & (rows_d < h))
        w_d = np.exp(-((rows_c - pos[d, :1]) ** 2) / width[d, None] ** 2) * ((rows_c >= 0) & (rows_c < h))
        w_d /= np.maximum(norm_d.sum(axis=1, keepdims=True), 1e-300)
        out[start : start + chunk] = np.sum(w_c * w_d * v[np.clip(rows_c, 0, h - 1)], axis=1)
    return out


def _raw_line_shifts(image, model):
    """Per-row least-squares shift ``e`` (H,) px of ``image`` against ``model`` and its noise variance (H,) px^2.

    Each row: ``image - model = c - e * d model / dx`` (a row constant ``c`` absorbs background offsets).
    """
    slope = np.gradient(model, axis=1)
    resid = image - model
    slope -= slope.mean(axis=1, keepdims=True)
    resid -= resid.mean(axis=1, keepdims=True)
    power = np.einsum("ij,ij->i", slope, slope)
    power = np.where(power > 0, power, np.inf)
    e = -np.einsum("ij,ij->i", resid, slope) / power
    resid += e[:, None] * slope
    noise = np.einsum("ij,ij->i", resid, resid) / max(image.shape[1] - 2, 1)
    return e, noise / power, power


def _absorption(shape, positions, width, amp):
    """Sparse (H, H) operator K: the part of each row's shift that the column fits have already absorbed.

    Column ``c`` weighs row ``r`` by ``w_cr = amp_c^2 / width_c * exp(-(r - y_c)^2 / width_c^2)`` (its
    ``sum_x (dG/dx)^2`` on that row); its fitted x moved by the ``w``-weighted mean shift of its rows, and a row's
    raw shift is measured against the ``w``-weighted mean of the columns that cover it.
    """
    h = shape[0]
    width = np.minimum(width, 2.0 * np.median(width))  # a blown-up fit must not widen the band
    reach = int(np.ceil(3 * width.max()))
    steps = np.arange(-reach, reach + 1)
    rows = np.rint(positions[:, :1]).astype(np.int64) + steps
    weight = (amp**2 / width)[:, None] * np.exp(-((rows - positions[:, :1]) ** 2) / width[:, None] ** 2)
    ok = (rows >= 0) & (rows < h)
    col = np.broadcast_to(np.arange(len(positions))[:, None], rows.shape)
    w = sparse.csr_matrix((weight[ok], (col[ok], rows[ok])), shape=(len(positions), h))
    col_sum = np.asarray(w.sum(axis=1)).ravel()
    row_sum = np.asarray(w.sum(axis=0)).ravel()
    b = sparse.diags(1.0 / np.where(col_sum > 0, col_sum, 1.0)) @ w  # column <- its rows
    a = sparse.diags(1.0 / np.where(row_sum > 0, row_sum, 1.0)) @ w.T.tocsr()  # row <- the columns covering it
    return (a @ b).tocsc(), row_sum > 0, b.tocsr()


def _posterior_diag(precision) -> np.ndarray:
    """Diagonal of the inverse of a banded sparse SPD precision matrix, from overlapping blocks solved in banded
    form (LAPACK ``pbsv``: linear in the rows, no dense inverse)."""
    h = precision.shape[0]
    coo = precision.tocoo()
    upper = coo.row <= coo.col
    band = int(np.max(coo.col[upper] - coo.row[upper])) if upper.any() else 0
    full = np.zeros((band + 1, h))  # upper banded storage: full[band + i - j, j] = P[i, j]
    np.add.at(full, (band + coo.row[upper] - coo.col[upper], coo.col[upper]), coo.data[upper])
    out = np.empty(h)
    for start in range(0, h, _BLOCK):
        lo, hi = max(0, start - _MARGIN), min(h, start + _BLOCK + _MARGIN)
        stop = min(h, start + _BLOCK)
        ab = full[:, lo:hi].copy()
        for k in range(band):  # entries reaching above the block's first row
            ab[k, : band - k] = 0.0
        unit = np.zeros((hi - lo, stop - start))
        unit[np.arange(start - lo, stop - lo), np.arange(stop - start)] = 1.0
        solved = linalg.solveh_banded(ab, unit, check_finite=False)
        out[start:stop] = solved[np.arange(start - lo, stop - lo), np.arange(stop - start)]
    return out


def _lattice_residuals(positions, is_a, lattice, shape):
    """x deviation (N,) px of each column from the straight lattice, and a design (N, p) of what it may hold
    besides line jitter: one constant per sublattice (the B site), smooth polynomials in y and x (bending)."""
    grid = lattice.to_grid(positions)
    offset = np.zeros(2)
    if (~is_a).any():
        phase = np.exp(2j * np.pi * grid[~is_a]).mean(axis=0)
        offset = (np.angle(phase) / (2 * np.pi)) % 1.0
    site = np.where(is_a[:, None], 0.0, offset[None, :])
    ideal = lattice.to_image(np.rint(grid - site) + site)
    d = positions[:, 1] - ideal[:, 1]
    y = positions[:, 0] / max(shape[0] - 1, 1) * 2 - 1
    x = positions[:, 1] / max(shape[1] - 1, 1) * 2 - 1
    design = np.column_stack([is_a, ~is_a, y, y**2, y**3, x, x**2, x * y]).astype(float)
    return d, design


def _robust_var(values) -> float:
    values = values[np.isfinite(values)]
    if values.size < 3:
        return np.inf
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2) or 1e-8


def _jitter_variance(e, noise, gain, rounds: int = 4) -> float:
    """Variance tau^2 (px^2) of the line shifts from ``E[e^2] = tau^2 gain + noise``, each row weighted by the
    inverse variance of its ``e^2`` (rows between column rows, with little signal, count little)."""
    tau2 = 1e-2
    for _ in range(rounds):
        w = 1.0 / (noise + tau2 * gain) ** 2
        tau2 = max(float(np.sum(w * (e**2 - noise)) / max(np.sum(w * gain), 1e-30)), 1e-6)
    return tau2


def _solve_shifts(e, noise, operator, covered, columns=None):
    """Ridge solution of the line shifts ``s`` (H,) with ``s ~ N(0, tau^2)``.

    Data: the raw row shifts ``e = (I - K) s + noise`` and, when ``columns = (B, d, design, is_a)`` is given,
    the columns' x deviations from the straight lattice ``d = B s + design @ beta + eps`` (``B``: each column's
    weights over its rows; ``eps`` the columns' own displacements, variance per sublattice from the data).
    ``tau^2`` comes from the power of ``e`` (method of moments).

    Returns the shifts (H,), their posterior standard deviations (H,) and tau (px).
    """
    h = len(e)
    m = (sparse.identity(h, format="csr") - operator).tocsr()
    inv_noise = np.where(covered & np.isfinite(noise) & (noise > 0), 1.0 / np.maximum(noise, 1e-12), 0.0)
    e = np.where(np.isfinite(e), e, 0.0)
    good = inv_noise > 0
    gain = np.asarray(m.multiply(m).sum(axis=1)).ravel()  # diag((I - K)(I - K)^T)
    tau2 = _jitter_variance(e[good], noise[good], gain[good])
    data = (m.T @ sparse.diags(inv_noise) @ m).tocsc()
    rhs = m.T @ (inv_noise * e)
    if columns is None:
        precision = (data + sparse.identity(h) / tau2).tocsc()
        s = spsolve(precision, rhs)
        return s, np.sqrt(np.maximum(_posterior_diag(precision), 0.0)), float(np.sqrt(tau2))
    weights, d, design, is_a = columns
    p = design.shape[1]
    joint = sparse.hstack([weights, sparse.csr_matrix(design)]).tocsr()
    var_eps = np.array([_robust_var(d[is_a]), _robust_var(d[~is_a])])
    prior = sparse.diags(np.concatenate([np.full(h, 1.0 / tau2), np.full(p, 1e-8)]))
    base = sparse.block_diag([data, sparse.csr_matrix((p, p))]).tocsc() + prior
    for _ in range(3):
        w_eps = np.where(is_a, 1.0 / var_eps[0], 1.0 / var_eps[1])
        precision = (base + joint.T @ sparse.diags(w_eps) @ joint).tocsc()
        z = spsolve(precision, np.concatenate([rhs, np.zeros(p)]) + joint.T @ (w_eps * d))
        left = d - joint @ z
        var_eps = np.array([_robust_var(left[is_a]), _robust_var(left[~is_a])])
        # the rows' noise from their own residual misses the misfit of the column model: rescale it by the
        # reduced chi-square of the row equations (never below 1)
        misfit = e - m @ z[:h]
        chi2 = float(np.sum(inv_noise[good] * misfit[good] ** 2) / max(good.sum(), 1))
        if chi2 > 1.0:
            inv_noise = inv_noise / chi2
            data, rhs = data / chi2, rhs / chi2
            base = sparse.block_diag([data, sparse.csr_matrix((p, p))]).tocsc() + prior
    return z[:h], np.sqrt(np.maximum(_marginal_diag(precision, h), 0.0)), float(np.sqrt(tau2))


def _marginal_diag(precision, h) -> np.ndarray:
    """Diagonal (h,) of the marginal covariance of the first ``h`` unknowns (the shifts), the last few (the
    lattice terms) integrated out: ``inv(P_ss)`` plus the Woodbury term of the dense coupling."""
    csc = precision.tocsc()
    p_ss, p_sb, p_bb = csc[:h, :h], csc[:h, h:].toarray(), csc[h:, h:].toarray()
    base = _posterior_diag(p_ss)
    if p_sb.shape[1] == 0:
        return base
    u = spsolve(p_ss.tocsc(), p_sb).reshape(h, -1)
    schur = p_bb - p_sb.T @ u
    return base + np.einsum("ij,ij->i", u @ np.linalg.pinv(schur), u)


def _slow_drift(positions, is_a, lattice, h, degree: int = 3):
    """Smooth non-linear x displacement (H,) px of the A columns from ``lattice`` along the rows, and its 1-sigma
    (H,) px from the fit's covariance (robust residual scatter).  The constant and the linear term (a shear)
    belong to the lattice in one image and are left out."""
    if lattice is None or is_a is None or is_a.sum() < 4 * (degree + 1):
        return np.zeros(h), np.zeros(h)
    a = positions[is_a]
    ideal = lattice.to_image(np.rint(lattice.to_grid(a)))
    dx = a[:, 1] - ideal[:, 1]
    y = a[:, 0] / max(h - 1, 1) * 2 - 1
    design = np.polynomial.polynomial.polyvander(y, degree)
    coef = np.linalg.lstsq(design, dx, rcond=None)[0]
    cov = _robust_var(dx - design @ coef) * np.linalg.pinv(design.T @ design)
    rows = np.polynomial.polynomial.polyvander(np.linspace(-1, 1, h), degree)[:, 2:]
    drift = rows @ coef[2:]
    sigma = np.sqrt(np.maximum(np.einsum("hk,kl,hl->h", rows, cov[2:, 2:], rows), 0.0))
    return drift, sigma


def estimate_scan_distortion(
    image,
    positions,
    width,
    volume,
    *,
    pixel_size: float | None = None,
    is_a=None,
    lattice=None,
) -> ScanDistortion:
    """Estimate the fast-scan line jitter of one image from its fitted column model (see module doc).

    Parameters
    ----------
    image : (H, W) array
        The image the columns were fitted on.
    positions : (N, 2) array
        Fitted column positions (y, x) px.
    width : (N,) array
        Fitted Gaussian sigma of each column, px.
    volume : (N,) array
        Fitted Gaussian volume of each column (``2 pi amp width^2``), image units.
    pixel_size : float, optional
        pm per px, for :attr:`ScanDistortion.rms_pm`.
    is_a : (N,) bool array, optional
        Which columns are A (with ``lattice``, for the slow drift).
    lattice : Lattice, optional
        The fitted A lattice (for the slow drift).

    Returns
    -------
    ScanDistortion
        ``applied`` is False (see :func:`correct_scan`).
    """
    img = np.asarray(image, dtype=float)
    pos = np.asarray(positions, dtype=float).reshape(-1, 2)
    width = np.asarray(width, dtype=float).reshape(-1)
    volume = np.asarray(volume, dtype=float).reshape(-1)
    ok = np.isfinite(width) & np.isfinite(volume) & (width > 0) & (volume > 0) & np.all(np.isfinite(pos), axis=1)
    if ok.sum() < 4:
        raise ValueError("need at least 4 fitted columns (finite width and volume) to estimate the scan jitter")
    pos, width, volume = pos[ok], width[ok], volume[ok]
    amp = volume / (2.0 * np.pi * width**2)
    model = _gaussfit.render_gaussians(img.shape, amp, pos, width, reach=4.0 * np.percentile(width, 99))
    e, noise, _ = _raw_line_shifts(img, model)
    del model
    operator, covered, weights = _absorption(img.shape, pos, width, amp)
    columns = None
    if lattice is not None and is_a is not None:
        sub_a = np.asarray(is_a, dtype=bool).reshape(-1)[ok]
        d, design = _lattice_residuals(pos, sub_a, lattice, img.shape)
        columns = (weights, d, design, sub_a)
    with threadpool_limits(1):  # small banded solves: BLAS threads only spin (10-100x slower on a busy machine)
        shifts, sigma, tau = _solve_shifts(e, noise, operator, covered, columns)
    drift, drift_sigma = _slow_drift(np.asarray(positions, float).reshape(-1, 2)[ok], None if is_a is None else
                                     np.asarray(is_a, bool)[ok], lattice, img.shape[0])
    prov = make_provenance("estimate_scan_distortion", {"tau_px": tau, "lattice_term": columns is not None,
                                                        "n_columns": int(ok.sum())})
    return ScanDistortion(shifts=shifts, sigma=sigma, drift=drift, pixel_size=pixel_size, applied=False,
                          provenance=prov, drift_sigma=drift_sigma)


def correct_scan(image, shifts, *, rows_per_chunk: int = 256) -> np.ndarray:
    """Resample each row of ``image`` to undo its line shift (cubic spline along x, edges held).

    Parameters
    ----------
    image : (H, W) array
    shifts : (H,) array or ScanDistortion
        Apparent shift in px of each row's content along x (as :attr:`ScanDistortion.shifts`).
    rows_per_chunk : int
        Rows resampled at a time (bounds the memory).

    Returns
    -------
    (H, W) float array
        ``out[r, x] = image[r, x + shifts[r]]``.
    """
    img = np.asarray(image, dtype=float)
    s = np.asarray(getattr(shifts, "shifts", shifts), dtype=float).reshape(-1)
    if s.shape != (img.shape[0],):
        raise ValueError(f"shifts must hold one value per image row ({img.shape[0]}), got shape {s.shape}")
    coeffs = ndimage.spline_filter(img, order=3, mode="nearest")  # along y too: rows sit on integers, exact
    out = np.empty_like(img)
    x = np.arange(img.shape[1], dtype=float)
    for start in range(0, img.shape[0], rows_per_chunk):
        stop = min(img.shape[0], start + rows_per_chunk)
        rr = np.broadcast_to(np.arange(start, stop, dtype=float)[:, None], (stop - start, img.shape[1]))
        xx = x[None, :] + s[start:stop, None]
        out[start:stop] = ndimage.map_coordinates(coeffs, [rr, xx], order=3, mode="nearest", prefilter=False)
    return out


class Registered(NamedTuple):
    """Result of :func:`register_frames` (unpacks as ``image, shifts``)."""

    image: np.ndarray  #: (H, W) mean of the registered frames
    shifts: np.ndarray  #: (F, H, 2) shift (dy, dx) px of each row of each frame: rigid plus per-line x


def _rigid_shift(reference, frame, upsample: int):
    from skimage.registration import phase_cross_correlation

    shift, _, _ = phase_cross_correlation(reference, frame, upsample_factor=upsample, normalization=None)
    return -np.asarray(shift, dtype=float)  # the content of ``frame`` sits this far from the reference


def register_frames(stack, *, upsample: int = 20, line_iterations: int = 2, max_line_shift: float = 3.0,
                    progress=None) -> Registered:
    """Register a frame series (rigid, then per line) and average it.

    1. Each frame is aligned on the first by phase correlation (sub-pixel, ``upsample``).
    2. Each row of each aligned frame is shifted along x onto the mean of the aligned frames (linearised least
       squares against the mean's x gradient, ``line_iterations`` rounds, the mean rebuilt in between); line
       shifts are clipped to ``max_line_shift`` px, and their mean per row over the frames is removed (the
       mean image defines the reference).
    3. The registered frames are averaged.

    Parameters
    ----------
    stack : (F, H, W) array
        The frames, in acquisition order.
    upsample : int
        Phase-correlation upsampling factor (precision 1/upsample px).
    line_iterations : int
        Rounds of per-line registration (0 = rigid only).
    max_line_shift : float
        Largest per-line shift in px (larger estimates are clipped).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    Registered
        ``image`` (H, W), ``shifts`` (F, H, 2) px: the total (dy, dx) by which each row's content of each frame
        sat away from the registered mean.
    """
    arr = np.asarray(stack, dtype=float)
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise ValueError(f"a frame series must be a (frames, rows, columns) stack of at least 2 frames, "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("the frame stack has NaN or infinite pixels; replace or crop them first")
    n, h, w = arr.shape
    rigid = np.zeros((n, 2))
    aligned = np.empty_like(arr)
    for k in range(n):
        rigid[k] = _rigid_shift(arr[0], arr[k], upsample) if k else 0.0
        aligned[k] = ndimage.shift(arr[k], -rigid[k], order=3, mode="nearest")
        if progress is not None:
            progress(k + 1, n + line_iterations)
    lines = np.zeros((n, h))
    corrected = aligned
    for it in range(line_iterations):
        reference = corrected.mean(axis=0)
        for k in range(n):
            e, _, _ = _raw_line_shifts(corrected[k], reference)
            lines[k] = np.clip(lines[k] + e, -max_line_shift, max_line_shift)
        lines -= lines.mean(axis=0, keepdims=True)
        corrected = np.stack([correct_scan(aligned[k], lines[k]) for k in range(n)])
        if progress is not None:
            progress(n + it + 1, n + line_iterations)
    shifts = np.zeros((n, h, 2))
    shifts[:, :, 0] = rigid[:, None, 0]
    shifts[:, :, 1] = rigid[:, None, 1] + lines
    return Registered(corrected.mean(axis=0), shifts)


class OrthogonalPair(NamedTuple):
    """Result of :func:`combine_orthogonal`."""

    image: np.ndarray  #: (H, W) mean of the two corrected scans, in the frame of the first
    row_shifts: np.ndarray  #: (H,) px along x of each row of the first scan (its fast-scan lines)
    column_shifts: np.ndarray  #: (W,) px along y of each column of the second scan, rotated back (its lines)
    offset: np.ndarray  #: (2,) rigid (dy, dx) px of the rotated-back second scan from the first


def combine_orthogonal(image_0, image_90, *, k: int = 1, iterations: int = 4, upsample: int = 20,
                       max_line_shift: float = 3.0) -> OrthogonalPair:
    """Combine two scans of one area taken with fast-scan directions 90 degrees apart.

    The idea of Ophus, Ciston & Nelson (Ultramicroscopy 162, 2016): the line jitter of one scan runs along its
    fast-scan lines, so the other scan, whose lines are perpendicular, is a reference free of it.  Here:

    1. ``image_90`` is rotated back (``np.rot90(image_90, -k)``) and aligned rigidly on ``image_0``
       (phase correlation);
    2. each row of ``image_0`` is shifted along x onto the corrected second scan, and each column of the second
       scan along y onto the corrected first one (linearised least squares), ``iterations`` rounds;
    3. the two corrected scans are averaged.

    Only line-to-line jitter is corrected; a shift common to all lines (and a uniform shear, which the two scans
    cannot assign between them) stays.

    Parameters
    ----------
    image_0 : (H, W) array
        First scan (fast scan along image x).
    image_90 : (W, H) or (H, W) array
        Second scan, acquired with the scan rotated by ``k`` x 90 degrees (counter-clockwise on screen).
    k : int
        Number of 90-degree rotations between the scans (1 or 3).
    iterations : int
        Rounds of per-line alignment.
    upsample : int
        Phase-correlation upsampling factor.
    max_line_shift : float
        Largest per-line shift in px.

    Returns
    -------
    OrthogonalPair
    """
    first = np.asarray(image_0, dtype=float)
    second = np.rot90(np.asarray(image_90, dtype=float), -int(k))
    if first.ndim != 2 or second.shape != first.shape:
        raise ValueError(f"the second scan rotated back by {int(k)} x 90 deg has shape {second.shape}, the first "
                         f"{first.shape}: give two 2D scans of the same area, the second rotated by k x 90 deg")
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise ValueError("the scans have NaN or infinite pixels; replace or crop them first")
    offset = _rigid_shift(first, second, upsample)
    second = ndimage.shift(second, -offset, order=3, mode="nearest")
    rows = np.zeros(first.shape[0])
    cols = np.zeros(first.shape[1])
    fixed_first, fixed_second = first, second
    for _ in range(int(iterations)):
        e_rows, _, _ = _raw_line_shifts(first, fixed_second)
        rows = np.clip(e_rows - np.mean(e_rows), -max_line_shift, max_line_shift)
        fixed_first = correct_scan(first, rows)
        e_cols, _, _ = _raw_line_shifts(second.T, fixed_first.T)
        cols = np.clip(e_cols - np.mean(e_cols), -max_line_shift, max_line_shift)
        fixed_second = correct_scan(second.T, cols).T
    return OrthogonalPair(0.5 * (fixed_first + fixed_second), rows, cols, offset)
