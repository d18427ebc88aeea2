"""Descriptors of single cells whose values were worked out by hand, not by the code under test.

Three cells, each with its 4 A corners ``A(i, j), A(i, j+1), A(i+1, j), A(i+1, j+1)`` (y, x in px) and one B
column, pixel size 10 pm/px:

* a parallelogram turned by the 3-4-5 rotation (``v1`` along (0.6, 0.8)), so the lattice frame of Px, Py is
  not the image frame;
* a trapezoid whose opposite edges differ (top 20, bottom 24 px; legs (20, -1) and (20, 3)), so a, b and alpha
  taken from one edge of the cell instead of the mean of the two opposite ones give other numbers;
* a [110] cell (B half-way along the long edge ``A(i, j)``-``A(i+1, j)``, motif site (1/2, 0)) whose edges
  also differ.

Each is measured twice: by ``compute_descriptors`` directly and by ``build_cells`` on a ``Columns`` made by
hand (so the indexing, corner order and B assignment are checked too).  The expected numbers below are the
arithmetic in the comments, done outside the package.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import Columns
from napari_causal_lattice.descriptors import compute_descriptors
from napari_causal_lattice.lattice import DESCRIPTORS, Lattice
from napari_causal_lattice.motif import Motif

PIXEL = 10.0  # pm/px
CORNER_INTENSITY = [1.0, 2.0, 3.0, 4.0]  # I14 = 1 + 2 + 3 + 4 = 10
B_INTENSITY = 0.5  # I5 = 0.5

# ------------------------------------------------------------------------------------------------ the cells
# Parallelogram: v1 = 20 px along x_hat = (0.6, 0.8) (y, x) -> v1 = (12, 16);
# y_hat = (x_hat[1], -x_hat[0]) = (0.8, -0.6); v2 = 18 * y_hat + 4 * x_hat = (14.4 + 2.4, -10.8 + 3.2) = (16.8, -7.6).
# A(0,0) = (10, 20), A(0,1) = A00 + v1 = (22, 36), A(1,0) = A00 + v2 = (26.8, 12.4), A(1,1) = (38.8, 28.4).
# centroid = ((10 + 22 + 26.8 + 38.8) / 4, (20 + 36 + 12.4 + 28.4) / 4) = (24.4, 24.2);
# B = centroid + 0.5 px * x_hat + 1 px * y_hat = (24.4 + 0.3 + 0.8, 24.2 + 0.4 - 0.6) = (25.5, 24.0).
PARALLELOGRAM = {
    "corners": [(10.0, 20.0), (22.0, 36.0), (26.8, 12.4), (38.8, 28.4)],
    "b": (25.5, 24.0),
    "v1": (12.0, 16.0),
    "v2": (16.8, -7.6),
    "motif": Motif("[001]", (0.5, 0.5)),
    "expected": {
        "I14": 10.0,
        "I5": 0.5,
        # both v1 edges are (12, 16): |.| = 20 px = 200 pm
        "a": 200.0,
        # both v2 edges are (16.8, -7.6): |.| = sqrt(282.24 + 57.76) = sqrt(340) = 18.4390889 px
        "b": 184.390889,
        # cos = v1 . v2 / (|v1| |v2|) = (201.6 - 121.6) / (20 * 18.4390889) = 80 / 368.781778 = 0.21693046
        "alpha": 77.4711923,
        # a b sin(alpha) = |v1 x v2| = |12 * (-7.6) - 16 * 16.8| = |-91.2 - 268.8| = 360 px^2
        "Vol": 36000.0,
        # offset (1.1, -0.2) px: Px = offset . x_hat = 0.66 - 0.16 = 0.5 px; Py = offset . y_hat = 0.88 + 0.12 = 1
        "Px": 5.0,
        "Py": 10.0,
    },
}

# Trapezoid: A(0,0) = (10, 10), A(0,1) = (10, 30), A(1,0) = (30, 9), A(1,1) = (30, 33).
# v1 edges: top (0, 20), bottom (0, 24); v2 edges: left (20, -1), right (20, 3).
# mean v1 edge (0, 22), mean v2 edge (20, 1) = the lattice vectors given to the Columns.
# centroid = ((10 + 10 + 30 + 30) / 4, (10 + 30 + 9 + 33) / 4) = (20, 20.5); B = (20.6, 19.7): offset (0.6, -0.8) px.
TRAPEZOID = {
    "corners": [(10.0, 10.0), (10.0, 30.0), (30.0, 9.0), (30.0, 33.0)],
    "b": (20.6, 19.7),
    "v1": (0.0, 22.0),
    "v2": (20.0, 1.0),
    "motif": Motif("[001]", (0.5, 0.5)),
    "expected": {
        "I14": 10.0,
        "I5": 0.5,
        # a = (20 + 24) / 2 = 22 px  (one edge alone: 20 or 24)
        "a": 220.0,
        # b = (sqrt(401) + sqrt(409)) / 2 = (20.0249844 + 20.2237484) / 2 = 20.1243664 px  (one edge: 20.02 or 20.22)
        "b": 201.243664,
        # angle of the mean edges (0, 22) and (20, 1): cos = 22 / (22 sqrt(401)) = 0.0499376
        # (top and left edge alone: cos = -20 / (20 sqrt(401)) -> 92.862 deg)
        "alpha": 87.1375948,
        # a b sin(alpha) = 22 * 20.1243664 * 20 / sqrt(401) = 442.183676 px^2
        "Vol": 44218.3676,
        # lattice frame: x_hat = (0, 1), y_hat = (1, 0): Px = -0.8 px, Py = 0.6 px
        "Px": -8.0,
        "Py": 6.0,
    },
}

# [110]: short v1 ~ 20 px, long v2 ~ 29 px (ratio ~ sqrt 2), B half-way along A(i, j)-A(i+1, j).
# A(0,0) = (10, 10), A(0,1) = (10, 30), A(1,0) = (38, 12), A(1,1) = (40, 32).
# v1 edges: top (0, 20), bottom (2, 20); v2 edges: left (28, 2), right (30, 2).
# nominal B = (A00 + A10) / 2 = (24, 11); B = (23.6, 11.6): offset (-0.4, 0.6) px.
CELL_110 = {
    "corners": [(10.0, 10.0), (10.0, 30.0), (38.0, 12.0), (40.0, 32.0)],
    "b": (23.6, 11.6),
    "v1": (0.0, 20.0),
    "v2": (29.0, 2.0),
    "motif": Motif("[110]", (0.5, 0.0)),
    "expected": {
        "I14": 10.0,
        "I5": 0.5,
        # a = (20 + sqrt(404)) / 2 = (20 + 20.0997512) / 2 = 20.0498756 px
        "a": 200.498756,
        # b = (sqrt(788) + sqrt(904)) / 2 = (28.0713377 + 30.0665928) / 2 = 29.0689652 px
        "b": 290.689652,
        # mean edges (1, 20) and (29, 2): cos = (29 + 40) / (sqrt(401) sqrt(845)) = 69 / 582.103943 = 0.1185355
        "alpha": 83.1924085,
        # a b sin(alpha) = 20.0498756 * 29.0689652 * sqrt(1 - 0.1185355^2) = 578.720082 px^2
        "Vol": 57872.0082,
        # lattice frame: x_hat = (0, 1), y_hat = (1, 0): Px = 0.6 px, Py = -0.4 px (from the edge mid-point)
        "Px": 6.0,
        "Py": -4.0,
    },
}

CASES = {"parallelogram": PARALLELOGRAM, "trapezoid": TRAPEZOID, "[110]": CELL_110}


def _assert_expected(row, expected):
    wrong = {name: (float(row[name]), expected[name]) for name in DESCRIPTORS
             if float(row[name]) != pytest.approx(expected[name], rel=1e-6, abs=1e-6)}
    assert not wrong, f"(measured, hand-computed): {wrong}"


@pytest.mark.parametrize("case", list(CASES))
def test_compute_descriptors_gives_the_hand_computed_cell(case):
    c = CASES[case]
    table = compute_descriptors([c["corners"]], [c["b"]], [CORNER_INTENSITY], [B_INTENSITY], pixel_size=PIXEL,
                                v1=c["v1"], motif=c["motif"])
    assert len(table) == 1
    _assert_expected(table.iloc[0], c["expected"])


def _hand_columns(c) -> Columns:
    positions = np.array(list(c["corners"]) + [c["b"]], dtype=float)
    n = len(positions)
    lattice = Lattice(origin=c["corners"][0], v1=c["v1"], v2=c["v2"])
    return Columns(positions=positions, sublattice=np.array(["A"] * 4 + ["B"]),
                   intensity=np.array(CORNER_INTENSITY + [B_INTENSITY]), width=np.ones(n), quality=np.ones(n),
                   lattice=lattice, pixel_size=PIXEL, image_shape=(64, 64), motif=c["motif"].name)


@pytest.mark.parametrize("case", list(CASES))
def test_build_cells_gives_the_hand_computed_cell(case):
    c = CASES[case]
    cells = build_cells(_hand_columns(c))
    assert cells.motif == c["motif"]  # "[110]" on a lattice whose v2 is the long edge: B site (1/2, 0)
    assert len(cells) == 1 and cells.flag_counts() == {}
    row = cells.table.iloc[0]
    assert (row["i"], row["j"]) == (0, 0)
    assert (row["y"], row["x"]) == c["b"]
    assert cells.units["a"] == "pm" and cells.units["Vol"] == "pm^2" and cells.units["alpha"] == "deg"
    _assert_expected(row, c["expected"])


def test_image_frame_polarization_is_the_plain_offset():
    # the turned parallelogram in the image frame: Px = dx, Py = dy of the offset (1.1, -0.2) px
    c = PARALLELOGRAM
    table = compute_descriptors([c["corners"]], [c["b"]], [CORNER_INTENSITY], [B_INTENSITY], pixel_size=PIXEL,
                                frame="image")
    assert float(table["Px"][0]) == pytest.approx(-2.0)
    assert float(table["Py"][0]) == pytest.approx(11.0)
