"""Image readers (readers.py) and the results store (store.py), with small fake result objects and the real test
images."""

from __future__ import annotations

import errno
import json
import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_causal_lattice import store as ncl_store
from napari_causal_lattice.readers import load_image
from napari_causal_lattice.store import (
    FORMAT_VERSION,
    Results,
    ResultsError,
    check_results_target,
    clean_stale_temp,
    columns_frame,
    load_results,
    results_complete,
    resume_status,
    run_record,
    save_results,
)

# ------------------------------------------------------------------------------------------ fakes


@dataclass(frozen=True)
class FakeResult:
    """Stands in for a result class: every kind of state leaf, nested dicts, a DataFrame as dict of columns."""

    values: np.ndarray
    table: pd.DataFrame
    names: tuple
    label: str = "x"
    count: int = 3
    scale: float = float("nan")
    flag: bool = True
    nothing: None = None
    reasons: np.ndarray = field(default_factory=lambda: np.array([["", "too few cells"]], dtype=object))
    provenance: dict = field(default_factory=lambda: {"step": "fake", "params": {"window": 20}, "seed": 7})

    def to_state(self):
        return {
            "values": self.values,
            "table": {"columns": list(self.table.columns), **{c: self.table[c].to_numpy() for c in self.table}},
            "names": self.names,
            "meta": {"label": self.label, "count": self.count, "scale": self.scale, "flag": self.flag,
                     "nothing": self.nothing, "deep": {"inf": float("-inf")}},
            "reasons": self.reasons,
        }

    @classmethod
    def from_state(cls, state):
        t = state["table"]
        m = state["meta"]
        return cls(
            values=state["values"],
            table=pd.DataFrame({c: t[c] for c in t["columns"]}),
            names=state["names"],
            label=m["label"], count=m["count"], scale=m["scale"], flag=m["flag"], nothing=m["nothing"],
            reasons=state["reasons"],
        )


@dataclass(frozen=True)
class FakeColumns:
    positions: np.ndarray
    sublattice: np.ndarray
    intensity: np.ndarray
    width: np.ndarray
    quality: np.ndarray
    pixel_size: float | None
    provenance: dict = field(default_factory=lambda: {"step": "find_columns"})

    def to_state(self):
        return {k: getattr(self, k) for k in ("positions", "sublattice", "intensity", "width", "quality", "pixel_size")}

    @classmethod
    def from_state(cls, state):
        return cls(**state)


def fake_result(seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"i": np.arange(5), "Px": rng.normal(size=5), "name": list("abcde")})
    values = rng.normal(size=(2, 3, 8, 8))
    values[0, 0] = np.nan
    return FakeResult(values=values, table=table, names=("I14", "Px"))


def fake_columns(pixel_size=10.0):
    rng = np.random.default_rng(1)
    return FakeColumns(
        positions=rng.uniform(0, 100, (6, 2)),
        sublattice=np.array(list("ABABAB")),
        intensity=rng.uniform(size=6),
        width=np.full(6, 2.0),
        quality=np.ones(6),
        pixel_size=pixel_size,
    )


def assert_same(a: FakeResult, b: FakeResult):
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.dtype == b.values.dtype
    pd.testing.assert_frame_equal(a.table, b.table)
    assert b.names == a.names and isinstance(b.names, tuple)
    assert (b.label, b.count, b.flag, b.nothing) == (a.label, a.count, a.flag, a.nothing)
    assert np.isnan(b.scale)
    assert b.reasons.dtype == object and b.reasons.tolist() == a.reasons.tolist()


# ------------------------------------------------------------------------------------------ reading


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


# ------------------------------------------------------------------------------------------ results


def test_round_trip_is_exact_and_manifest_has_provenance(tmp_path):
    res = fake_result()
    out = save_results(tmp_path / "r", lingam=res, sliding=fake_result(1),
                       image_info={"sha256": "ab" * 32, "shape": [64, 48], "pixel_size": 9.33})
    loaded = load_results(out, classes={"lingam": FakeResult, "sliding": FakeResult})
    assert isinstance(loaded, Results)
    assert_same(res, loaded.lingam)
    assert_same(fake_result(1), loaded.sliding)
    assert loaded.columns is None and loaded.image_info["pixel_size"] == 9.33
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["contents"]["lingam"]["provenance"]["seed"] == 7
    assert manifest["contents"]["lingam"]["provenance"]["params"] == {"window": 20}
    assert "numpy" in manifest["versions"] and "lingam" in manifest["versions"]
    with np.load(out / "arrays.npz") as npz:
        assert "lingam/table/Px" in npz.files and "sliding/values" in npz.files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temp folder left
    assert results_complete(out)


