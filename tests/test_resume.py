"""Resuming batches (``analyze`` / ``analyze_images``): skip, refuse, recompute, by content, on saved folders.

These tests check the bookkeeping (run records, manifests, skips, refusals, what is recomputed), not the numbers,
so the slow parts are replaced (``stubbed`` fixture):

* the compute step of the pipeline (``_run_steps``: columns, cells, fits) runs for real once per image content
  and parameters for the whole module, and is replayed after that, so every saved folder holds real results;
* figures are placeholder files (conftest's ``placeholder_figures``: the real ones take about a minute per
  folder), and the batch report is a one-line page (tested in test_report.py).

Reading images, planning, run records, saving, loading and the command line are the real code.  Most tests run
on a copy of one folder saved once (``saved``).
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_causal_lattice.batch import analyze_images
from napari_causal_lattice.cli import main
from napari_causal_lattice.pipeline import run_pipeline
from napari_causal_lattice.readers import array_sha256
from napari_causal_lattice.store import load_results, results_complete, save_results

#: The module that holds run_pipeline's compute step, figure writers and report (found from run_pipeline, so a
#: move of the batch code between modules is followed).
PIPELINE = sys.modules[run_pipeline.__module__]
BATCH = sys.modules[analyze_images.__module__]
OPTIONS = ["--window", "8", "--bootstrap", "0", "--pixel-size", "25"]
#: Real computations of the compute step, by (image content, pixel size, parameters) -> (objects, steps).
_COMPUTED: dict = {}


def _one_line_report(out, items, **options):
    path = Path(out) / "report.html"
    path.write_text("<html><body>report</body></html>")
    return path


@pytest.fixture(scope="module")
def stub(placeholder_figures):
    """Patch the slow parts for the whole module; yields the list of compute-step calls (keys) made so far."""
    real = PIPELINE._run_steps
    calls = []

    def run_steps(image, options, stages, **kwargs):
        # how the image is read ("load") is in the key already: the image content and the pixel size
        steps_options = {step: values for step, values in options.identity().items() if step != "load"}
        key = (array_sha256(image.data), image.pixel_size, json.dumps(steps_options, sort_keys=True, default=str))
        calls.append(key)
        if key not in _COMPUTED:
            _COMPUTED[key] = real(image, options, stages, **kwargs)
        else:  # replay the progress of the steps, so the bar still reaches 100 %
            for name in PIPELINE.STEPS:
                stages.start(name)
                stages.finish()
        objects, steps = _COMPUTED[key]
        return dict(objects), copy.deepcopy(steps)

    with pytest.MonkeyPatch.context() as mp, placeholder_figures():
        mp.setattr(PIPELINE, "_run_steps", run_steps)
        mp.setattr(BATCH, "write_report", _one_line_report)
        yield calls


@pytest.fixture
def computed(stub):
    """The compute-step calls made during one test (cleared at its start)."""
    stub.clear()
    return stub


@pytest.fixture(scope="module")
def scans(two_scans):
    """Two different small images as .npy files."""
    return two_scans


@pytest.fixture(scope="module")
def saved(scans, stub, tmp_path_factory):
    """``out/scan`` analysed once from a copy of first.npy named scan.npy (``analyze ... OPTIONS``)."""
    root = tmp_path_factory.mktemp("saved")
    shutil.copy(scans / "first.npy", root / "scan.npy")
    assert _analyze(root / "scan.npy", root / "out") == 0
    return root


@pytest.fixture
def copy_of_saved(saved, tmp_path):
    """A fresh copy of the saved image and results: (scan.npy, out)."""
    shutil.copy(saved / "scan.npy", tmp_path / "scan.npy")
    shutil.copytree(saved / "out", tmp_path / "out")
    return tmp_path / "scan.npy", tmp_path / "out"


def _analyze(image, out, *extra, options=OPTIONS):
    return main(["analyze", str(image), "--out", str(out), *options, *extra])


# ---------------------------------------------------------------------------------------- one fresh folder


def test_analyze_writes_one_folder_per_image_and_resumes(scans, stub, tmp_path, capsys):
    out = tmp_path / "results"
    shutil.copy(scans / "first.npy", tmp_path / "scan.npy")
    argv = ["analyze", str(tmp_path / "scan.npy"), "--out", str(out), "--window", "8", "--bootstrap", "0",
            "--seed", "4", "--pixel-size", "25"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{tmp_path / 'scan.npy'}\tdone\t{out / 'scan'}")
    err = captured.err
    assert "100%" in err and "1 done, 0 partial, 0 skipped" in err
    assert "window 8 cells" in err and "flagged cells" in err
    assert results_complete(out / "scan")
    res = load_results(out / "scan")
    assert res.image_info["pixel_size"] == 25.0 and res.sliding.window == 8
    assert res.manifest["contents"]["sliding"]["provenance"]["seed"] == 4

    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    stub.clear()
    assert main(argv[:2] + [str(tmp_path / "broken.tif")] + argv[2:]) == 1
    err = capsys.readouterr().err
    assert "scan.npy: skipped (results complete" in err
    assert "broken.tif: FAILED: cannot read broken.tif" in err
    assert "0 done, 0 partial, 1 skipped (already complete), 1 failed" in err
    assert not (out / "broken").exists()
    assert stub == []


# ------------------------------------------------------------------------------- copies of one saved folder


def test_same_run_is_skipped_and_left_untouched(copy_of_saved, computed, capsys):
    scan, out = copy_of_saved
    before = {p.name: p.stat().st_mtime_ns for p in (out / "scan").iterdir()}
    assert _analyze(scan, out) == 0
    assert "skipped (results complete" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "scan").iterdir()} == before
    assert computed == []


def test_another_image_under_the_same_name_is_refused_then_overwritten(copy_of_saved, scans, computed, capsys):
    scan, out = copy_of_saved
    first = load_results(out / "scan").columns.positions
    scan.write_bytes((scans / "second.npy").read_bytes())
    assert _analyze(scan, out) == 2
    err = capsys.readouterr().err
    assert "the image differs" in err and "pass --overwrite" in err and "nothing was computed" in err
    assert computed == []
    assert _analyze(scan, out, "--overwrite") == 0
    assert len(computed) == 1
    assert not np.array_equal(load_results(out / "scan").columns.positions, first)


def test_a_changed_parameter_is_named_and_refused(copy_of_saved, computed, capsys):
    scan, out = copy_of_saved
    assert _analyze(scan, out, options=["--window", "6"] + OPTIONS[2:]) == 2
    assert "window 8 -> 6" in capsys.readouterr().err
    assert computed == []


def test_truncated_arrays_are_recomputed_without_overwrite(copy_of_saved, computed, capsys):
    scan, out = copy_of_saved
    npz = out / "scan" / "arrays.npz"
    npz.write_bytes(npz.read_bytes()[:1000])
    assert _analyze(scan, out) == 0
    assert "arrays.npz is damaged" in capsys.readouterr().err and results_complete(out / "scan")
    assert len(computed) == 1


def test_a_damaged_manifest_is_refused_and_replaced_with_overwrite(copy_of_saved, computed, capsys):
    scan, out = copy_of_saved
    (out / "scan" / "manifest.json").write_text("{ half a manifest")
    assert _analyze(scan, out) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert computed == []
    assert _analyze(scan, out, "--overwrite") == 0
    assert results_complete(out / "scan") and len(computed) == 1


def test_incomplete_results_are_recomputed(copy_of_saved, computed):
    scan, out = copy_of_saved
    shutil.rmtree(out / "scan")
    save_results(out / "scan", image_info={"note": "interrupted run"})
    (out / "scan" / "arrays.npz").unlink()
    assert not results_complete(out / "scan")
    [item] = analyze_images([scan], out=out, window=8, n_bootstrap=0, pixel_size=25.0)
    assert item.status == "done" and results_complete(out / "scan")
    assert len(computed) == 1


def test_leftover_temp_folder_is_removed_by_the_next_run(copy_of_saved, capsys):
    scan, out = copy_of_saved
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftover = out / f".scan.tmp-{socket.gethostname()}-{dead}-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "arrays.npz").write_bytes(b"killed while saving")
    shutil.rmtree(out / "scan")
    assert _analyze(scan, out) == 0
    assert not any(p.name.startswith(".") for p in out.iterdir())
    assert (out / "scan" / "manifest.json").is_file()


def test_rerun_of_a_batch_skips_complete_images_and_reports_failures_again(copy_of_saved, scans, computed):
    scan, out = copy_of_saved
    shutil.copy(scans / "second.npy", scan.parent / "two.npy")
    (scan.parent / "broken.tif").write_bytes(b"II*\x00broken")
    images = [scan, scan.parent / "broken.tif", scan.parent / "two.npy"]
    options = {"window": 8, "n_bootstrap": 0, "seed": 0, "pixel_size": 25.0}
    first = analyze_images(images, out=out, **options)
    assert [i.status for i in first] == ["skipped", "failed", "done"] and len(computed) == 1
    assert "cannot read broken.tif" in first[1].message
    before = (out / "two" / "manifest.json").stat().st_mtime_ns
    again = analyze_images(images, out=out, **options)
    assert [i.status for i in again] == ["skipped", "failed", "skipped"] and len(computed) == 1
    assert (out / "two" / "manifest.json").stat().st_mtime_ns == before


# ----------------------------------------------------------------------------------- partial runs, stacks


def test_sliding_failure_keeps_the_rest_and_exits_1(scans, stub, tmp_path, capsys):
    out = tmp_path / "out"
    assert _analyze(scans / "first.npy", out, "--min-cells", "5000", "--json") == 1
    captured = capsys.readouterr()
    [item] = json.loads(captured.out)
    assert item["status"] == "partial" and item["steps"]["sliding"]["status"] == "failed"
    assert "min_cells = 5000" in item["message"] and "PARTIAL" in captured.err
    manifest = json.loads((out / "first" / "manifest.json").read_text())
    assert manifest["steps"]["sliding"]["status"] == "failed"
    assert manifest["steps"]["pca"] == {"status": "skipped", "reason": "needs sliding, which failed"}
    res = load_results(out / "first")
    assert res.columns is not None and res.cells is not None and res.lingam is not None and res.sliding is None
    # the rerun skips (same run) but still says the earlier run was not complete
    stub.clear()
    assert _analyze(scans / "first.npy", out, "--min-cells", "5000") == 1
    assert "earlier run: sliding failed" in capsys.readouterr().out
    assert stub == []


def test_plane_picks_one_image_of_a_stack(scans, stub, tmp_path, capsys):
    stack = np.stack([np.load(scans / "first.npy"), np.load(scans / "second.npy")])
    np.save(tmp_path / "stack.npy", stack)
    assert _analyze(tmp_path / "stack.npy", tmp_path / "out") == 1
    assert "plane=k" in capsys.readouterr().err
    assert _analyze(tmp_path / "stack.npy", tmp_path / "out", "--plane", "1", "--json") == 0
    [item] = json.loads(capsys.readouterr().out)
    assert any("using plane 1" in note for note in item["image_notes"])
    res = load_results(tmp_path / "out" / "stack")
    assert res.manifest["run"]["params"]["load"]["plane"] == 1
    assert "using plane 1" in " ".join(res.image_info["notes"])
