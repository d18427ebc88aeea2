"""The crystal motif of a projected perovskite: which sites a unit cell has and where B sits in it.

One object, made by :func:`~napari_causal_lattice.columns.find_columns` (detected, or given by the user) and
consumed by :func:`~napari_causal_lattice.cells.build_cells` and
:func:`~napari_causal_lattice.descriptors.compute_descriptors`.  Nothing else knows the projection.

A cell is always the A-lattice parallelogram with corners ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)``
(``v1`` runs along ``j``, ``v2`` along ``i``); the motif says where its B column sits, as fractions
``(fi, fj)`` of ``(v2, v1)`` from corner ``A(i, j)``:

``"[001]"``
    Square (or slightly distorted) A cell, B at the cell centre ``(1/2, 1/2)``.  Also pseudocubic [100] of an
    orthorhombic perovskite (e.g. Pnma [110]).
``"[110]"``
    Rectangular ``a x a/sqrt2`` A cell, B half-way along the long edge: ``(0, 1/2)`` when the long edge is
    ``v1`` (B on the A row of corner ``A(i, j)``, between ``A(i, j)`` and ``A(i, j+1)``), ``(1/2, 0)`` when it
    is ``v2``.

The nominal B position is the bilinear combination of the 4 corners with :attr:`Motif.corner_weights`
(the centroid for [001], the mid-point of the edge B sits on for [110]); the polarization ``Px, Py`` is the
B column's offset from it.  ``a``, ``b``, ``alpha`` and ``Vol`` are the A cell's edges along ``v1``, ``v2``,
their angle and area for every motif.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Motif", "PROJECTIONS", "get_motif", "motif_from_offset"]

#: Supported projections.
PROJECTIONS: tuple[str, ...] = ("[001]", "[110]")

_DESCRIPTIONS = {
    "[001]": "perovskite [001]: A on the corners of a square cell, B at the cell centre",
    "[110]": "perovskite [110]: A on a rectangular a x a/sqrt2 cell, B half-way along the long edge a",
}


@dataclass(frozen=True)
class Motif:
    """A projected perovskite cell: its name and where the B column sits in the A cell.

    Parameters
    ----------
    name : {"[001]", "[110]"}
        The projection.
    b_site : (float, float)
        Nominal B position ``(fi, fj)`` in the A cell, fractions of ``(v2, v1)`` from corner ``A(i, j)``;
        each 0 or 1/2.
    """

    name: str
    b_site: tuple

    def __post_init__(self):
        if self.name not in PROJECTIONS:
            raise ValueError(f"projection {self.name!r} is not supported; supported: {', '.join(PROJECTIONS)}")
        site = tuple(float(v) for v in np.asarray(self.b_site, dtype=float).reshape(-1))
        allowed = {"[001]": [(0.5, 0.5)], "[110]": [(0.0, 0.5), (0.5, 0.0)]}[self.name]
        if site not in allowed:
            raise ValueError(f"B site {site} does not belong to projection {self.name}; allowed: {allowed}")
        object.__setattr__(self, "b_site", site)

    @property
    def description(self) -> str:
        """One line saying which sites the cell has."""
        return _DESCRIPTIONS[self.name]

    @property
    def corner_weights(self) -> np.ndarray:
        """(4,) weights of the corners ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)`` whose sum is the nominal
        B position (bilinear in ``b_site``)."""
        fi, fj = self.b_site
        return np.array([(1 - fi) * (1 - fj), (1 - fi) * fj, fi * (1 - fj), fi * fj])

    def nominal_b(self, corners) -> np.ndarray:
        """Nominal B positions (n, 2) yx of cells with corners (n, 4, 2) (any length unit)."""
        return np.einsum("k,nkd->nd", self.corner_weights, np.asarray(corners, dtype=float))

    def b_offset(self, v1, v2) -> np.ndarray:
        """(2,) yx px from corner ``A(i, j)`` to the nominal B site for lattice vectors ``v1``, ``v2``."""
        return self.b_site[0] * np.asarray(v2, float) + self.b_site[1] * np.asarray(v1, float)

    def b_to_a_distance(self, v1, v2) -> float:
        """Nominal distance (px) from a B column to its nearest A column."""
        corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
        site = np.array(self.b_site)
        vec = (site - corners) @ np.stack([np.asarray(v2, float), np.asarray(v1, float)])
        return float(np.hypot(*vec.T).min())

    def to_state(self) -> dict:
        return {"name": self.name, "b_site": np.asarray(self.b_site, dtype=float)}

    @classmethod
    def from_state(cls, state) -> "Motif":
        if isinstance(state, str):
            state = {"name": state, "b_site": (0.5, 0.5) if state == "[001]" else (0.0, 0.5)}
        return cls(name=str(state["name"]), b_site=tuple(np.asarray(state["b_site"], float).tolist()))

    def __str__(self) -> str:
        return self.name


def get_motif(projection, lattice=None) -> Motif:
    """The :class:`Motif` for a projection name (``"[001]"``, ``"[110]"``) or a Motif (returned as is).

    For ``"[110]"`` the B column sits half-way along the longer of the A lattice's vectors, so ``lattice``
    (:class:`~napari_causal_lattice.lattice.Lattice`) is needed to tell ``(0, 1/2)`` from ``(1/2, 0)``;
    without it B is taken along ``v1``.
    """
    if isinstance(projection, Motif):
        return projection
    if not isinstance(projection, str) or projection not in PROJECTIONS:
        raise ValueError(
            f"projection must be one of {', '.join(PROJECTIONS)} (or 'auto' where detection is offered), "
            f"got {projection!r}"
        )
    if projection == "[001]":
        return Motif("[001]", (0.5, 0.5))
    along_v2 = lattice is not None and lattice.spacings[1] > lattice.spacings[0]
    return Motif("[110]", (0.5, 0.0) if along_v2 else (0.0, 0.5))


def motif_from_offset(offset, v1, v2, *, aspect_tolerance: float = 0.2) -> Motif:
    """The motif of a detected B site, or a ValueError that names the unsupported projection.

    Parameters
    ----------
    offset : (2,) float
        Detected B offset in the A cell, fractions of ``(v1, v2)``, each rounded to 0 or 1/2.
    v1, v2 : (2,) arrays
        A lattice vectors (y, x) in px.
    aspect_tolerance : float
        A B site half-way along one edge is [110] when the A cell's long/short ratio is within this of sqrt 2
        and B sits on the long edge.

    Returns
    -------
    Motif
    """
    f1, f2 = (float(v) for v in offset)
    if f1 and f2:
        return Motif("[001]", (0.5, 0.5))
    len1, len2 = float(np.hypot(*v1)), float(np.hypot(*v2))
    along, other = (len1, len2) if f1 else (len2, len1)
    ratio = along / other
    if abs(ratio - np.sqrt(2.0)) > aspect_tolerance:
        raise ValueError(
            f"the B columns sit half-way along one A-A edge ({along:.1f} px), as in perovskite [110], but the A "
            f"cell is {along:.1f} x {other:.1f} px (ratio {ratio:.2f}; [110] has a long edge sqrt 2 = 1.41 times "
            f"the short one, with B on the long edge). This projection is not supported; supported: "
            f"{', '.join(PROJECTIONS)}. Check the zone axis, or give projection= and the A-A spacing explicitly"
        )
    return Motif("[110]", (0.0, 0.5) if f1 else (0.5, 0.0))


def unsupported_offset_message(offset, v1, v2) -> str:
    """Why two column sites offset by ``offset`` (fractions of ``v1, v2``, not half a cell) are refused."""
    cos = float(np.dot(v1, v2) / (np.hypot(*v1) * np.hypot(*v2)))
    angle = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    ratio = float(np.hypot(*v1) / np.hypot(*v2))
    hexagonal = abs(abs(angle - 90.0) - 30.0) < 5.0 and abs(ratio - 1.0) < 0.1
    kind = ("a hexagonal A lattice (as in perovskite [111])" if hexagonal
            else f"an A cell with a {angle:.0f} deg angle")
    return (
        f"the two kinds of atom columns are offset by {np.round(np.asarray(offset, float), 2).tolist()} cell on "
        f"{kind}, not by half a cell as the A and B sublattices of perovskite [001] or [110]: this projection is "
        f"not supported (supported: {', '.join(PROJECTIONS)}); check the zone axis, or give the A-A spacing "
        "explicitly"
    )
