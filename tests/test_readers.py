"""Image readers (readers.py): every format, its pixel-size calibration, and clear errors for bad files."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import tifffile

from napari_causal_lattice.readers import load_image


@pytest.mark.realdata
def test_real_files_open_with_expected_shape_and_pixel_size(shared_data):
    sto = load_image(shared_data / "atomap_sto_adf_abf" / "test_ADF_cropped.hdf5")
    assert sto.data.shape == (400, 380) and sto.data.dtype == np.float64
    assert sto.pixel_size == pytest.approx(9.326, abs=0.01) and sto.units == "pm"
    assert any("assuming nm" in n for n in sto.notes)
    np.testing.assert_array_equal(
        sto.data, np.load(shared_data / "atomap_sto_adf_abf" / "test_ADF_cropped_image.npy").astype(float)
    )
    abf = load_image(shared_data / "atomap_sto_adf_abf" / "test_ABF_cropped.hdf5")
    assert abf.data.shape == (400, 380) and abf.pixel_size == pytest.approx(9.326, abs=0.01)

    pto = load_image(shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned.hspy")
    assert pto.data.shape == (224, 1312)
    assert pto.pixel_size == pytest.approx(14.9968, abs=1e-3) and not pto.notes
    assert pto.metadata["axes"][0]["units"] == "nm"
    assert len(pto.sha256) == 64 and pto.info["shape"] == [224, 1312]
    pto_npy = load_image(shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy")
    np.testing.assert_array_equal(pto_npy.data, pto.data)
    assert pto_npy.pixel_size is None and pto_npy.units == "px"
    assert any("no pixel size" in n for n in pto_npy.notes)

    nsmo = load_image(shared_data / "kemstem_nsmo_cryo" / "FigS6_0716__Cryo_NSMO110_5-1Mx_0p5us_1024px_REGISTERED.tif")
    assert nsmo.data.shape == (898, 963) and nsmo.pixel_size is None
    assert 0.5 < nsmo.data.min() < nsmo.data.max() < 1.0

    for name in ("smbfo_clean_example_gray_uint8.npy", "smbfo_input_patch_gray_uint8.npy"):
        img = load_image(shared_data / "smbfo_rendered_patch_hybridstemseg" / name)
        assert img.data.shape == (703, 703) and img.data.max() <= 255

    with pytest.raises(ValueError, match="too small"):
        load_image(shared_data / "temul_pto_sro_supercrystal" / "atom_positions1.npy")


def test_tiff_pixel_size_from_imagej_ome_and_resolution_tags(tmp_path):
    img = np.arange(64 * 48, dtype=np.float32).reshape(64, 48)
    tifffile.imwrite(tmp_path / "ij.tif", img, imagej=True, resolution=(1 / 0.0125, 1 / 0.0125), metadata={"unit": "nm"})
    assert load_image(tmp_path / "ij.tif").pixel_size == pytest.approx(12.5, rel=1e-6)

    tifffile.imwrite(tmp_path / "ome.ome.tif", img, ome=True, metadata={"PhysicalSizeX": 0.0095, "PhysicalSizeXUnit": "nm",
                                                                        "PhysicalSizeY": 0.0095, "PhysicalSizeYUnit": "nm"})
    assert load_image(tmp_path / "ome.ome.tif").pixel_size == pytest.approx(9.5, rel=1e-6)

    tifffile.imwrite(tmp_path / "cm.tif", img, resolution=(1e8, 1e8), resolutionunit="CENTIMETER")  # 1e-8 cm = 100 pm
    assert load_image(tmp_path / "cm.tif").pixel_size == pytest.approx(100.0, rel=1e-6)

    tifffile.imwrite(tmp_path / "dpi.tif", img, resolution=(72, 72), resolutionunit="INCH")
    loaded = load_image(tmp_path / "dpi.tif")
    assert loaded.pixel_size is None and loaded.units == "px"
    assert any("display setting" in n for n in loaded.notes) and any("no pixel size" in n for n in loaded.notes)
    np.testing.assert_array_equal(loaded.data, img)


def test_rgb_is_converted_and_stacks_need_a_plane(tmp_path):
    gray = np.random.default_rng(0).integers(0, 255, (32, 40)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([gray] * 3, axis=-1), photometric="rgb")
    loaded = load_image(tmp_path / "rgb.tif")
    np.testing.assert_array_equal(loaded.data, gray)
    assert any("RGB" in n for n in loaded.notes)
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([gray] * 3), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_image(tmp_path / "planar.tif").data, gray)

    colour = np.stack([gray, np.zeros_like(gray), np.zeros_like(gray)], axis=-1)
    np.save(tmp_path / "colour.npy", colour)
    loaded = load_image(tmp_path / "colour.npy")
    np.testing.assert_allclose(loaded.data, 0.2125 * gray, rtol=1e-12)
    assert any("luminance" in n for n in loaded.notes)

    stack = np.stack([gray, gray + 1, gray + 2]).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    with pytest.raises(ValueError, match=r"plane=k \(0 <= k < 3\)"):
        load_image(tmp_path / "stack.tif")
    second = load_image(tmp_path / "stack.tif", plane=1)
    np.testing.assert_array_equal(second.data, stack[1])
    assert any("using plane 1" in n for n in second.notes)
    with pytest.raises(ValueError, match="outside the stack"):
        load_image(tmp_path / "stack.tif", plane=3)
    assert load_image(tmp_path / "stack.tif", plane="all").data.shape == (3, 32, 40)
    assert load_image(tmp_path / "rgb.tif", plane="all").data.shape == (32, 40)
    with pytest.raises(TypeError, match="plane must be"):
        load_image(tmp_path / "stack.tif", plane="first")
    with pytest.raises(ValueError, match="single 2D image"):
        load_image(tmp_path / "rgb.tif", plane=0)
    np.save(tmp_path / "single.npy", gray[None])  # a singleton axis is just squeezed
    assert load_image(tmp_path / "single.npy").data.shape == (32, 40)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such image"):
        load_image(tmp_path / "missing.tif")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(ValueError, match="unsupported file type .png"):
        load_image(tmp_path / "image.png")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((64, 64), np.float32))
    data = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:100])
    with pytest.raises(ValueError, match="cannot read cut.tif"):
        load_image(tmp_path / "cut.tif")
    (tmp_path / "junk.hspy").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="cannot open junk.hspy"):
        load_image(tmp_path / "junk.hspy")
    np.save(tmp_path / "cut.npy", np.ones((50, 50)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:300])
    with pytest.raises(ValueError, match="cut.npy"):
        load_image(tmp_path / "cut.npy")
    nan = np.ones((20, 20))
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        load_image(tmp_path / "nan.npy")
    np.save(tmp_path / "text.npy", np.array([["a"] * 20] * 20))
    with pytest.raises(ValueError, match="not image intensities"):
        load_image(tmp_path / "text.npy")


def test_hspy_without_experiments_is_refused(tmp_path):
    import h5py

    with h5py.File(tmp_path / "plain.hdf5", "w") as fh:
        fh["data"] = np.ones((20, 20))
    with pytest.raises(ValueError, match="not a HyperSpy signal file"):
        load_image(tmp_path / "plain.hdf5")


def test_dm_files_need_rosettasciio_and_use_its_axes(tmp_path, monkeypatch):
    (tmp_path / "scan.dm4").write_bytes(b"DM")
    monkeypatch.setitem(sys.modules, "rsciio.digitalmicrograph", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install rosettasciio"):
        load_image(tmp_path / "scan.dm4")

    image = np.random.default_rng(0).normal(size=(30, 40))
    fake = types.ModuleType("rsciio.emd")
    fake.file_reader = lambda path: [
        {"data": np.zeros(2048), "axes": [{"scale": 10.0, "units": "eV"}], "metadata": {"General": {"title": "EDS"}}},
        {"data": image * 0, "axes": [{"scale": 0.02, "units": "nm"}] * 2, "metadata": {"General": {"title": "BF"}}},
        {"data": image, "axes": [{"scale": 0.0125, "units": "nm"}, {"scale": 0.0125, "units": "nm"}],
         "metadata": {"General": {"title": "HAADF"}}},
    ]
    monkeypatch.setitem(sys.modules, "rsciio.emd", fake)
    (tmp_path / "velox.emd").write_bytes(b"EMD")
    loaded = load_image(tmp_path / "velox.emd")
    np.testing.assert_array_equal(loaded.data, image)
    assert loaded.pixel_size == pytest.approx(12.5) and loaded.metadata["title"] == "HAADF"
    assert any("using 'HAADF'" in n for n in loaded.notes)
    assert load_image(tmp_path / "velox.emd", signal="BF").pixel_size == pytest.approx(20.0)
    with pytest.raises(ValueError, match="no signal titled 'DF4'"):
        load_image(tmp_path / "velox.emd", signal="DF4")


@pytest.mark.parametrize("ext", [".dm4", ".ser"])
def test_vendor_files_open_with_their_pixel_size(tmp_path, ext):
    """A .dm4 (Digital Micrograph) and a .ser (FEI TIA) file, written byte by byte, read through RosettaSciIO."""
    from _vendor_files import write_dm4, write_ser

    image = np.random.default_rng(0).normal(100.0, 5.0, size=(24, 40)).astype(np.float32)
    path = tmp_path / f"scan{ext}"
    if ext == ".dm4":
        write_dm4(path, image, scale=0.0198, units="nm")
    else:
        write_ser(path, image, pixel_size_m=19.8e-12)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.data, image.astype(np.float64))
    assert loaded.pixel_size == pytest.approx(19.8, rel=1e-6) and loaded.units == "pm"
    assert not any("no pixel size" in n for n in loaded.notes)


def test_truncated_npy_is_reported_as_truncated(tmp_path):
    np.save(tmp_path / "full.npy", np.zeros((50, 50)))
    raw = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "half.npy").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "header.npy").write_bytes(raw[:60])
    with pytest.raises(ValueError, match=r"half.npy is truncated \(\d+ of the 20128 bytes"):
        load_image(tmp_path / "half.npy")
    with pytest.raises(ValueError, match="header.npy is truncated"):
        load_image(tmp_path / "header.npy")
    assert load_image(tmp_path / "full.npy").data.shape == (50, 50)


def test_unitless_axis_scale_is_assumed_nm_unless_a_unit_is_given(tmp_path, monkeypatch):
    image = np.random.default_rng(0).normal(size=(30, 40))
    fake = types.ModuleType("rsciio.emd")
    fake.file_reader = lambda path: [{"data": image, "axes": [{"scale": 0.125}, {"scale": 0.125}],
                                      "metadata": {"General": {"title": "HAADF"}}}]
    monkeypatch.setitem(sys.modules, "rsciio.emd", fake)
    (tmp_path / "scan.emd").write_bytes(b"EMD")
    assumed = load_image(tmp_path / "scan.emd")
    assert assumed.pixel_size == pytest.approx(125.0)
    assert assumed.metadata["scale_unit"] == {"unit": "nm", "source": "assumed"}
    assert assumed.info["scale_unit"] == {"unit": "nm", "source": "assumed"}
    assert any("assuming nm" in n and "--scale-unit" in n for n in assumed.notes)
    given = load_image(tmp_path / "scan.emd", scale_unit="A")
    assert given.pixel_size == pytest.approx(12.5) and given.info["scale_unit"] == {"unit": "A", "source": "given"}
    assert not any("assuming" in n for n in given.notes)
    with pytest.raises(ValueError, match="scale_unit must be a length unit.*got 'furlong'"):
        load_image(tmp_path / "scan.emd", scale_unit="furlong")


def test_stack_advice_is_what_is_accepted(tmp_path):
    """The stack message advises --plane only where --plane works; a 4D dataset is refused for what it is."""
    frame = np.random.default_rng(0).normal(size=(20, 24))
    np.save(tmp_path / "stack.npy", np.stack([frame, frame + 1])[:, None])  # (2, 1, 20, 24): a stack
    np.save(tmp_path / "4d.npy", np.ones((3, 2, 20, 24)))
    with pytest.raises(ValueError, match=r"plane=k \(0 <= k < 2\).*--plane 0"):
        load_image(tmp_path / "stack.npy")
    np.testing.assert_array_equal(load_image(tmp_path / "stack.npy", plane=1).data, frame + 1)
    for plane in (None, 0):
        with pytest.raises(ValueError, match="has 4 dimensions") as info:
            load_image(tmp_path / "4d.npy", plane=plane)
        assert "--plane" not in str(info.value)
