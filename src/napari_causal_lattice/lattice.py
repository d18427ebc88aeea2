"""Lattice geometry shared by every step: descriptor names, units, the grid -> image affine, and the one lattice
indexing (:func:`index_lattice`) and least-squares lattice fit (:func:`fit_lattice`).

Coordinates are ``(y, x) = (row, column)`` in pixels, pixel centres at integer
coordinates, as in napari and scikit-image.  A lattice grid index ``(i, j)``
(row ``i``, column ``j``) sits at ``origin + i * v2 + j * v1`` in the image, so
``v1`` is the lattice vector along the grid columns (roughly the image x axis,
the paper's ``a``) and ``v2`` the one along the grid rows (the paper's ``b``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._warn import warn
from .registry import DESCRIPTORS, meaning, units_of

#: Short descriptions of the descriptors ([001] meaning; per projection: :func:`registry.meaning`).
DESCRIPTOR_LABELS: dict[str, str] = {name: meaning(name) for name in DESCRIPTORS}


def descriptor_units(pixel_size: float | None, intensity_unit: str = "counts") -> dict[str, str]:
    """Units of the 8 descriptors.

    Parameters
    ----------
    pixel_size : float or None
        Pixel size in pm per px.  ``None`` means lengths stay in px.
    intensity_unit : str
        Unit of the column intensities.

    Returns
    -------
    dict
        Descriptor name -> unit string (``"pm"``, ``"pm^2"``, ``"px"``, ``"deg"``...), from the registry.
    """
    return units_of(pixel_size, intensity_unit)


#: Plausible range (pm) of the A-A lattice parameter of oxide perovskites, for :func:`check_calibration`.
PLAUSIBLE_SPACING_PM: tuple[float, float] = (150.0, 1000.0)

_UNIT_HINTS = {
    1e3: "the pixel size is probably in nm per px (multiply it by 1000)",
    1e2: "the pixel size is probably in angstrom per px (multiply it by 100)",
    1e-3: "the pixel size is probably 1000 times too large, e.g. a scale in pm read as nm (divide it by 1000)",
}


def check_calibration(spacing_pm, *, plausible=PLAUSIBLE_SPACING_PM) -> bool:
    """Warn when a measured lattice parameter is outside the plausible range, naming the likely cause.

    Parameters
    ----------
    spacing_pm : float
        Measured A-A lattice parameter in pm (e.g. the shorter lattice vector times the pixel size).
    plausible : (float, float)
        Range in pm that counts as plausible (default 150 to 1000 pm, oxide perovskites including [110]
        cells and small superstructures).

    Returns
    -------
    bool
        True when the value is plausible (no warning).
    """
    low, high = (float(v) for v in plausible)
    value = float(spacing_pm)
    if low <= value <= high:
        return True
    factor = 10.0 ** round(math.log10(math.sqrt(low * high) / value)) if value > 0 else float("nan")
    hint = _UNIT_HINTS.get(factor, f"the pixel size is probably off by a factor of about "
                                   f"{math.sqrt(low * high) / value:.3g}" if value > 0 else "check the pixel size")
    warn(
        f"the lattice parameter comes out as {value:.4g} pm, outside the {low:g}-{high:g} pm of oxide "
        f"perovskites: {hint}; the pixel size must be in pm per px. Descriptors in pm are wrong by the same "
        "factor until it is fixed.",
        UserWarning,
    )
    return False


def fit_lattice(positions, ij) -> "Lattice":
    """Least-squares lattice ``yx = origin + i * v2 + j * v1`` through indexed points.

    Parameters
    ----------
    positions : (N, 2) float array
        Points (y, x) in px.
    ij : (N, 2) int array
        Their grid indices (i counts ``v2`` steps, j counts ``v1`` steps); N >= 3, not all on one line.

    Returns
    -------
    Lattice
        ``origin`` at grid index (0, 0).
    """
    ij = np.asarray(ij)
    design = np.column_stack([np.ones(len(ij)), ij[:, 1], ij[:, 0]])
    coef, *_ = np.linalg.lstsq(design, np.asarray(positions, dtype=float), rcond=None)
    return Lattice(origin=coef[0], v1=coef[1], v2=coef[2])


class LatticeIndex(NamedTuple):
    """Result of :func:`index_lattice` (one row per point)."""

    ij: np.ndarray  #: (N, 2) int64 grid indices (i counts ``v2`` steps, j ``v1`` steps) from the root of each patch
    component: np.ndarray  #: (N,) int label of the connected patch of each point
    links: np.ndarray  #: (N, K) int64 the point linked along each step vector, -1 where none
    misfit: np.ndarray  #: (N,) mean distance px of a point's links from their step vectors (inf without a link)


#: Grid steps ``(di, dj)`` of the mutual links of :func:`index_lattice`, in the order +v1, -v1, +v2, -v2.
MUTUAL_STEPS = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])
_OPPOSITE = np.array([1, 0, 3, 2])


def index_lattice(positions, v1, v2, *, tolerance: float = 0.3, extra_steps=(), mutual: bool = False,
                  passes: int = 1, root: str = "first") -> LatticeIndex:
    """Integer grid indices (i, j) of lattice points, found by walking from neighbour to neighbour.

    Points are linked when one sits within ``tolerance`` times the shorter lattice spacing of another plus a step
    vector.  Walking follows slow distortions (curved or strained lattices) that a global rounding of fractional
    coordinates would get wrong: the indices propagate along a breadth-first tree of the links of each connected
    patch from its root, each link adding its own grid step.

    Parameters
    ----------
    positions : (N, 2) float array
        Points (y, x) in px.
    v1, v2 : (2,) float arrays
        Lattice vectors (y, x) in px along the grid columns j and rows i.
    tolerance : float
        Link search radius, fraction of the shorter of ``|v1|``, ``|v2|``.
    extra_steps : sequence of (2,) arrays
        One-sided links only: more step vectors (integer combinations of ``v1`` and ``v2``) to link along.
    mutual : bool
        False: each point links to the nearest point near it plus ``v1``, ``v2`` and ``extra_steps``.  True: links
        along +v1, -v1, +v2, -v2 (:data:`MUTUAL_STEPS`) are kept only when both ends agree (looking back finds
        the point again, and each end keeps its best-fitting link per direction), so a spurious point next to a
        real one cannot steal its neighbours.
    passes : int
        Mutual links only: passes of the search; each one after the first predicts with each point's own lattice
        vectors measured from the links found in the last, so a lattice that bends or rotates slowly is
        followed.  The search stops early when a pass finds no more links.
    root : {"first", "best_fit"}
        The root of each patch: its first point, or the point whose links fit their step vectors best.

    Returns
    -------
    LatticeIndex
        Points alone in their patch get index (0, 0).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components
    from scipy.spatial import cKDTree

    positions = np.asarray(positions, dtype=float).reshape(-1, 2)
    v1, v2 = np.asarray(v1, dtype=float), np.asarray(v2, dtype=float)
    if root not in ("first", "best_fit"):
        raise ValueError(f"root must be 'first' or 'best_fit', got {root!r}")
    if mutual and len(extra_steps):
        raise ValueError("extra_steps are for one-sided links; mutual links run along +-v1 and +-v2 only")
    if passes > 1 and not mutual:
        raise ValueError("passes > 1 needs mutual=True (later passes measure each point's own +-v1, +-v2)")
    n = len(positions)
    tree = cKDTree(positions)
    tol = tolerance * min(np.hypot(*v1), np.hypot(*v2))
    if mutual:
        vectors, steps = np.stack([v1, -v1, v2, -v2]), MUTUAL_STEPS
        links = _mutual_links(tree, positions, vectors, tol, passes)
    else:
        vectors = np.stack([v1, v2, *extra_steps])
        steps = np.rint(vectors @ np.linalg.inv(np.column_stack([v1, v2])).T).astype(np.int64)[:, ::-1]
        links = _one_sided_links(tree, positions, vectors, tol)
    misfit = _link_misfit(positions, links, vectors)
    src, direction = np.nonzero(links >= 0)
    graph = coo_matrix((np.ones(len(src)), (src, links[src, direction])), shape=(n, n)).tocsr()
    _, component = connected_components(graph, directed=False)
    ij = np.zeros((n, 2), dtype=np.int64)
    for comp in np.flatnonzero(np.bincount(component) > 1):
        members = np.flatnonzero(component == comp)
        first = members[np.argmin(misfit[members])] if root == "best_fit" else members[0]
        nodes, pred = breadth_first_order(graph, first, directed=False, return_predecessors=True)
        ij[nodes] = _tree_indices(links, steps, nodes, pred)
    return LatticeIndex(ij, component, links, misfit)