def test_foreign_folders_are_never_touched(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "thesis.docx").write_text("precious")
    with pytest.raises(ValueError, match=r"not napari-causal-lattice results \(thesis.docx\)"):
        save_results(target, lingam=fake_result(), overwrite=True)
    assert [p.name for p in target.iterdir()] == ["thesis.docx"]

    out = save_results(tmp_path / "r", lingam=fake_result())
    with pytest.raises(ValueError, match="overwrite=True"):
        save_results(out, lingam=fake_result(2))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        save_results(out, lingam=fake_result(2), overwrite=True)
    (out / "notes.txt").unlink()
    save_results(out, lingam=fake_result(2), overwrite=True)
    assert_same(fake_result(2), load_results(out, classes={"lingam": FakeResult}).lingam)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        save_results(tmp_path / "file", lingam=fake_result())
    with pytest.raises(ValueError, match="nothing to save"):
        save_results(tmp_path / "empty")


def test_disk_full_leaves_nothing_half_written(tmp_path, monkeypatch):
    out = save_results(tmp_path / "r", lingam=fake_result())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ncl_store.np, "savez", full)
    with pytest.raises(OSError, match="the disk is full. Nothing was written"):
        save_results(tmp_path / "new", lingam=fake_result())
    with pytest.raises(OSError, match="disk is full"):
        save_results(out, lingam=fake_result(5), overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def half(path):
        path.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="disk is full"):
        save_results(tmp_path / "fig", lingam=fake_result(), extra={"figures/a.png": half})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_interrupted_swap_keeps_old_results(tmp_path, monkeypatch):
    out = save_results(tmp_path / "r", lingam=fake_result())
    real_replace = ncl_store.os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new folder into place fails
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(ncl_store.os, "replace", flaky)
    with pytest.raises(KeyboardInterrupt):
        save_results(out, lingam=fake_result(3), overwrite=True)
    monkeypatch.undo()
    assert_same(fake_result(), load_results(out, classes={"lingam": FakeResult}).lingam)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_format_mismatch_and_damage_give_clear_messages(tmp_path):
    out = save_results(tmp_path / "r", lingam=fake_result())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"results format {FORMAT_VERSION + 1}.*reads format {FORMAT_VERSION}"):
        load_results(out)
    assert not results_complete(out)
    with pytest.raises(ValueError, match="not a napari-causal-lattice results folder"):
        load_results(tmp_path)
    out2 = save_results(tmp_path / "r2", lingam=fake_result())
    with pytest.raises(ValueError, match="outside this package"):
        load_results(out2)
    (out2 / "arrays.npz").write_bytes(b"broken")
    with pytest.raises(ValueError, match="damaged"):
        load_results(out2, classes={"lingam": FakeResult})


def test_bad_state_leaves_are_refused(tmp_path):
    class Bad:
        provenance = {}

        def to_state(self):
            return {"x": {1, 2}}

    with pytest.raises(TypeError, match="cannot store set at 'lingam/x'"):
        save_results(tmp_path / "r", lingam=Bad())
    assert not (tmp_path / "r").exists()


def test_csv_export_in_physical_units(tmp_path):
    cols = fake_columns(pixel_size=10.0)
    out = save_results(tmp_path / "r", columns=cols)
    table = pd.read_csv(out / "columns.csv")
    np.testing.assert_allclose(table["y [pm]"], cols.positions[:, 0] * 10.0)
    np.testing.assert_allclose(table["x [px]"], cols.positions[:, 1])
    np.testing.assert_allclose(table["width [pm]"], 20.0)
    assert list(table["sublattice"]) == list("ABABAB")
    assert "y [pm]" not in columns_frame(fake_columns(pixel_size=None))


@dataclass(frozen=True)
class StateBox:
    """Holds any state tree as it is; used to round-trip arbitrary states."""

    state: dict
    provenance: dict = field(default_factory=dict)

    def to_state(self):
        return self.state

    @classmethod
    def from_state(cls, state):
        return cls(state)


def _states():
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays, array_shapes

    keys = st.text("abcdefgh_IPxy", min_size=1, max_size=6)
    numeric = arrays(st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_, "<U3"]),
                     array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    leaves = st.one_of(
        numeric,
        st.none(),
        st.booleans(),
        st.integers(-(2**62), 2**62),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.lists(st.text(max_size=5), max_size=4),
    )
    return st.recursive(leaves, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12).map(
        lambda tree: tree if isinstance(tree, dict) else {"leaf": tree}
    )


def _same_tree(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _same_tree(a[k], b[k])
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b)
    else:
        assert type(a) is type(b) and a == b


def test_any_state_tree_round_trips_exactly(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_states())
    def check(state):
        out = tmp_path_factory.mktemp("prop") / "r"
        save_results(out, pca=StateBox(state))
        _same_tree(state, load_results(out, classes={"pca": StateBox}).pca.state)

    check()


# ------------------------------------------------------------------------------------------ integrity


