"""The results store (store.py), with small fake result objects: exact round trips, atomic saves, integrity and
resuming."""

from __future__ import annotations

import errno
import json
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice import store as ncl_store
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