def _one_sided_links(tree, positions, vectors, tol) -> np.ndarray:
    """(N, K) the point nearest each point plus ``vectors[k]`` within ``tol`` px (-1 where none)."""
    links = np.full((len(positions), len(vectors)), -1, dtype=np.int64)
    for k, step in enumerate(vectors):
        dist, idx = tree.query(positions + step, distance_upper_bound=tol)
        ok = np.isfinite(dist)
        links[ok, k] = idx[ok]
    return links


def _mutual_links(tree, positions, vectors, tol, passes: int) -> np.ndarray:
    """(N, 4) mutual links along ``vectors`` = (+v1, -v1, +v2, -v2) (see :func:`index_lattice`)."""
    n = len(positions)
    local = np.broadcast_to(vectors, (n, 4, 2)).copy()
    links = np.full((n, 4), -1, dtype=np.int64)
    for _ in range(passes):
        src, dst, step, res = [], [], [], []
        for d in range(4):
            dist, target = tree.query(positions + local[:, d], distance_upper_bound=tol)
            ok = np.flatnonzero(np.isfinite(dist))
            # looking back from the target by the same vector must find this point again
            _, back = tree.query(positions[target[ok]] - local[ok, d])
            ok = ok[back == ok]
            src += [ok, target[ok]]
            dst += [target[ok], ok]
            step += [np.full(len(ok), d), np.full(len(ok), _OPPOSITE[d])]
            res += [dist[ok], dist[ok]]
        new = _best_links(n, *(np.concatenate(v) for v in (src, dst, step, res)))
        if np.count_nonzero(new >= 0) <= np.count_nonzero(links >= 0):
            break
        links = new
        _measure_local_vectors(positions, links, local)
    return links


