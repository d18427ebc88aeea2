"""The correlation of neighbouring columns' x errors (error_correlation.py), on planted errors.

Columns at their exact lattice sites plus planted errors: independent own errors, or the same plus a shift shared
by every column of a lattice row (as correlated scan noise or a misfit shared along a row would give).  The
stated sigma is the total one, so a shared shift of the same variance as the own part is a correlation of 0.5
between columns of one row and of 0 between rows.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.descriptors import neighbour_sigma_ratio
from napari_causal_lattice.error_correlation import CLASSES, estimate_x_correlation, neighbour_pairs
from napari_causal_lattice.lattice import Lattice

N = 24  # A columns per side
SIGMA = 0.08  # px, the stated (total) sigma of every column, per axis


def _columns(seed: int, shared: float):
    """[001] columns on a 24 x 24 A grid (20 px), errors of total sigma SIGMA of which a fraction ``shared`` of
    the x variance is a shift per lattice row (A rows and B rows each their own; their variance is set exactly, as
    47 rows would otherwise scatter it by 20 %)."""
    rng = np.random.default_rng(seed)
    lattice = Lattice(origin=(10, 10), v1=(0, 20), v2=(20, 0))
    grid = np.stack(np.meshgrid(range(N), range(N), indexing="ij"), -1).reshape(-1, 2).astype(float)
    b_grid = np.stack(np.meshgrid(np.arange(N - 1) + 0.5, np.arange(N - 1) + 0.5, indexing="ij"), -1).reshape(-1, 2)
    positions, rows = [], []
    for g in (grid, b_grid):
        positions.append(lattice.to_image(g))
        rows.append(np.rint(2 * g[:, 0]).astype(int))  # A rows even, B rows odd
    positions, rows = np.vstack(positions), np.concatenate(rows)
    row_shift = rng.normal(0.0, 1.0, rows.max() + 1)
    for parity in (0, 1):  # A rows, B rows: exactly the planted share
        part = row_shift[parity::2]
        row_shift[parity::2] = (part - part.mean()) / part.std() * SIGMA * np.sqrt(shared)
    noise = rng.normal(0.0, SIGMA, positions.shape)
    noise[:, 1] = rng.normal(0.0, SIGMA * np.sqrt(1 - shared), len(positions)) + row_shift[rows]
    n, n_a = len(positions), len(grid)
    return SimpleNamespace(positions=positions + noise, sublattice=np.array(["A"] * n_a + ["B"] * (n - n_a)),
                           intensity=np.ones(n), lattice=lattice, pixel_size=10.0, provenance={},
                           sigma=np.full(n, SIGMA), sigma_axes=np.full((n, 2), SIGMA), width=np.full(n, 3.0))


def _rho(cells) -> dict:
    return {name: record["rho"] for name, record in cells.provenance["params"]["x_correlation"].items()}


@pytest.mark.parametrize("seed", range(3))
def test_a_shift_shared_along_rows_is_recovered(seed):
    """rho of neighbours on one row (A-A along v1, B-B along v1) within 0.15 of the planted 0.5; neighbours on
    different rows (along v2, and A-B in [001]: B sits half a row lower) stay 0."""
    rho = _rho(build_cells(_columns(seed, shared=0.5)))
    assert rho["A-A v1"] == pytest.approx(0.5, abs=0.15) and rho["B-B v1"] == pytest.approx(0.5, abs=0.15), rho
    assert rho["A-A v2"] == 0 and rho["B-B v2"] == 0 and rho["A-B"] == 0, rho


@pytest.mark.parametrize("seed", range(3))
def test_independent_errors_give_no_correlation(seed):
    rho = _rho(build_cells(_columns(seed, shared=0.0)))
    assert all(value == 0 for value in rho.values()), rho


def test_the_correlation_makes_the_sigmas_match_the_scatter():
    """With the shift shared along rows, ``a`` (differences along a row) scatters less than independent errors
    predict: with the correlation in the cells' sigmas the neighbour ratio of ``a`` is about 1, without it about
    sqrt(1 - 0.5).  The cells' own sigma_a shrinks the same way."""
    columns = _columns(7, shared=0.5)
    cells = build_cells(columns)
    ratio = neighbour_sigma_ratio(cells, columns, names=("a", "b"))
    assert ratio["a"] == pytest.approx(1.0, abs=0.15) and ratio["b"] == pytest.approx(1.0, abs=0.15), ratio
    params = {**cells.provenance["params"], "x_correlation": {}}  # as cells made before the correlation
    plain = dataclasses.replace(cells, provenance={**cells.provenance, "params": params})
    assert neighbour_sigma_ratio(plain, columns, names=("a",))["a"] < 0.85
    independent = build_cells(_columns(7, shared=0.0)).table["sigma_a"].median()
    assert cells.table["sigma_a"].median() == pytest.approx(independent * np.sqrt(0.5), rel=0.2)


def test_neighbour_pairs_of_a_110_cell():
    """[110] with B half-way along v1: B's neighbours are the two corners of its edge, not the far ones."""
    from napari_causal_lattice.motif import get_motif

    lattice = Lattice(origin=(0, 0), v1=(0, 40), v2=(28, 0))
    motif = get_motif("[110]", lattice)
    corners = np.array([[0, 1, 2, 3]])
    pairs = neighbour_pairs(corners, [4], [[0, 0]], motif, lattice.v1, lattice.v2)
    assert set(pairs) == set(CLASSES)
    assert pairs["A-B"].tolist() == [[0, 4], [1, 4]]
    assert pairs["A-A v1"].tolist() == [[0, 1], [2, 3]] and pairs["A-A v2"].tolist() == [[0, 2], [1, 3]]
    assert len(pairs["B-B v1"]) == 0


def test_too_few_pairs_are_not_estimated():
    columns = _columns(0, shared=0.5)
    cells = build_cells(columns)
    ij = cells.table[["i", "j"]].to_numpy()
    few = estimate_x_correlation(columns.positions, columns.sigma_axes[:, 1], cells.corners[:3], cells.b_index[:3],
                                 ij[:3], cells.motif, cells.lattice.v1, cells.lattice.v2)
    assert all(value == 0 for value in few.rho.values())
    assert np.isnan(few.estimates["A-A v1"]["differences"]) and few.estimates["A-A v1"]["pairs"] < 20


def test_the_recorded_correlation_survives_a_reference():
    """Cells referenced to a region keep the correlation build_cells measured (through their provenance)."""
    from napari_causal_lattice.cells import referenced_polarization
    from napari_causal_lattice.error_correlation import recorded_x_correlation

    cells = build_cells(_columns(1, shared=0.5))
    shifted = referenced_polarization(cells, np.arange(10))
    assert recorded_x_correlation(shifted).rho == recorded_x_correlation(cells).rho
    assert recorded_x_correlation(cells).rho["A-A v1"] > 0
