""":func:`columns_from_positions`: :class:`Columns` from hand-edited A and B positions, measured on the image as
:func:`~napari_causal_lattice.columns.find_columns` measures its own."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .. import _fftlattice
from ..lattice import check_calibration
from ..motif import get_motif
from .gaussians import _disk_sum, _peel
from .geometry import _fit_lattice
from .inputs import _check_intensity, _check_pixel_size, _check_projection, _default_radius, as_image
from .refine import refine_columns
from .result import Columns, _make_columns
from .sites import _b_site_of_positions, _decide_motif


def columns_from_positions(
    image,
    a_positions,
    b_positions,
    *,
    pixel_size: float | None = None,
    refine: bool = False,
    radius: float | None = None,
    intensity: str = "gaussian",
    projection: str = "auto",
) -> Columns:
    """Build :class:`Columns` from hand-edited A and B positions.

    Intensities, widths and qualities are measured on ``image`` by Gaussian fits with free centres, as in
    :func:`find_columns` (each sublattice fitted on the image minus the other's Gaussians); the positions
    are the given ones, or the fitted ones when ``refine``.  The A lattice is fitted through the A positions.

    Parameters
    ----------
    image : (H, W) array
    a_positions, b_positions : (Na, 2), (Nb, 2) arrays
        Column positions (y, x) in px.
    pixel_size : float, optional
        pm per px.
    refine : bool
        Also refine the positions (batched Gaussian fits).
    radius : float, optional
        Fit-patch radius in px; default half the median nearest-neighbour distance.
    intensity : {"gaussian", "disk"}
    projection : {"auto", "[001]", "[110]"}
        Crystal projection; ``"auto"`` reads it from where the B positions sit in the A lattice (a given one
        must agree).

    Returns
    -------
    Columns
        ``sigma`` holds the fitted position uncertainties when ``refine``, NaN for the given positions.
    """
    img = as_image(image)
    pixel_size = _check_pixel_size(pixel_size)
    _check_intensity(intensity)
    a = np.asarray(a_positions, dtype=float).reshape(-1, 2)
    b = np.asarray(b_positions, dtype=float).reshape(-1, 2)
    positions = np.concatenate([a, b])
    if not np.all(np.isfinite(positions)):
        raise ValueError("column positions contain NaN or inf; remove those points")
    sublattice = np.array(["A"] * len(a) + ["B"] * len(b))
    if radius is None:
        radius = _default_radius(positions)
    # intensities and widths always come from a full fit (centre free), so they mean the same as
    # find_columns'; the positions are the given ones unless ``refine``
    refined = refine_columns(img, positions, radius=radius, move=True, neighbours=False)
    is_a = sublattice == "A"
    if is_a.any() and not is_a.all():
        refined = _peel(img, refined, is_a, float(radius), None)[0]
    if intensity == "disk":
        refined = refined._replace(intensity=_disk_sum(img, refined.positions, radius))
    if not refine:
        refined = refined._replace(positions=positions.copy(), sigma=np.full(len(positions), np.nan))
    _check_projection(projection)
    a_pos = refined.positions[: len(a)]
    v1, v2 = _lattice_vectors_from_positions(a_pos)
    if pixel_size is not None:
        check_calibration(min(np.hypot(*v1), np.hypot(*v2)) * pixel_size)
    lattice = _fit_lattice(a_pos, v1, v2, img.shape)
    half = _b_site_of_positions(refined.positions[len(a):], lattice)
    sites = [np.zeros(2), half] if half is not None else []
    motif = _decide_motif(sites, v1, v2, projection)[1] if len(b) else get_motif(
        "[001]" if projection == "auto" else projection, lattice)
    params = {"pixel_size": pixel_size, "refine": bool(refine), "radius": float(radius), "intensity": intensity,
              "projection": projection if isinstance(projection, str) else projection.name}
    return _make_columns(refined, sublattice, lattice, pixel_size, img.shape, "columns_from_positions", params,
                         motif)


def _lattice_vectors_from_positions(a_pos: np.ndarray):
    """Two lattice vectors (v1, v2) estimated from the neighbour vectors of the A columns."""
    if len(a_pos) < 4:
        raise ValueError(f"need at least 4 A columns to know the lattice, got {len(a_pos)}")
    k = min(5, len(a_pos))
    _, idx = cKDTree(a_pos).query(a_pos, k=k)
    vec = (a_pos[idx[:, 1:]] - a_pos[:, None, :]).reshape(-1, 2)
    flip = (vec[:, 1] < 0) | ((vec[:, 1] == 0) & (vec[:, 0] < 0))
    vec[flip] *= -1
    length = np.hypot(*vec.T)
    d0 = np.median(length[:: k - 1])
    vec = vec[(length > 0) & (length < 1.6 * d0)]
    found = []
    for _ in range(2):
        if len(vec) == 0:
            break
        tree = cKDTree(vec)
        support = tree.query_ball_point(vec, 0.2 * d0, return_length=True)
        best = tree.query_ball_point(vec[np.argmax(support)], 0.2 * d0)
        v = vec[best].mean(axis=0)
        found.append(v)
        sines = np.abs(vec[:, 0] * v[1] - vec[:, 1] * v[0]) / (np.hypot(*vec.T) * np.hypot(*v))
        vec = vec[sines > 0.3]
    if len(found) < 2:
        raise ValueError("the A columns do not form a 2D lattice (all neighbours lie along one direction)")
    a1, a2 = _fftlattice._gauss_reduce(*found)
    return _fftlattice.orient_basis(np.stack([a1, a2]))
