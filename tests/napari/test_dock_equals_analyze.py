"""The docks and `analyze` are one analysis (issue 25): with their defaults, on the real PTO/SRO image, the docks
give the same columns, flagged cells, global edges and sliding window as :func:`run_pipeline` (the CLI's
``analyze``), because the docks' forms and the CLI's flags are generated from the same options objects."""

from __future__ import annotations

import numpy as np
import pytest

from napari_causal_lattice import run_pipeline

from test_responsive import _ok

PLUGIN = "napari-causal-lattice"
PIXEL_PM = 14.997  # pm/px, from the file's metadata (README of the data folder)


@pytest.mark.slow
def test_docks_with_defaults_equal_analyze_on_pto_sro(make_napari_viewer, qtbot, shared_data):
    image = np.load(shared_data / "temul_pto_sro_supercrystal" / "Cropped_PTO-SRO_Aligned_image.npy")
    viewer = make_napari_viewer()
    viewer.add_image(image, name="PTO/SRO", scale=(PIXEL_PM, PIXEL_PM), units="pm")
    _, workflow = viewer.window.add_plugin_dock_widget(PLUGIN, "Workflow")
    steps = workflow.steps
    columns, descriptors, causal, sliding = (steps[k] for k in ("Columns", "Descriptors", "Causal", "Sliding"))
    columns.find_button.click()
    qtbot.waitUntil(lambda: _ok(columns) and columns.b_layer is not None, timeout=300000)
    descriptors.build_button.click()
    qtbot.waitUntil(lambda: _ok(descriptors) and descriptors.cells is not None, timeout=300000)
    causal.run_button.click()
    qtbot.waitUntil(lambda: _ok(causal) and causal.result is not None, timeout=300000)
    sliding.run_button.click()
    qtbot.waitUntil(lambda: _ok(sliding) and sliding.result is not None, timeout=300000)

    analyzed = run_pipeline(image, pixel_size=PIXEL_PM)
    np.testing.assert_array_equal(columns.columns.positions, analyzed.columns.positions)
    dock_cells, cli_cells = descriptors.cells.table, analyzed.cells.table
    assert descriptors.cells.flag_counts() == analyzed.cells.flag_counts()
    np.testing.assert_array_equal(dock_cells["flag"].to_numpy(), cli_cells["flag"].to_numpy())
    np.testing.assert_array_equal(causal.result.significant, analyzed.lingam.significant)
    np.testing.assert_array_equal(causal.result.adjacency, analyzed.lingam.adjacency)
    assert sliding.result.window == analyzed.sliding.window
    np.testing.assert_array_equal(sliding.result.significant, analyzed.sliding.significant)
