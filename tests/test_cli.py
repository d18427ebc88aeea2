"""The console script: analyze (resumable, per-image folders, exit codes), demo dispatch, --version, --help."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from napari_causal_lattice import __version__
from napari_causal_lattice.cli import main
from napari_causal_lattice.io import load_results, results_complete
from napari_causal_lattice.synthetic import synthetic_perovskite


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--window", "--bootstrap", "--seed", "--workers", "--scheduler", "--pixel-size",
                   "--split-pixels"):
        assert option in text
    assert main([]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["analyze", "x.tif"], "--out"),
        (["analyze", "x.tif", "--out", "o", "--window", "2"], "'auto' or a whole number >= 3"),
        (["analyze", "x.tif", "--out", "o", "--bootstrap", "many"], "expected a whole number"),
        (["analyze", "x.tif", "--out", "o", "--pixel-size", "-3"], "positive number of pm/px"),
        (["analyze", "x.tif", "--out", "o", "--split-pixels", "0"], "expected a number >= 1"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_analyze_writes_one_folder_per_image_and_resumes(tmp_path, capsys):
    sample = synthetic_perovskite(seed=2, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0)
    np.save(tmp_path / "scan.npy", sample.image)
    out = tmp_path / "results"
    argv = ["analyze", str(tmp_path / "scan.npy"), "--out", str(out), "--window", "8", "--bootstrap", "0",
            "--seed", "4", "--pixel-size", "25"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "1 done, 0 partial, 0 skipped" in err
    assert results_complete(out / "scan")
    res = load_results(out / "scan")
    assert res.image_info["pixel_size"] == 25.0 and res.sliding.window == 8
    assert res.manifest["contents"]["sliding"]["provenance"]["seed"] == 4

    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    assert main(argv[:2] + [str(tmp_path / "broken.tif")] + argv[2:]) == 1
    err = capsys.readouterr().err
    assert "scan.npy: skipped (results complete" in err
    assert "broken.tif: FAILED: cannot read broken.tif" in err
    assert "0 done, 0 partial, 1 skipped (already complete), 1 failed" in err
    assert not (out / "broken").exists()


def test_local_process_pool_gives_the_serial_numbers(tmp_path, capsys):
    sample = synthetic_perovskite(seed=2, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0)
    np.save(tmp_path / "a.npy", sample.image)
    np.save(tmp_path / "b.npy", sample.image[::-1])
    common = ["--window", "8", "--bootstrap", "3", "--seed", "1", "--pixel-size", "25"]
    assert main(["analyze", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(tmp_path / "pool"),
                 "--workers", "2", *common]) == 0
    assert "2 local worker processes" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "b.npy"), "--out", str(tmp_path / "serial"), *common]) == 0
    pooled = load_results(tmp_path / "pool" / "b").sliding
    serial = load_results(tmp_path / "serial" / "b").sliding
    np.testing.assert_array_equal(pooled.adjacency, serial.adjacency)
    np.testing.assert_array_equal(pooled.probabilities, serial.probabilities)


def test_foreign_files_in_an_image_folder_are_left_alone(tmp_path, capsys):
    np.save(tmp_path / "scan.npy", np.zeros((64, 64)))
    (tmp_path / "results" / "scan").mkdir(parents=True)
    (tmp_path / "results" / "scan" / "notes.txt").write_text("mine")
    assert main(["analyze", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "results")]) == 2
    assert "not napari-causal-lattice results (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "results" / "scan").iterdir()] == ["notes.txt"]


def test_demo_dispatches_to_run_demo(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("napari_causal_lattice._napari.demo")

    def run_demo(headless, out):
        if headless and out is None:
            raise ValueError("demo --headless needs --out DIR")
        calls.append((headless, out))

    fake.run_demo = run_demo
    monkeypatch.setitem(sys.modules, "napari_causal_lattice._napari.demo", fake)
    assert main(["demo", "--headless", "--out", "d"]) == 0
    assert main(["demo"]) == 0
    assert calls == [(True, "d"), (False, None)]
    assert main(["demo", "--headless"]) == 1
    assert "needs --out DIR" in capsys.readouterr().err


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "napari_causal_lattice.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and __version__ in done.stdout