def test_truncated_or_altered_arrays_are_named_never_a_raw_zip_error(tmp_path):
    out = save_results(tmp_path / "r", lingam=fake_result())
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["checksums"]) == {"arrays.npz"} and "lingam/values" in manifest["array_checksums"]
    whole = (out / "arrays.npz").read_bytes()
    (out / "arrays.npz").write_bytes(whole[: len(whole) // 2])
    assert not results_complete(out)
    with pytest.raises(ResultsError, match=r"arrays.npz .*damaged"):
        load_results(out, classes={"lingam": FakeResult})
    assert resume_status(out, run_record(input_sha256="x", params={}))[0] == "incomplete"

    # a valid archive whose values changed: the array is named
    (out / "arrays.npz").write_bytes(whole)
    with np.load(out / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["lingam/values"] = arrays["lingam/values"] + 1
    np.savez(out / "arrays.npz", **arrays)
    with pytest.raises(ResultsError, match="array 'lingam/values' in .*arrays.npz differs"):
        load_results(out, classes={"lingam": FakeResult})
    (out / "arrays.npz").unlink()
    with pytest.raises(ResultsError, match="arrays.npz is missing"):
        load_results(out, classes={"lingam": FakeResult})
    assert resume_status(out, run_record(input_sha256="x", params={})) == ("incomplete", "arrays.npz is missing")


def test_damaged_manifest_of_our_folder_is_replaced_only_with_overwrite(tmp_path):
    out = save_results(tmp_path / "r", lingam=fake_result(), extra={"figures/a.png": lambda p: p.write_bytes(b"x")})
    (out / "manifest.json").write_text('{"format": "napari-causal-lattice res')
    with pytest.raises(ResultsError, match="manifest.json is damaged"):
        load_results(out)
    assert resume_status(out, run_record(input_sha256="x", params={}))[0] == "damaged"
    with pytest.raises(ValueError, match="manifest.json is damaged or missing.*only napari-causal-lattice result "
                       r"files; pass overwrite=True \(CLI: --overwrite\)"):
        save_results(out, lingam=fake_result(1))
    save_results(out, lingam=fake_result(1), overwrite=True)
    assert_same(fake_result(1), load_results(out, classes={"lingam": FakeResult}).lingam)
    # a broken manifest beside someone else's file: still never touched
    (out / "manifest.json").write_text("garbage")
    (out / "thesis.docx").write_text("precious")
    with pytest.raises(ValueError, match=r"not napari-causal-lattice results \(thesis.docx\)"):
        save_results(out, lingam=fake_result(2), overwrite=True)


def test_resume_status_names_what_changed(tmp_path):
    run = run_record(input_sha256="aa", params={"window": 20, "seed": 0})
    steps = {"lingam": {"status": "done", "reason": ""}}
    out = save_results(tmp_path / "r", lingam=fake_result(), run=run, steps=steps)
    assert resume_status(out, run) == ("complete", "")
    status, detail = resume_status(out, run_record(input_sha256="bb", params={"window": 16, "seed": 0}))
    assert status == "changed" and "the image differs" in detail and "window 20 -> 16" in detail
    assert resume_status(tmp_path / "new", run) == ("absent", "")
    assert load_results(out, classes={"lingam": FakeResult}).steps == steps


def test_leftover_temp_folders_of_killed_saves_are_cleaned(tmp_path):
    import subprocess

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    host = ncl_store.socket.gethostname()
    tmp = tmp_path / f".r.tmp-{host}-{dead}-0badc0de"
    tmp.mkdir()
    (tmp / "arrays.npz").write_bytes(b"half")
    alive = tmp_path / f".r.tmp-{host}-{ncl_store.os.getpid()}-0000beef"  # this process is still writing it
    alive.mkdir()
    check_results_target(tmp_path / "r")
    assert not tmp.exists() and alive.exists()
    alive.rmdir()

    # killed between moving old results aside and moving the new ones in: the old ones come back
    out = save_results(tmp_path / "s", lingam=fake_result())
    old = tmp_path / f".s.old-{host}-{dead}-12345678"
    ncl_store.os.replace(out, old)
    assert clean_stale_temp(tmp_path / "s") == [old]
    assert_same(fake_result(), load_results(out, classes={"lingam": FakeResult}).lingam)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_an_edited_manifest_or_figure_is_refused(tmp_path):
    """A variable label edited in manifest.json (``Py <- I5`` read as ``Px <- I5``) or a changed figure or CSV
    is damage: load_results says so instead of loading silently."""
    out = save_results(tmp_path / "r", lingam=fake_result(),
                       extra={"figures/a.png": lambda p: p.write_bytes(b"\x89PNG fake")})
    assert load_results(out, classes={"lingam": FakeResult}).lingam is not None
    text = (out / "manifest.json").read_text()
    manifest = json.loads(text)
    assert manifest["manifest_sha256"] == ncl_store.manifest_checksum(manifest)
    assert '"Px"' in text
    (out / "manifest.json").write_text(text.replace('"Px"', '"Py"', 1))
    with pytest.raises(ResultsError, match="manifest.json was edited after it was saved"):
        load_results(out, classes={"lingam": FakeResult})
    assert not results_complete(out)
    (out / "manifest.json").write_text(text)
    (out / "figures" / "a.png").write_bytes(b"\x89PNG other")
    with pytest.raises(ResultsError, match="figures/a.png is damaged"):
        load_results(out, classes={"lingam": FakeResult})


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
