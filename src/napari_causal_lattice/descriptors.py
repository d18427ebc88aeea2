"""The 8 unit-cell descriptors of the paper, computed from column positions and intensities.

One cell = one B column and its 4 A corners, in the corner order
``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)`` (grid row ``i``, column ``j``; lattice vector
``v1`` runs along ``j``, ``v2`` along ``i``).  Where B sits in the cell (centre for [001], half-way along
the long edge for [110]) is the crystal :class:`~napari_causal_lattice.motif.Motif`.  The synthetic ground
truth and the measured cells both use :func:`compute_descriptors`, so truth and measurement share one
definition.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .error_correlation import recorded_x_correlation
from .lattice import DESCRIPTORS
from .motif import Motif, get_motif
from .scan import line_covariance

#: Descriptors that carry a propagated position uncertainty ``sigma_<name>`` on the cells.
SIGMA_DESCRIPTORS: tuple[str, ...] = ("a", "b", "alpha", "Px", "Py")


def pixel_scale(pixel_size) -> np.ndarray:
    """(2,) array ``(sy, sx)`` in pm/px from a scalar, a (sy, sx) pair or None (-> ones, lengths in px)."""
    if pixel_size is None:
        return np.ones(2)
    scale = np.broadcast_to(np.asarray(pixel_size, dtype=float), (2,)).copy()
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ValueError(f"pixel_size must be positive (pm per px), got {pixel_size!r}")
    return scale


def compute_descriptors(
    corners_yx,
    b_yx,
    corner_intensity,
    b_intensity,
    *,
    pixel_size=None,
    frame: str = "lattice",
    v1=None,
    motif: Motif | str | None = None,
) -> pd.DataFrame:
    """Descriptors ``(I14, I5, a, b, alpha, Vol, Px, Py)`` of ``n`` unit cells.

    Parameters
    ----------
    corners_yx : (n, 4, 2) array
        A-corner positions (y, x) in px, ordered ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)``.
    b_yx : (n, 2) array
        B-column positions (y, x) in px.
    corner_intensity : (n, 4) array
        Intensities of the 4 A corners.
    b_intensity : (n,) array
        Intensity of the B column.
    pixel_size : float, (sy, sx) pair or None
        Pixel size in pm/px (non-square pixels as a pair).  None keeps lengths in px.
    frame : {"lattice", "image"}
        Frame of the polarization: ``"lattice"`` puts Px along ``v1`` and Py perpendicular to it
        (turned like the image y axis is from x); ``"image"`` gives Px along image x, Py along image y (down).
    v1 : (2,) array, optional
        Lattice vector 1 (y, x) in px; required for ``frame="lattice"`` (else the mean cell edge is used).
    motif : Motif or {"[001]", "[110]"}, optional
        Where B sits in the cell (default ``"[001]"``, the centre).  ``Px, Py`` are the B column's offset from
        the nominal B site :meth:`Motif.nominal_b` (centroid of the corners for [001], mid-point of the edge
        ``A(i, j)``-``A(i, j+1)`` for [110] with B along ``v1``).

    Returns
    -------
    DataFrame
        One row per cell, columns :data:`~napari_causal_lattice.lattice.DESCRIPTORS`: I14 and I5 in intensity
        units, a, b, Px, Py in pm (px without pixel size), alpha in degrees, Vol in pm^2 (px^2).

    Examples
    --------
    >>> import numpy as np
    >>> corners = np.array([[[0, 0], [0, 10], [10, 0], [10, 10]]], float)
    >>> d = compute_descriptors(corners, [[5.5, 5.0]], [[1, 1, 1, 1]], [0.5], pixel_size=20.0)
    >>> d[["a", "b", "alpha", "Vol", "Px", "Py"]].round(6).values.tolist()
    [[200.0, 200.0, 90.0, 40000.0, 0.0, 10.0]]
    """
    corners = np.asarray(corners_yx, dtype=float)
    b_pos = np.asarray(b_yx, dtype=float)
    if corners.ndim != 3 or corners.shape[1:] != (4, 2):
        raise ValueError(f"corners_yx must have shape (n, 4, 2), got {corners.shape}")
    n = corners.shape[0]
    if b_pos.shape != (n, 2):
        raise ValueError(f"b_yx must have shape ({n}, 2) to match the corners, got {b_pos.shape}")
    i_a = np.asarray(corner_intensity, dtype=float)
    i_b = np.asarray(b_intensity, dtype=float)
    if i_a.shape != (n, 4) or i_b.shape != (n,):
        raise ValueError(
            f"corner_intensity must be ({n}, 4) and b_intensity ({n},), got {i_a.shape} and {i_b.shape}"
        )
    if frame not in ("lattice", "image"):
        raise ValueError(f"frame must be 'lattice' or 'image', got {frame!r}")
    scale = pixel_scale(pixel_size)
    p = corners * scale
    q = b_pos * scale

    e1_top, e1_bottom = p[:, 1] - p[:, 0], p[:, 3] - p[:, 2]
    e2_left, e2_right = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    a = 0.5 * (np.hypot(*e1_top.T) + np.hypot(*e1_bottom.T))
    b = 0.5 * (np.hypot(*e2_left.T) + np.hypot(*e2_right.T))
    e1 = 0.5 * (e1_top + e1_bottom)
    e2 = 0.5 * (e2_left + e2_right)
    cos_alpha = np.einsum("nk,nk->n", e1, e2) / (np.hypot(*e1.T) * np.hypot(*e2.T))
    alpha = np.degrees(np.arccos(np.clip(cos_alpha, -1.0, 1.0)))
    vol = a * b * np.abs(np.sin(np.radians(alpha)))

    motif = get_motif("[001]" if motif is None else motif)
    offset = q - motif.nominal_b(p)
    if frame == "image":
        px, py = offset[:, 1], offset[:, 0]
    else:
        direction = np.asarray(v1, dtype=float) * scale if v1 is not None else e1.mean(axis=0)
        x_hat = direction / np.hypot(*direction)
        y_hat = np.array([x_hat[1], -x_hat[0]])
        px, py = offset @ x_hat, offset @ y_hat

    values = (i_a.sum(axis=1), i_b, a, b, alpha, vol, px, py)
    return pd.DataFrame(dict(zip(DESCRIPTORS, values)))


def descriptor_jacobian(
    corners_yx,
    b_yx,
    *,
    pixel_size=None,
    frame: str = "lattice",
    v1=None,
    motif: Motif | str | None = None,
    step: float = 1e-3,
) -> np.ndarray:
    """Sensitivities of ``a, b, alpha, Px, Py`` to the 10 column coordinates of each cell.

    Central finite differences of :func:`compute_descriptors` (works for every motif and frame).

    Returns
    -------
    (n, 5, 5, 2) float array
        ``[cell, descriptor (SIGMA_DESCRIPTORS order), column (4 corners then B), axis (y, x)]``, descriptor
        units per px.
    """
    corners = np.asarray(corners_yx, dtype=float)
    b_pos = np.asarray(b_yx, dtype=float)
    n = corners.shape[0]
    ones = np.ones((n, 4))

    def measure(c, b):
        d = compute_descriptors(c, b, ones, ones[:, 0], pixel_size=pixel_size, frame=frame, v1=v1, motif=motif)
        return d[list(SIGMA_DESCRIPTORS)].to_numpy()

    out = np.empty((n, len(SIGMA_DESCRIPTORS), 5, 2))
    for column in range(5):
        for axis in range(2):
            moved = []
            for sign in (1.0, -1.0):
                c, b = corners.copy(), b_pos.copy()
                if column < 4:
                    c[:, column, axis] += sign * step
                else:
                    b[:, axis] += sign * step
                moved.append(measure(c, b))
            out[:, :, column, axis] = (moved[0] - moved[1]) / (2.0 * step)
    return out


def _axis_variances(sigma, scan_sigma, shape) -> np.ndarray:
    """(*shape, 2) per-axis (y, x) variances from ``sigma`` (isotropic ``shape`` or per axis ``(*shape, 2)``)
    plus ``scan_sigma`` (y, x) px."""
    sigma = np.asarray(sigma, dtype=float)
    if sigma.size == int(np.prod(shape)):
        sigma = np.repeat(sigma.reshape(shape)[..., None], 2, axis=-1)
    var = sigma.reshape(*shape, 2) ** 2
    if scan_sigma is not None:
        var = var + np.broadcast_to(np.asarray(scan_sigma, dtype=float), (2,)) ** 2
    return var


def descriptor_sigmas(
    corners_yx,
    b_yx,
    corner_sigma,
    b_sigma,
    *,
    pixel_size=None,
    frame: str = "lattice",
    v1=None,
    motif: Motif | str | None = None,
    step: float = 1e-3,
    scan_sigma=None,
    line_cov=None,
    neighbour_cov=None,
    max_correlation: float = 0.9,
) -> pd.DataFrame:
    """Propagated 1-sigma uncertainties of ``a, b, alpha, Px, Py`` from the column position uncertainties.

    Linear propagation (:func:`descriptor_jacobian`): the squared sensitivities to each of the 10 column
    coordinates of a cell summed with the columns' own position variances per axis, independent between columns,
    plus the x covariance ``line_cov`` the columns share through the scan lines (a shift shared by the columns
    of one row cancels in ``a``, not in ``Px`` of a [001] cell, whose B sits half a cell lower).  The column
    sigmas of a neighbour-aware fit (:func:`~napari_causal_lattice.columns.find_columns`) hold counting noise
    and model misfit (the residual chi^2 of each column's fit); ``scan_sigma`` adds scan noise per axis.

    Parameters
    ----------
    corners_yx, b_yx : (n, 4, 2), (n, 2) arrays
        As in :func:`compute_descriptors` (px).
    corner_sigma : (n, 4) or (n, 4, 2) array
        1-sigma position uncertainty of each corner, px: isotropic, or along (y, x).
    b_sigma : (n,) or (n, 2) array
        Same for the B columns, px.
    pixel_size, frame, v1, motif
        As in :func:`compute_descriptors`.
    step : float
        Finite-difference step in px.
    scan_sigma : float or (float, float), optional
        Extra rms column displacement from the scan, px along (y, x), added in quadrature to every column
        (leave None when the column sigmas already include it).
    line_cov : (n, 5, 5) array, optional
        Covariance px^2 of the x positions of each cell's columns (4 corners then B) from the line shifts they
        share (:func:`cell_line_covariance`).
    neighbour_cov : (n, 5, 5) array, optional
        Covariance px^2 of the same x positions from the correlated errors of neighbouring columns
        (:meth:`~napari_causal_lattice.error_correlation.ErrorCorrelation.cell_covariance`).
    max_correlation : float
        ``neighbour_cov`` takes a variance down to ``1 - max_correlation`` of the variance without it, no lower
        (pairwise correlations of neighbours need not form a valid covariance matrix together).

    Returns
    -------
    DataFrame
        Columns ``sigma_a, sigma_b, sigma_Px, sigma_Py`` (pm, px without pixel size) and ``sigma_alpha`` (deg),
        one row per cell; NaN where a column's sigma is NaN.
    """
    corners = np.asarray(corners_yx, dtype=float)
    n = corners.shape[0]
    var = np.concatenate([_axis_variances(corner_sigma, scan_sigma, (n, 4)),
                          _axis_variances(b_sigma, scan_sigma, (n, 1))], axis=1)  # (n, 5, 2)
    jac = descriptor_jacobian(corners, b_yx, pixel_size=pixel_size, frame=frame, v1=v1, motif=motif, step=step)
    total = np.einsum("ndca,nca->nd", jac**2, var)
    if line_cov is not None:
        gx = jac[..., 1]  # (n, 5 descriptors, 5 columns)
        total = total + np.einsum("ndc,nce,nde->nd", gx, np.asarray(line_cov, dtype=float), gx)
    if neighbour_cov is not None:
        shared = np.einsum("ndc,nce,nde->nd", jac[..., 1], np.asarray(neighbour_cov, dtype=float), jac[..., 1])
        total = np.maximum(total + shared, (1.0 - max_correlation) * total)
    return pd.DataFrame({f"sigma_{name}": np.sqrt(total[:, k]) for k, name in enumerate(SIGMA_DESCRIPTORS)})


def cell_line_covariance(positions, width, line_variance, members) -> np.ndarray:
    """(n, k, k) covariance px^2 of the x positions of the columns ``members`` (n, k) (indices into
    ``positions`` (N, 2) px, Gaussian ``width`` (N,) px) from the scan-line shifts they share
    (:func:`~napari_causal_lattice.scan.line_covariance`, per-row variances ``line_variance`` (H,) px^2)."""
    members = np.asarray(members, dtype=np.int64)
    n, k = members.shape
    first = np.repeat(members, k, axis=1).reshape(-1)
    second = np.tile(members, (1, k)).reshape(-1)
    return line_covariance(positions, width, line_variance, first, second).reshape(n, k, k)


def _own_variances(columns, scan_sigma) -> np.ndarray:
    """(N, 2) own (independent) position variances px^2 of ``columns`` along (y, x)."""
    axes = getattr(columns, "sigma_axes", None)
    sigma = np.asarray(columns.sigma if axes is None else axes, dtype=float)
    return _axis_variances(sigma, scan_sigma, (len(sigma),))


def _neighbourhoods(table) -> dict:
    """Cell row -> rows of its 4 grid neighbours ``(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)``, for the cells
    that have all 4."""
    ii, jj = table["i"].to_numpy(), table["j"].to_numpy()
    lookup = {(a, b): k for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist()))}
    out = {}
    for k in range(len(table)):
        hood = [lookup.get((ii[k] + di, jj[k] + dj)) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))]
        if all(h is not None for h in hood):
            out[k] = hood
    return out


class _Hood(NamedTuple):
    """The distinct columns of a cell and its 4 neighbours and what the residual's variance needs of them."""

    keys: np.ndarray  #: (K,) column indices
    slots: list  #: per member cell (5), the position of each of its 5 columns in ``keys``
    var: np.ndarray  #: (K, 2) own variances px^2
    shared: np.ndarray | None  #: (K, K) x covariance px^2 shared through the scan lines, or None
    correlated: np.ndarray | None  #: (K, K) x covariance px^2 of correlated neighbour errors, or None


def _hood(members, cols, var, shared_x, pos, width, line_variance) -> _Hood:
    """The :class:`_Hood` of the cells ``members`` (the cell, then its 4 neighbours); ``cols`` (n, 5) their
    columns, ``var`` (N, 2) the own variances, ``shared_x`` the sparse (N, N) correlated-neighbour covariance or
    None, ``pos``, ``width``, ``line_variance`` as in :func:`~napari_causal_lattice.scan.line_covariance`."""
    index = {}
    for cell in members:
        for c in range(5):
            index.setdefault(int(cols[cell, c]), len(index))
    keys = np.fromiter(index, dtype=np.int64)
    slots = [[index[int(cols[cell, c])] for c in range(5)] for cell in members]
    shared = None
    if line_variance is not None:
        first, second = np.repeat(keys, len(keys)), np.tile(keys, len(keys))
        shared = line_covariance(pos, width, line_variance, first, second).reshape(len(keys), -1)
    correlated = None if shared_x is None else shared_x[keys][:, keys].toarray()
    return _Hood(keys, slots, var[keys], shared, correlated)


def _residual_sigma(hood: _Hood, jac_d, members, max_correlation: float) -> float:
    """Predicted sigma of ``d_cell - mean(d_neighbours)`` from the sensitivities ``jac_d`` (n, 5, 2); the
    correlated neighbours' covariance is floored as in :func:`descriptor_sigmas`."""
    g = np.zeros((len(hood.keys), 2))
    for cell, w, slots in zip(members, (1.0, -0.25, -0.25, -0.25, -0.25), hood.slots):
        for c in range(5):
            g[slots[c]] += w * jac_d[cell, c]
    predicted = np.sum(g**2 * hood.var)
    if hood.shared is not None:
        predicted += g[:, 1] @ hood.shared @ g[:, 1]
    if hood.correlated is not None:
        independent = predicted
        predicted = max(predicted + g[:, 1] @ hood.correlated @ g[:, 1], (1.0 - max_correlation) * independent)
    return np.sqrt(predicted)


def neighbour_sigma_ratio(cells, columns, *, names=SIGMA_DESCRIPTORS, scan_sigma=None,
                          max_correlation: float = 0.9) -> dict:
    """How well the stated sigmas predict the cell-to-cell scatter of a crystal without real variation.

    For every good cell with its 4 grid neighbours ``(i +- 1, j), (i, j +- 1)`` good, the residual ``r = d_c -
    mean(d_neighbours)`` of each descriptor is divided by its predicted sigma: ``r`` is linear in the positions
    of the (up to 17 distinct) columns of the 5 cells, and shared corners enter once with their summed
    sensitivity, so the correlation of cells that share A corners is accounted for; so are the x covariance of
    columns on the same scan lines (``columns.line_variance``) and the correlation of neighbouring columns' x
    errors that :func:`~napari_causal_lattice.cells.build_cells` measured
    (:mod:`~napari_causal_lattice.error_correlation`, recorded in the cells' provenance).  The ratio is the robust
    (MAD) standard deviation of ``r / sigma_r``: 1 when the sigmas are honest.  Each neighbourhood's columns and
    covariances are gathered once and serve every descriptor.

    Parameters
    ----------
    cells : Cells
        From :func:`~napari_causal_lattice.cells.build_cells` on ``columns``.
    columns : Columns
        With position sigmas (px per axis: ``sigma_axes`` when present, else ``sigma``) and optionally
        ``line_variance``.
    names : sequence of str
        Descriptors among ``a, b, alpha, Px, Py``.
    scan_sigma : float or (float, float), optional
        Extra per-axis column sigma in px, as in :func:`descriptor_sigmas`.
    max_correlation : float
        As in :func:`descriptor_sigmas`.

    Returns
    -------
    dict
        Descriptor -> ratio (NaN with fewer than 10 residuals).
    """
    table = cells.table
    pos = np.asarray(columns.positions, float)
    corners, b_index = np.asarray(cells.corners), np.asarray(cells.b_index)
    line_variance = getattr(columns, "line_variance", None)
    geometry = {"pixel_size": cells.pixel_size, "frame": cells.frame, "v1": cells.lattice.v1, "motif": cells.motif}
    jac = descriptor_jacobian(pos[corners], pos[b_index], **geometry)  # (n, 5, 5, 2)
    cols = np.concatenate([corners, b_index[:, None]], axis=1)  # (n, 5)
    var = _own_variances(columns, scan_sigma)  # (N, 2)
    correlation = recorded_x_correlation(cells)
    shared_x = None
    if correlation is not None and correlation.correlated:
        shared_x = correlation.matrix(np.sqrt(_own_variances(columns, None)[:, 1]), len(pos))
    hoods = _neighbourhoods(table)
    values = {name: table[name].to_numpy(dtype=float) for name in names}
    cache = {}
    out = {}
    for name in names:
        d = SIGMA_DESCRIPTORS.index(name)
        value = values[name]
        good = np.isfinite(value)
        ratios = []
        for k, hood in hoods.items():
            if not good[k] or not good[hood].all():
                continue
            members = [k] + hood
            if k not in cache:
                cache[k] = _hood(members, cols, var, shared_x, pos, columns.width, line_variance)
            sigma = _residual_sigma(cache[k], jac[:, d], members, max_correlation)
            ratios.append((value[k] - value[hood].mean()) / sigma)
        ratios = np.asarray(ratios)
        ratios = ratios[np.isfinite(ratios)]
        out[name] = (1.4826 * float(np.median(np.abs(ratios - np.median(ratios)))) if len(ratios) >= 10
                     else float("nan"))
    return out
