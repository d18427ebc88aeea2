"""The whole journey as a microscopist, through the plugin's dock widgets and their public methods.

open the synthetic sample -> find columns -> delete and add a column by hand and refine -> descriptors ->
global LiNGAM -> sliding transform -> overlay Px <- Py -> PCA loadings -> save results -> reload them.
Checks layer names, shapes, alignment (a known column lands on its overlay pixel) and values against the
planted truth.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree

from napari_causal_lattice.lattice import DESCRIPTORS

PLUGIN = "napari-causal-lattice"
WINDOW = 12


def _dock(viewer, name):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def _finish(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.jobs.running, timeout=timeout)
    status = widget.jobs.status.text()
    assert "failed" not in status and "cancelled" not in status, status


def _value_at_world(layer, world):
    """The value of a 2D map layer at a world position (its nearest pixel)."""
    index = np.round(np.asarray(layer.world_to_data(world), dtype=float)).astype(int)
    return layer.data[tuple(index)]


@pytest.mark.slow
def test_microscopist_journey(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic_perovskite")
    image = viewer.layers["Synthetic perovskite"]
    truth = image.metadata["napari_causal_lattice"]["truth"]
    pixel_size = float(image.scale[-1])
    assert [str(u) for u in image.units] == ["picometer", "picometer"]

    # 1. atom columns
    columns = _dock(viewer, "Atom columns")
    columns.image_combo.setCurrentText(image.name)
    columns.run()
    _finish(qtbot, columns)
    a_layer, b_layer = viewer.layers["A columns"], viewer.layers["B columns"]
    np.testing.assert_allclose(b_layer.scale, image.scale)
    for layer, true in ((a_layer, truth.a_positions), (b_layer, truth.b_positions)):
        dist, _ = cKDTree(true).query(layer.data)
        assert np.mean(dist < 0.25 * 20) >= 0.995
        assert np.sqrt(np.mean(dist[dist < 5] ** 2)) * pixel_size <= 2.0  # pm
    n_b = len(b_layer.data)

    # 2. by hand: delete one B column, add it back 3 px off, refine; only that point moves
    tree = cKDTree(b_layer.data)
    target = truth.b_positions[len(truth.b_positions) // 2]
    _, k = tree.query(target)
    kept = np.delete(np.asarray(b_layer.data), k, axis=0)
    b_layer.data = np.vstack([kept, target + [3.0, -2.0]])
    before = np.asarray(b_layer.data).copy()
    columns.refine()
    _finish(qtbot, columns)
    after = np.asarray(b_layer.data)
    assert len(after) == n_b
    moved = np.hypot(*(after - before).T) > 1e-9
    assert moved.sum() == 1 and moved[-1]
    assert np.hypot(*(after[-1] - target)) < 0.2  # refined back onto the true column (px)
    columns.undo_refine()
    np.testing.assert_array_equal(np.asarray(b_layer.data), before)
    columns.refine()
    _finish(qtbot, columns)

    # 3. descriptors (the newest column layers are picked, never the hidden truth)
    descriptors = _dock(viewer, "Descriptors")
    assert (descriptors.a_combo.currentText(), descriptors.b_combo.currentText()) == ("A columns", "B columns")
    descriptors.build_button.click()
    _finish(qtbot, descriptors)
    cells = descriptors.cells
    assert cells.grid_shape == truth.grid_shape
    for name, unit in (("Px", "pm"), ("a", "pm"), ("alpha", "deg"), ("Vol", "pm^2")):
        descriptors.show_map(name)
        assert f"{name} [{unit}]" in viewer.layers
    assert set(DESCRIPTORS) <= set(viewer.layers["B columns"].features.columns)
    merged = cells.table.merge(truth.descriptors, on=["i", "j"], suffixes=("", "_true"))
    assert len(merged) == len(cells.table)
    for name, tol in (("Px", 2.5), ("Py", 2.5), ("a", 2.0), ("b", 2.0), ("alpha", 0.3)):
        rms = np.sqrt(np.mean((merged[name] - merged[f"{name}_true"]) ** 2))
        assert rms <= tol, (name, rms)
    # a known B column lies on its cell's region of the descriptor map (world coordinates)
    px_map = viewer.layers["Px [pm]"]
    row = cells.table.iloc[len(cells.table) // 3]
    b_world = image.data_to_world([row["y"], row["x"]])
    assert _value_at_world(px_map, b_world) == pytest.approx(row["Px"], rel=1e-5)

    # 4. global causal discovery
    causal = _dock(viewer, "Causal discovery")
    causal.refresh_sources()
    causal.n_bootstrap.setValue(10)
    causal.run()
    _finish(qtbot, causal)
    result = causal.result
    assert result.names == DESCRIPTORS
    assert result.probabilities.shape == (8, 8)
    # prior knowledge: nothing causes I14 or I5
    assert np.all(result.adjacency[:2] == 0)

    # 5. sliding transform and the Px <- Py overlay
    sliding = _dock(viewer, "Sliding LiNGAM")
    sliding.refresh_layers()
    sliding.source_combo.setCurrentText("B columns")
    sliding.image_combo.setCurrentText(image.name)
    sliding.window_spin.setValue(WINDOW)
    sliding.boot_spin.setValue(10)
    sliding.run()
    _finish(qtbot, sliding)
    overlay = viewer.layers[f"Px <- Py (window {WINDOW})"]
    res = sliding.result
    assert overlay.data.shape == image.data.shape  # painted on the cells' regions of the image
    # the cell at a window's centre shows that window's coefficient
    ky, kx = np.argwhere(res.fitted)[len(np.argwhere(res.fitted)) // 2]
    table = cells.table
    centre = np.argmin(np.hypot(*(table[["i", "j"]].to_numpy() - res.centers_grid[ky, kx]).T))
    centre_world = image.data_to_world(table[["y", "x"]].to_numpy()[centre])
    assert _value_at_world(overlay, centre_world) == pytest.approx(res.element("Px", "Py")[ky, kx], rel=1e-5)
    # planted sign of Px <- Py in windows whose centre lies deep inside a domain (film rows only)
    coupling = res.element("Px", "Py")
    distance = truth.signed_distance_to_wall(res.lattice.to_image(np.stack(np.indices(coupling.shape), -1)),
                                             unit="cells")
    first_substrate_row = np.argwhere((truth.region == 3).all(axis=1)).min()
    film_rows = res.centers_grid[..., 0] + WINDOW / 2 <= first_substrate_row
    deep = (np.abs(distance) > WINDOW / 2 + 2) & film_rows & res.fitted
    assert deep.sum() >= 6
    assert np.mean(np.sign(coupling[deep]) == np.sign(distance[deep])) >= 0.95

    # 6. PCA loadings as aligned layers
    sliding.run_pca(3)
    _finish(qtbot, sliding)
    pca = sliding.pca
    assert pca.components.shape == (3, 8, 8)
    loading = viewer.layers["PCA loading 1"]
    np.testing.assert_allclose(loading.affine.affine_matrix, overlay.affine.affine_matrix)

    # 7. save and reload
    from napari_causal_lattice.store import load_results, save_results

    target_dir = tmp_path / "results"
    save_results(target_dir, columns=b_layer.metadata["napari_causal_lattice"]["columns"], cells=cells,
                 lingam=result, sliding=res, pca=pca)
    back = load_results(target_dir)
    np.testing.assert_array_equal(back.sliding.adjacency, res.adjacency)
    np.testing.assert_array_equal(back.lingam.adjacency, result.adjacency)
    pd.testing.assert_frame_equal(back.cells.table, cells.table)  # mixed dtypes (flag: str), NaN sigmas
    np.testing.assert_array_equal(back.pca.loadings, pca.loadings)