def _measure_local_vectors(positions, links, local) -> None:
    """Each point's own +v1 and +v2 (written into ``local`` (N, 4, 2) with their negatives): the mean of its
    links along that axis, else the previous guess."""
    n = len(positions)
    for axis in (0, 1):
        fwd, bwd = links[:, 2 * axis], links[:, 2 * axis + 1]
        total = np.zeros((n, 2))
        count = np.zeros(n)
        has = fwd >= 0
        total[has] += positions[fwd[has]] - positions[has]
        count[has] += 1
        has = bwd >= 0
        total[has] += positions[has] - positions[bwd[has]]
        count[has] += 1
        measured = count > 0
        vec = local[:, 2 * axis].copy()
        vec[measured] = total[measured] / count[measured, None]
        local[:, 2 * axis], local[:, 2 * axis + 1] = vec, -vec


def _best_links(n: int, src, dst, step, res) -> np.ndarray:
    """(n, 4) links from candidate edges: per point and direction the best fitting one, kept when symmetric."""
    links = np.full((n, 4), -1, dtype=np.int64)
    order = np.lexsort((res, step, src))
    src, dst, step = src[order], dst[order], step[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (step[1:] != step[:-1])
    links[src[first], step[first]] = dst[first]
    has = np.nonzero(links >= 0)
    mutual = links[links[has], _OPPOSITE[has[1]]] == has[0]
    links[has[0][~mutual], has[1][~mutual]] = -1
    return links


def _link_misfit(positions, links, vectors) -> np.ndarray:
    """(N,) mean distance px of each point's links from their step ``vectors``; inf for a point without links."""
    n = len(positions)
    src, direction = np.nonzero(links >= 0)
    misfit = np.zeros(n)
    count = np.zeros(n)
    if len(src):
        res = np.hypot(*(positions[links[src, direction]] - positions[src] - vectors[direction]).T)
        np.add.at(misfit, src, res)
        np.add.at(count, src, 1)
    return np.where(count > 0, misfit / np.maximum(count, 1), np.inf)


def _tree_indices(links, steps, nodes, pred) -> np.ndarray:
    """Grid indices (len(nodes), 2) along a breadth-first tree, relative to its root ``nodes[0]``.

    Each node's index is its parent's plus the grid step of the link between them (``steps[k]`` for the parent's
    link ``k``, minus it for the child's); the sums along the tree are taken by pointer jumping (log2(depth)
    vectorised rounds).
    """
    n = len(links)
    child = nodes[1:]
    parent = pred[child]
    forward = links[parent] == child[:, None]
    ahead = forward.any(axis=1)
    direction = np.where(ahead, np.argmax(forward, axis=1), np.argmax(links[child] == parent[:, None], axis=1))
    acc = np.zeros((n, 2), dtype=np.int64)
    acc[child] = np.where(ahead[:, None], steps[direction], -steps[direction])
    up = np.arange(n)
    up[child] = parent
    while np.any(up[nodes] != nodes[0]):
        acc = acc + acc[up]
        up = up[up]
    return acc[nodes]


class CalibrationWarning(UserWarning):
    """The measured lattice parameter disagrees with the one the user expects: the pixel size may be off."""


def check_expected_lattice(measured_pm, expected_pm, *, tolerance: float = 0.05) -> str:
    """Compare a measured lattice parameter with the expected one; warn beyond ``tolerance``.

    Parameters
    ----------
    measured_pm : float
        Measured lattice parameter in pm (e.g. the median long cell edge).
    expected_pm : float
        The lattice parameter the user expects, pm (e.g. a substrate's or the bulk value).
    tolerance : float
        Relative difference (fraction) beyond which a :class:`CalibrationWarning` is given.

    Returns
    -------
    str
        The warning text (to record with the results), or "" when within tolerance.
    """
    expected = float(expected_pm)
    if not np.isfinite(expected) or expected <= 0:
        raise ValueError(f"expected_lattice must be a positive length in pm, got {expected_pm!r}")
    value = float(measured_pm)
    rel = value / expected - 1.0
    if abs(rel) <= tolerance:
        return ""
    text = (f"the lattice parameter reads {value:.1f} pm, {100 * rel:+.1f} % from the expected {expected:.1f} pm "
            f"(tolerance {100 * tolerance:g} %): the pixel size is probably off by a factor {expected / value:.3f} "
            "(calibrate it on a region of known lattice parameter, e.g. the substrate: calibrate_pixel_size), or the "
            "material is strained or not the one expected. All lengths in pm scale with the pixel size.")
    warn(text, CalibrationWarning)
    return text


def _vec2(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite (y, x) pair in px, got {value!r}")
    return arr


@dataclass(frozen=True)
class Lattice:
    """A 2D Bravais lattice in image pixel coordinates.

    Parameters
    ----------
    origin : (2,) array
        Image position (y, x) in px of grid index (0, 0).
    v1 : (2,) array
        Lattice vector along the grid columns ``j`` (y, x) in px.
    v2 : (2,) array
        Lattice vector along the grid rows ``i`` (y, x) in px.
    """

    origin: np.ndarray
    v1: np.ndarray
    v2: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "origin", _vec2(self.origin, "origin"))
        object.__setattr__(self, "v1", _vec2(self.v1, "v1"))
        object.__setattr__(self, "v2", _vec2(self.v2, "v2"))
        det = self.v1[0] * self.v2[1] - self.v1[1] * self.v2[0]
        if abs(det) < 1e-9:
            raise ValueError("lattice vectors v1 and v2 are parallel (or zero); cannot build a 2D lattice")

    @property
    def affine(self) -> np.ndarray:
        """(3, 3) homogeneous matrix mapping grid ``(i, j, 1)`` to image ``(y, x, 1)`` in px."""
        m = np.eye(3)
        m[:2, 0] = self.v2
        m[:2, 1] = self.v1
        m[:2, 2] = self.origin
        return m

    def to_image(self, ij) -> np.ndarray:
        """Image positions (..., 2) yx in px of grid indices ``ij`` (..., 2) (may be fractional)."""
        ij = np.asarray(ij, dtype=float)
        return self.origin + ij[..., :1] * self.v2 + ij[..., 1:2] * self.v1

    def to_grid(self, yx) -> np.ndarray:
        """Fractional grid indices (..., 2) ``(i, j)`` of image positions ``yx`` (..., 2) in px."""
        yx = np.asarray(yx, dtype=float) - self.origin
        basis = np.stack([self.v2, self.v1], axis=1)  # columns: v2, v1
        return np.linalg.solve(basis, yx.reshape(-1, 2).T).T.reshape(yx.shape)

    def subgrid(self, offset_ij=(0.0, 0.0), step: float = 1.0) -> "Lattice":
        """Lattice of a coarser or shifted grid: index ``k`` maps to ``offset_ij + k * step`` here."""
        origin = self.to_image(np.asarray(offset_ij, dtype=float))
        return Lattice(origin=origin, v1=self.v1 * step, v2=self.v2 * step)

    @property
    def spacings(self) -> tuple[float, float]:
        """Lengths ``(|v1|, |v2|)`` in px."""
        return float(np.hypot(*self.v1)), float(np.hypot(*self.v2))

    @property
    def angle(self) -> float:
        """Angle between v1 and v2 in degrees."""
        c = np.dot(self.v1, self.v2) / (np.hypot(*self.v1) * np.hypot(*self.v2))
        return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))

    @property
    def rotation(self) -> float:
        """Angle of v1 from the image x axis in degrees (counter-clockwise on screen, y down)."""
        return float(np.degrees(np.arctan2(-self.v1[0], self.v1[1])))

    def to_state(self) -> dict:
        return {"origin": self.origin.copy(), "v1": self.v1.copy(), "v2": self.v2.copy()}

    @classmethod
    def from_state(cls, state: dict) -> "Lattice":
        return cls(origin=state["origin"], v1=state["v1"], v2=state["v2"])
