"""The console script: analyze (resumable, per-image folders, exit codes), demo dispatch, --version, --help."""

from __future__ import annotations

import re
import subprocess
import sys
import types

import numpy as np
import pytest

from napari_causal_lattice import __version__
from napari_causal_lattice.cli import main
from napari_causal_lattice.store import load_results
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

    from napari_causal_lattice import batch
    from napari_causal_lattice.batch import BatchItem

    seen = {}
    steps = {"cells": {"status": "done", "reason": "", "flags": {"outlier": 2}},
             "lingam": {"status": "done", "reason": "", "note": "Near-deterministic variables: Vol"},
             "sliding": {"status": "done", "reason": "", "window": 10}}

    def fake(images, **kwargs):
        seen.update(kwargs)
        return [BatchItem(images[0], str(tmp_path), "done", steps=steps)]

    monkeypatch.setattr(batch, "analyze_images", fake)
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
    monkeypatch.setenv("DISPLAY", ":99")
    assert main(["demo", "--headless", "--out", "d"]) == 0
    assert main(["demo"]) == 0
    assert calls == [(True, "d"), (False, None)]
    assert main(["demo", "--headless"]) == 2  # usage: the same status as analyze's usage errors
    assert "needs --out DIR" in capsys.readouterr().err

    def without_napari(headless, out):
        raise ModuleNotFoundError("No module named 'napari'", name="napari")

    fake.run_demo = without_napari
    assert main(["demo"]) == 2
    assert 'pip install "napari-causal-lattice[napari]"' in capsys.readouterr().err

    def failing(headless, out):
        raise RuntimeError("failed: sliding LiNGAM")

    fake.run_demo = failing
    assert main(["demo"]) == 1


