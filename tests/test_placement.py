"""Local placement of cell and window maps: regions around the B columns, on straight and curved lattices."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice.lattice import Lattice
from napari_causal_lattice.placement import CellRaster, cell_regions, region_centres, window_values_per_cell


def bent_cells(shape=(10, 30), pitch=20.0, bend=60.0, seed=0, flagged=()):
    """Cells on a lattice that bends by ``bend`` px (y) across its width, B jittered by 1 px."""
    rng = np.random.default_rng(seed)
    ni, nj = shape
    ij = np.stack(np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij"), -1).reshape(-1, 2)
    lat = Lattice(origin=(30.0, 30.0), v1=(0.0, pitch), v2=(pitch, 0.0))
    yx = lat.to_image(ij)
    u = ij[:, 1] / (nj - 1)
    yx[:, 0] += bend * 4 * u * (1 - u)  # a parabola: the lattice planes curve, cells shear
    yx += rng.uniform(-1.0, 1.0, yx.shape)
    flag = np.full(len(ij), "", dtype=object)
    for k in flagged:
        flag[k] = "b_off_lattice"
    table = pd.DataFrame({"i": ij[:, 0], "j": ij[:, 1], "y": yx[:, 0], "x": yx[:, 1], "flag": flag})
    image_shape = (int(yx[:, 0].max() + 40), int(yx[:, 1].max() + 40))
    return SimpleNamespace(table=table, lattice=lat), image_shape


def _distances(cells, raster):
    centres = region_centres(raster, len(cells.table))
    return np.hypot(*(centres - cells.table[["y", "x"]].to_numpy()).T) / min(cells.lattice.spacings)


def test_each_cell_under_its_own_region_on_a_curved_lattice():
    cells, shape = bent_cells()
    raster = cell_regions(cells, shape)
    b = np.rint(cells.table[["y", "x"]].to_numpy()).astype(int)
    assert np.array_equal(raster.labels[b[:, 0], b[:, 1]], np.arange(len(cells.table)))
    d = _distances(cells, raster)
    # measured: median 0.01, max 0.05 of a cell; the global affine puts cells up to 1.5 cells off here
    assert np.median(d) < 0.05 and d.max() < 0.25
    nominal = cells.lattice.to_image(cells.table[["i", "j"]].to_numpy())
    assert np.hypot(*(nominal - cells.table[["y", "x"]].to_numpy()).T).max() > 1.0 * 20.0


def test_downsampled_raster_keeps_cells_in_place():
    cells, shape = bent_cells()
    raster = cell_regions(cells, shape, max_pixels=-(-shape[0] // 3) * -(-shape[1] // 3))
    assert raster.step == 3 and raster.labels.shape == (-(-shape[0] // 3), -(-shape[1] // 3))
    assert raster.scale == (3.0, 3.0) and raster.translate == (1.0, 1.0)
    assert _distances(cells, raster).max() < 0.25
    # every B column falls in a raster pixel of its own cell
    rc = np.rint((cells.table[["y", "x"]].to_numpy() - raster.translate) / raster.step).astype(int)
    assert np.mean(raster.labels[rc[:, 0], rc[:, 1]] == np.arange(len(cells.table))) == 1.0


def test_paint_and_flagged_neighbours():
    cells, shape = bent_cells(flagged=(45, 46))
    cells.table.loc[45, "y"] += 9.0  # a wrong B detection: its neighbours' regions must not lean towards it
    raster = cell_regions(cells, shape)
    values = np.arange(len(cells.table), dtype=float)
    values[45] = np.nan
    painted = raster.paint(values)
    assert painted.dtype == np.float32 and painted.shape == raster.labels.shape
    assert np.isnan(painted[raster.labels < 0]).all() and np.isnan(painted[raster.labels == 45]).all()
    inside = raster.labels >= 0
    np.testing.assert_array_equal(painted[inside & (raster.labels != 45)],
                                  values[raster.labels[inside & (raster.labels != 45)]])
    d = _distances(cells, raster)
    assert np.delete(d, [45, 46]).max() < 0.25
    with pytest.raises(ValueError, match="one number per cell"):
        raster.paint(np.zeros(3))


def test_napari_layer_world_coordinates_read_each_cells_value():
    """As a user's click reads it: the value under each B column (world px) is that cell's own."""
    napari_layers = pytest.importorskip("napari.layers")
    cells, shape = bent_cells()
    for max_pixels in (4_000_000, shape[0] * shape[1] // 16):
        raster = cell_regions(cells, shape, max_pixels=max_pixels)
        values = np.arange(len(cells.table), dtype=float) * 1.5
        layer = napari_layers.Image(raster.paint(values), scale=raster.scale, translate=raster.translate)
        read = [layer.get_value(yx, world=True) for yx in cells.table[["y", "x"]].to_numpy()]
        assert np.allclose(read, values)


def test_window_values_per_cell():
    cells, _ = bent_cells(shape=(6, 8))
    centres = np.stack(np.meshgrid([1.5, 3.5], [1.5, 3.5, 5.5], indexing="ij"), -1)
    sliding = SimpleNamespace(centers_grid=centres)
    values = np.arange(6.0).reshape(2, 3)
    out = window_values_per_cell(sliding, cells, values)
    ij = cells.table[["i", "j"]].to_numpy()
    expected = values[np.clip(np.rint((ij[:, 0] - 1.5) / 2 + 1e-9), 0, 1).astype(int),
                      np.clip(np.rint((ij[:, 1] - 1.5) / 2 + 1e-9), 0, 2).astype(int)]
    dist = np.hypot(*(ij[:, None, :] - centres.reshape(1, -1, 2)).transpose(2, 0, 1))
    unique = np.sort(dist, axis=1)[:, 1] - np.sort(dist, axis=1)[:, 0] > 1e-9
    np.testing.assert_array_equal(out[unique], expected[unique])
    with pytest.raises(ValueError, match="one number per window"):
        window_values_per_cell(sliding, cells, np.zeros((3, 3)))


def test_empty_cells_and_bad_shapes():
    cells = SimpleNamespace(table=pd.DataFrame({"i": [], "j": [], "y": [], "x": []}),
                            lattice=Lattice((0, 0), (0, 10), (10, 0)))
    raster = cell_regions(cells, (20, 30))
    assert isinstance(raster, CellRaster) and (raster.labels == -1).all()
    with pytest.raises(ValueError, match="image_shape"):
        cell_regions(cells, (0, 30))
