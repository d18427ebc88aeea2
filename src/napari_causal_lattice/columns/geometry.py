"""Lattice geometry of the column search: reciprocal vectors, fractional cell coordinates, the lattice of all
columns (A and B), duplicate suppression, and the A lattice fitted through the indexed A columns.

Vectors are ``(y, x)`` in px; ``v1`` is the A lattice vector along the grid columns ``j``, ``v2`` along the rows
``i`` (see :mod:`napari_causal_lattice.lattice`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import cKDTree

from .. import _fftlattice
from ..lattice import Lattice, fit_lattice, index_lattice

#: Link search radius of the walks over the columns (:func:`~napari_causal_lattice.lattice.index_lattice`),
#: fraction of the shorter lattice spacing.
WALK_TOLERANCE = 0.3


def _dual(v1, v2) -> np.ndarray:
    """Rows g1, g2 (cycles/px) with g_k . v_l = delta_kl."""
    return np.linalg.inv(np.column_stack([v1, v2]))


def _cells_in_view(shape, v1, v2) -> tuple[float, float]:
    """How many cells (along ``v1``, along ``v2``) an image of ``shape`` (H, W) spans."""
    ny, nx = shape
    corners = np.array([[0, 0], [0, nx - 1], [ny - 1, 0], [ny - 1, nx - 1]], float)
    frac = corners @ _dual(v1, v2).T
    return float(np.ptp(frac[:, 0])), float(np.ptp(frac[:, 1]))


def _torus_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` of fractional cell coordinates wrapped into [-1/2, 1/2)."""
    return (a - b + 0.5) % 1.0 - 0.5


def _suppress_duplicates(positions: np.ndarray, brightness: np.ndarray, min_distance: float) -> np.ndarray:
    """Boolean keep-mask: of columns closer than ``min_distance``, keep the brightest."""
    keep = np.ones(len(positions), dtype=bool)
    pairs = cKDTree(positions).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    order = np.argsort(-brightness)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    for a, b in sorted(pairs.tolist(), key=lambda ab: min(rank[ab[0]], rank[ab[1]])):
        if keep[a] and keep[b]:
            keep[b if rank[a] < rank[b] else a] = False
    return keep


def _fit_lattice(a_pos: np.ndarray, v1: np.ndarray, v2: np.ndarray, image_shape) -> Lattice:
    """Least-squares A lattice over the largest connected patch of A columns.

    The origin sits on (the fitted site of) the A column of that patch nearest pixel (0, 0).
    """
    ij, component = index_lattice(a_pos, v1, v2, tolerance=WALK_TOLERANCE)[:2]
    ok = component == np.argmax(np.bincount(component))
    if ok.sum() < 4:
        raise ValueError("too few connected A columns (need at least 4) to fit the lattice")
    fitted = fit_lattice(a_pos[ok], ij[ok])
    if abs(np.linalg.det(np.stack([fitted.v1, fitted.v2]))) < 1e-9:
        raise ValueError("the A columns lie on a line; cannot fit a 2D lattice")
    first = np.flatnonzero(ok)[np.argmin(np.hypot(*a_pos[ok].T))]
    return Lattice(origin=fitted.to_image(ij[first]), v1=fitted.v1, v2=fitted.v2)


def _combined_basis(v1, v2, half):
    """Reduced basis of the lattice of all columns (A plus B at fractional offset ``half``)."""
    if half[0] and half[1]:
        pair = (0.5 * (v1 + v2), v1)
    elif half[0]:
        pair = (0.5 * v1, v2)
    else:
        pair = (v1, 0.5 * v2)
    return _fftlattice._gauss_reduce(*pair)


class _Grid(NamedTuple):
    """Lattice geometry shared by the gap-filling steps of :func:`find_columns` (vectors and lengths in px)."""

    c1: np.ndarray  #: (2,) reduced basis vector of the lattice of all columns
    c2: np.ndarray  #: (2,) second one
    v1: np.ndarray  #: (2,) A lattice vector along j
    v2: np.ndarray  #: (2,) A lattice vector along i
    radius: float  #: fit radius
    d_nn: float  #: A-B nearest-neighbour distance
