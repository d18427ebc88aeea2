"""Stated uncertainties against the cell-to-cell scatter of crystals without real variation.

The check (:func:`~napari_causal_lattice.descriptors.neighbour_sigma_ratio`): each good cell's residual from the
mean of its 4 grid neighbours, divided by the sigma its columns' stated sigmas predict for that residual (shared
A corners counted once, with their summed sensitivity), has a robust (MAD) scatter of 1 when the sigmas are
honest.  The bar: 0.8-1.25 for a, b, Px and Py, over seeds on synthetics of 400 cells.  One real image of
96 cells cannot hold each ratio to that bar (honest sigmas spread it over 0.52-1.44 at that size), so the real
SrTiO3 image is held to it by the geometric mean of its four ratios, and the synthetic of its size is checked
against its planted truth.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from napari_causal_lattice.cells import build_cells
from napari_causal_lattice.columns import columns_from_positions, find_columns
from napari_causal_lattice.descriptors import cell_line_covariance, descriptor_sigmas, neighbour_sigma_ratio
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
@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_sigmas_match_the_scatter_on_synthetics(jitter):
    """8 seeds, 20 x 20 cells, probe tails, without and with 0.3 px line jitter (corrected by default): the ratio
    averaged over seeds is 0.8-1.25 for a, b, Px, Py, and every seed's within 0.7-1.3 (one seed's MAD ratio on
    ~320 residuals scatters by about 0.05).

    The columns' own sigmas are per axis and the line shift left after the correction is a covariance of the
    columns on the same scan lines (it cancels in ``a``, not in a [001] cell's ``Px``).  Measured (mean /
    min-max over the seeds), no jitter: a 0.89/0.80-1.01, b 0.92/0.81-1.01, Px 0.93/0.83-1.02, Py
    0.91/0.80-1.04; 0.3 px jitter: a 0.96/0.91-1.03, b 0.98/0.87-1.15, Px 0.94/0.73-1.05, Py 1.00/0.95-1.14
    (before, with an isotropic sigma and the line part added to every column independently: a 0.77, b 0.76,
    worst b 0.70).  The measured
    correlation of neighbouring columns' x errors (error_correlation.py) is 0 in every class and seed but one
    (no jitter, seed 2: A-A along v2 0.2, a 0.96 -> 0.92); with jitter the classes across rows are left out, as
    the line part dominates them."""
    per_seed = {name: [] for name in NAMES}
    for seed in range(8):
        sample = synthetic_perovskite(seed=seed, shape_cells=(20, 20), line_jitter=jitter, **CONTROL)
        cols = find_columns(sample.image, pixel_size=sample.pixel_size)
        ratio = neighbour_sigma_ratio(build_cells(cols), cols, names=NAMES)
        for name in NAMES:
            per_seed[name].append(ratio[name])
    for name, values in per_seed.items():
        assert 0.8 <= np.mean(values) <= 1.25, (name, values)
        assert 0.7 <= min(values) and max(values) <= 1.3, (name, values)


def test_line_covariance_cancels_along_a_row():
    """A shift shared by a scan line moves the columns of a row together: it adds to Px of a [001] cell (B half
    a cell below its corners) and not to ``a`` (differences along a row)."""
    corners = np.array([[[10, 10], [10, 30], [30, 10], [30, 30]]], float)
    b = np.array([[20.0, 20.0]])
    positions = np.concatenate([corners[0], b])
    line = np.zeros(50)
    line[8:13] = 0.04  # only the rows of the top corners are jittered
    cov = cell_line_covariance(positions, np.full(5, 2.0), line, np.arange(5)[None, :])
    assert cov[0, 0, 1] == pytest.approx(cov[0, 0, 0]) and cov[0, 0, 4] < 1e-6 * cov[0, 0, 0]
    base = descriptor_sigmas(corners, b, np.full((1, 4), 0.01), [0.01])
    more = descriptor_sigmas(corners, b, np.full((1, 4), 0.01), [0.01], line_cov=cov)
    assert more["sigma_a"][0] == pytest.approx(base["sigma_a"][0], rel=1e-6)
    assert more["sigma_Px"][0] > 2 * base["sigma_Px"][0]
    assert more["sigma_Py"][0] == pytest.approx(base["sigma_Py"][0], rel=1e-6)


@pytest.fixture(scope="module")
def sto_cells(sto_columns):
    _, cols = sto_columns
    return build_cells(cols), cols


@pytest.fixture(scope="module")
def sto_ratio(sto_cells):
    cells, cols = sto_cells
    return neighbour_sigma_ratio(cells, cols, names=NAMES)


#: The SrTiO3 [110] image's cell grid (96 good cells, ~60 with 4 good neighbours), drawn as a synthetic.
STO_SIZE = dict(shape_cells=(12, 8), projection="[110]", **CONTROL)
#: Range of one descriptor's ratio that honest sigmas give on one image of this size: 32 seeds of ``STO_SIZE``
#: read 0.52-1.44 (means 0.95-1.00, standard deviations 0.15-0.18).
ONE_IMAGE_RANGE = (0.5, 1.45)


def _geometric_mean(ratio) -> float:
    return float(np.exp(np.mean([np.log(ratio[name]) for name in NAMES])))


@pytest.fixture(scope="module")
def sto_size_samples():
    """8 seeds of the synthetic at the size of the SrTiO3 image, without and with 0.3 px line jitter: (sample,
    columns) per (jitter, seed)."""
    out = {}
    for jitter in (0.0, 0.3):
        for seed in range(8):
            sample = synthetic_perovskite(seed=seed, line_jitter=jitter, **STO_SIZE)
            out[jitter, seed] = sample, find_columns(sample.image, pixel_size=sample.pixel_size)
    return out


def _true_positions(sample, cols) -> np.ndarray:
    """(N, 2) planted position of each found column (its sublattice's nearest true site), px."""
    true = np.empty_like(cols.positions)
    for sub, sites in (("A", sample.truth.a_positions), ("B", sample.truth.b_positions)):
        rows = np.flatnonzero(cols.sublattice == sub)
        true[rows] = sites[cKDTree(sites).query(cols.positions[rows])[1]]
    return true


@pytest.mark.slow
@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_sigmas_hold_the_true_errors_at_the_size_of_the_real_image(sto_size_samples, jitter):
    """Each cell's descriptor from the found columns minus the same descriptor from the planted positions,
    divided by its stated sigma (less the median error, a bias shared by all cells): robust scatter 0.8-1.25,
    averaged over 8 seeds.  Measured, no jitter: a 0.99, b 1.00, Px 0.93, Py 0.98; 0.3 px jitter: a 0.83,
    b 0.94, Px 0.98, Py 0.95 (single seeds 0.62-1.50).  The truth says what the neighbour ratio on a real image
    cannot: whether the sigmas hold the error, including the part neighbouring cells share."""
    scatter = {name: [] for name in NAMES}
    for seed in range(8):
        sample, cols = sto_size_samples[jitter, seed]
        found = build_cells(cols).table.set_index(["i", "j"])
        planted = build_cells(dataclasses.replace(cols, positions=_true_positions(sample, cols))).table
        planted = planted.set_index(["i", "j"])
        both = found.index.intersection(planted.index)
        for name in NAMES:
            error = (found.loc[both, name] - planted.loc[both, name]).to_numpy()
            z = error / found.loc[both, f"sigma_{name}"].to_numpy()
            z = z[np.isfinite(z)] - np.nanmedian(z)
            scatter[name].append(1.4826 * np.median(np.abs(z - np.median(z))))
    for name, values in scatter.items():
        assert 0.8 <= np.mean(values) <= 1.25, (name, values)


@pytest.mark.slow
def test_one_image_of_this_size_reads_the_neighbour_ratio_widely(sto_size_samples):
    """Why the real image is judged by the geometric mean of its four ratios: on ~60 residuals that share
    columns, one descriptor's ratio for honest sigmas spreads over ``ONE_IMAGE_RANGE`` (32 seeds: sd 0.15-0.18;
    all four within 0.8-1.25 in only 15 of 32 seeds), while the geometric mean of the four reads 0.96 +- 0.10
    and is within 0.8-1.25 in 29 of 32.  Here, 8 seeds: every ratio within the range and the geometric mean
    within 0.8-1.25 in at least 7."""
    inside = 0
    for seed in range(8):
        _, cols = sto_size_samples[0.0, seed]
        ratio = neighbour_sigma_ratio(build_cells(cols), cols, names=NAMES)
        assert all(ONE_IMAGE_RANGE[0] <= ratio[name] <= ONE_IMAGE_RANGE[1] for name in NAMES), (seed, ratio)
        inside += 0.8 <= _geometric_mean(ratio) <= 1.25
    assert inside >= 7, inside


@pytest.mark.realdata
def test_sigmas_match_the_scatter_on_real_srtio3(sto_ratio):
    """SrTiO3 [110] (centrosymmetric, 96 cells, ~60 residuals): the geometric mean of the four ratios within
    0.8-1.25 (0.83) and each ratio within what honest sigmas give on one image of this size
    (``ONE_IMAGE_RANGE``).  Measured with per-axis sigmas, the line covariance and the correlated x errors of
    neighbours: a 0.67, b 0.92, Px 0.91, Py 0.83.  On so few residuals the ratios move with small changes:
    positions moved by at most 0.09 sigma (the faster profile fit) moved them by 0.04-0.09 (a 0.73 -> 0.69,
    b 1.07 -> 0.99, Px 0.78 -> 0.86, Py 0.96 -> 0.87), and by at most 0.13 sigma (the profile fit run to
    convergence) by 0.03-0.07 more.  ``a`` at 0.67 is 1.7 standard deviations below
    the mean of honest sigmas at this size (0.95 +- 0.17)."""
    assert 0.8 <= _geometric_mean(sto_ratio) <= 1.25, sto_ratio
    for name in NAMES:
        assert ONE_IMAGE_RANGE[0] <= sto_ratio[name] <= ONE_IMAGE_RANGE[1], sto_ratio


@pytest.mark.realdata
def test_correlated_x_errors_on_real_srtio3(sto_cells, sto_ratio):
    """On SrTiO3 the x errors of a B column and the A columns of its edge (rho 0.45) and of vertically
    neighbouring B columns (0.56) are positively correlated: the x differences of these neighbours scatter less
    than independent errors of the stated size predict.  With it in the sigmas Px's ratio is 0.91; without it
    0.47.  The other classes stay 0 (A-A along v1 reads -0.15: the x differences along a row scatter more
    than predicted: the x residuals hold a smooth distortion, their differences grow with the lag)."""
    cells, _ = sto_cells
    rho = {name: record["rho"] for name, record in cells.provenance["params"]["x_correlation"].items()}
    assert rho["A-B"] == pytest.approx(0.45, abs=0.1) and rho["B-B v2"] == pytest.approx(0.55, abs=0.1), rho
    assert rho["A-A v1"] == 0 and rho["A-A v2"] == 0 and rho["B-B v1"] == 0, rho
    assert sto_ratio["Px"] > 0.7, sto_ratio


@pytest.mark.realdata
def test_adf_positions_agree_with_the_simultaneous_abf_within_their_sigmas(sto_columns, shared_data):
    """The registered ABF image of the same scan, inverted and refitted from the ADF columns: the two detectors
    share the scan (its distortion cancels in the difference) but not their counting noise, so the difference of
    a column's two positions tests the stated sigmas without the lattice.  ABF moves each sublattice as a whole
    (defocus, tilt, the O columns next to Ti-O): A by (0.42, -1.13) px, B by (-1.56, -0.36) px, taken out as
    one median offset per sublattice.  What is left scatters by 0.49-0.64 of the predicted sigma (MAD, per axis
    and sublattice; largest |z| 1.7): the stated sigmas are not too small.  They are larger than the noise the
    detectors do not share because the sandwich also counts the column-model misfit that all columns of a
    sublattice have (taking out the sublattice's mean residual pattern gives 0.75 times smaller sigmas and a
    ratio of 0.92 for ``a``, but b 1.23, Py 1.16 and Px 0.70: the y positions also carry a row-common error, row
    means of the y residuals 0.10 px rms against 0.04 px predicted, which the sigma model does not hold, and no
    x correlation of neighbours is then kept)."""
    image, adf = sto_columns
    abf = np.load(shared_data / "atomap_sto_adf_abf" / "test_ABF_cropped_image.npy").astype(float)
    a_rows, b_rows = adf.sublattice == "A", adf.sublattice == "B"
    refit = columns_from_positions(abf.max() - abf, adf.positions[a_rows], adf.positions[b_rows],
                                   pixel_size=adf.pixel_size, refine=True)
    assert (refit.sublattice == adf.sublattice).all()
    for rows in (a_rows, b_rows):
        diff = adf.positions[rows] - refit.positions[rows]
        z = (diff - np.median(diff, axis=0)) / np.hypot(adf.sigma_axes[rows], refit.sigma_axes[rows])
        scatter = 1.4826 * np.median(np.abs(z - np.median(z, axis=0)), axis=0)
        assert np.all((scatter > 0.4) & (scatter < 1.0)) and np.abs(z).max() < 4.0, (scatter, np.abs(z).max())
