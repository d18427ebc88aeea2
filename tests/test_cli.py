"""The console script: analyze (resumable, per-image folders, exit codes), demo dispatch, --version, --help."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from napari_causal_lattice import __version__
from napari_causal_lattice.cli import main
from napari_causal_lattice.io import load_results
from napari_causal_lattice.pipeline import run_pipeline
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


def test_drop_deterministic_and_the_json_summary_reach_the_batch(tmp_path, monkeypatch, capsys):
    import json

    from napari_causal_lattice import pipeline
    from napari_causal_lattice.pipeline import BatchItem

    seen = {}
    steps = {"cells": {"status": "done", "reason": "", "flags": {"outlier": 2}},
             "lingam": {"status": "done", "reason": "", "note": "Near-deterministic variables: Vol"},
             "sliding": {"status": "done", "reason": "", "window": 10}}

    def fake(images, **kwargs):
        seen.update(kwargs)
        return [BatchItem(images[0], str(tmp_path), "done", steps=steps)]

    monkeypatch.setattr(pipeline, "analyze_images", fake)
    assert main(["analyze", "x.tif", "--out", str(tmp_path), "--drop-deterministic", "--json"]) == 0
    assert seen["drop_deterministic"] is True
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["window"] == 10 and summary["flags"] == {"outlier": 2}
    assert summary["notes"] == ["Near-deterministic variables: Vol"]


def test_local_process_pool_gives_the_serial_numbers(tmp_path, capsys):
    sample = synthetic_perovskite(seed=2, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0)
    np.save(tmp_path / "a.npy", sample.image)
    np.save(tmp_path / "b.npy", sample.image[::-1])
    common = ["--window", "8", "--bootstrap", "3", "--seed", "1", "--pixel-size", "25"]
    assert main(["analyze", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--out", str(tmp_path / "pool"),
                 "--workers", "2", "--dpi", "20", *common]) == 0  # small figures: they take most of the time
    assert "2 local worker processes" in capsys.readouterr().err
    pooled = load_results(tmp_path / "pool" / "b").sliding
    # the serial numbers without saving (figures take most of a run's time)
    serial = run_pipeline(tmp_path / "b.npy", pixel_size=25.0, window=8, n_bootstrap=3, seed=1).sliding
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


# ------------------------------------------------------------------------------------------ runs you can trust


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two different small images, as .npy files, and common options."""
    folder = tmp_path_factory.mktemp("scans")
    first = synthetic_perovskite(seed=2, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0).image
    second = synthetic_perovskite(seed=5, shape_cells=(16, 16), pitch=14.0, pixel_size=25.0).image
    np.save(folder / "first.npy", first)
    np.save(folder / "second.npy", second)
    return folder, ["--window", "8", "--bootstrap", "0", "--pixel-size", "25"]


class _Computed(BaseException):
    """Raised by a trap; not an Exception, so the batch's per-image ``except Exception`` cannot swallow it."""


def test_read_only_and_occupied_out_are_caught_before_computing(scans, tmp_path, monkeypatch, capsys):
    from napari_causal_lattice import pipeline

    computed = []

    def never(*args, **kwargs):
        computed.append(args)
        raise _Computed("computed although the batch could not be saved")

    monkeypatch.setattr(pipeline, "run_pipeline", never)
    folder, options = scans
    occupied = tmp_path / "occupied"
    (occupied / "first").mkdir(parents=True)
    (occupied / "first" / "notes.txt").write_text("mine")
    argv = ["analyze", str(folder / "first.npy"), str(tmp_path / "missing.tif"), "--out", str(occupied), *options]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "missing.tif: no such image file" in err and "(notes.txt)" in err
    # /proc refuses new folders even for root: a read-only place
    assert main(["analyze", str(folder / "first.npy"), "--out", "/proc/ncl-results", *options]) == 2
    assert "cannot write in /proc" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["analyze", str(folder / "first.npy"), "--out", str(tmp_path / "file" / "r"), *options]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert computed == []


def test_bad_options_are_refused_before_computing(scans, tmp_path, capsys):
    folder, options = scans
    argv = ["analyze", str(folder / "first.npy"), "--out", str(tmp_path / "o"), *options]
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--scale-unit", "furlong", "--projection", "[110]"])
    assert exit_info.value.code == 2
    assert "scale_unit must be a length unit" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main(argv + ["--projection", "[111]"])
    assert "projection must be one of 'auto', '[001]', '[110]', got '[111]'" in capsys.readouterr().err