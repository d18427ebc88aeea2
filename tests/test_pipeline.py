"""Headless pipeline on a small synthetic perovskite: every step, results folder, figures, resume, dask."""

from __future__ import annotations

import io
import json
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

from napari_causal_lattice import Cancelled
from napari_causal_lattice.batch import analyze_images, output_folders
from napari_causal_lattice.pipeline import parameter_problems, run_pipeline
from napari_causal_lattice.store import load_results, results_complete
from napari_causal_lattice.synthetic import synthetic_perovskite

WINDOW = 8
OPTIONS = {"shape_cells": (18, 18), "pitch": 14.0, "pixel_size": 28.0}
#: Warnings shown while the module's ``results`` fixture ran.
SHOWN: list = []


@pytest.fixture(scope="module")
def sample():
    return synthetic_perovskite(seed=3, **OPTIONS)


@pytest.fixture(scope="module")
def results(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "run"
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_pipeline(sample, out=out, window=WINDOW, n_bootstrap=4, seed=5,
                           progress=lambda d, t: seen.append((d, t)))
    SHOWN.extend(caught)
    return res, out, seen


def test_every_step_runs_and_recovers_planted_structure(sample, results):
    res, _, seen = results
    truth = sample.truth
    from scipy.spatial import cKDTree

    found_b = res.columns.positions[res.columns.sublattice == "B"]
    dist, _ = cKDTree(found_b).query(truth.b_positions)
    assert np.mean(dist < 1.0) > 0.95  # planted B columns found within 1 px
    assert res.columns.pixel_size == pytest.approx(28.0)
    # descriptors in pm: the lattice parameter is pitch * pixel size = 392 pm within 2 %
    assert np.nanmedian(res.cells.table["a"]) == pytest.approx(14.0 * 28.0, rel=0.02)
    assert res.cells.units["Px"] == "pm"
    assert list(res.lingam.names) == ["I14", "I5", "a", "b", "alpha", "Vol", "Px", "Py"]
    assert res.sliding.window == WINDOW and res.sliding.stride == WINDOW // 2
    assert res.sliding.adjacency.shape[2:] == (8, 8)
    assert res.pca.loadings.shape[1:] == res.sliding.adjacency.shape[:2]
    assert res.image_info["sha256"] and res.image_info["pixel_size"] == pytest.approx(28.0)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 1000 and {t for _, t in seen} == {1000}


def test_results_folder_round_trips_with_provenance_and_figures(results):
    res, out, _ = results
    assert results_complete(out)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["arrays.npz", "cells.csv", "columns.csv", "figures/causal_graph.png",
                     "figures/descriptor_maps.png", "figures/image_columns.png", "figures/overlay_Px_Py.png",
                     "figures/pca.png", "figures/scan_jitter.png", "figures/sliding_grid.png", "manifest.json"]
    for png in out.glob("figures/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    cells_csv = pd.read_csv(out / "cells.csv")
    assert {"y [pm]", "x [pm]", "Px [pm]", "Vol [pm^2]", "alpha [deg]"} <= set(cells_csv.columns)
    np.testing.assert_allclose(cells_csv["y [pm]"], res.cells.table["y"] * 28.0)
    columns_csv = pd.read_csv(out / "columns.csv")
    np.testing.assert_allclose(columns_csv["x [pm]"], res.columns.positions[:, 1] * 28.0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["contents"]["sliding"]["provenance"]["seed"] == 5
    assert manifest["contents"]["sliding"]["provenance"]["params"]["window"] == WINDOW
    back = load_results(out)
    np.testing.assert_array_equal(back.columns.positions, res.columns.positions)
    np.testing.assert_array_equal(back.cells.table.to_numpy(), res.cells.table.to_numpy())
    np.testing.assert_array_equal(back.sliding.adjacency, res.sliding.adjacency)
    np.testing.assert_array_equal(back.sliding.reasons, res.sliding.reasons)
    np.testing.assert_array_equal(back.lingam.adjacency, res.lingam.adjacency)
    np.testing.assert_array_equal(back.pca.loadings, res.pca.loadings)
    assert back.image_info == json.loads(json.dumps(res.image_info))


def test_steps_record_flags_window_and_one_deterministic_note(results):
    from napari_causal_lattice.causal import DeterministicDescriptorWarning
    from napari_causal_lattice.pipeline import step_summary, step_warnings

    res, out, _ = results
    assert res.steps["cells"]["flags"] == res.cells.flag_counts()
    assert res.steps["sliding"]["window"] == WINDOW
    notes = {name: s["note"] for name, s in res.steps.items() if s.get("note")}
    assert list(notes) == ["lingam"], "the near-deterministic Vol is noted once per image"
    assert "Vol" in notes["lingam"] and "drop_deterministic=True" in notes["lingam"]
    assert not [w for w in SHOWN if issubclass(w.category, DeterministicDescriptorWarning)], "noted, not shown"
    saved = load_results(out).steps
    assert saved["cells"]["flags"] == res.steps["cells"]["flags"] and saved["sliding"]["window"] == WINDOW
    line = step_summary(res.steps)
    assert line.startswith(f"{len(res.columns.positions)} columns; {len(res.cells.table)} cells; line jitter ")
    for part in (f"window {WINDOW} cells", "mean P (", f"{sum(res.cells.flag_counts().values())} flagged cells"):
        assert part in line, (part, line)
    assert sum(w.startswith("Near-deterministic") for w in step_warnings(res.steps)) == 1
    recorded = [w for step in saved.values() if isinstance(step, dict) for w in step.get("warnings", [])]
    assert sorted(set(recorded)) == sorted(step_warnings(res.steps))  # every warning saved with its step


def test_drop_deterministic_leaves_vol_out_of_both_fits(sample):
    res = run_pipeline(sample, window=WINDOW, n_bootstrap=0, seed=5, n_components=2, drop_deterministic=True)
    assert "Vol" not in res.lingam.names and "Vol" not in res.sliding.names
    assert "left out: Vol" in res.steps["lingam"]["note"]
    (problem,) = parameter_problems(drop_deterministic="yes")
    assert problem.startswith("drop_deterministic must be True or False, got 'yes'")


def test_same_seed_same_results(sample, results):
    res, _, _ = results
    again = run_pipeline(sample, window=WINDOW, n_bootstrap=4, seed=5)
    np.testing.assert_array_equal(again.sliding.adjacency, res.sliding.adjacency)
    np.testing.assert_array_equal(again.sliding.probabilities, res.sliding.probabilities)
    np.testing.assert_array_equal(again.lingam.adjacency, res.lingam.adjacency)


def test_foreign_output_folder_fails_before_computing(sample, tmp_path):
    (tmp_path / "report.docx").write_text("mine")
    calls = []
    with pytest.raises(ValueError, match="not napari-causal-lattice results"):
        run_pipeline(sample, out=tmp_path, window=WINDOW, n_bootstrap=0, progress=lambda d, t: calls.append(d))
    assert calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["report.docx"]


def test_cancel_stops_and_writes_nothing(sample, tmp_path):
    flag = threading.Event()

    def progress(done, total):
        if done >= 150:
            flag.set()

    with pytest.raises(Cancelled):
        run_pipeline(sample, out=tmp_path / "r", window=WINDOW, n_bootstrap=0, progress=progress, cancel=flag)
    assert not (tmp_path / "r").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("figures_not_drawn")  # the figure files are still the real writers' names
def test_a_failed_step_keeps_what_was_computed(sample, tmp_path):
    # windows of the whole grid need more complete cells than any window has: sliding fails, PCA is skipped
    res = run_pipeline(sample, out=tmp_path / "r", window=18, min_cells=10_000, n_bootstrap=0)
    assert res.steps["columns"]["status"] == res.steps["cells"]["status"] == res.steps["lingam"]["status"] == "done"
    assert res.steps["sliding"]["status"] == "failed" and "min_cells = 10000" in res.steps["sliding"]["reason"]
    assert res.steps["pca"] == {"status": "skipped", "reason": "needs sliding, which failed"}
    assert res.failed_steps == {"sliding": res.steps["sliding"]["reason"]}
    assert res.sliding is None and res.pca is None and res.lingam is not None
    back = load_results(tmp_path / "r")
    assert back.steps == res.steps and back.sliding is None
    np.testing.assert_array_equal(back.lingam.adjacency, res.lingam.adjacency)
    assert (tmp_path / "r" / "figures" / "causal_graph.png").is_file()


def test_parameters_are_checked_all_at_once_in_our_words():
    with pytest.raises(ValueError) as info:
        run_pipeline(np.zeros((20, 20)), n_bootstrap=2.5, seed=-1, window=2, min_cells=3, projection="[111]")
    text = str(info.value)
    assert "5 problems" in text
    for part in ("n_bootstrap must be a whole number, got 2.5", "seed must be a whole number >= 0",
                 "window must be 'auto' or a whole number >= 3", "min_cells must be at least 10",
                 "projection must be one of"):
        assert part in text
    with pytest.raises(TypeError, match=r"not a numpy Generator .*int\(rng.integers"):
        run_pipeline(np.zeros((20, 20)), seed=np.random.default_rng(0))
    with pytest.raises(ValueError, match="window must be 'auto' or a whole number"):
        run_pipeline(np.zeros((20, 20)), window="big")
    with pytest.raises(ValueError, match="cannot write in /proc"):
        run_pipeline(np.zeros((20, 20)), out="/proc/ncl-results")
    from napari_causal_lattice.causal import fit_lingam

    table = np.random.default_rng(0).uniform(size=(50, 3))
    with pytest.raises(TypeError, match="n_bootstrap must be a whole number, got 2.5"):
        fit_lingam(table, n_bootstrap=2.5)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0 or None"):
        fit_lingam(table, n_bootstrap=2, seed=-1)
    with pytest.raises(TypeError, match="not a numpy Generator"):
        fit_lingam(table, n_bootstrap=2, seed=np.random.default_rng(0))


def test_bad_inputs_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="must be 2D"):
        run_pipeline(np.zeros((3, 20, 20)))
    with pytest.raises(TypeError, match="image path, a LoadedImage or a 2D array"):
        run_pipeline([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="positive number of pm/px"):
        run_pipeline(np.zeros((20, 20)), pixel_size=-1)


def test_output_folders_are_unique():
    folders = output_folders(["a/scan.tif", "b/scan.hspy", "c/other.npy", "d/scan.tif"], "out")
    assert [f.name for f in folders] == ["scan_tif", "scan_hspy", "other", "scan_tif_"]


@pytest.mark.usefixtures("figures_not_drawn")  # figures take about a minute per image
def test_batch_resumes_reports_failures_and_runs_on_a_dask_cluster(sample, tmp_path):
    distributed = pytest.importorskip("distributed")
    np.save(tmp_path / "one.npy", sample.image)
    np.save(tmp_path / "two.npy", sample.image[:, 14:][:, ::-1])
    (tmp_path / "broken.tif").write_bytes(b"II*\x00broken")
    out = tmp_path / "out"
    images = [tmp_path / "one.npy", tmp_path / "broken.tif", tmp_path / "two.npy"]
    log = io.StringIO()
    cluster_options = {"n_workers": 1, "threads_per_worker": 2}
    with distributed.LocalCluster(processes=False, dashboard_address=None, **cluster_options) as cluster:
        # one.npy reaches split_pixels: analysed here with its windows on the cluster; two.npy goes whole
        items = analyze_images(images, out=out, window=WINDOW, n_bootstrap=3, seed=1, pixel_size=28.0,
                               scheduler=cluster.scheduler_address, split_pixels=sample.image.size, stream=log)
    assert [i.status for i in items] == ["done", "failed", "done"]
    assert "cannot read broken.tif" in items[1].message
    assert "running 1 images on the dask cluster" in log.getvalue()
    assert "one.npy: analysed here, its sliding windows on the cluster" in log.getvalue()
    assert "two.npy: analysed here" not in log.getvalue()
    assert results_complete(out / "one") and results_complete(out / "two")
    for name in ("one", "two"):
        serial = run_pipeline(tmp_path / f"{name}.npy", pixel_size=28.0, window=WINDOW, n_bootstrap=3, seed=1)
        back = load_results(out / name).sliding
        np.testing.assert_array_equal(back.adjacency, serial.sliding.adjacency)
        np.testing.assert_array_equal(back.probabilities, serial.sliding.probabilities)

    before = (out / "one" / "manifest.json").stat().st_mtime_ns
    again = analyze_images(images, out=out, window=WINDOW, n_bootstrap=3, seed=1, pixel_size=28.0, stream=log)
    assert [i.status for i in again] == ["skipped", "failed", "skipped"]
    assert (out / "one" / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="split_pixels must be a positive whole number"):
        analyze_images(images, out=out, split_pixels=0)


@pytest.mark.usefixtures("figures_not_drawn")  # figures take about a minute per image
def test_single_image_windows_spread_over_the_cluster_and_cancel_leaves_nothing(sample, tmp_path):
    distributed = pytest.importorskip("distributed")
    np.save(tmp_path / "only.npy", sample.image)
    log = io.StringIO()
    cluster_options = {"n_workers": 2, "threads_per_worker": 1}
    with distributed.LocalCluster(processes=False, dashboard_address=None, **cluster_options) as cluster:
        with distributed.Client(cluster) as client:
            # the only image to compute is split whatever its size
            [item] = analyze_images([tmp_path / "only.npy"], out=tmp_path / "out", window=WINDOW, n_bootstrap=3,
                                    seed=2, pixel_size=28.0, scheduler=client, stream=log)
            assert item.status == "done" and "its sliding windows on the cluster" in log.getvalue()
            on_cluster = run_pipeline(sample, window=WINDOW, n_bootstrap=3, seed=2, executor=client)

            flag = threading.Event()

            def progress(done, total):
                if done > 400:  # inside the sliding stage (300 ... 900 of the 1000-step bar)
                    flag.set()

            with pytest.raises(Cancelled):
                run_pipeline(sample, out=tmp_path / "cancelled", window=WINDOW, n_bootstrap=20, seed=2,
                             executor=client, progress=progress, cancel=flag)
            assert not (tmp_path / "cancelled").exists()
    local = run_pipeline(sample, window=WINDOW, n_bootstrap=3, seed=2, workers=1)
    np.testing.assert_array_equal(on_cluster.sliding.adjacency, local.sliding.adjacency)
    np.testing.assert_array_equal(on_cluster.sliding.probabilities, local.sliding.probabilities)
    np.testing.assert_array_equal(load_results(tmp_path / "out" / "only").sliding.probabilities,
                                  local.sliding.probabilities)


@pytest.mark.realdata
@pytest.mark.usefixtures("figures_not_drawn")  # real-image figures are drawn by test_tutorial.py
def test_real_pto_image_end_to_end_in_pm(shared_data, tmp_path):
    path = shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned.hspy"
    res = run_pipeline(path, out=tmp_path / "pto", window=6, n_bootstrap=0, seed=0)
    assert res.image_info["pixel_size"] == pytest.approx(14.997, abs=1e-3)
    assert res.cells.units["a"] == "pm"
    # PbTiO3 pseudocubic a is about 390-400 pm (README of the data set); allow 10 %
    assert np.nanmedian(res.cells.table["a"]) == pytest.approx(395.0, rel=0.10)
    assert int(res.sliding.fitted.sum()) >= 4
    assert results_complete(tmp_path / "pto")


def test_a_calibration_warning_is_recorded_and_issued_once_after_the_run(sample):
    """Python callers get the step's warning once, naming the step, after the run; it is also in the steps."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_pipeline(sample.image, pixel_size=2800.0, window=WINDOW, n_bootstrap=0, seed=5)
    shown = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    calibration = [m for m in shown if "lattice parameter comes out as" in m]
    assert len(calibration) == 1 and calibration[0].startswith("columns: the lattice parameter")
    assert [w.filename for w in caught if "lattice parameter" in str(w.message)] == [__file__]
    assert calibration[0][len("columns: "):] in res.steps["columns"]["warnings"]
    assert not any(m.startswith("Near-deterministic") or m.startswith("lingam: Near") for m in shown)


def test_run_pipeline_refuses_a_folder_another_run_is_writing(sample, tmp_path):
    from napari_causal_lattice.store import ResultsBusy, ResultsLock

    calls = []
    with ResultsLock(tmp_path / "busy"):
        with pytest.raises(ResultsBusy, match=r"busy is in use by another run \(process \d+ on .*Nothing was written"):
            run_pipeline(sample, out=tmp_path / "busy", window=WINDOW, n_bootstrap=0,
                         progress=lambda d, t: calls.append(d))
        assert (tmp_path / ".busy.lock").is_file()
    assert calls == [] and list(tmp_path.iterdir()) == []
