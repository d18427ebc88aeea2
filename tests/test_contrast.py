"""Column contrast (issue 21, item 6): dark columns (ABF, BF) are refused for their contrast or inverted."""

import numpy as np
import pytest

from napari_causal_lattice.columns import ContrastWarning, detect_contrast, find_columns
from napari_causal_lattice.synthetic import synthetic_perovskite


@pytest.fixture(scope="module")
def sample():
    return synthetic_perovskite(0, shape_cells=(8, 8))


def test_negated_haadf_refused_for_its_contrast(sample):
    assert detect_contrast(sample.image)[0] == "bright"
    assert detect_contrast(-sample.image)[0] == "dark"
    with pytest.raises(ValueError, match="dark spots on a bright background.*ABF.*contrast='dark'") as err:
        find_columns(-sample.image, pixel_size=sample.pixel_size)
    assert "projection" not in str(err.value).split("contrast='dark'")[0]  # names the contrast, not a projection


def test_negated_haadf_analysed_as_dark_gives_the_same_columns(sample):
    bright = find_columns(sample.image, pixel_size=sample.pixel_size)
    with pytest.warns(ContrastWarning, match="inverted"):
        dark = find_columns(-sample.image, pixel_size=sample.pixel_size, contrast="dark")
    assert len(dark) == len(bright) and np.array_equal(dark.sublattice, bright.sublattice)
    np.testing.assert_allclose(dark.positions, bright.positions, atol=1e-3)
    assert "inverted" in dark.provenance["params"]["note"] and bright.provenance["params"]["note"] == ""
    with pytest.raises(ValueError, match="contrast must be"):
        find_columns(sample.image, contrast="abf")


@pytest.mark.realdata
def test_real_abf_refused_for_its_contrast(shared_data):
    """The registered SrTiO3 ADF/ABF pair: ADF reads bright (skewness +1.2), ABF dark (-0.7) and is refused for
    its contrast.  (Analysed inverted with contrast='dark', the O columns make a third site and the image is
    refused as an unsupported projection, which the message for 'auto' warns about.)"""
    folder = shared_data / "atomap_sto_adf_abf"
    adf = np.load(folder / "test_ADF_cropped_image.npy").astype(float)
    abf = np.load(folder / "test_ABF_cropped_image.npy").astype(float)
    assert detect_contrast(adf)[0] == "bright" and detect_contrast(abf)[0] == "dark"
    with pytest.raises(ValueError, match="dark spots.*ABF"):
        find_columns(abf, pixel_size=9.326)
