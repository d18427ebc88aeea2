"""Absolute polarization needs a reference (issue 21, item 5): reference regions, fit-model variants, warning."""

import warnings

import numpy as np
import pytest

from napari_causal_lattice.cells import (
    AbsolutePolarizationWarning,
    build_cells,
    mean_polarization,
    reference_cells,
    referenced_polarization,
)
from napari_causal_lattice.columns import find_columns
from napari_causal_lattice.synthetic import NON_POLAR, synthetic_perovskite


@pytest.fixture(scope="module")
def nonpolar():
    sample = synthetic_perovskite(2, shape_cells=(10, 10), **NON_POLAR)
    cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    return sample, cols, build_cells(cols)


def test_reference_forms_select_the_same_cells(nonpolar):
    sample, _, cells = nonpolar
    n = len(cells)
    by_mask = reference_cells(cells, np.arange(n) < 20)
    assert by_mask.sum() == 20 and np.array_equal(reference_cells(cells, np.arange(20)), by_mask)
    image_mask = np.zeros(sample.image.shape, dtype=bool)
    image_mask[: int(cells.table["y"].median())] = True
    rows = reference_cells(cells, image_mask)
    assert np.array_equal(rows, cells.table["y"].to_numpy() < cells.table["y"].median())
    with pytest.raises(ValueError, match="one value per cell"):
        reference_cells(cells, np.ones(n + 1, dtype=bool))
    with pytest.raises(ValueError, match="holds no cell"):
        reference_cells(cells, np.zeros(n, dtype=bool))
    with pytest.raises(TypeError, match="boolean mask"):
        reference_cells(cells, np.ones(n))


def test_referenced_mean_and_sigma(nonpolar):
    sample, cols, cells = nonpolar
    left = (cells.table["x"] < cells.table["x"].median()).to_numpy()
    plain = mean_polarization(cells, variants=())
    ref = mean_polarization(cells, variants=(), reference=left)
    assert ref.n_reference == left.sum() and ref.n_cells == (~left).sum()
    assert np.all(ref.sigma_stat > plain.sigma_stat)  # the reference's own uncertainty is propagated
    assert ref.consistent_with_zero(3.0)
    shifted = referenced_polarization(cells, left)
    np.testing.assert_allclose(shifted.table.loc[left, ["Px", "Py"]].mean().to_numpy(), 0.0, atol=1e-9)
    assert np.all(shifted.table["sigma_Px"] >= cells.table["sigma_Px"])
    assert shifted.provenance["params"]["n_reference"] == int(left.sum())
    assert np.isfinite(shifted.maps()["Px"]).sum() == np.isfinite(cells.maps()["Px"]).sum()
    # the default variants need the image and the columns
    full = mean_polarization(cells, image=sample.image, columns=cols)
    assert set(full.variants) == {"gaussian", "centre_of_mass", "radius x0.7", "radius x1.3"}
    assert np.all(full.sigma_sys > 0) and full.note == ""
    assert "systematic uncertainty" in mean_polarization(cells).note


def test_uniform_offset_warns_and_names_the_reference(nonpolar):
    _, _, cells = nonpolar
    table = cells.table.copy()
    table["Px"] = table["Px"] + 10 * table["sigma_Px"].median()  # a uniform offset, as a tilted specimen gives
    tilted = type(cells)(**{**cells.__dict__, "table": table})
    with pytest.warns(AbsolutePolarizationWarning, match="tilt or probe asymmetry.*reference="):
        result = mean_polarization(tilted, variants=())
    assert "reference" in result.note
    with warnings.catch_warnings():
        warnings.simplefilter("error", AbsolutePolarizationWarning)
        referenced = mean_polarization(tilted, variants=(), reference=np.arange(len(cells)) % 2 == 0)
    assert referenced.consistent_with_zero(3.0)


@pytest.mark.realdata
def test_sto_110_mean_p_zero_with_default_variants_and_reference(sto_columns):
    """SrTiO3 [110] ADF (centrosymmetric).  Measured (pm): mean (+0.63, -0.84), stat 0.21, sys (0.52, 0.22)
    from the default variants: 1.1 and 2.7 combined sigma; referenced to the left half of the cells, the right
    half reads (-0.01, -0.77) +- (0.44, 0.43)."""
    image, cols = sto_columns
    cells = build_cells(cols)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AbsolutePolarizationWarning)
        result = mean_polarization(cells, image=image, columns=cols)
    assert len(result.variants) == 4 and np.all(result.sigma_sys > 0.1)
    assert result.consistent_with_zero(3.0), (result.mean, result.sigma)
    left = (cells.table["x"] < cells.table["x"].median()).to_numpy()
    referenced = mean_polarization(cells, image=image, columns=cols, reference=left)
    assert referenced.consistent_with_zero(3.0), (referenced.mean, referenced.sigma)
    assert np.all(referenced.sigma > result.sigma_stat)


def test_expected_lattice_warns_records_and_calibrates(nonpolar):
    from napari_causal_lattice.cells import calibrate_pixel_size
    from napari_causal_lattice.lattice import CalibrationWarning

    sample, cols, _ = nonpolar
    a0 = sample.pixel_size * 20.0  # the synthetic's pitch is 20 px
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        fine = build_cells(cols, expected_lattice=a0 * 1.03)
    assert "notes" not in fine.provenance
    with pytest.warns(CalibrationWarning, match=r"-\d\.\d % from the expected"):
        off = build_cells(cols, expected_lattice=a0 * 1.1)
    assert "pixel size is probably off" in off.provenance["notes"][0]
    # a reference region of known lattice parameter gives the pixel size that makes it read right
    top = (off.table["i"] < 4).to_numpy()
    fixed = calibrate_pixel_size(off, top, a0 * 1.1)
    assert fixed == pytest.approx(sample.pixel_size * 1.1, rel=0.01)
    with pytest.raises(ValueError, match="needs a pixel size"):
        build_cells(type(cols)(**{**cols.__dict__, "pixel_size": None}), expected_lattice=390.0)


@pytest.mark.realdata
def test_pto_sro_lattice_parameter_off_by_8_percent(pto_columns):
    """PTO/SRO supercrystal at the stored 15.0 pm/px: a = 365 pm in the SrRuO3 and the PbTiO3 rows alike
    (pseudocubic SRO 393, PTO 390-415 pm), so the pixel size, not the material, is off by about 7.5 %; against
    395 pm the warning fires and the SRO rows calibrate the pixel size to about 16.1 pm/px."""
    from napari_causal_lattice.cells import calibrate_pixel_size
    from napari_causal_lattice.lattice import CalibrationWarning

    _, cols = pto_columns
    with pytest.warns(CalibrationWarning, match="36[5-9]"):
        cells = build_cells(cols, expected_lattice=395.0)
    assert cells.provenance["notes"]
    sro = (cells.table["i"] <= 5).to_numpy()
    assert calibrate_pixel_size(cells, sro, 393.0) == pytest.approx(16.1, abs=0.2)
