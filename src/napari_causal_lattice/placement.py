"""Local placement of per-cell and per-window maps on the image, also on curved or distorted lattices.

One global affine (grid ``(i, j)`` -> image) is exact for a straight lattice but drifts where the lattice
bends.  Here every cell gets its own region of the image instead: the pixels whose nearest B column is the
cell's, clipped to the cell's own parallelogram (spanned by its local lattice vectors, measured from its
neighbouring B columns).  The regions are rasterised on a grid that shares the image's axes (downsampled by
an integer ``step`` for large images), so a map painted on it lies under its cells wherever they are.

Examples
--------
>>> from types import SimpleNamespace
>>> import numpy as np, pandas as pd
>>> from napari_causal_lattice.lattice import Lattice
>>> ij = np.stack(np.meshgrid(range(3), range(4), indexing="ij"), -1).reshape(-1, 2)
>>> lat = Lattice(origin=(10, 10), v1=(0, 20), v2=(20, 0))
>>> yx = lat.to_image(ij)
>>> cells = SimpleNamespace(table=pd.DataFrame({"i": ij[:, 0], "j": ij[:, 1], "y": yx[:, 0], "x": yx[:, 1]}),
...                         lattice=lat)
>>> raster = cell_regions(cells, (60, 80))
>>> raster.labels.shape, raster.step, int(raster.labels[10, 30])
((60, 80), 1, 1)
>>> float(raster.paint(np.arange(12.0))[50, 70])
11.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["CellRaster", "cell_regions", "window_values_per_cell", "region_centres"]

#: Rows of raster pixels looked up per nearest-neighbour query (bounds the memory of one query).
_ROWS_PER_QUERY = 256


@dataclass(frozen=True)
class CellRaster:
    """Per-cell regions rasterised on a grid sharing the image's axes.

    Attributes
    ----------
    labels : (H', W') int32 array
        Row index into ``cells.table`` of the cell each raster pixel belongs to, -1 outside every cell.
    step : int
        Image px per raster px (1 = full resolution).  Raster pixel ``(r, c)`` covers image pixels
        ``r * step ... (r + 1) * step - 1`` and is centred at image position ``r * step + (step - 1) / 2``.
    image_shape : (int, int)
        ``(H, W)`` of the image.
    """

    labels: np.ndarray
    step: int
    image_shape: tuple

    @property
    def scale(self) -> tuple[float, float]:
        """Image px per raster px along (y, x): napari ``scale`` (multiply by the pixel size for pm)."""
        return (float(self.step), float(self.step))

    @property
    def translate(self) -> tuple[float, float]:
        """Image position (y, x) in px of raster pixel (0, 0): napari ``translate``."""
        shift = 0.5 * (self.step - 1)
        return (shift, shift)

    def to_image(self, rc) -> np.ndarray:
        """Image positions (..., 2) yx px of raster coordinates ``rc`` (..., 2)."""
        return np.asarray(rc, dtype=float) * self.step + np.asarray(self.translate)

    def paint(self, values) -> np.ndarray:
        """(H', W') float32 map with each cell's value on its region, NaN outside every cell.

        Parameters
        ----------
        values : (n_cells,) array
            One value per row of ``cells.table`` (NaN where a cell has none, e.g. flagged cells).
        """
        values = np.asarray(values, dtype=np.float32).reshape(-1)
        n = int(self.labels.max()) + 1 if self.labels.size else 0
        if values.shape[0] < n:
            raise ValueError(f"values must hold one number per cell ({n} or more), got {values.shape[0]}")
        out = np.full(self.labels.shape, np.nan, dtype=np.float32)
        inside = self.labels >= 0
        out[inside] = values[self.labels[inside]]
        return out


def _local_vectors(ij: np.ndarray, yx: np.ndarray, v1: np.ndarray, v2: np.ndarray, usable: np.ndarray):
    """Each cell's own lattice vectors (n, 2) along j and i: mean of the steps between its B column and its
    grid neighbours', both ``usable`` (unflagged), the global vector where there are none."""
    lo = ij.min(axis=0)
    shape = tuple(ij.max(axis=0) - lo + 3)
    index = np.full(shape, -1, dtype=np.int64)
    local = ij - lo + 1
    index[local[:, 0], local[:, 1]] = np.arange(len(ij))
    out = []
    for axis, default in ((1, v1), (0, v2)):
        step = np.zeros(2, dtype=np.int64)
        step[axis] = 1
        total = np.zeros((len(ij), 2))
        count = np.zeros(len(ij))
        for sign in (1, -1):
            other = index[local[:, 0] + sign * step[0], local[:, 1] + sign * step[1]]
            has = (other >= 0) & usable
            has[has] &= usable[other[has]]
            total[has] += sign * (yx[other[has]] - yx[has])
            count[has] += 1
        vec = np.broadcast_to(np.asarray(default, float), (len(ij), 2)).copy()
        vec[count > 0] = total[count > 0] / count[count > 0, None]
        out.append(vec)
    return out[0], out[1]


