"""Stated uncertainties against the cell-to-cell scatter of crystals without real variation.

The check (:func:`~napari_causal_lattice.descriptors.neighbour_sigma_ratio`): each good cell's residual from the
mean of its 4 grid neighbours, divided by the sigma its columns' stated sigmas predict for that residual (shared
A corners counted once, with their summed sensitivity), has a robust (MAD) scatter of 1 when the sigmas are
honest.  The bar: 0.8-1.25 for a, b, Px and Py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import find_columns
from napari_causal_lattice.descriptors import descriptor_sigmas, neighbour_sigma_ratio
from napari_causal_lattice.synthetic import NON_POLAR, synthetic_perovskite

NAMES = ("a", "b", "Px", "Py")
#: Non-polar, +-30 % intensities, probe tails; ``a_jitter=0`` because the synthetic's random A displacements
#: are structure (a real cell-to-cell variation), not measurement error.
CONTROL = dict(probe_tail=0.2, a_amplitude_spread=0.3, b_amplitude_spread=0.3, a_jitter=0.0, **NON_POLAR)


def test_neighbour_ratio_counts_shared_corners():
    """Columns at their true sites plus planted independent errors of the stated size: the ratio is 1.

    Four draws of the errors: the mean ratio within 0.07 of 1 (one draw's MAD ratio on ~400 residuals scatters
    by about 0.06).  Treating the cells as independent would not give 1: a cell shares corners with each of its
    4 neighbours."""
    sample = synthetic_perovskite(seed=0, shape_cells=(24, 24), a_jitter=0.0, **NON_POLAR)
    cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    rng = np.random.default_rng(5)
    sigma = np.where(cols.sublattice == "A", 0.05, 0.1)
    ratios = []
    for _ in range(4):
        planted = cols.positions.copy()
        for sub, true in (("A", sample.truth.a_positions), ("B", sample.truth.b_positions)):
            rows = np.flatnonzero(cols.sublattice == sub)
            _, k = cKDTree(true).query(cols.positions[rows])
            planted[rows] = true[k] + rng.normal(0.0, 1.0, (len(rows), 2)) * sigma[rows, None]
        columns = dataclasses.replace(cols, positions=planted, sigma=sigma, sigma_axes=np.repeat(sigma[:, None], 2, 1),
                                      line_variance=None)
        ratios.append(neighbour_sigma_ratio(build_cells(columns), columns, names=NAMES))
    for name in NAMES:
        values = [r[name] for r in ratios]
        assert np.mean(values) == pytest.approx(1.0, abs=0.07) and min(values) > 0.8, (name, values)


def test_descriptor_sigmas_scan_term():
    corners = np.array([[[0, 0], [0, 10], [10, 0], [10, 10]]], float)
    base = descriptor_sigmas(corners, [[5.0, 5.0]], [[0.1] * 4], [0.1])
    more = descriptor_sigmas(corners, [[5.0, 5.0]], [[0.1] * 4], [0.1], scan_sigma=(0.0, 0.2))
    # x errors move Px (and a), not Py (and b)
    assert more["sigma_Px"][0] > base["sigma_Px"][0] and more["sigma_Py"][0] == pytest.approx(base["sigma_Py"][0])
    assert more["sigma_b"][0] == pytest.approx(base["sigma_b"][0])


@pytest.mark.slow
def test_sigmas_match_the_scatter_on_synthetics():
    """8 seeds, 20 x 20 cells, probe tails, no scan jitter: the ratio pooled over seeds is 0.8-1.25 for a, b, Px,
    Py, and every seed's within 0.7-1.3 (one seed's MAD ratio on ~320 residuals scatters by about 0.05).

    Measured: see the closing note of issue 21 (per descriptor mean / worst seed)."""
    per_seed = {name: [] for name in NAMES}
    for seed in range(8):
        sample = synthetic_perovskite(seed=seed, shape_cells=(20, 20), **CONTROL)
        cols = find_columns(sample.image, pixel_size=sample.pixel_size)
        ratio = neighbour_sigma_ratio(build_cells(cols), cols, names=NAMES)
        for name in NAMES:
            per_seed[name].append(ratio[name])
    for name, values in per_seed.items():
        assert 0.8 <= np.mean(values) <= 1.25, (name, values)
        assert 0.7 <= min(values) and max(values) <= 1.3, (name, values)


@pytest.fixture(scope="module")
def sto_ratio(shared_data):
    image = np.load(shared_data / "atomap_sto_adf_abf" / "test_ADF_cropped_image.npy")
    cols = find_columns(image, pixel_size=9.326)
    return neighbour_sigma_ratio(build_cells(cols), cols, names=NAMES)


@pytest.mark.realdata
def test_sigmas_match_the_scatter_on_real_srtio3(sto_ratio):
    """SrTiO3 [110] (centrosymmetric, 96 cells, ~60 residuals): b and Py within 0.8-1.25.  Measured b 1.00,
    Py 0.95 (a 0.78, Px 0.55: see the next test)."""
    for name in ("b", "Py"):
        assert 0.8 <= sto_ratio[name] <= 1.25, sto_ratio


@pytest.mark.realdata
@pytest.mark.xfail(reason="issue 21, open: on SrTiO3 the isotropic column sigma overstates the x scatter (a "
                   "0.78, Px 0.55); the fit residual (misfit) is larger along y than along x")
def test_x_sigmas_on_real_srtio3(sto_ratio):
    for name in ("a", "Px"):
        assert 0.8 <= sto_ratio[name] <= 1.25, sto_ratio
