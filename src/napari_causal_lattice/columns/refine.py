""":func:`refine_columns`: sub-pixel positions of given columns (batched Gaussian fits, optional peeling of
neighbouring columns, neighbour-aware final fit)."""

from __future__ import annotations

import numpy as np

from .gaussians import _CHUNK, _disk_sum, _gaussian_model, _refine
from .inputs import _check_intensity, _check_scan_sigma, _default_radius, as_image
from .neighbours import _profile_refine
from .result import Refined, _add_scan_sigma, _isotropic


#: refine_columns models the neighbours only with at least this many columns (a profile needs a lattice patch).
_PROFILE_MIN_COLUMNS = 16


def refine_columns(
    image,
    positions,
    *,
    radius: float | None = None,
    intensity: str = "gaussian",
    move: bool = True,
    peel=None,
    neighbours: bool = True,
    sublattice=None,
    scan_sigma=None,
    progress=None,
    cancel=None,
) -> Refined:
    """Refine column positions to sub-pixel precision with batched 2D Gaussian fits.

    Each column is fitted on a disk of ``radius`` px around it (centre of mass first, then an
    isotropic Gaussian plus constant background, all columns solved together by batched
    Levenberg-Marquardt).  To refine faint B columns next to bright A columns, pass the A positions
    as ``peel``: the A columns are fitted first and their Gaussians subtracted from the image, so their
    tails no longer pull the B fits towards them.

    Parameters
    ----------
    image : (H, W) array
        The STEM image.
    positions : (N, 2) array
        Starting positions (y, x) in px.
    radius : float, optional
        Fit-patch radius in px; default half the median nearest-neighbour distance of ``positions``.
    intensity : {"gaussian", "disk"}
        Column intensity: fitted Gaussian volume ``2 pi amp sigma^2`` (background removed), or the
        raw sum of the pixels within ``radius``.
    move : bool
        False keeps the positions fixed and fits only amplitude, width and background.
    peel : (M, 2) array, optional
        Positions (y, x) in px of neighbouring columns (typically the A columns when ``positions`` are
        B columns) whose fitted Gaussians are subtracted from the image before refining ``positions``.
        Fitted with the same ``radius``; they are not returned.
    neighbours : bool
        Neighbour-aware final fit (default, with ``move``): the column profile is estimated from the image and
        every column (and every ``peel`` column) refitted with its neighbours' modelled contributions
        removed, as in :func:`find_columns`; intensities are then the profile cores' volumes (``"gaussian"``).
        Needs at least 16 columns (with ``peel``), else the Gaussian fits are returned.
    sublattice : (N,) str array, optional
        ``"A"``/``"B"`` labels of ``positions`` for the profile (one profile per sublattice).  Default: all
        ``"B"`` when ``peel`` is given (its columns are ``"A"``), else all ``"A"``.
    scan_sigma : float or (float, float), optional
        Scan noise in px along (y, x), added in quadrature to the sigmas (see :func:`find_columns`).
    progress, cancel
        See :mod:`napari_causal_lattice.progress`.

    Returns
    -------
    Refined
        ``positions`` (N, 2) px, ``width`` (N,) px, ``intensity`` (N,), ``quality`` (N,) R^2 in [0, 1],
        ``sigma`` (N,) 1-sigma position uncertainty per axis in px (see
        :func:`~napari_causal_lattice._gaussfit.position_sigma`; NaN with ``move=False``).
    """
    img = as_image(image)
    _check_intensity(intensity)
    pos = _finite_points(positions, "positions", "N")
    if radius is None:
        radius = _default_radius(pos)
    elif not np.isfinite(radius) or radius < 1:
        raise ValueError(f"radius must be at least 1 px, got {radius!r}")
    scan = _check_scan_sigma(scan_sigma)
    labels = _refine_labels(sublattice, len(pos), peel is not None)
    others = None if peel is None else _finite_points(peel, "peel", "M")
    joint = neighbours and move and len(pos) + (0 if others is None else len(others)) >= _PROFILE_MIN_COLUMNS
    fit = (labels, radius, intensity, move, joint, scan, progress, cancel)
    out = _refine_alone(img, pos, *fit) if others is None else _refine_peeled(img, pos, others, *fit)
    return out._replace(sigma=_isotropic(out.sigma))


def _finite_points(points, name: str, count: str) -> np.ndarray:
    """``points`` as a float (n, 2) array of (y, x) px; ValueError naming ``name`` when it is not one."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite ({count}, 2) array of (y, x) in px, got shape {arr.shape}")
    return arr


def _refine_alone(img, pos, labels, radius, intensity, move, joint, scan, progress, cancel) -> Refined:
    """:func:`refine_columns` without ``peel``: Gaussian fits, then (``joint``) the neighbour-aware fit; sigmas
    per axis with the scan noise ``scan`` (px) added."""
    out = _refine(img, pos, float(radius), intensity="gaussian" if joint else intensity, move=move,
                  progress=progress, cancel=cancel, done0=0, total=max(1, -(-len(pos) // _CHUNK)), sigma=True)
    if not joint:
        return _add_scan_sigma(out, scan)
    out = _profile_refine(img, out, labels, float(radius), cancel, scan_sigma=scan)[0]
    if intensity == "disk":
        out = out._replace(intensity=_disk_sum(img, out.positions, radius))
    return out


def _refine_peeled(img, pos, others, labels, radius, intensity, move, joint, scan, progress, cancel) -> Refined:
    """:func:`refine_columns` with ``peel``: the ``others`` (A) columns fitted and their Gaussians subtracted
    before the ``pos`` columns are fitted; then (``joint``) the neighbour-aware fit of both, of which the ``pos``
    rows are returned."""
    chunks = max(1, -(-len(pos) // _CHUNK))
    total = chunks + max(1, -(-len(others) // _CHUNK))
    fitted = _refine(img, others, float(radius), intensity="gaussian", move=True, progress=progress,
                     cancel=cancel, done0=0, total=total)
    peeled = img - _gaussian_model(img.shape, fitted, np.ones(len(others), dtype=bool))
    out = _refine(peeled, pos, float(radius), intensity="gaussian", move=move, progress=progress, cancel=cancel,
                  done0=total - chunks, total=total, sigma=True)
    if joint:
        both = Refined(*(np.concatenate([a, b]) for a, b in zip(out, fitted)))
        both = _profile_refine(img, both, np.concatenate([labels, np.full(len(others), "A")]), float(radius),
                               cancel, scan_sigma=scan)[0]
        out = Refined(*(arr[: len(pos)] for arr in both))
    else:
        out = _add_scan_sigma(out, scan)
    if intensity == "disk":
        out = out._replace(intensity=_disk_sum(img, out.positions, radius))
    return out


def _refine_labels(sublattice, n: int, peeled: bool) -> np.ndarray:
    """(n,) "A"/"B" labels of the columns given to :func:`refine_columns`."""
    if sublattice is None:
        return np.full(n, "B" if peeled else "A")
    labels = np.asarray(sublattice).astype(str).reshape(-1)
    if labels.shape != (n,) or not np.all(np.isin(labels, ("A", "B"))):
        raise ValueError(f"sublattice must hold {n} labels 'A' or 'B', one per position")
    return labels