def cell_regions(cells, image_shape, *, max_pixels: int = 4_000_000, extent: float = 0.55) -> CellRaster:
    """Rasterise every cell's region around its B column on a grid sharing the image's axes.

    A raster pixel belongs to the cell with the nearest B column when it also lies within ``extent`` of a
    cell along each of that cell's local lattice vectors (measured from its unflagged neighbouring B columns),
    so the regions follow curved and distorted lattices and stop about half a cell beyond the outermost cells.

    Parameters
    ----------
    cells : Cells
        Needs ``table`` with ``i, j, y, x`` (B positions in px) and ``lattice`` (its vectors are the fallback
        for cells without neighbours).
    image_shape : (int, int)
        ``(H, W)`` of the image, px.
    max_pixels : int
        Largest raster (pixels); larger images are downsampled by the smallest integer ``step`` that fits.
    extent : float
        Half-size of a region along each local lattice vector, in cells (0.5 tiles a straight lattice; a little
        more closes the slivers between neighbours whose local vectors differ on a curved one).

    Returns
    -------
    CellRaster
    """
    height, width = (int(v) for v in image_shape)
    if height < 1 or width < 1:
        raise ValueError(f"image_shape must be (H, W) with positive sizes, got {image_shape!r}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be at least 1, got {max_pixels!r}")
    step = max(1, math.floor(math.sqrt(height * width / max_pixels)))
    while -(-height // step) * -(-width // step) > max_pixels:
        step += 1
    shape = (-(-height // step), -(-width // step))
    labels = np.full(shape, -1, dtype=np.int32)
    table = cells.table
    if len(table) == 0:
        return CellRaster(labels=labels, step=step, image_shape=(height, width))
    yx = table[["y", "x"]].to_numpy(dtype=float)
    ij = table[["i", "j"]].to_numpy().astype(np.int64)
    usable = (table["flag"].astype(str) == "").to_numpy() if "flag" in table.columns else np.ones(len(table), bool)
    v1, v2 = _local_vectors(ij, yx, cells.lattice.v1, cells.lattice.v2, usable)
    inverse = np.linalg.inv(np.stack([v2, v1], axis=2))  # (n, 2, 2): yx offset -> (fi, fj)
    tree = cKDTree(yx)
    shift = 0.5 * (step - 1)
    cols = np.arange(shape[1]) * step + shift
    for start in range(0, shape[0], _ROWS_PER_QUERY):
        rows = np.arange(start, min(start + _ROWS_PER_QUERY, shape[0])) * step + shift
        points = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
        _, nearest = tree.query(points)
        frac = np.einsum("nab,nb->na", inverse[nearest], points - yx[nearest])
        inside = np.abs(frac).max(axis=1) <= extent
        block = np.where(inside, nearest, -1).astype(np.int32)
        labels[start : start + len(rows)] = block.reshape(len(rows), shape[1])
    return CellRaster(labels=labels, step=step, image_shape=(height, width))


def region_centres(raster: CellRaster, n_cells: int) -> np.ndarray:
    """Centroid (n_cells, 2) yx in image px of each cell's region (NaN for cells without pixels)."""
    inside = raster.labels >= 0
    label = raster.labels[inside]
    rc = np.argwhere(inside).astype(float)
    yx = raster.to_image(rc)
    count = np.bincount(label, minlength=n_cells).astype(float)
    out = np.full((n_cells, 2), np.nan)
    has = count > 0
    for axis in range(2):
        out[has, axis] = np.bincount(label, weights=yx[:, axis], minlength=n_cells)[has] / count[has]
    return out


def window_values_per_cell(sliding, cells, values) -> np.ndarray:
    """One value per cell from a per-window map: each cell takes the value of the window whose centre on the
    cell grid is nearest to the cell's grid index.

    Parameters
    ----------
    sliding : SlidingResult
        Needs ``centers_grid`` (ny, nx, 2), window centres as fractional grid indices ``(i, j)``.
    cells : Cells
        Needs ``table`` with ``i, j``.
    values : (ny, nx) array
        One value per window (e.g. one element of ``sliding.adjacency`` or a link-type map).

    Returns
    -------
    (n_cells,) float array
        Paint it with :meth:`CellRaster.paint`.
    """
    centres = np.asarray(sliding.centers_grid, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.shape != centres.shape[:2]:
        raise ValueError(
            f"values must have one number per window, shape {centres.shape[:2]}, got {values.shape}"
        )
    ij = cells.table[["i", "j"]].to_numpy(dtype=float)
    if len(ij) == 0 or values.size == 0:
        return np.full(len(ij), np.nan)
    _, nearest = cKDTree(centres.reshape(-1, 2)).query(ij)
    return values.reshape(-1)[nearest]
