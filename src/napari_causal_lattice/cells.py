"""Unit cells on the lattice grid and their 8 descriptors.

A unit cell is one B column and the 4 A columns of its A cell, ``A(i, j), A(i, j+1), A(i+1, j),
A(i+1, j+1)``; where B sits in that cell (centre for [001], half-way along the long edge for [110]) is the
columns' :class:`~napari_causal_lattice.motif.Motif`.  :func:`build_cells` indexes the A columns on the
lattice grid (robust to a rotated, slightly distorted lattice, to missing and to spurious columns), puts each
B column in its cell and computes the descriptors with
:func:`napari_causal_lattice.descriptors.compute_descriptors` (the same definition as the synthetic truth).

How the indexing works (:func:`~napari_causal_lattice.lattice.index_lattice` with mutual links): every A column
looks for its 4 nearest-neighbour A columns one lattice vector away (within 35 % of the shorter lattice
spacing), first with the global lattice vectors, then with its own vectors measured from the links already
found, so a lattice that bends or rotates slowly is followed.  A link
is kept only when both ends agree, so a spurious column next to a real one cannot steal its neighbours.  Grid
indices then propagate along the links (breadth first), so they do not drift across a distorted field of
view; islands cut off by a gap are attached with the lattice fitted on the largest connected part (and left
out when they do not sit on it).  Two columns claiming one grid index are resolved by distance: the one
whose links fit best wins.  A B column goes to the cell around it, found from its nearest indexed A column;
its cell is the one whose nominal B site is nearest, and a second B in one cell (the farther from the nominal
site) is excluded.  Cells whose columns are unreliable are flagged (see :func:`build_cells`).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._warn import warn
from .descriptors import SIGMA_DESCRIPTORS, cell_line_covariance, compute_descriptors, descriptor_sigmas, pixel_scale
from .error_correlation import ErrorCorrelation, estimate_x_correlation
from .lattice import (DESCRIPTORS, Lattice, LatticeIndex, check_calibration, check_expected_lattice, descriptor_units,
                      fit_lattice, index_lattice)
from .motif import Motif, get_motif
from .options import CellsOptions, takes_options
from .progress import report
from .provenance import make_provenance

#: Neighbour search radius, as a fraction of the shorter lattice spacing.
LINK_TOLERANCE = 0.35

#: Passes of the neighbour search (each one predicts with the lattice vectors measured in the last).
_LINK_PASSES = 4

#: Smallest group of linked A columns, cut off from the main lattice, that is still indexed.
_MIN_ISLAND = 4

_TABLE_INDEX = ("i", "j", "y", "x")


def _as_pixel_size(pixel_size):
    """Normalise a pixel size to None, a float (square pixels) or a ``(sy, sx)`` tuple of floats, in pm/px."""
    if pixel_size is None:
        return None
    arr = np.asarray(pixel_size, dtype=float)
    if arr.size not in (1, 2):
        raise ValueError(
            f"pixel_size must be one number (pm per px) or a (sy, sx) pair for non-square pixels, got {pixel_size!r}"
        )
    scale = pixel_scale(arr.reshape(-1) if arr.size == 2 else float(arr.reshape(-1)[0]))
    if arr.size == 1 or scale[0] == scale[1]:
        return float(scale[0])
    return (float(scale[0]), float(scale[1]))


@dataclass(frozen=True, eq=False)
class Cells:
    """Complete unit cells of one image, indexed on the lattice grid.

    Attributes
    ----------
    table : DataFrame
        One row per complete cell, sorted by ``(i, j)``: grid indices ``i`` (row, along ``v2``) and ``j``
        (column, along ``v1``) starting at 0, the B-column position ``y, x`` in px, the 8 descriptors
        :data:`~napari_causal_lattice.lattice.DESCRIPTORS` in the units of :attr:`units`, their propagated
        1-sigma uncertainties ``sigma_a, sigma_b, sigma_alpha, sigma_Px, sigma_Py`` (same unit as the
        descriptor) and ``flag`` (str: "" for a good cell, else the reason, see :func:`build_cells`; flagged
        cells have NaN descriptors).  Tables made before these existed lack the extra columns.
    corners : (n, 4) int array
        Indices into the columns of the A corners ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)``.
    b_index : (n,) int array
        Index into the columns of each cell's B column.
    lattice : Lattice
        Grid ``(i, j)`` -> nominal B position (y, x) in px: the A lattice fitted on all indexed A columns,
        shifted by the motif's B site (half a cell along both vectors for [001]), with cell (0, 0) at its
        origin.  ``lattice.affine`` places the maps of :meth:`maps` on the image; on curved lattices place
        them with :mod:`napari_causal_lattice.placement` instead.
    grid_shape : (int, int)
        ``(ni, nj)`` = (max i + 1, max j + 1).
    units : dict
        Descriptor name -> unit (pm, pm^2, deg, counts; px when the pixel size is unknown).
    pixel_size : float, (sy, sx) tuple or None
        Pixel size in pm/px used for the descriptors; None when lengths are in px.
    frame : {"lattice", "image"}
        Frame of Px, Py (see :func:`~napari_causal_lattice.descriptors.compute_descriptors`).
    n_excluded : int
        B columns without a complete cell (a missing A corner, outside the indexed lattice, or a second B
        column in an already occupied cell).
    provenance : dict
        How the cells were made (see :func:`~napari_causal_lattice.provenance.make_provenance`).
    motif : Motif
        The crystal projection the cells were built for (default [001]).
    """

    table: pd.DataFrame
    corners: np.ndarray
    b_index: np.ndarray
    lattice: Lattice
    grid_shape: tuple[int, int]
    units: dict
    pixel_size: float | tuple[float, float] | None
    frame: str
    n_excluded: int
    provenance: dict = field(default_factory=dict)
    motif: Motif | None = None

    def __post_init__(self):
        object.__setattr__(self, "motif", get_motif(self.motif or "[001]", self.lattice))

    def __len__(self) -> int:
        return len(self.table)

    def flag_counts(self) -> dict[str, int]:
        """Number of flagged cells per reason (only reasons that occur; empty when every cell is good)."""
        if "flag" not in self.table.columns:
            return {}
        counts = self.table["flag"].astype(str).value_counts()
        return {str(reason): int(n) for reason, n in counts.items() if reason}

    def __repr__(self) -> str:
        ni, nj = self.grid_shape
        flagged = sum(self.flag_counts().values())
        return (
            f"Cells({len(self)} {self.motif.name} cells on a {ni} x {nj} grid, {flagged} flagged, "
            f"{self.n_excluded} B columns excluded, lengths in {self.length_unit}, frame {self.frame!r})"
        )

    @property
    def length_unit(self) -> str:
        """Unit of a, b, Px, Py (``"pm"`` or ``"px"``)."""
        return self.units["a"]

    def maps(self) -> dict[str, np.ndarray]:
        """Each descriptor on the cell grid.

        Returns
        -------
        dict
            Descriptor name -> (ni, nj) float array, NaN where there is no complete cell.  Pixel ``[i, j]``
            sits at image position ``self.lattice.to_image((i, j))`` (px); place a map on the image with
            ``self.lattice.affine``.
        """
        i = self.table["i"].to_numpy()
        j = self.table["j"].to_numpy()
        out = {}
        for name in DESCRIPTORS:
            grid = np.full(self.grid_shape, np.nan)
            grid[i, j] = self.table[name].to_numpy()
            out[name] = grid
        return out

    def to_frame(self) -> pd.DataFrame:
        """The table with the unit in every column header, positions also in pm.

        Columns: ``i``, ``j``, ``y [px]``, ``x [px]``, then ``y [pm]``, ``x [pm]`` when the pixel size is
        known (non-square pixels scale y and x separately), then each descriptor as ``"name [unit]"``
        (e.g. ``"Px [pm]"``, ``"alpha [deg]"``), then ``"sigma_<name> [unit]"`` and ``flag`` when present.
        """
        out = pd.DataFrame({"i": self.table["i"], "j": self.table["j"]})
        out["y [px]"] = self.table["y"]
        out["x [px]"] = self.table["x"]
        if self.pixel_size is not None:
            sy, sx = pixel_scale(self.pixel_size)
            out["y [pm]"] = self.table["y"] * sy
            out["x [pm]"] = self.table["x"] * sx
        for name in DESCRIPTORS:
            out[f"{name} [{self.units[name]}]"] = self.table[name]
        for name in SIGMA_DESCRIPTORS:
            if f"sigma_{name}" in self.table.columns:
                out[f"sigma_{name} [{self.units[name]}]"] = self.table[f"sigma_{name}"]
        if "flag" in self.table.columns:
            out["flag"] = self.table["flag"]
        return out

    def to_csv(self, path) -> Path:
        """Write :meth:`to_frame` as CSV (no index column) and return the path."""
        path = Path(path)
        self.to_frame().to_csv(path, index=False)
        return path

    def to_state(self) -> dict:
        """Nested dict of arrays and plain values; :meth:`from_state` rebuilds an identical object."""
        pixel_size = self.pixel_size
        if isinstance(pixel_size, tuple):
            pixel_size = np.asarray(pixel_size, dtype=float)
        return {
            "table": {
                "columns": [str(c) for c in self.table.columns],
                "data": {str(c): self.table[c].to_numpy().copy() for c in self.table.columns},
            },
            "corners": self.corners.copy(),
            "b_index": self.b_index.copy(),
            "lattice": self.lattice.to_state(),
            "grid_shape": np.asarray(self.grid_shape, dtype=np.int64),
            "units": dict(self.units),
            "pixel_size": pixel_size,
            "frame": self.frame,
            "n_excluded": int(self.n_excluded),
            "provenance": json.dumps(self.provenance),
            "motif": self.motif.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "Cells":
        """Rebuild from :meth:`to_state` output."""
        columns = list(state["table"]["columns"])
        data = state["table"]["data"]
        table = pd.DataFrame({c: np.asarray(data[c]) for c in columns}, columns=columns)
        prov = state.get("provenance", "{}")
        pixel_size = state["pixel_size"]
        if pixel_size is not None:
            arr = np.asarray(pixel_size, dtype=float).reshape(-1)
            pixel_size = float(arr[0]) if arr.size == 1 else (float(arr[0]), float(arr[1]))
        return cls(
            table=table,
            corners=np.asarray(state["corners"], dtype=np.int64),
            b_index=np.asarray(state["b_index"], dtype=np.int64),
            lattice=Lattice.from_state(state["lattice"]),
            grid_shape=tuple(int(v) for v in np.asarray(state["grid_shape"]).reshape(-1)),
            units=dict(state["units"]),
            pixel_size=pixel_size,
            frame=str(state["frame"]),
            n_excluded=int(state["n_excluded"]),
            provenance=json.loads(prov) if isinstance(prov, str) else dict(prov),
            motif=Motif.from_state(state["motif"]) if state.get("motif") is not None else None,
        )


class _ColumnData(NamedTuple):
    """The checked arrays of a Columns-like object (one row per column)."""

    positions: np.ndarray  #: (N, 2) yx px
    labels: np.ndarray  #: (N,) "A" / "B"
    intensity: np.ndarray  #: (N,)
    lattice: Lattice  #: A lattice estimate
    quality: np.ndarray  #: (N,) fit R^2 (1 where unknown)
    sigma: np.ndarray  #: (N,) position sigma px per axis (NaN where unknown)
    motif: Motif  #: crystal projection
    faint: np.ndarray  #: (N,) bool, column barely above the noise (all False where unknown)
    sigma_axes: np.ndarray  #: (N, 2) own position sigma px along (y, x) (``sigma`` on both without it)
    width: np.ndarray  #: (N,) Gaussian width px (NaN where unknown)
    line_variance: np.ndarray | None  #: (H,) px^2 line shift shared by a row's columns, or None


def _check_columns(columns) -> _ColumnData:
    """The arrays of a Columns-like object, checked; quality, sigma and motif default to 1, NaN and [001]."""
    missing = [name for name in ("positions", "sublattice", "intensity", "lattice") if not hasattr(columns, name)]
    if missing:
        raise TypeError(
            f"build_cells needs a Columns object (from find_columns or columns_from_positions); "
            f"got {type(columns).__name__} without {', '.join(missing)}"
        )
    positions = np.asarray(columns.positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"column positions must be an (N, 2) array of (y, x) in px, got shape {positions.shape}")
    if not np.all(np.isfinite(positions)):
        raise ValueError(
            f"{int((~np.isfinite(positions)).any(axis=1).sum())} column positions are NaN or infinite; "
            "remove or re-fit those columns before building cells"
        )
    n = len(positions)
    if columns.sublattice is None:
        raise ValueError("the columns have no A/B sublattice labels; classify them into A and B sites first")
    labels = np.asarray(columns.sublattice).astype(str)
    if labels.shape != (n,):
        raise ValueError(f"sublattice must hold one 'A'/'B' label per column ({n}), got shape {labels.shape}")
    unknown = sorted(set(labels.tolist()) - {"A", "B"})
    if unknown:
        raise ValueError(
            f"sublattice labels must be 'A' or 'B', found {unknown[:5]}; classify the columns into A and B sites first"
        )
    n_a, n_b = int(np.sum(labels == "A")), int(np.sum(labels == "B"))
    if n_a == 0 or n_b == 0:
        have, lack = ("B", "A") if n_a == 0 else ("A", "B")
        raise ValueError(
            f"only {have} columns were given ({max(n_a, n_b)}), no {lack} columns: a unit cell needs a B column "
            "surrounded by 4 A columns; check the A/B classification (or the A and B layers)"
        )
    intensity = np.asarray(columns.intensity, dtype=float)
    if intensity.shape != (n,):
        raise ValueError(f"intensity must have one value per column ({n}), got shape {intensity.shape}")
    lattice = columns.lattice
    if not isinstance(lattice, Lattice):
        raise TypeError(f"columns.lattice must be a Lattice (the A-sublattice estimate), got {type(lattice).__name__}")
    quality = np.asarray(getattr(columns, "quality", None) if getattr(columns, "quality", None) is not None
                         else np.ones(n), dtype=float)
    sigma = np.asarray(getattr(columns, "sigma", None) if getattr(columns, "sigma", None) is not None
                       else np.full(n, np.nan), dtype=float)
    motif = get_motif(getattr(columns, "motif", None) or "[001]", lattice)
    faint = getattr(columns, "faint", None)
    faint = np.zeros(n, dtype=bool) if faint is None else np.asarray(faint, dtype=bool).reshape(n)
    axes = getattr(columns, "sigma_axes", None)
    axes = np.repeat(sigma.reshape(n, 1), 2, axis=1) if axes is None else np.asarray(axes, dtype=float).reshape(n, 2)
    width = getattr(columns, "width", None)
    width = np.full(n, np.nan) if width is None else np.asarray(width, dtype=float).reshape(n)
    line_variance = getattr(columns, "line_variance", None)
    return _ColumnData(positions, labels, intensity, lattice, quality.reshape(n), sigma.reshape(n), motif, faint,
                       axes, width, line_variance)


def _index_a_columns(a_pos: np.ndarray, lattice: Lattice, progress, cancel):
    """Grid indices (n_a, 2) of the A columns (-1 where not indexed), the indexed mask and the fitted A lattice.

    The columns are indexed patch by patch with mutual links (:func:`~napari_causal_lattice.lattice.
    index_lattice`); the largest patch sets the grid, smaller ones join it where they sit on its lattice, and of
    two columns claiming one grid index the one of the larger patch, then the one whose links fit best, is kept.
    """
    index = index_lattice(a_pos, lattice.v1, lattice.v2, tolerance=LINK_TOLERANCE, mutual=True,
                          passes=_LINK_PASSES, root="best_fit")
    report(progress, 1, 4, cancel)
    ij, assigned = _join_patches(a_pos, index, lattice)
    report(progress, 2, 4, cancel)
    _drop_duplicates(ij, assigned, index)
    return ij, assigned, fit_lattice(a_pos[assigned], ij[assigned])


def _join_patches(a_pos: np.ndarray, index: LatticeIndex, lattice: Lattice):
    """Grid indices (n_a, 2) on the largest patch's grid (-1 where not indexed) and the indexed mask: patches of
    at least ``_MIN_ISLAND`` columns, largest first, each shifted onto the lattice fitted on the largest (left
    out when it does not sit on it)."""
    n = len(a_pos)
    sizes = np.bincount(index.component)
    ij = np.full((n, 2), -1, dtype=np.int64)
    assigned = np.zeros(n, dtype=bool)
    fitted = None
    for c in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(index.component == c)
        if sizes[c] < _MIN_ISLAND:
            break
        idx = index.ij[members]
        if fitted is None:
            if np.ptp(idx[:, 0]) < 1 or np.ptp(idx[:, 1]) < 1:
                break  # a single row or column of A columns: no 2D lattice to index on
            offset = np.zeros(2, dtype=np.int64)
            fitted = fit_lattice(a_pos[members], idx)
        else:
            shift = np.median(fitted.to_grid(a_pos[members]) - idx, axis=0)
            if np.any(np.abs(shift - np.round(shift)) > 0.3):
                continue  # the island does not sit on the main lattice: leave it out rather than guess
            offset = np.round(shift).astype(np.int64)
        ij[members] = idx + offset
        assigned[members] = True
    if fitted is None:
        raise ValueError(
            "could not index the A columns on a lattice: no 2 x 2 block of A columns one lattice vector apart "
            f"(lattice vectors v1={np.round(lattice.v1, 2).tolist()}, v2={np.round(lattice.v2, 2).tolist()} px); "
            "check the lattice estimate and the A/B classification"
        )
    return ij, assigned


def _drop_duplicates(ij, assigned, index: LatticeIndex) -> None:
    """Of columns claiming one grid index keep the one of the larger patch, then the one whose links fit best;
    the others are marked not indexed (``ij`` -1, ``assigned`` False, in place)."""
    sizes = np.bincount(index.component)
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes))
    idx_rows = np.flatnonzero(assigned)
    order = idx_rows[np.lexsort((index.misfit[idx_rows], rank[index.component[idx_rows]], ij[idx_rows, 1],
                                 ij[idx_rows, 0]))]
    keys = ij[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    ij[order[~first]] = -1
    assigned[order[~first]] = False


#: Reasons a cell can be flagged, in the order they are checked (a cell gets the first that applies).
FLAG_REASONS: tuple[str, ...] = ("faint", "fit", "b_near_a", "b_off_lattice", "outlier")

#: Descriptors tested for outliers against their grid neighbours.
_OUTLIER_DESCRIPTORS = ("a", "b", "alpha", "Px", "Py")

#: The outlier test needs at least this many cells with 3 or more usable neighbours (for a stable spread).
_MIN_OUTLIER_CELLS = 12


def _assign_b(b_pos, a_pos, ij, assigned, fitted: Lattice, motif: Motif):
    """Each B column's cell and its 4 A corners; one B per cell.

    A B column belongs to the cell whose nominal B site (corner ``A(i, j)`` plus the motif's B offset) is
    nearest, found from the B column's nearest indexed A column so a bending lattice is followed.

    Returns
    -------
    keep : (k,) int array
        B rows (into ``b_pos``) that have a complete cell, at most one per cell (the one nearest its site).
    corner_a : (nb, 4) int array
        Rows of ``a_pos`` of each B column's corners (-1 where missing).
    cell_ij : (nb, 2) int array
        Grid index of each B column's cell.
    """
    from scipy.spatial import cKDTree

    indexed = np.flatnonzero(assigned)
    _, near = cKDTree(a_pos[indexed]).query(b_pos)
    anchor = indexed[near]
    frac = fitted.to_grid(b_pos) - fitted.to_grid(a_pos[anchor])
    cell_ij = ij[anchor] + np.rint(frac - np.asarray(motif.b_site)).astype(np.int64)

    lo = ij[assigned].min(axis=0)
    shape = ij[assigned].max(axis=0) - lo + 1
    lookup = np.full(tuple(shape), -1, dtype=np.int64)
    lookup[tuple((ij[assigned] - lo).T)] = indexed
    corner_steps = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    grid = cell_ij[:, None, :] + corner_steps[None] - lo
    inside = np.all((grid >= 0) & (grid < shape), axis=2)
    corner_a = np.full((len(b_pos), 4), -1, dtype=np.int64)
    corner_a[inside] = lookup[grid[..., 0][inside], grid[..., 1][inside]]
    complete = np.all(corner_a >= 0, axis=1)
    quad = a_pos[np.where(corner_a >= 0, corner_a, 0)]
    dist = np.hypot(*(b_pos - motif.nominal_b(quad)).T)
    keep = np.flatnonzero(complete)
    keep = keep[np.lexsort((dist[keep], cell_ij[keep, 1], cell_ij[keep, 0]))]
    if len(keep):
        first = np.ones(len(keep), dtype=bool)
        first[1:] = np.any(cell_ij[keep][1:] != cell_ij[keep][:-1], axis=1)
        keep = keep[first]
    return keep, corner_a, cell_ij


def _robust_scale(values: np.ndarray) -> float:
    """1.4826 x median absolute deviation of the finite values (0 when there are none)."""
    values = values[np.isfinite(values)]
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def _neighbour_outliers(grid_ij, table: pd.DataFrame, usable, threshold: float) -> np.ndarray:
    """Cells (bool, one per row) whose a, b, alpha, Px or Py is more than ``threshold`` robust standard
    deviations from the median of its (up to 8) usable grid neighbours; cells with fewer than 3 are not tested,
    and nothing is when fewer than ``_MIN_OUTLIER_CELLS`` cells can be.
    """
    grid_ij = grid_ij - grid_ij.min(axis=0)
    shape = tuple(grid_ij.max(axis=0) + 3)
    out = np.zeros(len(table), dtype=bool)
    for name in _OUTLIER_DESCRIPTORS:
        grid = np.full(shape, np.nan)
        grid[grid_ij[usable, 0] + 1, grid_ij[usable, 1] + 1] = table[name].to_numpy()[usable]
        stack = np.stack([grid[1 + di : shape[0] - 1 + di, 1 + dj : shape[1] - 1 + dj]
                          for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj])
        count = np.isfinite(stack).sum(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods
            median = np.nanmedian(stack, axis=0)
        median = np.where(count >= 3, median, np.nan)[grid_ij[:, 0], grid_ij[:, 1]]
        residual = table[name].to_numpy() - median
        if np.isfinite(residual[usable]).sum() < _MIN_OUTLIER_CELLS:
            continue
        scale = _robust_scale(residual[usable])
        if scale > 0:
            out |= np.abs(residual) > threshold * scale
    return out


def _quality_flags(columns: _ColumnData, table: pd.DataFrame, b_rows, corners, grid_ij, a_indexed_pos,
                   fitted: Lattice, motif: Motif, thresholds: dict) -> np.ndarray:
    """One reason per cell (object array of str, "" when good), checked in the order of :data:`FLAG_REASONS`.

    ``b_rows`` (n,) and ``corners`` (n, 4) index the columns; ``table`` holds the unflagged descriptors.
    """
    from scipy.spatial import cKDTree

    members = np.column_stack([corners, b_rows])
    pitch_px = min(fitted.spacings)
    bad_fit = np.any(columns.quality[members] < thresholds["min_quality"], axis=1)
    bad_fit |= np.any(columns.sigma[members] > thresholds["max_sigma"] * pitch_px, axis=1)
    d_ab = motif.b_to_a_distance(fitted.v1, fitted.v2)
    near_a = cKDTree(a_indexed_pos).query(columns.positions[b_rows])[0] < thresholds["min_b_distance"] * d_ab
    p = np.hypot(table["Px"].to_numpy(), table["Py"].to_numpy())
    off = p > thresholds["max_offset"] * np.minimum(table["a"].to_numpy(), table["b"].to_numpy())
    faint = np.any(columns.faint[members], axis=1)
    flags = np.full(len(table), "", dtype=object)
    for reason, hit in (("faint", faint), ("fit", bad_fit), ("b_near_a", near_a), ("b_off_lattice", off)):
        flags[(flags == "") & hit] = reason
    outlier = _neighbour_outliers(grid_ij, table, flags == "", thresholds["outlier_threshold"])
    flags[(flags == "") & outlier] = "outlier"
    return flags


def _x_error_correlation(data: _ColumnData, corners, b_index, cell_ij) -> ErrorCorrelation:
    """The correlation of neighbouring columns' own x errors (:mod:`~napari_causal_lattice.error_correlation`)."""
    return estimate_x_correlation(data.positions, data.sigma_axes[:, 1], corners, b_index, cell_ij, data.motif,
                                  data.lattice.v1, data.lattice.v2, width=data.width,
                                  line_variance=data.line_variance)


def _neighbour_x_covariance(data: _ColumnData, members, correlation: ErrorCorrelation):
    """(n, 5, 5) px^2 covariance of the x errors of each cell's columns ``members`` from the correlation of
    neighbouring columns, or None when no class is correlated."""
    if not correlation.correlated:
        return None
    return correlation.cell_covariance(data.sigma_axes[:, 1], members)


def _descriptor_table(data: _ColumnData, corners, b_index, cell_ij, pixel_size, frame,
                      correlation: ErrorCorrelation) -> pd.DataFrame:
    """Cell table (i, j, y, x, the 8 descriptors, ``sigma_<name>``) before quality gating, unsorted."""
    corner_int = data.intensity[corners]
    b_int = data.intensity[b_index]
    if not (np.all(np.isfinite(corner_int)) and np.all(np.isfinite(b_int))):
        bad = int(np.sum(~np.isfinite(corner_int).all(axis=1) | ~np.isfinite(b_int)))
        raise ValueError(
            f"{bad} unit cells use columns whose intensity is NaN or infinite; re-measure the intensities "
            "(e.g. columns too close to the image border) or remove those columns"
        )
    geometry = {"pixel_size": pixel_size, "frame": frame, "v1": data.lattice.v1, "motif": data.motif}
    values = compute_descriptors(data.positions[corners], data.positions[b_index], corner_int, b_int, **geometry)
    members = np.concatenate([corners, b_index[:, None]], axis=1)
    line_cov = (None if data.line_variance is None else
                cell_line_covariance(data.positions, data.width, data.line_variance, members))
    sigmas = descriptor_sigmas(data.positions[corners], data.positions[b_index], data.sigma_axes[corners],
                               data.sigma_axes[b_index], line_cov=line_cov,
                               neighbour_cov=_neighbour_x_covariance(data, members, correlation), **geometry)
    cell_grid = cell_ij - cell_ij.min(axis=0)
    table = pd.DataFrame({"i": cell_grid[:, 0], "j": cell_grid[:, 1], "y": data.positions[b_index, 0],
                          "x": data.positions[b_index, 1]})
    return pd.concat([table, values, sigmas], axis=1)


@takes_options(CellsOptions)
def build_cells(
    columns,
    *,
    pixel_size=None,
    frame: str = "lattice",
    min_quality: float = 0.3,
    max_sigma: float = 0.05,
    min_b_distance: float = 0.5,
    max_offset: float = 0.25,
    outlier_threshold: float = 6.0,
    expected_lattice: float | None = None,
    lattice_tolerance: float = 0.05,
    progress=None,
    cancel=None,
) -> Cells:
    """Index the columns on the lattice grid, form unit cells, compute their 8 descriptors and gate them.

    Where B sits in a cell comes from ``columns.motif`` (:mod:`napari_causal_lattice.motif`): the centre for
    [001], half-way along the long edge for [110].  Each cell also gets the propagated 1-sigma uncertainty
    ``sigma_<name>`` of a, b, alpha, Px, Py (from the columns' own per-axis sigmas ``columns.sigma_axes``, or
    ``columns.sigma``, the x covariance of columns on the same scan lines, ``columns.line_variance``, and the
    correlation of neighbouring columns' x errors measured on the columns themselves,
    :func:`~napari_causal_lattice.error_correlation.estimate_x_correlation`, recorded as
    ``provenance["params"]["x_correlation"]``) and a quality ``flag``: "" when good, else the first reason that
    applies,

    * ``"faint"``: one of its 5 columns is ``faint`` (``columns.faint``: peak below ``faint_threshold`` x the
      local background noise in :func:`~napari_causal_lattice.columns.find_columns`), so its position is noise;
    * ``"fit"``: one of its 5 columns has a fit R^2 below ``min_quality`` or a position sigma above
      ``max_sigma`` of the shorter lattice spacing;
    * ``"b_near_a"``: the B column is closer to an indexed A column than ``min_b_distance`` times the nominal
      A-B distance (a B detection on an A column's tail or on an A column);
    * ``"b_off_lattice"``: ``|P|`` is more than ``max_offset`` of the shorter cell edge (a B column in the
      wrong cell, a half-cell mistake);
    * ``"outlier"``: a, b, alpha, Px or Py is more than ``outlier_threshold`` robust standard deviations (of
      all cells' residuals) from the median of its grid neighbours.

    Flagged cells stay in the table with NaN descriptors and sigmas (LiNGAM and sliding windows drop them);
    :meth:`Cells.flag_counts` counts them by reason.

    Parameters
    ----------
    columns : Columns
        Atom columns with ``positions`` (N, 2) yx in px, ``sublattice`` (N,) "A"/"B", ``intensity`` (N,),
        ``lattice`` (the A-sublattice estimate; only its vectors are used, as the nearest-neighbour steps),
        ``pixel_size`` and optionally ``quality`` (N,), ``sigma`` (N,) px and ``motif`` (default [001]).
    pixel_size : float or (sy, sx) pair, optional
        Pixel size in pm/px (a pair for non-square pixels).  Defaults to ``columns.pixel_size``; when both
        are None, lengths stay in px and the units say so.  A given one that puts the lattice parameter
        outside 150-1000 pm gives a warning naming the likely unit mistake.
    frame : {"lattice", "image"}
        ``"lattice"``: Px along lattice vector 1 (``columns.lattice.v1``), Py perpendicular to it;
        ``"image"``: Px along image x, Py along image y (down).
    min_quality, max_sigma, min_b_distance, max_offset, outlier_threshold : float
        Quality-gate thresholds, see above.
    expected_lattice : float, optional
        The lattice parameter (pm) the user expects (the long cell edge: a0 for [001] and [110]).  When the
        median long edge of the good cells differs by more than ``lattice_tolerance`` (fraction), a
        :class:`~napari_causal_lattice.lattice.CalibrationWarning` is given and its text recorded in
        ``provenance["notes"]``.  See :func:`calibrate_pixel_size` to fix the pixel size from a reference region.
    progress : callable, optional
        ``progress(done, total)``.
    cancel : object with ``is_set()``, optional
        Stops with :class:`~napari_causal_lattice.progress.Cancelled` when set.

    Returns
    -------
    Cells
        One row per B column that has all 4 A corners; grid indices start at 0.

    Raises
    ------
    TypeError
        If ``columns`` is not a Columns-like object.
    ValueError
        If the columns lack A/B labels, hold a single sublattice, or no B column has 4 A corners.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from napari_causal_lattice.lattice import Lattice
    >>> lat = Lattice(origin=(10, 10), v1=(0, 20), v2=(20, 0))
    >>> a = lat.to_image(np.stack(np.meshgrid(range(3), range(3), indexing="ij"), -1).reshape(-1, 2))
    >>> b = lat.to_image(np.stack(np.meshgrid([0.5, 1.5], [0.5, 1.5], indexing="ij"), -1).reshape(-1, 2))
    >>> cols = SimpleNamespace(positions=np.vstack([a, b]), sublattice=np.array(["A"] * 9 + ["B"] * 4),
    ...                        intensity=np.ones(13), lattice=lat, pixel_size=10.0, provenance={})
    >>> cells = build_cells(cols)
    >>> cells.grid_shape, cells.table["a"].round(6).tolist(), cells.flag_counts()
    ((2, 2), [200.0, 200.0, 200.0, 200.0], {})
    """
    data = _check_columns(columns)
    pixel_size, own = _checked_pixel_size(columns, pixel_size, frame)
    thresholds = {"min_quality": float(min_quality), "max_sigma": float(max_sigma),
                  "min_b_distance": float(min_b_distance), "max_offset": float(max_offset),
                  "outlier_threshold": float(outlier_threshold)}
    report(progress, 0, 4, cancel)
    found = _complete_cells(data, pixel_size, own, progress, cancel)
    report(progress, 3, 4, cancel)
    corners, b_index = found.corners, found.b_index
    correlation = _x_error_correlation(data, corners, b_index, found.cell_ij)
    table = _descriptor_table(data, corners, b_index, found.cell_ij, pixel_size, frame, correlation)
    flags = _quality_flags(data, table, b_index, corners, found.cell_ij, found.a_indexed, found.fitted, data.motif,
                           thresholds)
    table, order = _gated_in_grid_order(table, flags)
    units = descriptor_units(pixel_size)
    provenance = make_provenance(
        "build_cells",
        {"pixel_size": pixel_size, "frame": frame, "link_tolerance": LINK_TOLERANCE,
         "projection": data.motif.name, **thresholds, "x_correlation": correlation.summary()},
        inputs={"columns": getattr(columns, "provenance", None) or {}},
    )
    notes = _lattice_notes(table, units, expected_lattice, lattice_tolerance)
    if notes:
        provenance["notes"] = notes
    report(progress, 4, 4, cancel)
    origin_ij = found.cell_ij.min(axis=0) + np.asarray(data.motif.b_site)
    return Cells(
        table=table,
        corners=corners[order],
        b_index=b_index[order],
        lattice=Lattice(origin=found.fitted.to_image(origin_ij), v1=found.fitted.v1, v2=found.fitted.v2),
        grid_shape=(int(table["i"].max()) + 1, int(table["j"].max()) + 1),
        units=units,
        pixel_size=pixel_size,
        frame=frame,
        n_excluded=found.n_excluded,
        provenance=provenance,
        motif=data.motif,
    )


def _checked_pixel_size(columns, pixel_size, frame):
    """The pixel size :func:`build_cells` uses (normalised, see :func:`_as_pixel_size`) and the columns' own;
    ValueError for an unknown ``frame``."""
    if frame not in ("lattice", "image"):
        raise ValueError(f"frame must be 'lattice' (Px along lattice vector 1) or 'image' (Px along x), got {frame!r}")
    own = getattr(columns, "pixel_size", None)
    return _as_pixel_size(own if pixel_size is None else pixel_size), own


class _CompleteCells(NamedTuple):
    """The complete cells found by :func:`_complete_cells`, one row per cell (in no particular order)."""

    corners: np.ndarray  #: (n, 4) column indices of the A corners
    b_index: np.ndarray  #: (n,) column index of the B column
    cell_ij: np.ndarray  #: (n, 2) grid index of the cell
    fitted: Lattice  #: the A lattice fitted on the indexed A columns
    a_indexed: np.ndarray  #: (n_indexed, 2) yx px of the indexed A columns
    n_excluded: int  #: B columns without a complete cell


def _complete_cells(data: _ColumnData, pixel_size, own, progress, cancel) -> _CompleteCells:
    """Index the A columns on the grid and give each B column its cell and 4 A corners (a pixel size other than
    the columns' own is checked against the plausible lattice parameters); ValueError when no cell is complete."""
    a_cols = np.flatnonzero(data.labels == "A")
    b_cols = np.flatnonzero(data.labels == "B")
    a_pos, b_pos = data.positions[a_cols], data.positions[b_cols]
    ij, assigned, fitted = _index_a_columns(a_pos, data.lattice, progress, cancel)
    if pixel_size is not None and _as_pixel_size(own) != pixel_size:
        check_calibration(min(fitted.spacings) * float(np.mean(pixel_scale(pixel_size))))
    keep, corner_a, cell_ij = _assign_b(b_pos, a_pos, ij, assigned, fitted, data.motif)
    if len(keep) == 0:
        raise ValueError(
            f"no complete unit cell: none of the {len(b_pos)} B columns has all 4 A corners "
            f"({int(assigned.sum())} of {len(a_pos)} A columns were indexed on the lattice); check the A/B "
            "classification and that the field of view holds at least 2 x 2 A columns around a B column"
        )
    return _CompleteCells(a_cols[corner_a[keep]], b_cols[keep], cell_ij[keep], fitted, a_pos[assigned],
                          int(len(b_pos) - len(keep)))


def _gated_in_grid_order(table: pd.DataFrame, flags):
    """The cell table with NaN descriptors and sigmas where flagged, the ``flag`` column, sorted by (i, j); and
    the order (n,) it was sorted in."""
    gated = list(DESCRIPTORS) + [f"sigma_{name}" for name in SIGMA_DESCRIPTORS]
    table.loc[flags != "", gated] = np.nan
    table["flag"] = flags
    order = np.lexsort((table["j"].to_numpy(), table["i"].to_numpy()))
    return table.iloc[order].reset_index(drop=True), order


class AbsolutePolarizationWarning(UserWarning):
    """A mean polarization far from zero without a reference: it may be the instrument, not the crystal."""


def _long_edge(table: pd.DataFrame, rows=None) -> float:
    """Median long cell edge (max of a, b per cell) over the good cells (within ``rows``), in the table's unit."""
    edge = np.fmax(table["a"].to_numpy(dtype=float), table["b"].to_numpy(dtype=float))
    good = np.isfinite(edge) & ((table["flag"].astype(str).to_numpy() == "") if "flag" in table.columns else True)
    if rows is not None:
        good &= rows
    if not good.any():
        raise ValueError("no good cell (unflagged, finite a and b) to measure the lattice parameter on")
    return float(np.median(edge[good]))


def _lattice_notes(table, units, expected_lattice, tolerance) -> list:
    """[warning text] when the lattice parameter is off the expected one (CalibrationWarning given), else []."""
    if expected_lattice is None:
        return []
    if units["a"] != "pm":
        raise ValueError("expected_lattice (pm) needs a pixel size: give pixel_size= (pm per px)")
    text = check_expected_lattice(_long_edge(table), expected_lattice, tolerance=tolerance)
    return [text] if text else []


def calibrate_pixel_size(cells: Cells, reference, known_lattice: float) -> float:
    """Pixel size (pm/px) that makes a reference region of known lattice parameter read right.

    Microscopists use a substrate (or any region of known structure) as an internal standard: the median long
    cell edge (a0 for [001] and [110]) of the reference's good cells is set to ``known_lattice``.

    Parameters
    ----------
    cells : Cells
    reference : array-like
        The reference region, see :func:`reference_cells` (cell mask, cell indices or image mask).
    known_lattice : float
        Its lattice parameter in pm.

    Returns
    -------
    float
        The corrected pixel size in pm/px (pass it to ``find_columns`` / ``build_cells``).
    """
    known = float(known_lattice)
    if not np.isfinite(known) or known <= 0:
        raise ValueError(f"known_lattice must be a positive length in pm, got {known_lattice!r}")
    if isinstance(cells.pixel_size, tuple):
        raise ValueError("calibrate_pixel_size needs square pixels (one pixel size)")
    measured = _long_edge(cells.table, reference_cells(cells, reference))  # pm, or px without a pixel size
    measured_px = measured / cells.pixel_size if cells.pixel_size is not None else measured
    return known / measured_px


@dataclass(frozen=True)
class MeanPolarization:
    """Cell-averaged polarization with a statistical and a systematic uncertainty.

    Attributes
    ----------
    mean : (2,) float array
        Mean ``(Px, Py)`` over the unflagged cells, pm; with a reference region, the mean of the cells outside
        it minus the reference's mean (all cells when the reference holds every cell).
    sigma_stat : (2,) float array
        1-sigma statistical uncertainty of the mean, pm: ``sqrt(sum sigma_P^2) / n`` from the propagated
        per-cell uncertainties (with a reference, that of the reference's mean added in quadrature).
    sigma_sys : (2,) float array
        1-sigma systematic uncertainty, pm: half the range of the (referenced) means over the fit models given
        as ``variants`` or made by :func:`~napari_causal_lattice.columns.fit_variants` (0 without variants).
    n_cells : int
        Cells averaged (outside the reference when there is one).
    reference_mean : (2,) float array or None
        Mean ``(Px, Py)`` of the reference region, pm (subtracted from ``mean``); None without a reference.
    n_reference : int
        Cells in the reference region.
    variants : tuple of str
        Names of the fit-model variants behind ``sigma_sys``.
    note : str
        "" or what the user should know (no variants, an unreferenced offset).
    """

    mean: np.ndarray
    sigma_stat: np.ndarray
    sigma_sys: np.ndarray
    n_cells: int
    reference_mean: np.ndarray | None = None
    n_reference: int = 0
    variants: tuple = ()
    note: str = ""

    @property
    def sigma(self) -> np.ndarray:
        """(2,) combined 1-sigma uncertainty (statistical and systematic in quadrature), pm."""
        return np.hypot(self.sigma_stat, self.sigma_sys)

    def consistent_with_zero(self, n_sigma: float = 3.0) -> bool:
        """True when both components lie within ``n_sigma`` combined sigma of zero."""
        return bool(np.all(np.abs(self.mean) <= n_sigma * self.sigma))


def _good_p(cells: Cells) -> np.ndarray:
    """(n,) bool: unflagged cells with finite Px, Py and their sigmas."""
    table = cells.table
    names = ["Px", "Py", "sigma_Px", "sigma_Py"]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise ValueError(f"The cells have no {missing} columns; build them with build_cells on fitted columns.")
    good = np.all(np.isfinite(table[names].to_numpy(dtype=float)), axis=1)
    if "flag" in table.columns:
        good &= table["flag"].astype(str).to_numpy() == ""
    return good


def _mean_p(cells: Cells, rows=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean (2,) Px, Py, its statistical sigma (2,) and the count over the good cells (within ``rows``)."""
    good = _good_p(cells)
    if rows is not None:
        good &= rows
    n = int(good.sum())
    if n == 0:
        raise ValueError("No unflagged cell with a finite polarization and uncertainty to average"
                         + (" in the reference region." if rows is not None else "."))
    values = cells.table.loc[good, ["Px", "Py", "sigma_Px", "sigma_Py"]].to_numpy(dtype=float)
    return values[:, :2].mean(axis=0), np.sqrt((values[:, 2:] ** 2).sum(axis=0)) / n, n


def reference_cells(cells: Cells, reference) -> np.ndarray:
    """Which cells (bool (n,), one per table row) a reference region holds.

    Parameters
    ----------
    cells : Cells
    reference : array-like or str
        One of: a boolean mask over the cells (``(n,)``, table order); integer row indices into ``cells.table``;
        a boolean image mask ``(H, W)`` (e.g. a rasterised napari Shapes layer), whose cells are those whose
        B column (``y``, ``x`` px) falls inside; or cell-grid ranges ``"I0:I1,J0:J1"`` (half-open ranges of the
        grid rows ``i`` and columns ``j``; either may be left out: ``"40:48"`` is rows 40-47, ``",0:10"``
        columns 0-9), as the CLI's ``--reference`` takes.

    Returns
    -------
    (n,) bool array
    """
    if isinstance(reference, str):
        return _grid_range_cells(cells, reference)
    arr = np.asarray(reference)
    n = len(cells)
    if arr.dtype == bool and arr.ndim == 1:
        if arr.shape != (n,):
            raise ValueError(f"a reference mask over the cells needs one value per cell ({n}), got {arr.shape[0]}")
        rows = arr.copy()
    elif arr.dtype == bool and arr.ndim == 2:
        iy = np.rint(cells.table["y"].to_numpy()).astype(int)
        ix = np.rint(cells.table["x"].to_numpy()).astype(int)
        inside = (iy >= 0) & (iy < arr.shape[0]) & (ix >= 0) & (ix < arr.shape[1])
        rows = np.zeros(n, dtype=bool)
        rows[inside] = arr[iy[inside], ix[inside]]
    elif arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise ValueError(f"reference cell indices must lie in 0..{n - 1}")
        rows = np.zeros(n, dtype=bool)
        rows[arr] = True
    else:
        raise TypeError(
            "reference must be a boolean mask over the cells (n,), integer cell indices, or a boolean image mask "
            f"(H, W) whose cells are those whose B column falls inside; got dtype {arr.dtype}, shape {arr.shape}"
        )
    if not rows.any():
        raise ValueError("the reference region holds no cell; draw it over cells of known polarization")
    return rows


def _grid_range_cells(cells: Cells, spec: str) -> np.ndarray:
    """Cells inside the grid ranges ``"I0:I1,J0:J1"`` (see :func:`reference_cells`)."""
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 2:
        raise ValueError(f"reference {spec!r}: expected cell-grid ranges 'I0:I1,J0:J1' (rows, columns), e.g. '40:48'")
    rows = np.ones(len(cells), dtype=bool)
    for axis, part in zip(("i", "j"), parts):
        if not part:
            continue
        try:
            low, high = (int(v) if v.strip() else None for v in part.split(":"))
        except ValueError:
            raise ValueError(f"reference {spec!r}: {part!r} is not a range of whole numbers such as 40:48") from None
        values = cells.table[axis].to_numpy()
        rows &= (values >= (values.min() if low is None else low)) & (values < (values.max() + 1 if high is None
                                                                                 else high))
    if not rows.any():
        raise ValueError(f"the reference {spec!r} holds no cell; the grid has rows i "
                         f"{int(cells.table['i'].min())}-{int(cells.table['i'].max())} and columns j "
                         f"{int(cells.table['j'].min())}-{int(cells.table['j'].max())}")
    return rows


def _referenced_mean(cells: Cells, rows):
    """(mean, sigma_stat, n, reference mean, n_reference) of ``cells`` referenced to ``rows`` (None: none)."""
    if rows is None:
        mean, stat, n = _mean_p(cells)
        return mean, stat, n, None, 0
    ref_mean, ref_stat, n_ref = _mean_p(cells, rows)
    rest = ~rows if (_good_p(cells) & ~rows).any() else None
    mean, stat, n = _mean_p(cells, rest)
    return mean - ref_mean, np.hypot(stat, ref_stat), n, ref_mean, n_ref


def _variant_cells(cells: Cells, image, columns) -> dict:
    """Default fit-model variants (see :func:`~napari_causal_lattice.columns.fit_variants`) as Cells, built with
    the settings of ``cells``."""
    from .columns import fit_variants

    params = cells.provenance.get("params", {}) if isinstance(cells.provenance, dict) else {}
    keep = {k: params[k] for k in ("min_quality", "max_sigma", "min_b_distance", "max_offset", "outlier_threshold")
            if k in params}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # calibration and faint warnings were given once already
        for name, variant in fit_variants(image, columns).items():
            out[name] = build_cells(variant, pixel_size=cells.pixel_size, frame=cells.frame, **keep)
    return out


def mean_polarization(cells: Cells, variants=None, *, image=None, columns=None, reference=None,
                      warn_sigma: float = 3.0) -> MeanPolarization:
    """Mean polarization of the unflagged cells, with its statistical and systematic uncertainty.

    An absolute P needs a reference: specimen tilt and probe asymmetry (coma, astigmatism) shift the B columns
    against the A columns uniformly, which reads as a uniform polarization (SrTiO3 [001]: 6.6 / -5.3 pm at
    50 statistical sigma).  Give a ``reference`` region of known P (a substrate, a centrosymmetric area, the
    paraelectric phase): its mean P is subtracted and its uncertainty propagated.  Without one, the systematic
    uncertainty comes from fit-model variants, and an offset beyond ``warn_sigma`` combined sigma gives an
    :class:`AbsolutePolarizationWarning`.

    Parameters
    ----------
    cells : Cells
        The cells to average (flagged cells and cells with NaN P or sigma are left out).
    variants : sequence or dict of Cells, optional
        The same image analysed with other fit settings.  Default: made from ``image`` and ``columns`` with
        :func:`~napari_causal_lattice.columns.fit_variants` (centre of mass, plain Gaussian, 0.7x and 1.3x fit
        radius) when both are given, else none (``sigma_sys`` 0 and a ``note`` says so).  The systematic sigma
        is half the range of the (referenced) mean over ``cells`` and the variants.
    image : (H, W) array, optional
        The image ``columns`` were found on (for the default variants).
    columns : Columns, optional
        The columns ``cells`` were built from (for the default variants).
    reference : array-like, optional
        Reference region, see :func:`reference_cells` (cell mask, cell indices or image mask).
    warn_sigma : float
        Without a reference, warn when a component of the mean is beyond this many combined sigma.

    Returns
    -------
    MeanPolarization
    """
    rows = None if reference is None else reference_cells(cells, reference)
    note = ""
    if variants is None:
        if image is not None and columns is not None:
            variants = _variant_cells(cells, image, columns)
        else:
            variants = {}
            note = ("no fit-model variants (pass image= and columns=): the systematic uncertainty of the mean is "
                    "not included. ")
    named = dict(variants) if isinstance(variants, dict) else {f"variant {k}": v for k, v in enumerate(variants)}
    mean, stat, n, ref_mean, n_ref = _referenced_mean(cells, rows)
    means = [mean]
    ref_b = None if rows is None else cells.b_index[rows]
    for variant in named.values():
        v_rows = None if ref_b is None else np.isin(variant.b_index, ref_b)
        means.append(_referenced_mean(variant, v_rows)[0])
    means = np.array(means)
    result = MeanPolarization(mean=mean, sigma_stat=stat, sigma_sys=(means.max(axis=0) - means.min(axis=0)) / 2,
                              n_cells=n, reference_mean=ref_mean, n_reference=n_ref, variants=tuple(named),
                              note=note.strip())
    if rows is None and not result.consistent_with_zero(warn_sigma):
        offset = (f"the mean polarization ({mean[0]:.2f}, {mean[1]:.2f}) {cells.units.get('Px', 'pm')} is more than "
                  f"{warn_sigma:g} sigma ({result.sigma[0]:.2f}, {result.sigma[1]:.2f}) from zero. A uniform offset "
                  "like this is exactly what specimen tilt or probe asymmetry (coma) produce; an absolute P needs a "
                  "reference: pass reference= (a region of known P, e.g. the substrate or a centrosymmetric area; "
                  "a mask over the cells, cell indices or an image mask).")
        warn(offset, AbsolutePolarizationWarning)
        result = dataclasses.replace(result, note=(result.note + " " + offset).strip())
    return result


def referenced_polarization(cells: Cells, reference) -> Cells:
    """The cells with Px, Py relative to a reference region's mean, for maps, figures and layers.

    Every cell's ``Px``, ``Py`` has the reference region's mean (over its unflagged cells) subtracted; its
    ``sigma_Px``, ``sigma_Py`` add that mean's statistical uncertainty in quadrature.  The provenance records the
    reference (``params["reference_mean"]``, ``params["n_reference"]``).

    Parameters
    ----------
    cells : Cells
    reference : array-like
        See :func:`reference_cells`.

    Returns
    -------
    Cells
        A new Cells object (``maps()``, ``to_frame()`` work as usual); ``cells`` is not changed.
    """
    rows = reference_cells(cells, reference)
    ref_mean, ref_stat, n_ref = _mean_p(cells, rows)
    table = cells.table.copy()
    for k, name in enumerate(("Px", "Py")):
        table[name] = table[name] - ref_mean[k]
        table[f"sigma_{name}"] = np.hypot(table[f"sigma_{name}"], ref_stat[k])
    provenance = make_provenance(
        "referenced_polarization",
        {"reference_mean": ref_mean.tolist(), "reference_sigma": ref_stat.tolist(), "n_reference": n_ref},
        inputs={"cells": cells.provenance or {}},
    )
    return dataclasses.replace(cells, table=table, provenance=provenance)