def test_demo_without_a_display_says_so_instead_of_aborting(monkeypatch, capsys):
    if not sys.platform.startswith("linux"):
        pytest.skip("only Linux needs an X or Wayland display")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo", "--headless", "--out", "d"]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "xvfb-run -a napari-causal-lattice demo --headless" in err
    done = subprocess.run([sys.executable, "-m", "napari_causal_lattice.cli", "demo", "--headless", "--out", "d"],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in __import__("os").environ.items()
                               if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")})
    assert done.returncode == 2 and "no display" in done.stderr


def test_pre_check_failures_give_json_with_json(tmp_path, capsys):
    import json

    assert main(["analyze", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "o"), "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["status"] == "refused" and report["exit_status"] == 2
    assert any("missing.tif: no such image file" in p for p in report["problems"])
    assert "no such image file" in captured.err
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", "x.tif", "--out", "o", "--window", "2", "--json"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "usage error" and "'auto' or a whole number" in captured.err


def test_an_unreachable_scheduler_is_reported_at_once(tmp_path, capsys):
    import socket
    import time

    np.save(tmp_path / "img.npy", np.zeros((32, 32)))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    code = main(["analyze", str(tmp_path / "img.npy"), "--out", str(tmp_path / "o"),
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert time.perf_counter() - start < 5.0
    assert code == 2
    assert f"cannot reach the dask scheduler at tcp://127.0.0.1:{port} (connection refused)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "napari_causal_lattice.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and __version__ in done.stdout


# ------------------------------------------------------------------------------------------ runs you can trust


@pytest.fixture(scope="module")
def scans(two_scans):
    """Two different small images, as .npy files, and common options."""
    return two_scans, ["--window", "8", "--bootstrap", "0", "--pixel-size", "25"]


class _Computed(BaseException):
    """Raised by a trap; not an Exception, so the batch's per-image ``except Exception`` cannot swallow it."""


def _analyze(image, out, options, *extra):
    return main(["analyze", str(image), "--out", str(out), *options, *extra])


def test_read_only_and_occupied_out_are_caught_before_computing(scans, tmp_path, monkeypatch, capsys):
    from napari_causal_lattice import batch

    computed = []

    def never(*args, **kwargs):
        computed.append(args)
        raise _Computed("computed although the batch could not be saved")

    monkeypatch.setattr(batch, "run_pipeline", never)
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



# ------------------------------------------------------------------------------------------ runs that cannot mix


def test_a_folder_in_use_by_another_process_is_refused(scans, tmp_path, capsys):
    """A second analyze on a results folder that a running process holds is refused, and writes nothing."""
    folder, options = scans
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from napari_causal_lattice.store import ResultsLock; "
         f"lock = ResultsLock({str(out / 'first')!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _analyze(folder / "first.npy", out, options) == 2
        err = capsys.readouterr().err
        assert f"{out / 'first'} is in use by another run (process {holder.pid} on " in err
        assert not (out / "first").exists() and not (out / "report.html").exists()
    finally:
        holder.kill()
        holder.wait()
    from napari_causal_lattice.store import ResultsLock

    with ResultsLock(out / "first"):  # the lock went with its process
        pass
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_figure_options_redraw_figures_without_recomputing(scans, tmp_path, monkeypatch, capsys):
    import json

    from napari_causal_lattice import batch

    folder, options = scans
    out = tmp_path / "out"
    assert _analyze(folder / "first.npy", out, options) == 0
    captured = capsys.readouterr()  # the summary line gives the columns and cells found
    assert re.search(r"\tdone\t.*first \(\d+ columns, \d+ cells\)$", captured.out.strip())
    assert re.search(r"1 done, 0 partial, 0 skipped \(already complete\), 0 failed; \d+ atom columns, \d+ unit "
                     r"cells", captured.err)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "no lock file left behind"
    png = (out / "first" / "figures" / "pca.png").read_bytes()
    arrays = (out / "first" / "arrays.npz").read_bytes()

    def never(*args, **kwargs):
        raise AssertionError("recomputed although only the figure options changed")

    monkeypatch.setattr(batch, "run_pipeline", never)
    monkeypatch.setattr(batch, "_compute", never)
    assert _analyze(folder / "first.npy", out, options, "--dpi", "60", "--figure-format", "png,svg",
                    "--style", "greyscale", "--json") == 0
    captured = capsys.readouterr()
    [item] = json.loads(captured.out)
    assert item["status"] == "done" and item["message"] == "figures redrawn from the saved results"
    assert "figures redrawn (png/svg, 60 dpi, greyscale)" in captured.err
    assert (out / "first" / "figures" / "pca.svg").is_file()
    assert (out / "first" / "figures" / "pca.png").read_bytes() != png
    assert (out / "first" / "arrays.npz").read_bytes() == arrays
    assert load_results(out / "first").manifest["run"]["figures"] == {"formats": ["png", "svg"], "dpi": 60,
                                                                      "style": "greyscale"}
    argv = ("--dpi", "60", "--figure-format", "png,svg", "--style", "greyscale")
    assert _analyze(folder / "first.npy", out, options, *argv) == 0
    assert "skipped (results complete" in capsys.readouterr().err


@pytest.mark.slow
def test_warnings_and_skipped_steps_are_recorded_everywhere(scans, tmp_path, capsys):
    """A pixel size 100 x too large (calibration warning) and a window leaving 1 sliding window (PCA skipped):
    the image is done, and each warning is in the manifest, --json, report.html and one clean stderr line."""
    import json

    folder, options = scans
    out = tmp_path / "out"
    argv = ["--window", "16", "--bootstrap", "0", "--pixel-size", "2500", "--json"]
    assert _analyze(folder / "first.npy", out, argv) == 0
    captured = capsys.readouterr()
    [item] = json.loads(captured.out)
    assert item["status"] == "done" and item["steps"]["pca"]["status"] == "skipped"
    assert "PCA needs at least 3" in item["steps"]["pca"]["reason"]
    assert item["columns"] > 400 and item["cells"] > 150
    assert item["image_notes"] == []  # the pixel size was given: nothing to note about reading the image
    calibration = [w for w in item["warnings"] if "lattice parameter comes out as" in w]
    assert len(calibration) == 1 and any(w.startswith("pca skipped: only 1 of") for w in item["warnings"])
    manifest = json.loads((out / "first" / "manifest.json").read_text())
    assert calibration[0] in manifest["steps"]["columns"]["warnings"]
    report = (out / "report.html").read_text()
    assert "Warnings" in report and "lattice parameter comes out as" in report and "pca skipped" in report
    lines = [line for line in captured.err.splitlines() if "warning:" in line]
    assert any("first.npy: warning: the lattice parameter comes out as" in line for line in lines)
    assert "UserWarning" not in captured.err and "warnings.warn" not in captured.err
