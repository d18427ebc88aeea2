"""npe2 reader (image + pixel size -> layer scale/units) and Points CSV writer, through napari itself."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_causal_lattice._napari.layers import META_KEY
from napari_causal_lattice._napari.reader import get_reader
from napari_causal_lattice._napari.writer import write_points

PLUGIN = "napari-causal-lattice"


def test_get_reader_claims_only_our_extensions(tmp_path):
    assert get_reader(str(tmp_path / "a.tif")) is not None
    assert get_reader([str(tmp_path / "a.npy"), str(tmp_path / "b.HSPY")]) is not None
    assert get_reader(str(tmp_path / "a.png")) is None
    assert get_reader([str(tmp_path / "a.npy"), str(tmp_path / "b.txt")]) is None


@pytest.mark.realdata
def test_open_hspy_sets_pm_scale_and_units(make_napari_viewer, shared_data):
    viewer = make_napari_viewer()
    path = shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned.hspy"
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    assert layer.data.shape == (224, 1312)
    np.testing.assert_allclose(layer.scale, [14.9968, 14.9968], atol=1e-3)
    assert [str(u) for u in layer.units] == ["picometer", "picometer"]
    info = layer.metadata[META_KEY]
    assert info["pixel_size"] == pytest.approx(14.9968, abs=1e-3)
    assert len(info["image_info"]["sha256"]) == 64


def test_file_without_pixel_size_opens_in_px_with_a_note(make_napari_viewer, tmp_path, monkeypatch):
    from napari_causal_lattice._napari import reader

    shown = []
    monkeypatch.setattr(reader, "show_warning", shown.append)
    np.save(tmp_path / "img.npy", np.random.default_rng(0).normal(size=(40, 50)))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "img.npy"), plugin=PLUGIN)
    np.testing.assert_array_equal(layer.scale, [1.0, 1.0])
    assert [str(u) for u in layer.units] == ["pixel", "pixel"]
    assert layer.metadata[META_KEY]["pixel_size"] is None
    assert len(shown) == 1 and "no pixel size" in shown[0]


def test_corrupt_file_raises_a_clear_error(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    reader = get_reader(str(tmp_path / "bad.tif"))
    with pytest.raises(ValueError, match="cannot read bad.tif"):
        reader(str(tmp_path / "bad.tif"))


def test_points_layer_saves_as_csv_in_px_and_pm(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    yx = np.array([[10.0, 20.0], [30.5, 40.25], [50.0, 60.0]])
    layer = viewer.add_points(yx, scale=(12.5, 12.5), units=("pm", "pm"), name="A columns",
                              features={"intensity": [1.0, 2.0, 3.0], "quality": [0.9, 0.8, 1.0]})
    viewer.layers.selection = {layer}
    [written] = viewer.layers.save(str(tmp_path / "cols.csv"), selected=True, plugin=PLUGIN)
    table = pd.read_csv(written)
    assert list(table.columns) == ["y [px]", "x [px]", "y [pm]", "x [pm]", "intensity", "quality"]
    np.testing.assert_allclose(table[["y [px]", "x [px]"]], yx)
    np.testing.assert_allclose(table[["y [pm]", "x [pm]"]], yx * 12.5)
    np.testing.assert_allclose(table["intensity"], [1, 2, 3])


def test_writer_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    (tmp_path / "keep.csv").write_text("old contents")

    def full(self, path, **kwargs):
        open(path, "w").write("y,x\n1,")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    with pytest.raises(OSError, match="Nothing was written"):
        write_points(str(tmp_path / "keep.csv"), np.zeros((2, 2)), {"features": pd.DataFrame()})
    assert (tmp_path / "keep.csv").read_text() == "old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]


def test_tiff_with_imagej_calibration_opens_in_pm(make_napari_viewer, tmp_path):
    img = np.random.default_rng(1).normal(size=(32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "cal.tif", img, imagej=True, resolution=(100.0, 100.0), metadata={"unit": "nm"})
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "cal.tif"), plugin=PLUGIN)
    np.testing.assert_allclose(layer.scale, [10.0, 10.0])
    np.testing.assert_allclose(layer.data, img)


def test_stack_opens_with_a_frame_slider(make_napari_viewer, tmp_path):
    stack = np.random.default_rng(2).normal(size=(3, 32, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack", imagej=True,
                     resolution=(50.0, 50.0), metadata={"unit": "nm", "axes": "ZYX"})
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "stack.tif"), plugin=PLUGIN)
    assert layer.data.shape == (3, 32, 40)
    np.testing.assert_allclose(layer.scale, [1.0, 20.0, 20.0])
    assert any("stack of 3 images" in n for n in layer.metadata[META_KEY]["notes"])


def test_assumed_unit_of_a_unitless_scale_is_a_warning_and_shown_in_atom_columns(make_napari_viewer, tmp_path,
                                                                                 monkeypatch):
    from napari_causal_lattice._napari import reader
    from napari_causal_lattice._napari.columns_widget import ColumnsWidget

    shown = []
    monkeypatch.setattr(reader, "show_warning", shown.append)
    image = np.random.default_rng(0).normal(size=(30, 40))
    fake = types.ModuleType("rsciio.emd")
    fake.file_reader = lambda path: [{"data": image, "axes": [{"scale": 0.125}, {"scale": 0.125}],
                                      "metadata": {"General": {"title": "HAADF"}}}]
    monkeypatch.setitem(sys.modules, "rsciio.emd", fake)
    (tmp_path / "scan.emd").write_bytes(b"EMD")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "scan.emd"), plugin=PLUGIN)
    assert layer.metadata[META_KEY]["image_info"]["scale_unit"] == {"unit": "nm", "source": "assumed"}
    assert any("assuming nm" in note for note in shown)
    widget = ColumnsWidget(viewer)
    assert widget.pixel_size == pytest.approx(125.0)
    assert "nm was assumed" in widget.pixel_note.text()
