"""Faint columns (issue 21, item 4): detectability, the faint flag, gated cells and the warning."""

import warnings

import numpy as np
import pytest

from napari_causal_lattice.cells import FLAG_REASONS, build_cells
from napari_causal_lattice.columns import FaintColumnsWarning, find_columns
from napari_causal_lattice.synthetic import synthetic_perovskite

#: Background noise of the synthetic: Poisson on the 10-count background plus 2 counts read noise.
_NOISE = np.sqrt(10.0 + 2.0**2)


@pytest.mark.parametrize("seed", range(8))
def test_b_at_noise_level_is_gated(seed):
    # B peak = 1.34 x the background noise; measured: 94-99 % of the B columns faint, >= 90 % of cells gated
    dose, b_rel = 100.0, 0.05
    assert dose * b_rel / _NOISE <= 1.5
    sample = synthetic_perovskite(seed, shape_cells=(10, 10), dose=dose, b_intensity=b_rel)
    with pytest.warns(FaintColumnsWarning, match="longer dwell.*denoised.*A sublattice only"):
        cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    cells = build_cells(cols)
    gated = (cells.table["flag"] == "faint").mean()
    assert gated >= 0.5
    assert np.all(np.isnan(cells.table.loc[cells.table["flag"] == "faint", "Px"]))


def test_bright_sample_has_no_faint_columns():
    sample = synthetic_perovskite(0, shape_cells=(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FaintColumnsWarning)
        cols = find_columns(sample.image, pixel_size=sample.pixel_size)
    assert not cols.faint.any()
    assert np.median(cols.detectability[cols.b]) > 10 and np.median(cols.detectability[cols.a]) > 20
    assert "faint" in FLAG_REASONS and "faint" not in build_cells(cols).flag_counts()


def test_faint_threshold_keyword():
    sample = synthetic_perovskite(0, shape_cells=(8, 8))
    cols = find_columns(sample.image, pixel_size=sample.pixel_size, faint_threshold=1e6)
    assert cols.faint.all()  # every column below an absurd threshold
    assert cols.provenance["params"]["faint_threshold"] == 1e6
    with pytest.raises(ValueError, match="faint_threshold"):
        find_columns(sample.image, faint_threshold=-1)
