""":func:`find_columns`: find, refine and classify the A and B atom columns of a perovskite STEM image."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from .. import _fftlattice
from ..lattice import PLAUSIBLE_SPACING_PM, check_calibration
from ..options import ColumnsOptions, takes_options
from ..progress import report
from .contrast import _apply_contrast
from .faint import _detectability, _warn_faint
from .fill import _fill_sites, _plausible_columns
from .gaussians import _CHUNK, _disk_sum, _peel, _refine
from .geometry import _cells_in_view, _combined_basis, _fit_lattice, _Grid
from .inputs import _check_intensity, _check_pixel_size, _check_projection, _check_scan_sigma, _spacing_px, as_image
from .jitter import _scan_stage
from .neighbours import _neighbour_stage
from .result import Columns, Refined, _make_columns
from .sites import _decide_motif, _select_columns, _site_candidates

#: Progress steps of find_columns before its Gaussian fits report their own.
_STEPS = 4


@takes_options(ColumnsOptions)
def find_columns(
    image,
    *,
    pixel_size: float | None = None,
    spacing: float | None = None,
    b_brighter: bool = False,
    intensity: str = "gaussian",
    radius: float | None = None,
    projection: str = "auto",
    plausible_spacing: tuple = PLAUSIBLE_SPACING_PM,
    neighbours: bool = True,
    scan_sigma=None,
    scan_correction: bool = True,
    faint_threshold: float = 3.0,
    contrast: str = "auto",
    progress=None,
    cancel=None,
) -> Columns:
    """Find, refine and classify the A and B atom columns of a perovskite STEM image.

    1. The lattice (spacing, orientation) comes from the Bragg peaks of the power spectrum; half-order
       peaks from the A/B contrast make it the A lattice (primitive cell).
    2. Candidate columns are the local maxima of the lightly smoothed image.
    3. Each candidate's fractional position in the *local* unit cell (geometric phase of the two
       Bragg reflections, so curved or strained lattices are followed) is clustered into motif
       sites; the brightest site is A (``b_brighter`` swaps), the next brightest B; candidates off
       both sites (noise, oxygen columns) are dropped.
    4. Columns are refined together (centre of mass, then batched 2D Gaussian fits).
    5. Peeling: the B columns sit in the Gaussian tails of their bright A neighbours, which pull a
       Gaussian + constant fit towards them.  The fitted Gaussians of all A columns are subtracted
       and the B columns refitted on that residual, then the A columns on the image without the B
       Gaussians, and the B columns once more.
    6. Scan distortion (:mod:`napari_causal_lattice.scan`): the line jitter (a shift along x per image row) is
       estimated from the fitted column model; with ``scan_correction``, when it is detected (rms above twice
       its per-line uncertainty), the rows are resampled to undo it and the columns refitted (step 5's last
       round) on the corrected image.  ``Columns.scan`` reports it.
    7. Neighbour-aware fit (``neighbours``): the column profile (core + tail per sublattice) is estimated and
       every column refitted with all its neighbours' modelled contributions removed (see ``neighbours``); what
       is left of the line jitter is kept per scan line (``Columns.line_variance``, shared by a row's columns).
    8. The A lattice is least-squares fitted through all A columns; every column gets a detectability (peak
       amplitude over the local pixel noise of the image minus the column model) and a ``faint`` flag below
       ``faint_threshold``.  When most B columns are faint, a :class:`FaintColumnsWarning` names the fixes.

    Empty lattice sites next to found columns (faint B columns beside bright A columns) are tried as
    well (before and after peeling; B sites on the peeled image) and kept when their Gaussian fit
    reaches R^2 >= 0.2.  When the B columns make no local maxima at all (wide A columns), step 3
    finds a single site; its columns are then fitted and peeled and the B candidates taken from the
    peeled image.  Columns closer than the fit radius to the image border are left out.
    ``provenance["params"]["b_site_offset"]`` records where the B site sits in the A cell, in fractions of
    ``(v1, v2)``; ``Columns.motif`` is the crystal projection it means.  Every column's position uncertainty
    comes from the covariance and residual of its final fit, per axis (``Columns.sigma_axes``, y and x), plus the
    line shift its row shares (``Columns.line_variance``); ``Columns.sigma`` is the isotropic total.
    With a pixel size, a lattice parameter outside ``plausible_spacing`` gives a warning that names the
    likely unit mistake.

    Projections (:mod:`napari_causal_lattice.motif`): [001] perovskites give B at (1/2, 1/2).  Cubic [110]
    (e.g. the SrTiO3 Atomap test image) gives a rectangular a x a/sqrt2 A cell with B at (1/2, 0),
    half-way along ``a``.  Other patterns (B half-way along a short edge, hexagonal [111], offsets other
    than half a cell) are refused with a ValueError that says what was detected.  Orthorhombic (Pnma)
    [110], e.g. the NSMO image, is pseudocubic [100]: a square cell with B at (1/2, 1/2) ("[001]"); its weak
    tilt superstructure peaks (< 2 % of the main Bragg power) are ignored, so the cell is the pseudocubic one.
    The brighter parity class is called A everywhere in a connected patch, so at an interface where the contrast
    flips (SrRuO3 next to PbTiO3) the labels follow the geometry, not the local brightness.

    Parameters
    ----------
    image : (H, W) array
        HAADF/ADF image (RGB is converted to grey with a warning).
    pixel_size : float, optional
        pm per px; recorded on the result and sets the unit of ``spacing``.
    spacing : float, optional
        Approximate A-A lattice spacing in pm (px when ``pixel_size`` is None); restricts the lattice
        search to periods between 0.3x and 1.6x of it.  Default: found automatically.
    b_brighter : bool
        The B columns are brighter than the A columns.
    intensity : {"gaussian", "disk"}
        Column intensity measure, see :func:`refine_columns`.
    radius : float, optional
        Fit-patch radius in px; default half the A-B nearest-neighbour distance.
    projection : {"auto", "[001]", "[110]"}
        Crystal projection.  ``"auto"`` detects it from where the second kind of column sits; a given one must
        agree with the detection (else ValueError naming both).
    plausible_spacing : (float, float)
        Plausible range in pm of the shorter A-A spacing (warning outside it, only with ``pixel_size``).
    neighbours : bool
        Neighbour-aware final fit (default): the column profile (Gaussian core + tail per sublattice) is
        estimated from the image (``Columns.profile``) and every column refitted with its neighbours' modelled
        contributions removed, so positions do not depend on the neighbours' intensities; intensities are then
        the profile cores' volumes.  False keeps the peeled Gaussian fits.
    scan_sigma : float or (float, float), optional
        Scan noise: rms displacement of a column in px along (y, x) from scan distortion left in the image,
        independent between columns; added in quadrature to every column's ``sigma_axes``.  It replaces the
        estimated line jitter's part: by default (None) the shift left in each scan line after the jitter stage is
        kept as ``Columns.line_variance``, shared by the columns of a row (it cancels in x differences along a
        row and not across rows), and :func:`~napari_causal_lattice.cells.build_cells` propagates it.
    scan_correction : bool
        Correct the estimated line jitter before the final fit (default True).  False still estimates and
        reports it (``Columns.scan.applied`` is False).
    faint_threshold : float
        Detectability (peak over local background noise, dimensionless) below which a column is ``faint``.
    contrast : {"auto", "bright", "dark"}
        Column contrast.  ``"bright"``: columns are maxima (HAADF, ADF).  ``"dark"``: columns are minima
        (ABF, BF); the inverted image is analysed and ``provenance["params"]["note"]`` says so.  ``"auto"``
        (default) measures it (:func:`detect_contrast`) and refuses dark-column images with a ValueError that
        names the contrast and the ``contrast="dark"`` option.
    progress, cancel
        See :mod:`napari_causal_lattice.progress`.

    Returns
    -------
    Columns

    Raises
    ------
    ValueError
        No periodic lattice, fewer than 3x3 unit cells, only one kind of column, bad pixels, an unsupported
        projection or one that disagrees with ``projection``, or dark-column contrast with ``contrast="auto"``.

    Examples
    --------
    >>> from napari_causal_lattice.synthetic import synthetic_perovskite
    >>> sample = synthetic_perovskite(shape_cells=(6, 6))
    >>> cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    >>> len(cols.a), len(cols.b), cols.motif.name
    (49, 36, '[001]')
    """
    img = as_image(image)
    args = _checked_arguments(pixel_size, spacing, intensity, projection, radius, faint_threshold, scan_sigma)
    report(progress, 0, _STEPS + 1, cancel)
    img, v1, v2, note = _lattice_stage(img, spacing, args, contrast, plausible_spacing)
    report(progress, 1, _STEPS + 1, cancel)
    cand, bright, prominence, frac, sites = _site_candidates(img, v1, v2, args.radius, cancel)
    report(progress, 2, _STEPS + 1, cancel)
    half, motif = _decide_motif(sites, v1, v2, projection)
    grid = _grid(v1, v2, half, args.radius)
    positions, is_a, ij, component = _select_columns(cand, bright, prominence, frac, sites[:2], img.shape, grid,
                                                     b_brighter)
    report(progress, 3, _STEPS + 1, cancel)
    refined, is_a = _fit_columns(img, positions, is_a, ij, component, grid, progress, cancel, _STEPS)
    img, refined, scan = _scan_stage(img, refined, is_a, grid, args.pixel_size, scan_correction, cancel)
    # the line shift left after the jitter stage is shared by the columns of a row (it cancels in x differences
    # along a row): it stays a covariance for the cells, unless a scan_sigma is given instead
    line_variance = scan.line_variance if args.scan_sigma is None else None
    gaussian = refined  # consistent Gaussian (volume, width) pairs: what the detectability is measured from
    refined, profile = _neighbour_stage(img, refined, is_a, grid, cancel, neighbours=neighbours,
                                        scan_sigma=args.scan_sigma)
    if intensity == "disk":
        refined = refined._replace(intensity=_disk_sum(img, refined.positions, grid.radius))
    lattice = _fit_lattice(refined.positions[is_a], v1, v2, img.shape)
    detectability = _detectability(img, gaussian, grid.radius)
    faint = detectability < args.faint_threshold
    _warn_faint(faint, is_a, args.faint_threshold)
    params = {
        "pixel_size": args.pixel_size,
        "spacing": spacing,
        "b_brighter": bool(b_brighter),
        "intensity": intensity,
        "radius": grid.radius,
        "b_site_offset": half.tolist(),
        "projection": projection if isinstance(projection, str) else projection.name,
        "neighbours": bool(neighbours),
        "scan_sigma": None if args.scan_sigma is None else args.scan_sigma.tolist(),
        "scan_correction": bool(scan_correction),
        "faint_threshold": args.faint_threshold,
        "contrast": contrast,
        "note": note,
    }
    columns = _make_columns(refined, np.where(is_a, "A", "B"), lattice, args.pixel_size, img.shape, "find_columns",
                            params, motif, profile=profile, line_variance=line_variance)
    return dataclasses.replace(columns, scan=scan, detectability=detectability, faint=faint)


class _Arguments(NamedTuple):
    """The checked arguments of :func:`find_columns` (lengths in px)."""

    pixel_size: float | None  #: pm per px
    spacing_px: float | None  #: approximate A-A spacing
    radius: float | None  #: fit radius (None: half the A-B nearest-neighbour distance)
    faint_threshold: float  #: detectability below which a column is faint
    scan_sigma: np.ndarray | None  #: (2,) scan noise along (y, x)


def _checked_arguments(pixel_size, spacing, intensity, projection, radius, faint_threshold,
                       scan_sigma) -> _Arguments:
    """The arguments of :func:`find_columns` checked (ValueError naming the bad one) and converted."""
    pixel_size = _check_pixel_size(pixel_size)
    _check_intensity(intensity)
    _check_projection(projection)
    spacing_px = _spacing_px(spacing, pixel_size)
    if radius is not None:
        radius = float(radius)
        if not np.isfinite(radius) or radius < 1:
            raise ValueError(f"radius must be at least 1 px, got {radius!r}")
    faint_threshold = float(faint_threshold)
    if not np.isfinite(faint_threshold) or faint_threshold < 0:
        raise ValueError(f"faint_threshold must be a non-negative number (peak over noise), got {faint_threshold!r}")
    return _Arguments(pixel_size, spacing_px, radius, faint_threshold, _check_scan_sigma(scan_sigma))


def _lattice_stage(img, spacing, args: _Arguments, contrast, plausible_spacing):
    """Stage 1: the lattice vectors from the power spectrum, the column contrast (the image inverted for dark
    columns) and the calibration check.  Returns the image to analyse, v1, v2 (px) and the contrast note."""
    v1, v2 = _estimate_basis(img, args.spacing_px, spacing)
    img, note = _apply_contrast(img, contrast, v1, v2)
    if args.pixel_size is not None:
        check_calibration(min(np.hypot(*v1), np.hypot(*v2)) * args.pixel_size, plausible=plausible_spacing)
    return img, v1, v2, note


def _grid(v1, v2, half, radius) -> _Grid:
    """The geometry of the columns' lattice for B at ``half`` of the A cell; ``radius`` None: half the A-B
    nearest-neighbour distance."""
    c1, c2 = _combined_basis(v1, v2, half)
    d_nn = min(np.hypot(*c1), np.hypot(*c2))
    return _Grid(c1, c2, v1, v2, float(0.5 * d_nn) if radius is None else radius, d_nn)


def _estimate_basis(img, spacing_px, spacing):
    """Stage 1 of :func:`find_columns`: the lattice vectors (v1, v2) in px from the power spectrum."""
    if spacing_px is not None:
        cells = min(img.shape) / spacing_px
        if cells < 3:
            raise ValueError(
                f"the image spans only {cells:.1f} unit cells of {spacing} across; at least 3x3 cells are needed"
            )
        basis = _fftlattice.estimate_lattice(img, min_period=0.3 * spacing_px, max_period=1.6 * spacing_px)
    else:
        basis = _fftlattice.estimate_lattice(img)
    v1, v2 = _fftlattice.orient_basis(basis)
    n1, n2 = _cells_in_view(img.shape, v1, v2)
    if min(n1, n2) < 3:
        raise ValueError(
            f"the image spans only {n1:.1f} x {n2:.1f} unit cells (lattice spacing {np.hypot(*v1):.1f} x "
            f"{np.hypot(*v2):.1f} px); at least 3x3 cells are needed: use a larger field of view"
        )
    return v1, v2


def _fit_columns(img, positions, is_a, ij, component, grid: _Grid, progress, cancel, steps):
    """Stage 5: refine, fill empty sites, peel, fill again, drop implausible fits.

    Returns the refined columns (Gaussian volumes as intensities) and their is_a flags, A rows first.
    """
    total = steps + max(1, -(-len(positions) // _CHUNK))
    refined = _refine(img, positions, grid.radius, intensity="gaussian", move=True, progress=progress,
                      cancel=cancel, done0=steps - 1, total=total)
    positions, refined, is_a, ij, component = _fill_sites(img, img, positions, refined, is_a, ij, component, grid,
                                                          cancel)
    refined, for_a, for_b = _peel(img, refined, is_a, grid.radius, cancel)
    refined, is_a = _fill_sites(for_a, for_b, positions, refined, is_a, ij, component, grid, cancel,
                                sigma=True)[1:3]
    report(progress, total, total, cancel)
    good = _plausible_columns(refined, is_a)
    order = np.argsort(~is_a[good], kind="stable")
    return Refined(*(np.asarray(arr)[good][order] for arr in refined)), is_a[good][order]
